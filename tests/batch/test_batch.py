"""``rtqa batch``: discovery whatever the layout, summary and exit code, resume, a worker
crash, the time limit per plan, and the Dask path giving the same summary as the local
pool.

The plans are small variants of the sample cases (3 organs, 2 lesions, 48 x 48 CT
pixels, 6 mm dose grid: about 1 s each) written in odd layouts:

    good/PAT-001/export/            hcc_pass variant, everything in one folder
    good/deep/PAT-002/CT/series1/   hcc_fail variant: CT here ...
    good/deep/PAT-002/RT objects/   ... RTSTRUCT, RTPLAN, RTDOSE there
    bad/broken/                     hcc_pass variant with its RTDOSE cut in half
    README.txt                      not DICOM (ignored)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path

import batch_helpers as hooks
import pydicom
import pytest
from batch_helpers import small
from click.testing import CliRunner

from rtqa.batch import (DEFAULT_TIMEOUT_S, BatchOptions, CheckSettings, discover, exit_code,
                        run_batch, summary_csv)
from rtqa.cli.batch import batch
from rtqa.checks.pipeline import run_check
from rtqa.sample import hcc_fail, hcc_pass, write_case

FAILING = {"lesion.T10.bed", "oar.normal_liver.Liver-GTV.CV15Gy"}


def _move(files, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.move(f, dest / Path(f).name)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exports")
    write_case(small(hcc_pass(), "t-pass", "PAT-001"), root / "good" / "PAT-001" / "export")
    tmp = root / "tmp"
    r = write_case(small(hcc_fail(), "t-fail", "PAT-002"), tmp)
    _move(r["ct"], root / "good" / "deep" / "PAT-002" / "CT" / "series1")
    _move([r["rtstruct"]] + [x for p in r["plans"] for x in [p["rtplan"], *p["rtdose"]]],
          root / "good" / "deep" / "PAT-002" / "RT objects")
    shutil.rmtree(tmp)
    b = write_case(small(hcc_pass(), "t-broken", "PAT-003"), root / "bad" / "broken")
    rd = Path(b["plans"][0]["rtdose"][0])
    data = rd.read_bytes()
    rd.write_bytes(data[: len(data) // 2])
    (root / "README.txt").write_text("not DICOM\n")
    return root


@pytest.fixture(scope="module")
def local_run(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("out-local")
    return run_batch(tree, BatchOptions(out=str(out), workers=2))


def _by_patient(rows):
    return {r["patient_id"]: r for r in rows}


def _comparable(summary: dict) -> dict:
    """The summary without its timestamps and run metadata."""
    return {"plans": [{k: v for k, v in r.items() if k != "report_created"}
                      for r in summary["plans"]],
            "counts": summary["counts"], "exit_code": summary["exit_code"],
            "unassigned": summary["unassigned"], "settings": summary["settings"],
            "files": summary["files"], "complete": summary["complete"]}


# --- discovery ---------------------------------------------------------------------------

def test_discovery_groups_plans_whatever_the_layout(tree):
    d = discover(tree)
    units = {u.patient_id: u for u in d.units}
    assert sorted(units) == ["PAT-001", "PAT-002", "PAT-003"]
    split = units["PAT-002"]
    kinds = sorted(set(split.kinds))
    assert kinds == ["CT", "RTDOSE", "RTPLAN", "RTSTRUCT"]
    assert any("/CT/series1/" in f for f in split.files)       # CT from another folder
    assert split.folders == ("good/deep/PAT-002/RT objects",)
    assert split.label == "SBRT_5fx_bad" and split.plan_labels == ("SBRT_5fx_bad",)
    # the truncated RTDOSE still has a readable header: it stays with its plan
    assert "RTDOSE" in units["PAT-003"].kinds and not units["PAT-003"].problem
    assert not any(f.endswith("README.txt") for u in d.units for f in u.files)
    assert d.unassigned == []
    # safe, unique report names: patient, plan label, short hash
    assert len({u.name for u in d.units}) == 3
    assert all(u.name.startswith(u.patient_id + "_") for u in d.units)


def test_discovery_rules_course_per_plan_copies_unreadable(tmp_path):
    base = small(hcc_pass(), "t-course", "PAT-010")
    p0 = base.plans[0]
    liver = replace(p0, label="LIVER", targets=tuple(t for t in p0.targets if t.lesion == "Liver"))
    spine = replace(p0, label="SPINE", targets=tuple(t for t in p0.targets if t.lesion == "T10"))
    orphan = replace(p0, label="ORPHAN", write_plan=False)
    write_case(replace(base, plans=(liver, spine, orphan)), tmp_path / "course")

    d = discover(tmp_path)
    assert len(d.units) == 1                        # one RTSTRUCT: one course
    u = d.units[0]
    assert set(u.plan_labels) == {"LIVER", "SPINE"} and len(u.dose_uids) == 3
    assert any("checked together as one course" in n for n in u.notes)

    per_plan = discover(tmp_path, per_plan=True)
    assert sorted(x.label for x in per_plan.units) == ["LIVER", "RD.ORPHAN", "SPINE"]

    # an identical copy is used once; a different file with the same UID is a conflict
    rp = next(Path(f) for f, k in zip(u.files, u.kinds) if k == "RTPLAN")
    (tmp_path / "copy").mkdir()
    shutil.copy(rp, tmp_path / "copy" / rp.name)
    d = discover(tmp_path)
    assert len(d.units) == 1 and not d.units[0].problem
    assert any("identical copies" in n for n in d.units[0].notes)
    assert len(d.units[0].files) == len(u.files)
    ds = pydicom.dcmread(tmp_path / "copy" / rp.name)
    ds.RTPlanDescription = "edited"
    ds.save_as(tmp_path / "copy" / rp.name)
    d = discover(tmp_path)
    assert "different files with the same SOPInstanceUID" in d.units[0].problem

    # a file that claims to be DICOM but has no readable header, alone in its folder
    shutil.rmtree(tmp_path / "copy")
    (tmp_path / "lost").mkdir()
    (tmp_path / "lost" / "RP.unknown.dcm").write_bytes(b"\0" * 50)
    d = discover(tmp_path)
    lost = [x for x in d.units if x.problem]
    assert len(lost) == 1 and "may hide a plan" in lost[0].problem


# --- a local run -------------------------------------------------------------------------

def test_summary_reports_and_exit_code(local_run, tree):
    res = local_run
    rows = _by_patient(res.rows)
    assert rows["PAT-001"]["status"] == "PASS"
    assert rows["PAT-002"]["status"] == "FAIL"
    assert FAILING <= set(rows["PAT-002"]["failing_checks"])
    assert rows["PAT-003"]["status"] == "ERROR"
    assert "incomplete DICOM file" in rows["PAT-003"]["errors"][0]
    assert res.exit_code == 2 and res.summary["exit_code"] == 2
    assert res.summary["counts"] == {"PASS": 1, "FAIL": 1, "ERROR": 1, "total": 3,
                                     "resumed": 0}

    out = res.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and [r["key"] for r in summary["plans"]] == \
        [r["key"] for r in res.rows]
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("patient_id,label,status,failing_checks")
    assert len(csv_lines) == 4
    index = (out / "index.html").read_text()
    for r in res.rows:
        assert (out / r["json"]).is_file() and (out / r["html"]).is_file()
        assert f'href="{r["html"]}"' in index and f'href="{r["json"]}"' in index
        report = json.loads((out / r["json"]).read_text())
        assert report["status"] == r["status"]
        assert len(report["inputs"]) == r["inputs"]["files"] > 0
    assert "lesion.T10.bed" in index

    # the plan is checked exactly as `rtqa check` checks its export folder
    direct = run_check([str(tree / "good" / "deep" / "PAT-002")])
    batch_report = json.loads((out / rows["PAT-002"]["json"]).read_text())
    assert [(c["id"], c["status"], c["value"]) for c in batch_report["checks"]] == \
        [(c.id, c.status, c.value) for c in direct.checks]


def test_cli_exit_codes(local_run, tree, tmp_path):
    runner = CliRunner()
    r = runner.invoke(batch, [str(tree / "good"), "--out", str(tmp_path / "a"), "-j", "2"])
    assert r.exit_code == 1, r.output
    assert "2 plans" in r.output and "1 PASS, 1 FAIL, 0 ERROR" in r.output
    r = runner.invoke(batch, [str(tree / "good" / "PAT-001"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(batch, [str(tmp_path / "empty"), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "no plan" in r.output
    r = runner.invoke(batch, [str(tree), "--out", str(tmp_path / "d"), "-p", "no-such"])
    assert r.exit_code == 2 and "rtqa: error:" in r.output


def test_resume_skips_unchanged_and_rechecks_changed(tree, tmp_path):
    root = tmp_path / "exports"
    shutil.copytree(tree, root)
    out = tmp_path / "out"
    first = run_batch(root, BatchOptions(out=str(out), workers=2))
    assert first.checked == 3
    again = run_batch(root, BatchOptions(out=str(out), workers=2, resume=True))
    assert again.checked == 0 and again.resumed == 3
    assert _comparable(again.summary)["counts"]["resumed"] == 3
    assert [dict(r, resumed=False) for r in again.rows] == first.rows

    rp = next((root / "good" / "PAT-001" / "export").glob("RP.*.dcm"))
    ds = pydicom.dcmread(rp)
    ds.RTPlanDescription = "edited after the first run"
    ds.save_as(rp)
    third = run_batch(root, BatchOptions(out=str(out), workers=2, resume=True))
    assert third.checked == 1 and third.resumed == 2
    rows = _by_patient(third.rows)
    assert not rows["PAT-001"]["resumed"] and rows["PAT-001"]["status"] == "PASS"
    assert rows["PAT-002"]["resumed"] and rows["PAT-003"]["resumed"]
    assert third.exit_code == 2

    # other settings: nothing is up to date
    other = run_batch(root, BatchOptions(out=str(out), workers=2, resume=True,
                                         settings=CheckSettings(overrides=(("Liver", "LIVER_X"),))))
    assert other.resumed == 0


def test_worker_crash_is_an_error_and_the_others_complete(tree, tmp_path):
    res = run_batch(tree, BatchOptions(out=str(tmp_path / "out"), workers=2,
                                       check=partial(hooks.crash_on, "PAT-002")))
    rows = _by_patient(res.rows)
    assert rows["PAT-002"]["status"] == "ERROR"
    assert "worker process checking this plan died (exit code 70)" in rows["PAT-002"]["errors"][0]
    assert rows["PAT-001"]["status"] == "PASS"
    assert "incomplete DICOM file" in rows["PAT-003"]["errors"][0]
    assert res.exit_code == 2 and res.summary["complete"]
    assert (res.out / rows["PAT-002"]["html"]).is_file()
    # a crash records no inputs: --resume checks the plan again
    again = run_batch(tree, BatchOptions(out=str(tmp_path / "out"), workers=2, resume=True))
    assert again.checked == 1 and _by_patient(again.rows)["PAT-002"]["status"] == "FAIL"


def test_exception_in_a_plan_is_an_error(tree, tmp_path):
    res = run_batch(tree / "good", BatchOptions(out=str(tmp_path / "out"), workers=1,
                                                check=partial(hooks.raise_on, "PAT-001")))
    rows = _by_patient(res.rows)
    assert rows["PAT-001"]["status"] == "ERROR"
    assert rows["PAT-001"]["errors"][0].startswith(
        "internal error (RuntimeError: test fault injected by the test)")
    assert rows["PAT-002"]["status"] == "FAIL" and res.exit_code == 2


# --- time limit per plan (--timeout) -------------------------------------------------------

# The hung plan (hooks.hang_on) blocks until killed; the other plans take about 1 s, so
# this limit only has to be long enough for them. No test bounds how long anything takes:
# they wait for the batch to end (the hung worker killed at its deadline) and then look
# at the hung worker's process id, which it wrote in a marker file.
LIMIT_S = 15


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _hung_pids(marker_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in marker_dir.iterdir() if p.name.isdigit())


def _hang(monkeypatch, text: str, marker_dir: Path) -> None:
    """Every local batch of this test hangs the plans matching ``text`` (the CLI has no
    hook option: the pool the batch calls is given the test's check)."""
    import rtqa.batch.pool as pool
    import rtqa.batch.run as run_mod
    marker_dir.mkdir(exist_ok=True)
    hook = partial(hooks.hang_on, text, str(marker_dir))

    def run_local(*args, check=None, **kwargs):
        return pool.run_local(*args, check=hook, **kwargs)

    monkeypatch.setattr(run_mod, "run_local", run_local)


@pytest.mark.slow
def test_timeout_is_an_error_the_worker_is_killed_and_the_others_complete(
        tree, tmp_path, monkeypatch):
    _hang(monkeypatch, "PAT-001", tmp_path / "hung")
    out = tmp_path / "out"
    r = CliRunner().invoke(batch, [str(tree / "good"), "--out", str(out), "-j", "2",
                                   "--timeout", str(LIMIT_S)])
    # without the time limit this batch exits 1 (PASS + FAIL): 2 comes from the timeout
    assert r.exit_code == 2, r.output
    [pid] = _hung_pids(tmp_path / "hung")     # the plan did start and hang ...
    assert _gone(pid)                         # ... and its process was killed and reaped
    reason = (f"timed out after {LIMIT_S} s (time limit per plan, --timeout): its worker "
              "process was killed")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["settings"]["timeout_s"] == LIMIT_S
    assert summary["counts"] == {"PASS": 0, "FAIL": 1, "ERROR": 1, "total": 2, "resumed": 0}
    rows = _by_patient(summary["plans"])
    assert rows["PAT-001"]["status"] == "ERROR" and rows["PAT-001"]["errors"] == [reason]
    assert rows["PAT-002"]["status"] == "FAIL"
    assert FAILING <= set(rows["PAT-002"]["failing_checks"])
    report = json.loads((out / rows["PAT-001"]["json"]).read_text())
    assert report["status"] == "ERROR" and report["errors"] == [reason]
    assert report["inputs"] == []             # not about the input: --resume checks again
    assert reason in (out / rows["PAT-001"]["html"]).read_text()
    assert reason in (out / "index.html").read_text()
    assert f"{LIMIT_S} s per plan" in (out / "index.html").read_text()
    assert reason in (out / "summary.csv").read_text()
    assert reason in r.output                 # the tally


@pytest.mark.slow
def test_timeout_kills_the_process_and_a_fresh_one_goes_on(tree, tmp_path):
    """Kept worker processes (max_tasks_per_child=None): the one running the timed-out plan
    is killed (its pid is gone) and a new one checks the next plans."""
    (tmp_path / "hung").mkdir()
    res = run_batch(tree, BatchOptions(out=str(tmp_path / "out"), workers=1,
                                       max_tasks_per_child=None, timeout=LIMIT_S,
                                       check=partial(hooks.hang_on, "PAT-001",
                                                     str(tmp_path / "hung"))))
    rows = _by_patient(res.rows)
    assert rows["PAT-001"]["errors"][0].startswith(f"timed out after {LIMIT_S} s")
    assert rows["PAT-002"]["status"] == "FAIL"
    assert "incomplete DICOM file" in rows["PAT-003"]["errors"][0]
    killed = [s for s in res.stats if s.get("timed_out")]
    assert [s["key"] for s in killed] == [rows["PAT-001"]["key"]]
    assert killed[0]["seconds"] >= LIMIT_S          # never before its deadline
    assert _hung_pids(tmp_path / "hung") == [killed[0]["pid"]]
    assert _gone(killed[0]["pid"])
    others = [s for s in res.stats if not s.get("timed_out")]
    assert len(others) == 2 and len({s["pid"] for s in others}) == 1    # one kept process
    assert killed[0]["pid"] not in {s["pid"] for s in others}
    assert sorted(s["tasks_in_process"] for s in others) == [1, 2]


def test_timeout_option_values():
    runner = CliRunner()
    assert "--timeout SECONDS" in runner.invoke(batch, ["--help"]).output
    assert BatchOptions().timeout == DEFAULT_TIMEOUT_S == 900   # the CLI default too
    r = runner.invoke(batch, [".", "--timeout", "-1"])
    assert r.exit_code == 2 and "--timeout" in r.output
    r = runner.invoke(batch, [".", "--timeout", "inf"])
    assert r.exit_code == 2 and "--timeout" in r.output


# --- Dask ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    import dask
    # A LocalCluster closes the nanny of a worker that is still missing from the scheduler
    # lost-worker-timeout (15 s) after it was removed: a worker restarted then (by the
    # time-limit test, 15 s after the crash test killed it) would lose its nanny.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}), \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                     host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.slow
def test_dask_gives_the_local_summary(local_run, tree, dask_cluster, tmp_path):
    res = run_batch(tree, BatchOptions(out=str(tmp_path / "out"),
                                       scheduler=dask_cluster.scheduler_address))
    assert res.summary["run"]["executor"].startswith("dask ")
    assert _comparable(res.summary) == _comparable(local_run.summary)
    assert (tmp_path / "out" / "summary.csv").read_text() == \
        (local_run.out / "summary.csv").read_text()
    assert res.exit_code == local_run.exit_code == 2


@pytest.mark.slow
def test_dask_worker_crash_is_an_error(tree, dask_cluster, tmp_path):
    res = run_batch(tree / "good", BatchOptions(out=str(tmp_path / "out"),
                                                scheduler=dask_cluster.scheduler_address,
                                                check=partial(hooks.crash_on, "PAT-002")))
    rows = _by_patient(res.rows)
    assert rows["PAT-002"]["status"] == "ERROR" and "KilledWorker" in rows["PAT-002"]["errors"][0]
    assert rows["PAT-001"]["status"] == "PASS"


@pytest.mark.slow
def test_dask_timeout_is_an_error_and_the_worker_is_restarted(tree, dask_cluster, tmp_path):
    (tmp_path / "hung").mkdir()
    res = run_batch(tree / "good", BatchOptions(out=str(tmp_path / "out"), timeout=LIMIT_S,
                                                scheduler=dask_cluster.scheduler_address,
                                                check=partial(hooks.hang_on, "PAT-001",
                                                              str(tmp_path / "hung"))))
    rows = _by_patient(res.rows)
    reason = rows["PAT-001"]["errors"][0]
    assert rows["PAT-001"]["status"] == "ERROR"
    assert reason.startswith(f"timed out after {LIMIT_S} s (time limit per plan, --timeout): "
                             "the Dask worker running it (tcp://")
    assert "was restarted through its nanny, which killed the process checking it" in reason
    assert rows["PAT-002"]["status"] == "FAIL" and res.exit_code == 2
    assert res.summary["complete"]
    killed = [s for s in res.stats if s.get("timed_out")]
    assert len(killed) == 1 and killed[0]["restart"] == "OK"
    assert killed[0]["seconds"] >= LIMIT_S
    assert _hung_pids(tmp_path / "hung") == [killed[0]["pid"]]
    assert _gone(killed[0]["pid"])             # LocalCluster: the worker ran on this machine


# --- small pieces --------------------------------------------------------------------------

def test_exit_code_and_csv_cells():
    assert exit_code([]) == 2
    assert exit_code([{"status": "PASS"}, {"status": "FAIL"}]) == 1
    assert exit_code([{"status": "FAIL"}, {"status": "ERROR"}]) == 2
    row = {"patient_id": "=cmd()", "label": "x", "status": "PASS", "failing_checks": [],
           "not_evaluated": [], "errors": [], "warnings": 0, "folders": ["a"],
           "html": None, "json": "plans/x.json", "key": "k"}
    assert "'=cmd()" in summary_csv([row])


def test_workers_run_the_batch_rtqa_not_one_in_the_current_folder(tmp_path):
    """Another rtqa in the current folder (a source checkout) must not be the one the fork
    server preloads for the workers."""
    import subprocess
    import sys

    import rtqa
    decoy = tmp_path / "decoy"
    (decoy / "rtqa").mkdir(parents=True)
    (decoy / "rtqa" / "__init__.py").write_text('__version__ = "decoy"\n')
    driver = tmp_path / "driver" / "drive.py"
    driver.parent.mkdir()
    driver.write_text(
        "import json\n"
        "from rtqa.batch import CheckSettings, PlanTask, run_isolated\n"
        "if __name__ == '__main__':\n"
        "    task = PlanTask('k', 'n', 'P', (), (), (), CheckSettings().resolved(), 'problem')\n"
        "    print(json.dumps(json.loads(run_isolated(task)['json'])['errors']))\n")
    env = dict(os.environ, PYTHONPATH=str(Path(rtqa.__file__).parent.parent))
    out = subprocess.run([sys.executable, str(driver)], cwd=decoy, env=env, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["problem"]     # the worker's report, not a crash


def test_a_worker_with_another_rtqa_checks_nothing():
    from rtqa.batch.pool import _other_rtqa, _rtqa_file
    assert _other_rtqa(_rtqa_file()) == ""
    assert _other_rtqa("/elsewhere/rtqa/__init__.py").endswith(
        "not /elsewhere/rtqa/__init__.py as the batch")


def test_forkserver_preload_names_modules_that_exist():
    """The fork server imports _PRELOAD; the warm-up runs in the module that defines it."""
    import importlib

    from rtqa.batch import _PRELOAD, _warm_up
    assert _warm_up.__module__ in _PRELOAD
    for name in _PRELOAD:
        importlib.import_module(name)
