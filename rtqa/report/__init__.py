"""Reports: terminal text, JSON, HTML, with shared formatting and atomic writes."""
