"""The engine without the network: time limit per check, a dose whose plan never
arrives, nothing checked before the set is complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtqa.serve.engine import Engine, EngineOptions
from serve_support import checks, wait_for


def _engine(tmp_path, **kw) -> Engine:
    e = Engine(EngineOptions(out=str(tmp_path / "out"), tick=0.1, **kw))
    e.start()
    return e


def test_a_check_over_the_time_limit_is_error(tmp_path, sample_dir):
    # 20 ms: far below what checking hcc_fail needs even on an idle machine (reading its
    # 86 files alone takes ~60 ms of CPU; 23 DVHs ~0.2 s), so the limit is always
    # reached; a loaded machine only makes that surer. (It was 0.5 s, which a faster
    # check came within.)
    e = _engine(tmp_path, settle=0.2, timeout=0.02)
    try:
        for f in sorted((sample_dir / "hcc_fail").glob("*.dcm")):
            e.receive(f.read_bytes(), source="TEST")
        (row,) = wait_for(lambda: checks(e.db.path), "the check")
    finally:
        e.stop()
    assert row["status"] == "ERROR" and row["reason"] == "complete"
    assert row["errors"][0].startswith("timed out after 0.02 s (time limit per plan")
    doc = json.loads(Path(row["report_json"]).read_text())
    assert doc["status"] == "ERROR" and doc["errors"] == row["errors"]
    assert len(row["inputs"]) == 86          # the digests of what was to be checked


def test_a_dose_whose_plan_never_arrives_is_error_at_the_deadline(tmp_path, sample_dir):
    rd = sample_dir / "hcc_fail" / "RD.SBRT_5fx_bad.dcm"
    e = _engine(tmp_path, settle=0.2, deadline=0.5)
    try:
        inst = e.receive(rd.read_bytes(), source="TEST")
        (row,) = wait_for(lambda: checks(e.db.path), "the deadline check")
    finally:
        e.stop()
    plan_uid = inst.refs[0]
    assert row["status"] == "ERROR" and row["reason"] == "deadline"
    assert row["plan_key"] == plan_uid
    assert row["missing"] == [f"RTPLAN {plan_uid} (referenced by the RTDOSE)"]
    assert any("incomplete export" in x and plan_uid in x for x in row["errors"])


def test_nothing_is_checked_before_the_set_is_complete(tmp_path, sample_dir):
    files = sorted((sample_dir / "hcc_fail").glob("*.dcm"))
    e = Engine(EngineOptions(out=str(tmp_path / "out"), settle=0.0, deadline=3600))
    try:
        for f in files[1:]:                       # CT.001 still missing
            e.receive(f.read_bytes(), source="TEST")
        import time
        assert e._due_sets(time.time()) == []
        e.receive(files[0].read_bytes(), source="TEST")
        ((s, why, prev),) = e._due_sets(time.time())
        assert why == "complete" and prev is None and len(s.members) == 86
    finally:
        e.db.close()


def test_without_weasyprint_the_log_says_pdf_reports_are_not_written(tmp_path, monkeypatch,
                                                                       caplog):
    import logging

    import rtqa.report.pdf as pdf
    monkeypatch.setattr(pdf, "pdf_available", lambda: "needs WeasyPrint (test)")
    caplog.set_level(logging.WARNING, logger="rtqa.serve")
    e = _engine(tmp_path)
    try:
        assert e.pdf_problem == "needs WeasyPrint (test)"
    finally:
        e.stop()
    assert any("PDF reports are not written (JSON and HTML are): needs WeasyPrint (test)"
               in r.getMessage() for r in caplog.records)
    off = _engine(tmp_path / "off", pdf=False)
    off.stop()
    assert off.pdf_problem == "--no-pdf"
