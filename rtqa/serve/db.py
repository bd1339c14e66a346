"""The results database of ``rtqa serve`` / ``rtqa watch``: SQLite by default, or
PostgreSQL through a SQLAlchemy URL.

``--db`` is a file path (SQLite, Python's standard library: nothing to install) or a
URL: ``postgresql://user:password@host:5432/dbname`` (driver psycopg 3, or another
SQLAlchemy PostgreSQL driver named as ``postgresql+psycopg2://...``; needs
``pip install 'rtqa[pg]'``). ``sqlite:///path`` is the same as the path.

Tables:

* ``instances``: one row per receipt (an instance received again is a new row): receipt
  number ``seq``, time, source (calling AE title or watched file), spool path, SHA-256,
  the linking header (:class:`rtqa.serve.grouping.Instance`) and ``pruned`` (the time
  its spool file was removed by ``--keep-days``; NULL while it is in the spool).
* ``checks``: one row per finished check: plan UID and label, patient, study, frame of
  reference, time started/finished, verdict (PASS/FAIL/ERROR), why it ran (``complete``,
  ``deadline``), the failing rows (JSON list of ``{"id", "structure", "metric",
  "value", "limit", "status"}``), the errors, what was missing, the report paths (JSON,
  HTML, PDF; "" when not written), the input digests (JSON list of ``{"path", "kind",
  "sop_instance_uid", "sha256"}``), the highest receipt number it covered
  (``max_seq``) and the check it supersedes.
* ``meta``: the schema version. A version-1 database (before ``pruned`` and
  ``report_pdf``) gets the new columns when it is opened.

A check is recorded only when it has finished (its reports are written first), so a
crash while checking leaves the plan pending and it is checked again at start-up. The
spool is the source of truth for instances: files missing from ``instances`` (a crash
between the spool write and the database) are indexed again at start-up.

One code path for both databases: every statement is written once, with named
parameters (``:name``), in SQL both accept; the two connection classes only differ in
how they connect, how an inserted row's number is returned and the id column type.
Writes are serialised by a lock (one server per database): receipt numbers therefore
increase in the order receipts are committed, which the grouping relies on. With SQLite
the connection uses WAL journaling and ``synchronous=FULL``; PostgreSQL commits are
durable by default. Readers (the web view) open their own read-only connection
(:func:`open_readonly`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from rtqa.serve.grouping import Instance

__all__ = ["Database", "open_readonly", "is_url", "display_target", "SCHEMA_VERSION"]

SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    seq {id},
    received DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    sop_class TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    frame_uid TEXT NOT NULL,
    label TEXT NOT NULL,
    refs TEXT NOT NULL,
    images TEXT NOT NULL,
    pruned DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS instances_sha ON instances (sha256);
CREATE TABLE IF NOT EXISTS checks (
    id {id},
    plan_key TEXT NOT NULL,
    plan_label TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    frame_uid TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    finished_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    failing TEXT NOT NULL,
    errors TEXT NOT NULL,
    missing TEXT NOT NULL,
    report_json TEXT NOT NULL,
    report_html TEXT NOT NULL,
    report_pdf TEXT NOT NULL DEFAULT '',
    inputs TEXT NOT NULL,
    max_seq BIGINT NOT NULL,
    last_received DOUBLE PRECISION NOT NULL,
    supersedes BIGINT REFERENCES checks (id)
);
CREATE INDEX IF NOT EXISTS checks_plan ON checks (plan_key)
"""

#: Columns added after version 1: (table, column, definition).
_ADDED = [("instances", "pruned", "DOUBLE PRECISION"),
          ("checks", "report_pdf", "TEXT NOT NULL DEFAULT ''")]

_INSTANCE_COLS = ("seq", "received", "source", "path", "sha256", "kind", "sop_class",
                  "sop_uid", "patient_id", "study_uid", "series_uid", "frame_uid", "label",
                  "refs", "images")


def is_url(target: str) -> bool:
    return "://" in str(target)


def display_target(target: str) -> str:
    """The database as it may be logged (a URL without its password)."""
    if not is_url(target):
        return str(target)
    try:
        from sqlalchemy.engine import make_url
        return make_url(target).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - no SQLAlchemy, or not a URL it reads
        scheme, _, rest = str(target).partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else str(target)


class _Sqlite:
    """SQLite through the standard library (the default database)."""

    dialect = "sqlite"
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: str, readonly: bool = False):
        import sqlite3
        if readonly:
            self._conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro",
                                         uri=True, check_same_thread=False, timeout=30)
        else:
            self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.row_factory = sqlite3.Row

    def query(self, sql: str, params: dict | None = None) -> list[dict]:
        return [dict(r) for r in self._conn.execute(sql, params or {}).fetchall()]

    def execute(self, sql: str, params: dict | None = None) -> None:
        self._conn.execute(sql, params or {})

    def insert(self, sql: str, params: dict, id_col: str) -> int:
        return self._conn.execute(sql, params).lastrowid

    def columns(self, table: str) -> set[str]:
        return {r["name"] for r in self.query(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        self._conn.close()


class _SqlAlchemy:
    """PostgreSQL through SQLAlchemy (``pip install 'rtqa[pg]'``)."""

    id_column = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    def __init__(self, url: str, readonly: bool = False):
        try:
            import sqlalchemy
        except ImportError:
            raise RuntimeError("a database URL needs SQLAlchemy and a PostgreSQL driver: "
                               "pip install 'rtqa[pg]'") from None
        from sqlalchemy.engine import make_url
        u = make_url(url)
        if u.drivername == "postgresql":       # the driver the pg extra installs
            u = u.set(drivername="postgresql+psycopg")
        if u.get_backend_name() != "postgresql":
            raise RuntimeError(f"unsupported database URL scheme {u.drivername!r}: "
                               "give a SQLite file or a postgresql:// URL")
        self.dialect = "postgresql"
        self._text = sqlalchemy.text
        self._engine = sqlalchemy.create_engine(u, pool_pre_ping=True)
        if readonly:
            self._engine = self._engine.execution_options(postgresql_readonly=True)
        with self._engine.connect() as c:      # fail now, with the reason, not later
            c.execute(self._text("SELECT 1"))

    def query(self, sql: str, params: dict | None = None) -> list[dict]:
        with self._engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(self._text(sql), params or {})]

    def execute(self, sql: str, params: dict | None = None) -> None:
        with self._engine.begin() as c:
            c.execute(self._text(sql), params or {})

    def insert(self, sql: str, params: dict, id_col: str) -> int:
        with self._engine.begin() as c:
            return c.execute(self._text(f"{sql} RETURNING {id_col}"), params).scalar_one()

    def columns(self, table: str) -> set[str]:
        return {r["column_name"] for r in self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = :t AND table_schema = current_schema()", {"t": table})}

    def close(self) -> None:
        self._engine.dispose()


def _connect(target: str, readonly: bool = False):
    target = str(target)
    if target.startswith("sqlite:///"):
        return _Sqlite(target[len("sqlite:///"):], readonly)
    if is_url(target):
        return _SqlAlchemy(target, readonly)
    return _Sqlite(target, readonly)


def open_readonly(target: str | Path):
    """A read-only connection (the web view): ``.query(sql, params) -> list[dict]``,
    ``.close()``."""
    return _connect(str(target), readonly=True)


class Database:
    """The read-write database of one server (see the module docstring). ``target``: a
    SQLite file or a database URL."""

    def __init__(self, target: str | Path):
        self.path = str(target)          # what the web view opens (file or URL)
        self._lock = threading.RLock()
        self._conn = _connect(self.path)
        with self._lock:
            for stmt in _TABLES.format(id=self._conn.id_column).split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            for table, column, definition in _ADDED:       # a version-1 database
                if column not in self._conn.columns(table):
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            self._conn.execute("INSERT INTO meta (key, value) VALUES ('schema', :v) "
                               "ON CONFLICT (key) DO NOTHING", {"v": str(SCHEMA_VERSION)})
            self._conn.execute("UPDATE meta SET value = :v WHERE key = 'schema'",
                               {"v": str(SCHEMA_VERSION)})

    @property
    def dialect(self) -> str:
        return self._conn.dialect

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- instances -----------------------------------------------------------------
    def add_instance(self, *, received: float, source: str, path: str, sha256: str,
                     **header) -> Instance:
        row = {"received": received, "source": source, "path": path, "sha256": sha256,
               **header}
        row["refs"] = json.dumps(list(header.get("refs", ())))
        row["images"] = json.dumps(list(header.get("images", ())))
        cols = _INSTANCE_COLS[1:]
        with self._lock:
            seq = self._conn.insert(
                f"INSERT INTO instances ({', '.join(cols)}) VALUES "
                f"({', '.join(':' + c for c in cols)})", {c: row.get(c, "") for c in cols},
                "seq")
        return _instance({**row, "seq": seq})

    def instances(self) -> list[Instance]:
        """Every receipt whose spool file is kept (not pruned), oldest first."""
        with self._lock:
            rows = self._conn.query(f"SELECT {', '.join(_INSTANCE_COLS)} FROM instances "
                                    "WHERE pruned IS NULL ORDER BY seq")
        return [_instance(r) for r in rows]

    def digests(self) -> set[str]:
        """SHA-256 of every receipt ever recorded (pruned ones included)."""
        with self._lock:
            return {r["sha256"] for r in
                    self._conn.query("SELECT DISTINCT sha256 FROM instances")}

    def pruned_digests(self) -> set[str]:
        """SHA-256 of contents all of whose receipts are pruned (their spool file may be
        removed)."""
        with self._lock:
            return {r["sha256"] for r in self._conn.query(
                "SELECT sha256 FROM instances GROUP BY sha256 "
                "HAVING COUNT(*) = COUNT(pruned)")}

    def mark_pruned(self, digests, when: float) -> None:
        """Mark every receipt of these contents as pruned (before their file goes)."""
        with self._lock:
            for d in sorted(digests):
                self._conn.execute("UPDATE instances SET pruned = :t WHERE sha256 = :d "
                                   "AND pruned IS NULL", {"t": when, "d": d})

    def count_instances(self) -> int:
        with self._lock:
            return self._conn.query("SELECT COUNT(*) AS n FROM instances")[0]["n"]

    # --- checks --------------------------------------------------------------------
    def add_check(self, row: dict) -> int:
        row = dict(row)
        for k in ("failing", "errors", "missing", "inputs"):
            row[k] = json.dumps(row.get(k, []), ensure_ascii=False)
        cols = [c for c in row if c != "id"]
        with self._lock:
            return self._conn.insert(
                f"INSERT INTO checks ({', '.join(cols)}) VALUES "
                f"({', '.join(':' + c for c in cols)})", {c: row[c] for c in cols}, "id")

    def set_report_pdf(self, check_id: int, path: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE checks SET report_pdf = :p WHERE id = :id",
                               {"p": path, "id": check_id})

    def last_checks(self) -> dict[str, dict]:
        """The latest finished check of every plan key."""
        with self._lock:
            rows = self._conn.query(
                "SELECT * FROM checks WHERE id IN (SELECT MAX(id) FROM checks "
                "GROUP BY plan_key)")
        return {r["plan_key"]: r for r in rows}

    def count_checks(self, plan_key: str) -> int:
        with self._lock:
            return self._conn.query("SELECT COUNT(*) AS n FROM checks WHERE plan_key = :k",
                                    {"k": plan_key})[0]["n"]

    def checks(self) -> list[dict]:
        with self._lock:
            rows = self._conn.query("SELECT * FROM checks ORDER BY id")
        return [decode_check(r) for r in rows]


def decode_check(r) -> dict:
    d = dict(r)
    for k in ("failing", "errors", "missing", "inputs"):
        d[k] = json.loads(d[k]) if d.get(k) else []
    return d


def _instance(row: dict) -> Instance:
    row = dict(row)
    row["refs"] = tuple(json.loads(row["refs"])) if isinstance(row["refs"], str) \
        else tuple(row["refs"])
    row["images"] = tuple(json.loads(row["images"])) if isinstance(row["images"], str) \
        else tuple(row["images"])
    return Instance(**{k: row[k] for k in _INSTANCE_COLS})
