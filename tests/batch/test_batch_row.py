"""The summary row's members sent by the worker (issue 16 item 5): the parent makes a
plan's row from them instead of parsing the whole JSON report again, so they must be
exactly what ``json.loads`` of the report's JSON text gives, and the text exactly
``rtqa.report.json_report.dumps`` of the report."""

from __future__ import annotations

import json

import pytest

from rtqa.batch.model import CheckSettings, PlanTask
from rtqa.batch.summary import make_row
from rtqa.batch.worker import ROW_KEYS, _error_report, _render, check_plan, check_task
from rtqa.report.json_report import dumps


def _task(files) -> PlanTask:
    return PlanTask("k", "n", "P", tuple(files), ("x",) * len(files), ("",) * len(files),
                    CheckSettings().resolved())


@pytest.fixture(scope="module")
def reports(sample_dir):
    out = {}
    for case in ("hcc_pass", "hcc_fail"):
        files = sorted(str(p) for p in (sample_dir / case).glob("*.dcm"))
        out[case] = check_task(_task(files))
    files = sorted(str(p) for p in (sample_dir / "hcc_pass").glob("*.dcm"))
    out["error with inputs"] = _error_report(_task(files), "test reason", with_inputs=True)
    out["error"] = _error_report(_task(files), "test reason", with_inputs=False)
    return out


@pytest.mark.parametrize("case", ["hcc_pass", "hcc_fail", "error with inputs", "error"])
def test_row_members_are_those_of_the_json_text(reports, case):
    report = reports[case]
    text, _html, _note, row = _render(report)
    assert text == dumps(report)
    doc = json.loads(text)
    assert row == {k: doc[k] for k in ROW_KEYS if k in doc}
    # every member make_row reads is among them: the same row either way
    from rtqa.batch.model import PlanUnit
    unit = PlanUnit(key="k", name="n", patient_id="P", label="L")
    kw = dict(root="/", fingerprint="f", html=True, resumed=False)
    assert make_row(unit, row, **kw) == make_row(unit, doc, **kw)


def test_check_plan_sends_the_row(sample_dir):
    files = sorted(str(p) for p in (sample_dir / "hcc_fail").glob("*.dcm"))
    result = check_plan(_task(files))
    doc = json.loads(result["json"])
    assert result["row"] == {k: doc[k] for k in ROW_KEYS if k in doc}
    assert result["row"]["status"] == "FAIL"
