"""The terminal report fits the terminal: 80 columns when COLUMNS=80, also when the
output is piped (issue 15, item 1)."""

from __future__ import annotations

import unicodedata

import pytest
from click.testing import CliRunner

from rtqa.cli import main


def _cells(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.fixture(scope="module")
def at_80(fail_dir):
    res = CliRunner().invoke(main, ["check", str(fail_dir)], env={"COLUMNS": "80"})
    assert res.exit_code == 1, res.output
    return res.stdout.splitlines()


def test_every_line_fits_80_columns_when_piped(at_80):
    wide = [(i, _cells(line)) for i, line in enumerate(at_80, 1) if _cells(line) > 80]
    assert not wide


def test_reasons_come_first(at_80):
    first = next(i for i, line in enumerate(at_80, 1) if line.startswith("FAIL "))
    assert first <= 20
    assert at_80[first - 4].startswith("WHY FAIL: ") and " failed, " in at_80[first - 4]


def test_default_width_without_columns(fail_dir, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    from rtqa.cli.check import report_width
    assert report_width() == 100
    monkeypatch.setenv("COLUMNS", "72")
    assert report_width() == 72
