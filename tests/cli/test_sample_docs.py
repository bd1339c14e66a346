"""What ``rtqa sample --help``, the cases' notes and ``plans_sample/README.md`` say about
the samples is what ``rtqa check`` gives on them (issue 15, item 7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtqa.cli import main
from rtqa.report.formatting import check_metric
from rtqa.results import FAIL

README = Path(__file__).resolve().parents[2] / "plans_sample" / "README.md"


@pytest.fixture(scope="module")
def fail_report(fail_dir):
    from rtqa.api import check
    return check([str(fail_dir)])


def _help() -> str:
    res = CliRunner().invoke(main, ["sample", "--help"])
    assert res.exit_code == 0
    return " ".join(res.output.split())


def test_help_gives_each_case_its_verdict_and_exit_code():
    text = _help()
    assert "hcc_pass oligoprogressive HCC" in text and "rtqa check: PASS, exit 0" in text
    assert "rtqa check: FAIL, exit 1, for 3 problems" in text
    assert "check gives ERROR, exit 2" in text          # body_bench has no CT
    assert "fails 3 checks" not in text                 # the old claim: it fails 8 rows


def test_case_notes_state_the_verdict():
    from rtqa.sample import hcc_fail, hcc_pass
    assert any("Expected verdict: PASS (exit 0)" in n for n in hcc_pass().notes)
    assert any("Expected verdict: FAIL (exit 1)" in n for n in hcc_fail().notes)


def test_the_three_problems_are_the_failing_structures(fail_report):
    failed = {c.structure for c in fail_report.checks
              if c.status == FAIL and c.priority == "mandatory"}
    assert fail_report.status == "FAIL"
    # help: T10 under-dosed; normal liver dose; spinal cord hot spot
    assert failed == {"PTV_T10", "Liver - GTV", "SpinalCord"}


def test_readme_lists_exactly_the_failed_mandatory_rows(fail_report):
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- failed-mandatory-rows -->")[1].split("<!-- end -->")[0]
    listed = sorted(re.findall(r"^- (.+)$", block, flags=re.M))
    actual = sorted(f"{c.structure}: {check_metric(c)} {c.limit}" for c in fail_report.checks
                    if c.status == FAIL and c.priority == "mandatory")
    assert listed == actual
