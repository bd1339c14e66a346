"""``rtqa batch`` loses no plan and never leaves outputs that contradict each other:

* a folder it cannot read, a folder deeper than the scan limit and an ``--out`` that is
  a plan folder are ERROR rows that the exit code counts;
* ``--out`` is locked: a second batch stops at once with one line and exit 2;
* after a kill -9 in the middle of a run, every row of the summary, the CSV and the index
  agrees with the report it links (and ``--resume`` finishes the run);
* an input file replaced while its plan is being checked makes the worker check the plan
  again: the report records the file it was computed from, so ``--resume`` keeps no
  verdict of an older file.

Faults come from the tests (``BatchOptions.check`` hooks in ``tests/batch_helpers.py``);
tests wait on events (a marker file, a report appearing), never on wall-clock bounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import batch_helpers as hooks
import pydicom
import pytest
from batch_helpers import small
from click.testing import CliRunner

from rtqa.batch import BatchOptions, discover, run_batch, sha256_file
from rtqa.batch.lock import OutputLock
from rtqa.batch.model import MAX_DEPTH
from rtqa.checks.pipeline import run_check
from rtqa.cli.batch import batch
from rtqa.sample import hcc_fail, hcc_pass, write_case

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, Path]:
    """Three small exports written once: PAT-001 passes, PAT-002 fails, PAT-003 has its
    RTDOSE cut in half (ERROR)."""
    root = tmp_path_factory.mktemp("plans")
    write_case(small(hcc_pass(), "i-pass", "PAT-001"), root / "PAT-001")
    write_case(small(hcc_fail(), "i-fail", "PAT-002"), root / "PAT-002")
    b = write_case(small(hcc_pass(), "i-broken", "PAT-003"), root / "PAT-003")
    rd = Path(b["plans"][0]["rtdose"][0])
    rd.write_bytes(rd.read_bytes()[: rd.stat().st_size // 2])
    return {p.name: p for p in root.iterdir()}


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _rows(summary: dict) -> dict[str, dict]:
    return {r["patient_id"] or r["label"]: r for r in summary["plans"]}


def _halved_dose(export: Path, dest: Path) -> Path:
    """A copy of the export's RTDOSE with every dose halved (same UIDs): the same plan,
    now failing."""
    rd = next(export.glob("RD.*.dcm"))
    ds = pydicom.dcmread(rd)
    ds.DoseGridScaling = float(ds.DoseGridScaling) * 0.5
    ds.save_as(dest)
    return dest


# --- nothing skipped silently ------------------------------------------------------------

def test_unreadable_folder_is_an_error_row(plans, tmp_path, monkeypatch):
    root = tmp_path / "exports"
    _copy(plans["PAT-001"], root / "PAT-001")
    hidden = root / "locked" / "PAT-009"
    hidden.mkdir(parents=True)
    (hidden / "RP.hidden.dcm").write_bytes(b"DICM")
    locked = str(root / "locked")
    os.chmod(locked, 0)
    real_scandir = os.scandir

    def scandir(path="."):   # root reads any folder: refuse this one as the mode says
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    try:
        res = run_batch(root, BatchOptions(out=str(tmp_path / "out"), workers=1))
    finally:
        os.chmod(locked, 0o755)
    rows = _rows(res.summary)
    assert rows["PAT-001"]["status"] == "PASS"
    skipped = rows["folder not searched"]
    assert skipped["status"] == "ERROR" and skipped["folders"] == ["locked"]
    assert skipped["errors"] == ["locked: folder cannot be read (Permission denied): not "
                                 "searched, it may hide a plan"]
    assert res.exit_code == 2 and res.summary["counts"]["ERROR"] == 1
    assert "locked: folder cannot be read" in (res.out / "index.html").read_text()


def test_plan_deeper_than_the_scan_limit_is_an_error_row(plans, tmp_path):
    root = tmp_path / "exports"
    _copy(plans["PAT-001"], root / "PAT-001")
    deep = root.joinpath(*(["d"] * MAX_DEPTH))     # the last level that is listed
    _copy(plans["PAT-002"], deep / "PAT-002")       # MAX_DEPTH + 1 levels: not searched
    d = discover(root)
    assert [u.patient_id for u in d.units if not u.problem] == ["PAT-001"]
    [skipped] = [u for u in d.units if u.problem]
    folder = "/".join(["d"] * MAX_DEPTH) + "/PAT-002"
    assert skipped.folders == (folder,)
    assert skipped.problem == (f"{folder}: folder deeper than the scan limit ({MAX_DEPTH} "
                               "folder levels under ROOT): not searched, it may hide a plan")
    # at MAX_DEPTH levels it is searched: the plan is found
    shutil.move(str(deep / "PAT-002"), str(deep.parent / "PAT-002"))
    assert sorted(u.patient_id for u in discover(root).units) == ["PAT-001", "PAT-002"]


def test_out_inside_a_plan_folder(plans, tmp_path):
    root = tmp_path / "exports"
    _copy(plans["PAT-001"], root / "PAT-001")
    _copy(plans["PAT-002"], root / "PAT-002")
    # --out is the plan folder itself: that plan is not searched, and says so
    r = CliRunner().invoke(batch, [str(root), "--out", str(root / "PAT-002"), "-j", "1"])
    assert r.exit_code == 2, r.output
    summary = json.loads((root / "PAT-002" / "summary.json").read_text())
    rows = _rows(summary)
    assert rows["PAT-001"]["status"] == "PASS" and "PAT-002" not in rows
    n_dicom = sum(1 for p in (root / "PAT-002").glob("*.dcm"))
    assert rows["folder not searched"]["errors"] == [
        f"PAT-002: folder is the output folder (--out) or inside it, so it is not "
        f"searched, but it holds {n_dicom} DICOM file(s) that may be a plan: choose an "
        "--out folder outside the plan exports"]
    assert "folder is the output folder (--out)" in r.output        # in the tally
    # --out in a sub-folder of a plan folder holds no DICOM file: nothing is lost
    out = root / "PAT-001" / "qa"
    r = CliRunner().invoke(batch, [str(root / "PAT-001"), "--out", str(out), "-j", "1"])
    assert r.exit_code == 0, r.output


# --- the lock on --out ------------------------------------------------------------------

def test_second_batch_on_a_locked_out_stops_with_one_line(plans, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):
        r = CliRunner().invoke(batch, [str(plans["PAT-001"]), "--out", str(out)])
        assert r.exit_code == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.output
        assert re.fullmatch(rf"rtqa: error: {re.escape(str(out))}: is in use by another "
                            rf"rtqa batch \(pid {os.getpid()} on .+, started .+\): wait for "
                            r"it to end or choose another --out", lines[0]), lines[0]
        assert [p.name for p in out.iterdir()] == [".rtqa-batch.lock"]   # nothing else
    r = CliRunner().invoke(batch, [str(plans["PAT-001"]), "--out", str(out)])
    assert r.exit_code == 0, r.output


# --- kill -9 in the middle of a run --------------------------------------------------------

_DRIVER = """
import sys
from functools import partial
sys.path.insert(0, {tests!r})
import batch_helpers as hooks
from rtqa.batch import BatchOptions, run_batch
if __name__ == "__main__":
    run_batch({root!r}, BatchOptions(out={out!r}, workers=1,
              check=partial(hooks.hang_on, "PAT-002", {marker!r})))
"""


def _wait_for(condition, what: str, proc=None, limit_s: float = 600):
    """Wait for ``condition()`` (an event in another process); the limit only stops a
    broken test from hanging, it is not what the test measures."""
    end = time.monotonic() + limit_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the batch ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def _assert_consistent(out: Path) -> dict:
    """Every row of summary.json, summary.csv and index.html agrees with its reports."""
    summary = json.loads((out / "summary.json").read_text())
    for row in summary["plans"]:
        report = json.loads((out / row["json"]).read_text())
        assert report["status"] == row["status"], row["name"]
        assert report["created"] == row["report_created"], row["name"]
        if row["html"]:
            html = (out / row["html"]).read_text()
            assert f'<div class="verdict-status">{row["status"]}</div>' in html, row["name"]
    csv_lines = (out / "summary.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[2] for line in csv_lines) == \
        sorted(r["status"] for r in summary["plans"])
    index = (out / "index.html").read_text()
    linked = set(re.findall(r'href="(plans/[^"]+\.json)"', index))
    assert linked == {r["json"] for r in summary["plans"]}
    return summary


@pytest.mark.slow
def test_kill_9_mid_run_leaves_index_and_reports_consistent(plans, tmp_path):
    root = tmp_path / "exports"
    for name in ("PAT-001", "PAT-002", "PAT-003"):
        _copy(plans[name], root / name)
    out = tmp_path / "out"
    first = run_batch(root, BatchOptions(out=str(out), workers=1))
    assert _rows(first.summary)["PAT-001"]["status"] == "PASS"
    # PAT-001 is changed (same UIDs, same report name): the next run's report says otherwise
    rd = next((root / "PAT-001").glob("RD.*.dcm"))
    _halved_dose(root / "PAT-001", tmp_path / "halved.dcm")
    os.replace(tmp_path / "halved.dcm", rd)
    now_status = run_check([str(root / "PAT-001")]).status
    assert now_status != "PASS"

    marker = tmp_path / "hung"
    marker.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.format(tests=str(TESTS), root=str(root), out=str(out),
                                     marker=str(marker)))
    proc = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    worker_pids: list[int] = []
    try:
        # PAT-001 is checked and written, then PAT-002 hangs
        report_path = out / _rows(first.summary)["PAT-001"]["json"]
        _wait_for(lambda: json.loads(report_path.read_text())["status"] == now_status,
                  "PAT-001's new report", proc)
        _wait_for(lambda: any(p.name.isdigit() for p in marker.iterdir()),
                  "PAT-002's worker to hang", proc)
        worker_pids = [int(p.name) for p in marker.iterdir() if p.name.isdigit()]
        # a second batch on the same --out while this one runs: refused
        r = CliRunner().invoke(batch, [str(root), "--out", str(out)])
        assert r.exit_code == 2 and "is in use by another rtqa batch" in r.stderr
        _assert_consistent(out)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in worker_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    summary = _assert_consistent(out)
    assert not summary["complete"]
    rows = _rows(summary)
    assert "PAT-001" not in rows or rows["PAT-001"]["status"] == now_status
    assert "PAT-002" not in rows              # it never finished

    # the lock died with the batch; --resume finishes the run, still consistent
    again = run_batch(root, BatchOptions(out=str(out), workers=1, resume=True))
    summary = _assert_consistent(out)
    assert summary["complete"] and again.exit_code == 2
    rows = _rows(summary)
    assert rows["PAT-001"]["status"] == now_status
    assert rows["PAT-002"]["status"] == "FAIL" and rows["PAT-003"]["status"] == "ERROR"


# --- an input replaced during its check ----------------------------------------------------

def test_input_replaced_during_the_check_is_checked_again(plans, tmp_path):
    root = tmp_path / "exports"
    _copy(plans["PAT-001"], root / "PAT-001")
    rd = next((root / "PAT-001").glob("RD.*.dcm"))
    replacement = _halved_dose(root / "PAT-001", tmp_path / "replacement.dcm")
    out = tmp_path / "out"
    res = run_batch(root, BatchOptions(
        out=str(out), workers=1,
        check=partial(hooks.replace_during_check, "PAT-001", str(rd), str(replacement))))
    assert rd.read_bytes() == replacement.read_bytes()     # the hook did replace it
    truth = run_check([str(root / "PAT-001")]).status       # the export as it is now
    assert truth != "PASS"
    [row] = res.rows
    assert row["status"] == truth                           # not the first check's PASS
    assert [s["attempts"] for s in res.stats] == [2]
    report = json.loads((out / row["json"]).read_text())
    recorded = {Path(i["path"]).name: i["sha256"] for i in report["inputs"]}
    assert recorded[rd.name] == sha256_file(rd)
    # --resume keeps this verdict: it is the one of the files as they are
    again = run_batch(root, BatchOptions(out=str(out), workers=1, resume=True))
    assert again.checked == 0 and again.rows[0]["status"] == truth


def test_input_that_keeps_changing_is_an_error(plans, tmp_path):
    root = tmp_path / "exports"
    _copy(plans["PAT-001"], root / "PAT-001")
    rp = next((root / "PAT-001").glob("RP.*.dcm"))
    res = run_batch(root, BatchOptions(
        out=str(tmp_path / "out"), workers=1,
        check=partial(hooks.always_changing, "PAT-001", str(rp))))
    [row] = res.rows
    assert row["status"] == "ERROR"
    assert row["errors"] == [f"input files changed while being checked ({rp.name}), 3 "
                             "times: check the plan again once its export is complete"]
    assert row["inputs"] == {"files": 0, "sha256": None}    # --resume checks it again


def test_out_of_a_batch_on_another_root_is_refused(plans, tmp_path):
    """Two batches, one after the other, on different ROOTs into one --out: the second
    would drop the first one's plans from the summary; it stops with one line instead."""
    out = tmp_path / "out"
    first = run_batch(plans["PAT-001"], BatchOptions(out=str(out), workers=1))
    before = (out / "summary.json").read_text()
    r = CliRunner().invoke(batch, [str(plans["PAT-002"]), "--out", str(out)])
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        f"rtqa: error: {out}: holds the reports of a batch on {first.summary['root']}, not "
        f"{plans['PAT-002']}: choose another --out (or remove its summary.json to start "
        "afresh)")
    assert (out / "summary.json").read_text() == before
    # the same ROOT again is fine
    assert run_batch(plans["PAT-001"], BatchOptions(out=str(out), workers=1)).exit_code == 0
