"""Acceptance of ``rtqa serve`` with an independent client (dcmtk's storescu): the
bundled samples sent shuffled and in two associations, a re-send, an incomplete export
at the deadline, kill -9 in the middle of an association, and a full disk."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pydicom
import pytest

from serve_support import (ServerProcess, acked, checks, full_disk_spool,
                           in_process_server, needs_dcmtk,
                           sop_uid, spool_uids, store_responses, storescu, storescu_popen,
                           wait_for)

pytest.importorskip("pynetdicom")
pytestmark = [pytest.mark.slow, needs_dcmtk]


def _plan_uid(folder: Path) -> str:
    return sop_uid(next(folder.glob("RP.*.dcm")))


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_dir):
    """One server; hcc_pass sent in one association, hcc_fail shuffled in two."""
    out = tmp_path_factory.mktemp("serve")
    with in_process_server(out, settle=1.0) as (engine, port):
        res = storescu(port, sorted((sample_dir / "hcc_pass").glob("*.dcm")))
        assert res.returncode == 0, res.stderr
        files = sorted((sample_dir / "hcc_fail").glob("*.dcm"))
        random.Random(17).shuffle(files)
        half = len(files) // 2
        for part in (files[:half], files[half:]):
            res = storescu(port, part)
            assert res.returncode == 0, res.stderr
            assert len(acked(res.stdout + res.stderr)) == len(part)
        rows = wait_for(lambda: len(checks(engine.db.path)) >= 2 and checks(engine.db.path),
                        "both samples checked")
        yield {"engine": engine, "port": port, "out": out, "rows": rows}


def test_both_samples_get_their_verdict_and_a_row(served, sample_dir):
    by_plan = {r["plan_key"]: r for r in served["rows"]}
    passing = by_plan[_plan_uid(sample_dir / "hcc_pass")]
    failing = by_plan[_plan_uid(sample_dir / "hcc_fail")]
    assert passing["status"] == "PASS" and failing["status"] == "FAIL"
    assert len(served["rows"]) == 2
    for row, label in ((passing, "SBRT_5fx"), (failing, "SBRT_5fx_bad")):
        assert row["plan_label"] == label and row["patient_id"] == "RTQA-HCC-001"
        assert row["reason"] == "complete" and row["missing"] == [] and not row["supersedes"]
        doc = json.loads(Path(row["report_json"]).read_text())
        assert doc["status"] == row["status"]
        assert Path(row["report_html"]).read_text().startswith("<!DOCTYPE html>")
        assert len(row["inputs"]) == 86
        spooled = {p.stem for p in (served["out"] / "spool" / "objects").glob("*/*.dcm")}
        assert {i["sha256"] for i in row["inputs"]} <= spooled
    assert passing["failing"] == []
    doc = json.loads(Path(failing["report_json"]).read_text())
    assert [f["id"] for f in failing["failing"]] == \
        [c["id"] for c in doc["checks"] if c["status"] == "FAIL" and c["priority"] == "mandatory"]
    assert "oar.tg101.SpinalCord.D0.035cc" in [f["id"] for f in failing["failing"]]


def test_the_check_is_rtqa_check(served, sample_dir):
    """The served report has the rows `rtqa check` gives on the exported folder."""
    from rtqa.checks.pipeline import run_check
    folder = sample_dir / "hcc_fail"
    direct = run_check([str(folder)])
    row = next(r for r in served["rows"] if r["plan_key"] == _plan_uid(folder))
    doc = json.loads(Path(row["report_json"]).read_text())
    assert doc["status"] == direct.status
    got = [(c["id"], c["status"], c["value"]) for c in doc["checks"]]
    assert got == [(c.id, str(c.status),
                    None if c.value is None else pytest.approx(c.value, rel=1e-12))
                   for c in direct.checks]
    # the same instances (the spool copies' bytes differ: storescu re-encodes them)
    assert sorted(i["sop_instance_uid"] for i in doc["inputs"]) == \
        sorted(i.sop_instance_uid for i in direct.inputs)


def test_a_resent_plan_gets_a_superseding_check(served, sample_dir):
    engine, port = served["engine"], served["port"]
    folder = sample_dir / "hcc_pass"
    first = next(r for r in served["rows"] if r["plan_key"] == _plan_uid(folder))
    res = storescu(port, sorted(folder.glob("*.dcm")))
    assert res.returncode == 0
    rows = wait_for(lambda: len(checks(engine.db.path)) >= 3 and checks(engine.db.path),
                    "the re-sent plan checked again")
    new = rows[-1]
    assert new["plan_key"] == first["plan_key"] and new["supersedes"] == first["id"]
    assert new["status"] == "PASS" and new["report_json"] != first["report_json"]
    assert Path(first["report_json"]).exists()            # the earlier report is kept
    doc = json.loads(Path(new["report_json"]).read_text())
    assert any(f"supersedes check #{first['id']}" in w for w in doc["warnings"])
    assert f"supersedes check #{first['id']}" in Path(new["report_html"]).read_text()


def test_an_incomplete_export_is_checked_at_the_deadline(tmp_path, sample_dir):
    files = sorted((sample_dir / "hcc_fail").glob("*.dcm"))
    left_out = {"CT.010.dcm", "CT.011.dcm"}
    with in_process_server(tmp_path / "out", settle=0.5, deadline=2.0) as (engine, port):
        res = storescu(port, [f for f in files if f.name not in left_out])
        assert res.returncode == 0
        (row,) = wait_for(lambda: checks(engine.db.path), "the deadline check")
        assert row["status"] == "ERROR" and row["reason"] == "deadline"
        assert row["missing"] == [m for m in row["missing"] if "2 of 83 CT images" in m] != []
        doc = json.loads(Path(row["report_json"]).read_text())
        assert doc["status"] == "ERROR"
        assert any("incomplete export" in e and "2 of 83 CT images" in e
                   for e in doc["errors"])
        # the missing images arrive late: the complete plan gets its real verdict
        res = storescu(port, [f for f in files if f.name in left_out])
        assert res.returncode == 0
        rows = wait_for(lambda: len(checks(engine.db.path)) >= 2 and checks(engine.db.path),
                        "the completed plan checked")
    assert rows[1]["status"] == "FAIL" and rows[1]["reason"] == "complete"
    assert rows[1]["supersedes"] == row["id"] and rows[1]["missing"] == []
    doc = json.loads(Path(rows[1]["report_json"]).read_text())
    assert any(f"supersedes check #{row['id']}" in w and "missing then have arrived" in w
               for w in doc["warnings"])


def test_kill_9_mid_association_then_restart(tmp_path, sample_dir):
    out = tmp_path / "out"
    passing, failing = sample_dir / "hcc_pass", sample_dir / "hcc_fail"
    # slow answers so the kill lands inside the association; no check before the kill
    server = ServerProcess(out, "--settle", "3600", store_delay=0.1)
    try:
        res = storescu(server.port, sorted(passing.glob("*.dcm")))
        assert res.returncode == 0
        sent_first = acked(res.stdout + res.stderr)
        assert len(sent_first) == 86
        client = storescu_popen(server.port, sorted(failing.glob("*.dcm")))
        objects = out / "spool" / "objects"
        wait_for(lambda: len(list(objects.glob("*/*.dcm"))) >= 86 + 20,
                 "part of the second association stored")
        server.kill9()
        text, _ = client.communicate(timeout=120)
    finally:
        server.stop()
    assert client.returncode != 0                       # the association was cut
    sent_second = acked(text)
    assert 0 < len(sent_second) < 86       # (an instance stored but not yet answered is not counted)
    stored = spool_uids(out / "spool")
    assert {sop_uid(f) for f in sent_first + sent_second} <= stored
    assert checks(out / "rtqa-serve.sqlite") == []

    server = ServerProcess(out, "--settle", "0.5")
    try:
        # the complete plan is checked on start-up, without anything being sent
        rows = wait_for(lambda: checks(out / "rtqa-serve.sqlite"), "recovery check")
        assert [(r["plan_key"], r["status"]) for r in rows] == [(_plan_uid(passing), "PASS")]
        assert list((out / "spool" / "tmp").iterdir()) == []
        from rtqa.serve.db import open_readonly
        conn = open_readonly(out / "rtqa-serve.sqlite")
        indexed = {r["sop_uid"] for r in conn.query("SELECT sop_uid FROM instances")}
        conn.close()
        assert {sop_uid(f) for f in sent_first + sent_second} <= indexed
        # the rest of the interrupted export arrives: that plan is checked too
        done = {Path(f).name for f in sent_second}
        rest = [f for f in sorted(failing.glob("*.dcm")) if f.name not in done]
        res = storescu(server.port, rest)
        assert res.returncode == 0
        rows = wait_for(lambda: len(checks(out / "rtqa-serve.sqlite")) >= 2
                        and checks(out / "rtqa-serve.sqlite"), "the second plan checked")
        assert rows[1]["plan_key"] == _plan_uid(failing) and rows[1]["status"] == "FAIL"
    finally:
        server.stop()


def test_a_full_disk_gives_failure_statuses_not_lost_data(tmp_path, sample_dir):
    folder = sample_dir / "hcc_pass"
    files = sorted(folder.glob("*.dcm"))
    out = tmp_path / "out"
    full = full_disk_spool(out / "spool", after=40)        # the 41st write fails
    with in_process_server(out, settle=0.5, spool=full) as (engine, port):
        res = storescu(port, files)
        responses = store_responses(res.stdout + res.stderr)
        ok = [f for f, s in responses if s == "Success"]
        refused = [(f, s) for f, s in responses if s != "Success"]
        # storescu stops the association at the first refusal
        assert len(ok) == 40 and refused != []
        assert {s for _, s in refused} == {"Refused: OutOfResources"}
        assert spool_uids(out / "spool") == {sop_uid(f) for f in ok}
        assert list((out / "spool" / "tmp").iterdir()) == []
        assert engine.db.count_instances() == 40
        assert checks(engine.db.path) == []
    with in_process_server(out, settle=0.5) as (engine, port):   # space again: re-send
        res = storescu(port, [f for f in files if str(f) not in ok])
        assert res.returncode == 0
        (row,) = wait_for(lambda: checks(engine.db.path), "the plan checked")
    assert row["status"] == "PASS" and len(row["inputs"]) == 86
    assert pydicom.dcmread(Path(row["inputs"][0]["path"])).PatientID == "RTQA-HCC-001"
