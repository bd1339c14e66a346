"""The public API: lazy top-level names, the doctests of ``rtqa.api``, and that the CLI
and the API give the same verdicts."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rtqa
from rtqa import api

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # four checks and two whole-plan DVH sets (~30 s)
def test_doctests_of_the_api(monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples use plans_sample/
    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10
    assert result.failed == 0


def test_import_rtqa_is_light():
    code = ("import sys, rtqa; rtqa.__version__; rtqa.Status; rtqa.Report; "
            "print(sorted(m for m in ('numpy', 'scipy', 'pydicom', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_public_names():
    assert "check" in rtqa.__all__ and "dvh" in rtqa.__all__ and "exit_code" in rtqa.__all__
    assert not [n for n in rtqa.__all__ if n.startswith("_") and n != "__version__"]
    for name in rtqa.__all__:
        assert getattr(rtqa, name) is not None
    assert rtqa.check is api.check and rtqa.Report.__module__ == "rtqa.results"
    assert rtqa.Status.PASS == "PASS" and rtqa.DoseView.EQD2 == "EQD2"
    with pytest.raises(AttributeError):
        rtqa.no_such_name  # noqa: B018


def test_rtqa_dvh_is_callable_and_the_engine(pass_dir):
    import rtqa.dvh
    assert callable(rtqa.dvh) and callable(rtqa.dvh.compute_dvh)
    dvhs = rtqa.dvh(pass_dir)
    assert set(dvhs) >= {"PTV_Liver", "Liver", "SpinalCord"}
    ptv = dvhs["PTV_Liver"]
    assert ptv.rx_dose == pytest.approx(50.0) and ptv.dvh_type == "cumulative"
    # same numbers as rtqa dvh --json
    from click.testing import CliRunner
    from rtqa.cli import main
    res = CliRunner().invoke(main, ["dvh", str(pass_dir), "--json"])
    rows = {r["name"]: r for r in json.loads(res.output)["structures"]}
    assert set(rows) == set(dvhs)
    for name, d in dvhs.items():
        assert d.volume == pytest.approx(rows[name]["volume_cc"] - _outside(rows[name]),
                                         abs=1e-3)  # warning gives 3 decimals
        assert d.mean == pytest.approx(rows[name]["metrics"]["Mean[Gy]"], abs=0.006)


def _outside(row) -> float:
    # the DVH covers the volume inside the dose grid; the CLI gives the whole volume
    for w in row["warnings"]:
        if "outside the dose grid" in w:
            return float(w.split(" cc", 1)[0])
    return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("case, status", [("pass_dir", "PASS"), ("fail_dir", "FAIL")])
def test_cli_and_api_agree(case, status, request, tmp_path):
    folder = request.getfixturevalue(case)
    report = rtqa.check(folder)
    assert report.status == status and rtqa.exit_code(report) == {"PASS": 0, "FAIL": 1}[status]
    from click.testing import CliRunner
    from rtqa.cli import main
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["check", str(folder), "--json", str(out), "-q"])
    assert res.exit_code == rtqa.exit_code(report)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [c["id"] for c in doc["checks"]] == [c.id for c in report.checks]
    assert [c["value"] for c in doc["checks"]] == [c.value for c in report.checks]


def test_unreadable_input_is_an_error_report_or_raises(tmp_path):
    report = rtqa.check(tmp_path)
    assert report.status == "ERROR" and rtqa.exit_code(report) == 2 and report.errors
    with pytest.raises(rtqa.RtqaError):
        rtqa.check(tmp_path, strict=True)
    with pytest.raises(rtqa.RtqaError):
        rtqa.dvh(tmp_path)
