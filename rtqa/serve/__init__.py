"""``rtqa serve`` and ``rtqa watch``: check every plan export as it arrives.

Modules, by concern:

* :mod:`rtqa.serve.scp` — the DICOM Storage SCP (pynetdicom): C-ECHO, C-STORE of CT,
  RTSTRUCT, RTPLAN, RT Ion Plan and RTDOSE; AE-title allow-list, association and data
  set size limits; localhost by default.
* :mod:`rtqa.serve.watch` — the watched folder: files are taken once whole.
* :mod:`rtqa.serve.spool` — the durable spool (atomic write and fsync before success).
* :mod:`rtqa.serve.grouping` — plan sets by patient and UID links, completeness,
  settle time and deadline.
* :mod:`rtqa.serve.engine` — receive, schedule, check, record; restart recovery.
* :mod:`rtqa.serve.worker` — one plan checked as ``rtqa check`` does, in a worker
  process with the batch time limit.
* :mod:`rtqa.serve.db` — the database of receipts and results (SQLite, or PostgreSQL
  through a SQLAlchemy URL).
* :mod:`rtqa.serve.web` — the read-only web view.

pynetdicom is needed by ``rtqa serve`` only (``pip install 'rtqa[serve]'``); SQLAlchemy
and psycopg only for a PostgreSQL database (``pip install 'rtqa[pg]'``); WeasyPrint only
for PDF reports (``pip install 'rtqa[pdf]'``).
"""
