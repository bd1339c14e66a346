"""The batch index lists each failure with its value and limit, and summarises identical
copies of a plan folder in one line (issue 15, item 7)."""

from __future__ import annotations

import json
import shutil

import pytest
from batch_helpers import small

from rtqa.batch import BatchOptions, run_batch
from rtqa.batch.summary import copies_summary
from rtqa.sample import hcc_fail, hcc_pass, write_case


def test_copies_summary_folds_one_note_per_file():
    notes = [f"identical copies of one CT (a/CT.{i:03d}.dcm, a_copy/CT.{i:03d}.dcm): "
             f"a/CT.{i:03d}.dcm used" for i in range(1, 84)]
    notes += ["identical copies of one RTPLAN (a/RP.x.dcm, a_copy/RP.x.dcm): a/RP.x.dcm used",
              "identical copies of one RTDOSE (a/RD.dcm, b/RD.dcm, c/RD.dcm): a/RD.dcm used",
              "an unrelated note"]
    lines, other = copies_summary(notes)
    assert other == ["an unrelated note"]
    assert lines == [
        "84 objects (83 CT, 1 RTPLAN) also in a_copy/ as identical copies; the files in a/ "
        "were used",
        "1 object (1 RTDOSE) also in b/, c/ as identical copies; the files in a/ were used"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    write_case(small(hcc_pass(), "i-pass", "PAT-101"), root / "pass")
    shutil.copytree(root / "pass", root / "pass_copy")
    write_case(small(hcc_fail(), "i-fail", "PAT-102"), root / "fail")
    out = tmp_path_factory.mktemp("out")
    return run_batch(root, BatchOptions(out=str(out), workers=1))


def test_index_lists_failures_with_values_and_limits(run):
    rows = {r["patient_id"]: r for r in run.rows}
    fail = rows["PAT-102"]
    report = json.loads((run.out / fail["json"]).read_text())
    failing = [c for c in report["checks"]
               if c["status"] == "FAIL" and c["priority"] == "mandatory"]
    assert [f["id"] for f in fail["failures"]] == [c["id"] for c in failing] != []
    index = (run.out / "index.html").read_text()
    t10 = next(f for f in fail["failures"] if f["id"] == "lesion.T10.bed")
    assert t10["metric"] == "BED(α/β 10) D95%[Gy]" and t10["limit"] == ">= 60 Gy"
    assert t10["value"].endswith(" Gy") and t10["value"] in index
    assert 'data-check="lesion.T10.bed"' in index and "limit &gt;= 60 Gy" in index


def test_index_summarises_the_copied_folder_in_one_line(run):
    rows = {r["patient_id"]: r for r in run.rows}
    assert len(rows["PAT-101"]["notes"]) > 10                 # one note per copied file
    index = (run.out / "index.html").read_text()
    assert index.count("identical copies") == 1
    assert "also in pass_copy/ as identical copies; the files in pass/ were used" in index
