"""Spool retention (``--keep-days``): a plan's files go once it is checked with nothing
pending and its last instance is older than the retention; pending plans, young plans
and young loose instances stay; reports and rows stay; a re-export after pruning gets a
superseding check; a crash between marking and removing is finished at start-up. And
the PDF report of a served check (when WeasyPrint is installed), linked from the web
view."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from rtqa.serve.engine import Engine, EngineOptions
from serve_support import checks, wait_for

DAY = 86400.0
T0 = 1_767_225_600.0


def _engine(tmp_path, keep_days, deadline=600.0):
    return Engine(EngineOptions(out=str(tmp_path / "out"), keep_days=keep_days,
                                deadline=deadline, settle=0.5))


def _receive(engine, folder, when, pattern="*.dcm"):
    files = sorted(folder.glob(pattern))
    for f in files:
        engine.receive(f.read_bytes(), source="TPS", received=when)
    return len(files)


def _record_check(engine, when):
    """What a finished check records (the check itself is not what is tested here)."""
    (s,) = [s for s in engine._sets()[0] if s.label]
    return engine.db.add_check({
        "plan_key": s.key, "plan_label": s.label, "patient_id": s.patient_id,
        "study_uid": s.study_uid, "frame_uid": s.frame_uid, "started": "t",
        "finished": "t", "finished_at": when, "status": "FAIL", "reason": "complete",
        "failing": [], "errors": [], "missing": [], "report_json": "r.json",
        "report_html": "", "inputs": [], "max_seq": s.max_seq,
        "last_received": max(m.received for m in s.members), "supersedes": None})


def _spooled(engine) -> int:
    return len(list(engine.spool.files()))


def test_a_checked_plan_is_pruned_after_the_retention(tmp_path, sample_dir):
    e = _engine(tmp_path, keep_days=1)
    try:
        n = _receive(e, sample_dir / "hcc_fail", T0)
        assert n == 86 == _spooled(e)
        assert e.prune(now=T0 + 3 * DAY) == 0          # never checked: pending, kept
        first = _record_check(e, T0 + 60)
        assert e.prune(now=T0 + 0.5 * DAY) == 0        # younger than the retention
        assert e.prune(now=T0 + 1.5 * DAY) == 86
        assert _spooled(e) == 0 and e.db.instances() == []
        assert e.db.count_instances() == 86            # receipts stay, marked pruned
        assert [c["id"] for c in e.db.checks()] == [first]
        assert e.prune(now=T0 + 9 * DAY) == 0
        # the plan is exported again: stored again, due, and its check supersedes
        _receive(e, sample_dir / "hcc_fail", T0 + 2 * DAY)
        assert _spooled(e) == 86
        ((s, why, prev),) = e._due_sets(T0 + 2 * DAY + 10)
        assert why == "complete" and prev["id"] == first and len(s.members) == 86
    finally:
        e.db.close()


def test_pending_plans_and_young_loose_instances_are_kept(tmp_path, sample_dir):
    e = _engine(tmp_path, keep_days=0, deadline=600)
    try:
        _receive(e, sample_dir / "hcc_fail", T0)
        # CT images whose plan has not arrived: no plan set uses them yet
        _receive(e, sample_dir / "hcc_pass", T0 + 100, "CT.*.dcm")
        assert _spooled(e) == 86 + 83
        assert e.prune(now=T0 + 200) == 0              # nothing checked, CT young
        _record_check(e, T0 + 150)
        # retention 0: the checked plan goes at once; the loose CT waits for the deadline
        assert e.prune(now=T0 + 200) == 86
        assert _spooled(e) == 83
        assert e.prune(now=T0 + 100 + 599) == 0
        assert e.prune(now=T0 + 100 + 600) == 83
        assert _spooled(e) == 0
    finally:
        e.db.close()


def test_a_prune_interrupted_before_the_files_went_is_finished_at_start_up(tmp_path,
                                                                            sample_dir):
    e = _engine(tmp_path, keep_days=1)
    try:
        _receive(e, sample_dir / "hcc_fail", T0, "RP.*.dcm")
        (inst,) = e.db.instances()
        e.db.mark_pruned({inst.sha256}, T0)            # then a crash
        assert _spooled(e) == 1
        assert e.recover() == 0                        # not indexed again ...
        assert _spooled(e) == 0                        # ... and its file is removed
        assert e.db.instances() == []
    finally:
        e.db.close()


@pytest.mark.slow
def test_served_plan_pdf_and_pruning_after_its_row(tmp_path, sample_dir):
    """Retention 0 on a running engine: the plan is checked, its JSON/HTML reports and
    row are written, its PDF follows (when WeasyPrint is installed) and is linked from
    the web view, and its spool files are removed."""
    from rtqa.report.pdf import pdf_available
    from rtqa.serve.web import render_index
    e = Engine(EngineOptions(out=str(tmp_path / "out"), settle=0.5, tick=0.1, keep_days=0))
    e.start()
    try:
        _receive(e, sample_dir / "hcc_fail", None)
        (row,) = wait_for(lambda: checks(e.db.path), "the plan checked")
        assert row["status"] == "FAIL"
        wait_for(lambda: _spooled(e) == 0, "the spool pruned")
        assert e.db.count_instances() == 86 and e.db.instances() == []
        for key in ("report_json", "report_html"):
            assert open(row[key], "rb").read(1)
        if pdf_available() is not None:
            assert e.pdf_problem == pdf_available()
            return
        (row,) = wait_for(lambda: [r for r in checks(e.db.path) if r["report_pdf"]],
                          "the PDF report")
        pdf = open(row["report_pdf"], "rb").read()
        assert pdf.startswith(b"%PDF-")
        page = render_index(e.db.path)
        assert f'<a href="/reports/{row["id"]}.pdf">PDF</a>' in page
        if shutil.which("pdftotext"):
            text = subprocess.run(["pdftotext", "-l", "1", row["report_pdf"], "-"],
                                  capture_output=True, text=True).stdout
            assert "FAIL" in text and "SBRT_5fx_bad" in text
    finally:
        e.stop()
