"""``rtqa watch``: files are taken only when whole and stable; a watched export gets
the same checks as a sent one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rtqa.serve.engine import Engine, EngineOptions
from rtqa.serve.watch import Watcher
from batch_helpers import bare_dataset
from serve_support import checks, wait_for


@pytest.fixture
def engine(tmp_path):
    e = Engine(EngineOptions(out=str(tmp_path / "out"), settle=0.5, tick=0.1))
    yield e
    e.db.close()


def test_a_half_written_file_is_never_taken(tmp_path, engine, sample_dir):
    whole = (sample_dir / "hcc_fail" / "RS.hcc_fail.dcm").read_bytes()
    folder = tmp_path / "export"
    folder.mkdir()
    target = folder / "RS.dcm"
    w = Watcher(engine, folder, stable=1.0)
    with open(target, "wb") as fh:
        fh.write(whole[:len(whole) // 2])
        fh.flush()
        assert w.scan_once(now=100.0) == 0          # first seen
        assert w.scan_once(now=100.5) == 0          # not stable long enough
        assert w.scan_once(now=101.5) == 0          # stable but not whole: refused
        assert engine.db.instances() == []
        fh.write(whole[len(whole) // 2:])
    os.utime(target, ns=(1, 2))                     # the writer's last touch
    assert w.scan_once(now=102.0) == 0              # changed: wait again
    assert w.scan_once(now=102.5) == 0
    assert w.scan_once(now=103.0) == 1              # whole and stable: taken
    (inst,) = engine.db.instances()
    assert Path(inst.path).read_bytes() == whole
    assert inst.source == "RS.dcm" and inst.kind == "RTSTRUCT"
    assert w.scan_once(now=200.0) == 0              # taken once


def test_a_growing_file_waits(tmp_path, engine, sample_dir):
    whole = (sample_dir / "hcc_fail" / "RP.SBRT_5fx_bad.dcm").read_bytes()
    folder = tmp_path / "export"
    folder.mkdir()
    target = folder / "RP.dcm"
    w = Watcher(engine, folder, stable=1.0)
    target.write_bytes(whole[:1000])
    assert w.scan_once(now=10.0) == 0
    with open(target, "ab") as fh:
        fh.write(whole[1000:])
    assert w.scan_once(now=10.9) == 0               # size changed
    assert w.scan_once(now=11.5) == 0               # stable for 0.6 s only
    assert w.scan_once(now=12.0) == 1
    assert Path(engine.db.instances()[0].path).read_bytes() == whole


def test_files_that_are_not_dicom_are_ignored(tmp_path, engine):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    w = Watcher(engine, folder, stable=0)
    w.scan_once(now=1.0)
    assert w.scan_once(now=2.0) == 0
    assert engine.db.instances() == []


@pytest.mark.slow
def test_a_watched_export_is_checked_and_a_rewrite_supersedes(tmp_path, sample_dir):
    folder = tmp_path / "export"
    folder.mkdir()
    e = Engine(EngineOptions(out=str(tmp_path / "out"), settle=0.5, tick=0.1))
    e.start()
    w = Watcher(e, folder, poll=0.1, stable=0.3)
    w.start()
    try:
        for f in sorted((sample_dir / "hcc_fail").glob("*.dcm")):
            shutil.copyfile(f, folder / f.name)
        (row,) = wait_for(lambda: checks(e.db.path), "the watched plan checked")
        assert row["status"] == "FAIL" and row["reason"] == "complete"
        assert len(row["inputs"]) == 86
        # the planning system writes the plan again: a new check supersedes the first
        rp = folder / "RP.SBRT_5fx_bad.dcm"
        data = rp.read_bytes()
        rp.unlink()
        rp.write_bytes(data)
        rows = wait_for(lambda: len(checks(e.db.path)) >= 2 and checks(e.db.path),
                        "the re-written plan checked again")
        assert rows[1]["supersedes"] == row["id"] and rows[1]["status"] == "FAIL"
        doc = json.loads(Path(rows[1]["report_json"]).read_text())
        assert any(f"supersedes check #{row['id']}" in x for x in doc["warnings"])
        for f in folder.iterdir():                   # the watched folder is only read
            assert f.read_bytes() == (sample_dir / "hcc_fail" / f.name).read_bytes()
    finally:
        w.stop()
        e.stop()


@pytest.mark.parametrize("implicit", [True, False])
def test_data_sets_without_header_are_taken_whatever_their_names(tmp_path, engine,
                                                                  sample_dir, implicit):
    folder = tmp_path / "export"
    folder.mkdir()
    plan = bare_dataset(sample_dir / "hcc_fail" / "RP.SBRT_5fx_bad.dcm", implicit)
    assert plan[128:132] != b"DICM"
    (folder / "PLAN0001").write_bytes(plan)                       # no .dcm name
    # resembling a data set without header, but cut short, and not named .dcm: ignored
    dose = bare_dataset(sample_dir / "hcc_fail" / "RD.SBRT_5fx_bad.dcm", implicit)
    (folder / "dose.part").write_bytes(dose[:len(dose) // 2])
    w = Watcher(engine, folder, stable=0)
    w.scan_once(now=1.0)
    assert w.scan_once(now=2.0) == 1
    (inst,) = engine.db.instances()
    assert inst.kind == "RTPLAN" and inst.label == "SBRT_5fx_bad"
    assert inst.source == "PLAN0001" and open(inst.path, "rb").read() == plan
    # the spool copy is read by the check as `rtqa check` reads such a file
    from rtqa.reading.scan import scan
    (scanned,) = scan([inst.path]).files
    assert scanned.kind == "RTPLAN" and "not a DICOM Part 10 file" in scanned.header_note
    # the rest of the file arrives: taken too
    (folder / "dose.part").write_bytes(dose)
    os.utime(folder / "dose.part", ns=(3, 4))
    w.scan_once(now=3.0)
    assert w.scan_once(now=4.0) == 1
    assert sorted(i.kind for i in engine.db.instances()) == ["RTDOSE", "RTPLAN"]
