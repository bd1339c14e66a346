"""The results database of ``rtqa serve`` / ``rtqa watch``: SQLite (standard library).

Two tables:

* ``instances``: one row per receipt (an instance received again is a new row): receipt
  number ``seq``, time, source (calling AE title or watched file), spool path, SHA-256
  and the linking header (:class:`rtqa.serve.grouping.Instance`).
* ``checks``: one row per finished check: plan UID and label, patient, study, frame of
  reference, time started/finished, verdict (PASS/FAIL/ERROR), why it ran (``complete``,
  ``deadline``), the failing rows (JSON list of ``{"id", "structure", "metric",
  "value", "limit", "status"}``), the errors, what was missing, the report paths, the
  input digests (JSON list of ``{"path", "kind", "sop_instance_uid", "sha256"}``), the
  highest receipt number it covered (``max_seq``) and the check it supersedes.

A check is recorded only when it has finished (its reports are written first), so a
crash while checking leaves the plan pending and it is checked again at start-up. The
spool is the source of truth for instances: files missing from ``instances`` (a crash
between the spool write and the database) are indexed again at start-up.

One connection, serialised by a lock, is shared by the receiving and checking threads;
readers (the web view) open their own read-only connection (:func:`open_readonly`).
The database uses WAL journaling so they never wait for a writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from rtqa.serve.grouping import Instance

__all__ = ["Database", "open_readonly", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received REAL NOT NULL,
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
    images TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_sha ON instances (sha256);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_key TEXT NOT NULL,
    plan_label TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    frame_uid TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    finished_at REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    failing TEXT NOT NULL,
    errors TEXT NOT NULL,
    missing TEXT NOT NULL,
    report_json TEXT NOT NULL,
    report_html TEXT NOT NULL,
    inputs TEXT NOT NULL,
    max_seq INTEGER NOT NULL,
    last_received REAL NOT NULL,
    supersedes INTEGER REFERENCES checks (id)
);
CREATE INDEX IF NOT EXISTS checks_plan ON checks (plan_key);
"""

_INSTANCE_COLS = ("seq", "received", "source", "path", "sha256", "kind", "sop_class",
                  "sop_uid", "patient_id", "study_uid", "series_uid", "frame_uid", "label",
                  "refs", "images")


def _connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True,
                               check_same_thread=False, timeout=30)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30,
                               isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection (the web view)."""
    return _connect(str(path), readonly=True)


class Database:
    """The read-write database of one server (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = _connect(self.path)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                               (str(SCHEMA_VERSION),))

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
            cur = self._conn.execute(
                f"INSERT INTO instances ({', '.join(cols)}) VALUES "
                f"({', '.join('?' * len(cols))})", [row.get(c, "") for c in cols])
            seq = cur.lastrowid
        return _instance({**row, "seq": seq})

    def instances(self) -> list[Instance]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_INSTANCE_COLS)} FROM instances ORDER BY seq").fetchall()
        return [_instance(dict(r)) for r in rows]

    def digests(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT DISTINCT sha256 FROM instances")}

    def count_instances(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0]

    # --- checks --------------------------------------------------------------------
    def add_check(self, row: dict) -> int:
        row = dict(row)
        for k in ("failing", "errors", "missing", "inputs"):
            row[k] = json.dumps(row.get(k, []), ensure_ascii=False)
        cols = [c for c in row if c != "id"]
        with self._lock:
            cur = self._conn.execute(
                f"INSERT INTO checks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [row[c] for c in cols])
            return cur.lastrowid

    def last_checks(self) -> dict[str, dict]:
        """The latest finished check of every plan key."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM checks WHERE id IN (SELECT MAX(id) FROM checks "
                "GROUP BY plan_key)").fetchall()
        return {r["plan_key"]: dict(r) for r in rows}

    def count_checks(self, plan_key: str) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM checks WHERE plan_key = ?",
                                      (plan_key,)).fetchone()[0]

    def checks(self) -> list[dict]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM checks ORDER BY id").fetchall()
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
