"""The results database on SQLite (default) and on PostgreSQL (a SQLAlchemy URL, tested
when RTQA_TEST_PG_URL names a server, skipped otherwise): the same statements, the same
results; a version-1 SQLite database is upgraded; the CLI refuses an unusable URL in one
line."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from rtqa.serve.db import SCHEMA_VERSION, Database, display_target, open_readonly
from rtqa.serve.engine import Engine, EngineOptions
from serve_support import checks, pg_url, wait_for  # noqa: F401 - pg_url is a fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "db.sqlite")
    return request.getfixturevalue("pg_url")


def _header(uid: str, **kw) -> dict:
    h = {"kind": "CT", "sop_class": "1.2.840.10008.5.1.4.1.1.2", "sop_uid": uid,
         "patient_id": "P1", "study_uid": "1.2", "series_uid": "1.2.3", "frame_uid": "1.9",
         "label": "", "refs": (), "images": ()}
    h.update(kw)
    return h


def _check_row(key: str, max_seq: int, **kw) -> dict:
    row = {"plan_key": key, "plan_label": "SBRT", "patient_id": "P1", "study_uid": "1.2",
           "frame_uid": "1.9", "started": "2026-01-01T00:00:00+00:00",
           "finished": "2026-01-01T00:00:10+00:00", "finished_at": 1767225610.25,
           "status": "FAIL", "reason": "complete",
           "failing": [{"id": "oar.x", "value": 40.8, "limit": "<= 24.97", "status": "FAIL"}],
           "errors": [], "missing": [], "report_json": "/r/1.json", "report_html": "/r/1.html",
           "inputs": [{"path": "/s/a.dcm", "sha256": "ab" * 32}], "max_seq": max_seq,
           "last_received": 1767225600.125, "supersedes": None}
    row.update(kw)
    return row


def test_the_same_statements_on_both_databases(target):
    db = Database(target)
    try:
        t = 1767225600.123456          # a time.time() value: kept to the microsecond
        a = db.add_instance(received=t, source="TPS", path="/s/a.dcm", sha256="a" * 64,
                            **_header("1.1"))
        b = db.add_instance(received=t + 1, source="TPS", path="/s/b.dcm", sha256="b" * 64,
                            **_header("1.2", kind="RTSTRUCT", refs=("1.2.3",),
                                      images=("1.1",)))
        assert (a.seq, b.seq) == (1, 2)
        got = db.instances()
        assert got == [a, b] and got[1].refs == ("1.2.3",) and got[1].images == ("1.1",)
        assert got[0].received == t
        assert db.count_instances() == 2 and db.digests() == {"a" * 64, "b" * 64}
        first = db.add_check(_check_row("K1", 2))
        second = db.add_check(_check_row("K1", 3, status="PASS", supersedes=first,
                                         failing=[]))
        other = db.add_check(_check_row("K2", 1, status="ERROR"))
        assert (first, second, other) == (1, 2, 3)
        last = db.last_checks()
        assert {k: r["id"] for k, r in last.items()} == {"K1": 2, "K2": 3}
        assert last["K1"]["supersedes"] == 1 and last["K1"]["report_pdf"] == ""
        assert db.count_checks("K1") == 2 and db.count_checks("K9") == 0
        rows = db.checks()
        assert rows[0]["failing"] == [{"id": "oar.x", "value": 40.8, "limit": "<= 24.97",
                                       "status": "FAIL"}]
        assert rows[0]["finished_at"] == 1767225610.25 and rows[0]["max_seq"] == 2
        db.set_report_pdf(second, "/r/2.pdf")
        assert db.checks()[1]["report_pdf"] == "/r/2.pdf"
        # pruning marks receipts; pruned contents are no longer grouped
        db.add_instance(received=t + 2, source="TPS", path="/s/a.dcm", sha256="a" * 64,
                        **_header("1.1"))
        db.mark_pruned({"a" * 64}, t + 9)
        assert [i.sop_uid for i in db.instances()] == ["1.2"]
        assert db.pruned_digests() == {"a" * 64} and db.count_instances() == 3
    finally:
        db.close()
    # it persists, and the read-only connection of the web view reads it
    again = Database(target)
    try:
        assert again.count_instances() == 3 and len(again.checks()) == 3
    finally:
        again.close()
    ro = open_readonly(target)
    try:
        assert [r["id"] for r in ro.query("SELECT id FROM checks ORDER BY id")] == [1, 2, 3]
        assert ro.query("SELECT value FROM meta WHERE key = 'schema'") == \
            [{"value": str(SCHEMA_VERSION)}]
    finally:
        ro.close()


def test_a_version_1_sqlite_database_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE instances (seq INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL,
            source TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, kind TEXT NOT NULL,
            sop_class TEXT NOT NULL, sop_uid TEXT NOT NULL, patient_id TEXT NOT NULL,
            study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, frame_uid TEXT NOT NULL,
            label TEXT NOT NULL, refs TEXT NOT NULL, images TEXT NOT NULL);
        INSERT INTO instances VALUES (NULL, 1.5, 'TPS', '/s/a.dcm', 'aa', 'CT', '1.2', '1.1',
            'P1', '', '', '', '', '[]', '[]');
        CREATE TABLE checks (id INTEGER PRIMARY KEY AUTOINCREMENT, plan_key TEXT NOT NULL,
            plan_label TEXT NOT NULL, patient_id TEXT NOT NULL, study_uid TEXT NOT NULL,
            frame_uid TEXT NOT NULL, started TEXT NOT NULL, finished TEXT NOT NULL,
            finished_at REAL NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
            failing TEXT NOT NULL, errors TEXT NOT NULL, missing TEXT NOT NULL,
            report_json TEXT NOT NULL, report_html TEXT NOT NULL, inputs TEXT NOT NULL,
            max_seq INTEGER NOT NULL, last_received REAL NOT NULL,
            supersedes INTEGER REFERENCES checks (id));
    """)
    conn.close()
    db = Database(path)
    try:
        (inst,) = db.instances()                 # not pruned
        assert inst.sop_uid == "1.1"
        cid = db.add_check(_check_row("K", 1, report_pdf="/r/k.pdf"))
        assert db.checks()[0]["report_pdf"] == "/r/k.pdf" and cid == 1
    finally:
        db.close()
    assert sqlite3.connect(path).execute("SELECT value FROM meta").fetchone() == \
        (str(SCHEMA_VERSION),)


def test_a_url_password_is_never_shown():
    assert display_target("postgresql://rtqa:s3cret@db.example:5432/qa") == \
        "postgresql://rtqa:***@db.example:5432/qa"
    assert display_target("/data/rtqa.sqlite") == "/data/rtqa.sqlite"


@pytest.mark.parametrize("url, why", [
    ("mysql://u:p@127.0.0.1/x", "unsupported database URL scheme"),
    ("postgresql://nobody:s3cret@127.0.0.1:9/none", "cannot be used"),
])
def test_the_cli_refuses_an_unusable_database_url(tmp_path, url, why):
    pytest.importorskip("sqlalchemy")
    from rtqa.cli.serve import watch
    folder = tmp_path / "export"
    folder.mkdir()
    res = CliRunner().invoke(watch, [str(folder), "--out", str(tmp_path / "out"),
                                     "--db", url])
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.startswith("rtqa: error")]
    assert len(lines) == 1 and why in lines[0] and "s3cret" not in res.output


@pytest.mark.slow
def test_a_plan_is_checked_and_recorded_in_postgresql(tmp_path, sample_dir, pg_url):
    """The engine on PostgreSQL: the failing sample received (from files, in a shuffled
    order), checked, recorded; the web view lists it from the same database."""
    import random

    from rtqa.serve.web import render_index
    e = Engine(EngineOptions(out=str(tmp_path / "out"), db=pg_url, settle=0.5, tick=0.1,
                             pdf=False))
    e.start()
    try:
        files = sorted((sample_dir / "hcc_fail").glob("*.dcm"))
        random.Random(3).shuffle(files)
        for f in files:
            e.receive(f.read_bytes(), source="TEST")
        (row,) = wait_for(lambda: checks(pg_url), "the plan checked")
        assert row["status"] == "FAIL" and row["reason"] == "complete"
        assert row["plan_label"] == "SBRT_5fx_bad" and len(row["inputs"]) == 86
        doc = json.loads(open(row["report_json"]).read())
        assert [f["id"] for f in row["failing"]] == \
            [c["id"] for c in doc["checks"]
             if c["status"] == "FAIL" and c["priority"] == "mandatory"]
        page = render_index(pg_url)
        assert f'data-id="{row["id"]}" data-status="FAIL"' in page
        assert e.db.dialect == "postgresql"
    finally:
        e.stop()
