"""``rtqa serve`` / ``rtqa watch`` command lines."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rtqa.cli import main
from serve_support import checks, wait_for


def test_help_teaches():
    res = CliRunner().invoke(main, ["serve", "--help"])
    assert res.exit_code == 0
    for word in ("--ae-title", "--allow-ae", "--max-associations", "--max-dataset-mb",
                 "--settle", "--deadline", "--timeout", "--http", "--spool", "127.0.0.1",
                 "supersedes", "RTPLAN ->", "--keep-days", "postgresql://", "--no-pdf",
                 "--sum-plans", "--roi-type", "--lesion-organ", "--end-caps"):
        assert word in res.output, word
    res = CliRunner().invoke(main, ["watch", "--help"])
    assert res.exit_code == 0 and "half-written file is never read" in res.output


def test_rtqa_help_does_not_import_pynetdicom():
    code = ("import sys; from rtqa.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('pynetdicom' in sys.modules, 'rtqa.serve.engine' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout
    assert out.strip().endswith("False False")


def test_unknown_protocol_stops_before_listening(tmp_path):
    res = CliRunner().invoke(main, ["serve", "--port", "0", "--out", str(tmp_path / "o"),
                                    "--protocol", "no-such-protocol"])
    assert res.exit_code == 2
    assert "no-such-protocol" in res.output


def test_a_database_url_that_cannot_be_used_stops_the_start(tmp_path):
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    res = CliRunner().invoke(main, ["serve", "--port", "0", "--out", str(tmp_path / "o"),
                                    "--db", "postgresql://rtqa:pw@127.0.0.1:9/rtqa"])
    assert res.exit_code == 2
    assert "--db postgresql://rtqa:***@127.0.0.1:9/rtqa: cannot be used" in res.output
    assert "pw@" not in res.output and not (tmp_path / "o").exists()


def test_the_check_options_reach_the_engine(tmp_path):
    from rtqa.cli.serve import _engine
    e = _engine(str(tmp_path / "o"), None, None, 2.5, False, "oligo-hcc", (),
                ("Heart=Herz",), 1.0, 60.0, 900, 1, sum_plans=True,
                roi_types=("T10_PTV=PTV",), lesion_organs=("PTV_LN=LymphNode",),
                plan_label="P2", delivery="sequential", end_caps="none")
    try:
        o = e.settings.options()
        assert (o.sum_plans, o.plan, o.delivery, o.end_caps) == \
            (True, "P2", "sequential", "none")
        assert o.roi_types == {"T10_PTV": "PTV"} and o.lesion_organs == {"PTV_LN": "LymphNode"}
        assert o.overrides == {"Heart": "Herz"}
        assert (e.options.keep_days, e.options.pdf) == (2.5, False)
    finally:
        e.db.close()
    res = CliRunner().invoke(main, ["watch", str(tmp_path), "--out", str(tmp_path / "p"),
                                    "--lesion-organ", "PTV_LN"])
    assert res.exit_code == 2 and "--lesion-organ" in res.output


@pytest.mark.slow
def test_watch_command_checks_an_export(tmp_path, sample_dir):
    folder, out = tmp_path / "export", tmp_path / "out"
    folder.mkdir()
    log = open(tmp_path / "watch.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "from rtqa.cli import main; main()",
                             "watch", str(folder), "--out", str(out), "--settle", "0.5",
                             "--stable", "0.3", "--poll", "0.1"], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        for f in sorted((sample_dir / "hcc_pass").glob("*.dcm")):
            shutil.copyfile(f, folder / f.name)
        (row,) = wait_for(lambda: checks(out / "rtqa-serve.sqlite"), "the plan checked")
        assert row["status"] == "PASS" and row["plan_label"] == "SBRT_5fx"
    finally:
        proc.terminate()
        proc.wait(120)
        log.close()
    assert proc.returncode == 0
    assert "watching" in (tmp_path / "watch.log").read_text()
