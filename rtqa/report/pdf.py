"""The PDF report of ``rtqa check --pdf``: the HTML report printed to A4 by WeasyPrint.

Why WeasyPrint: it is a maintained HTML/CSS-to-PDF renderer (BSD licence, pure Python on
top of Pango) that implements CSS Paged Media, so the one HTML report is also the printed
report: the same sections, tables and inline SVG DVH plots, with the patient, the plan and
"page N of M" on every page through ``@page`` margin boxes (see ``report.html.j2``).
It is an optional extra (``pip install 'rtqa[pdf]'``); it needs the Pango library of the
system (Debian: ``libpango-1.0-0 libpangoft2-1.0-0``). Without it ``render_pdf`` raises
``RtqaError`` saying what to install, before anything is computed by the CLI
(``pdf_available``).

Deterministic: the PDF metadata carry no creation date other than the report's own
timestamp, so two renders of the same report are identical.
"""

from __future__ import annotations

from rtqa.errors import RtqaError
from rtqa.results import Report

__all__ = ["render_pdf", "pdf_available", "INSTALL_HINT"]

INSTALL_HINT = ("PDF output needs WeasyPrint: pip install 'rtqa[pdf]' (and the Pango "
                "library, Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)")


def pdf_available() -> str | None:
    """None when a PDF can be written, else the reason (one line)."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the Pango library is missing
        return f"{INSTALL_HINT} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return None


def render_pdf(report: Report) -> bytes:
    """The PDF (A4) of the HTML report of ``report``.

    Raises ``RtqaError`` when WeasyPrint cannot be used and ``ValueError`` when the report
    is inconsistent (``rtqa.report.json_report.check_report``)."""
    from rtqa.report.html import render_html
    problem = pdf_available()
    if problem:
        raise RtqaError(problem)
    import logging

    import weasyprint
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # CSS it ignores is not news
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    html = render_html(report)
    document = weasyprint.HTML(string=html, base_url=None).render()
    return document.write_pdf()
