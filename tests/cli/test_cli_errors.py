"""One error format and ``--debug`` in either place (issue 15, item 7)."""

from __future__ import annotations

import warnings

import pytest
from click.testing import CliRunner

from rtqa.cli import _COMMANDS, main


def _run(args):
    with warnings.catch_warnings():  # the CLI sets warning filters for its process
        return CliRunner().invoke(main, args, prog_name="rtqa")


@pytest.mark.parametrize("args, words", [
    (["check"], "Missing argument 'PLAN_DIR'"),
    (["check", "x", "--fractions", "0"], "'--fractions': 0 is not in the range"),
    (["check", "x", "--map", "foo"], "'foo' is not STANDARD=ROI"),
    (["chek"], "No such command 'chek'"),
    (["bed", "60"], "--fractions N is required"),
    (["dvh", "x", "--csv", "-", "--json"], "choose one"),
    (["check", "/nonexistent/plan"], "no such file or folder"),
])
def test_every_error_is_one_line_with_one_prefix(args, words):
    res = _run(args)
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("rtqa: error: ") and words in err, err
    assert "\n" not in err and "Usage:" not in err and "Traceback" not in err


def test_usage_error_points_at_the_help():
    err = _run(["check", "x", "--fractions", "0"]).stderr
    assert err.rstrip().endswith("(see 'rtqa check --help')")


@pytest.mark.parametrize("before", [True, False])
def test_debug_before_or_after_the_subcommand(before, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--debug", "check", str(empty)] if before else ["check", "--debug", str(empty)]
    res = _run(args)
    assert res.exit_code == 2
    assert "Traceback (most recent call last)" in res.stderr
    assert res.stderr.rstrip().splitlines()[-1].startswith("rtqa: error: no DICOM files")
    quiet = _run(["check", str(empty)])
    assert "Traceback" not in quiet.stderr and quiet.exit_code == 2


def test_every_subcommand_takes_debug():
    for name in _COMMANDS:
        res = _run([name, "--help"])
        assert res.exit_code == 0 and "--debug" in res.output, name
