"""``rtqa check --json A --html B``: output paths are tested before the plan is read, and
the report files are written all or none. When one cannot be written, the terminal report
is still shown, one line names the file and the reason, no report file is left (an
earlier one at those paths is removed), and the exit code is 2.

The disk-full case is tested twice: with an injected write failure (ENOSPC on the
second file), and, when the tests run as root, on a small tmpfs that holds the JSON
report but not the HTML report.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from batch_helpers import small
from click.testing import CliRunner

import rtqa.api as api
import rtqa.report.atomic as atomic
from rtqa.cli.check import check
from rtqa.sample import hcc_pass, write_case


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("check-outputs") / "plan"
    write_case(small(hcc_pass(), "o-pass", "PAT-OUT"), out)
    return out


def _run(*args):
    return CliRunner().invoke(check, [str(a) for a in args])


def _error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rtqa: error: ")
    return lines[0]


@pytest.fixture
def no_check(monkeypatch):
    """The check must not run (the output path is refused first)."""
    def refuse(*_a, **_k):
        raise AssertionError("the plan was checked before the output path was tested")
    monkeypatch.setattr(api, "check", refuse)


def test_both_reports_written_and_the_verdict_is_the_exit_code(plan, tmp_path):
    r = _run(plan, "--json", tmp_path / "r.json", "--html", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "PASS"
    assert '<div class="verdict-status">PASS</div>' in (tmp_path / "r.html").read_text()
    assert sorted(os.listdir(tmp_path)) == ["r.html", "r.json"]
    assert r.stdout.rstrip().splitlines()[-1].startswith("PASS")


@pytest.mark.parametrize("where", ["missing-folder", "file-as-folder", "is-a-folder"])
def test_unwritable_path_is_refused_before_the_check(plan, tmp_path, no_check, where):
    (tmp_path / "afile").write_text("x")
    html = {"missing-folder": tmp_path / "nope" / "r.html",
            "file-as-folder": tmp_path / "afile" / "r.html",
            "is-a-folder": tmp_path}[where]
    r = _run(plan, "--json", tmp_path / "r.json", "--html", html)
    assert r.exit_code == 2
    line = _error_line(r)
    reason = {"missing-folder": f" ({html.parent} does not exist)",
              "file-as-folder": f" ({html.parent} is not a folder)",
              "is-a-folder": ": it is a folder, not a file name"}[where]
    assert line == f"rtqa: error: {html}: cannot write the report{reason}"
    assert r.stdout == ""
    assert not (tmp_path / "r.json").exists()


def test_input_file_and_same_file_are_refused_before_the_check(plan, tmp_path, no_check):
    rs = next(plan.glob("RS.*.dcm"))
    before = rs.read_bytes()
    line = _error_line(_run(plan, "--html", rs))
    assert line == (f"rtqa: error: {rs}: cannot write the report: refusing to overwrite an "
                    "input file")
    assert rs.read_bytes() == before
    line = _error_line(_run(plan, "--json", tmp_path / "r", "--html", tmp_path / "r"))
    assert line == f"rtqa: error: {tmp_path / 'r'}: --json and --html name the same file"


def _enospc_on_second_file(monkeypatch):
    real = atomic.os.fdopen
    calls = []

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.fh, name)

    def fdopen(fd, *args, **kwargs):
        calls.append(fd)
        fh = real(fd, *args, **kwargs)
        return Full(fh) if len(calls) == 2 else fh

    monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    return calls


def _assert_none_written(r, folder: Path, json_path: Path, html_path: Path,
                         removed: bool) -> None:
    assert r.exit_code == 2, r.output
    # the terminal report is shown in full, with its verdict
    assert r.stdout.rstrip().splitlines()[-1].startswith("PASS")
    line = _error_line(r)
    expected = (f"rtqa: error: {html_path}: cannot write the report "
                f"({os.strerror(errno.ENOSPC)}); no report file written")
    if removed:
        expected += f" (the earlier {json_path} removed)"
    assert line == expected
    assert line.count(os.strerror(errno.ENOSPC)) == 1          # the reason, once
    assert not json_path.exists() and not html_path.exists()
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_disk_full_on_the_second_file_writes_none(plan, tmp_path, monkeypatch):
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    json_path.write_text('{"status": "FAIL"}')      # an earlier run's report
    calls = _enospc_on_second_file(monkeypatch)
    r = _run(plan, "--json", json_path, "--html", html_path)
    assert len(calls) == 2        # the JSON was written in full, then the HTML failed
    _assert_none_written(r, tmp_path, json_path, html_path, removed=True)


def _mount_tmpfs(where: Path, kib: int) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
                         capture_output=True)
    return res.returncode == 0


def test_full_tmpfs_writes_none(plan, tmp_path):
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    r = _run(plan, "--json", sizes / "r.json", "--html", sizes / "r.html")
    assert r.exit_code == 0
    json_kib = (sizes / "r.json").stat().st_size // 1024 + 1
    html_kib = (sizes / "r.html").stat().st_size // 1024 + 1
    # whole pages: the smaller report fits, the larger does not (the JSON carries the DVH
    # curves, so either may be the larger)
    # (one 4 KiB page of slack: the JSON and HTML of this plan differ by ~11 KiB)
    room = -(-(min(json_kib, html_kib) + 4) // 4) * 4
    assert max(json_kib, html_kib) > room
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, room):
        pytest.skip("a tmpfs cannot be mounted here (needs root)")
    try:
        r = _run(plan, "--json", disk / "r.json", "--html", disk / "r.html")
        small, large = ((disk / "r.json", disk / "r.html") if html_kib > json_kib
                        else (disk / "r.html", disk / "r.json"))
        _assert_none_written(r, disk, small, large, removed=False)  # the larger fails
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)
