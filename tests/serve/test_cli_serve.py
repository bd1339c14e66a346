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
                 "supersedes", "RTPLAN ->"):
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


def test_a_database_url_is_refused(tmp_path):
    res = CliRunner().invoke(main, ["serve", "--port", "0", "--out", str(tmp_path / "o"),
                                    "--db", "postgresql://db/rtqa"])
    assert res.exit_code == 2 and "SQLite file" in res.output
    assert not (tmp_path / "o").exists()


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
