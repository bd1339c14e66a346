"""``rtqa dvh`` end to end: JSON format, and one-line errors with exit 2 on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import main
from rtqa.reading.sopclass import RT_DOSE, RT_STRUCT


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hcc_pass")
    result = CliRunner().invoke(main, ["sample", str(out), "--case", "hcc_pass", "--force"])
    assert result.exit_code == 0, result.output
    return out


def _files(folder: Path, sop_class: str) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception:
            continue
        if str(ds.get("SOPClassUID", "")) == sop_class:
            out.append(p)
    return out


def _run(args):
    return CliRunner().invoke(main, ["dvh", *args])


def test_json_has_exactly_the_documented_shape(plan_dir):
    result = _run([str(plan_dir), "-m", "D95%[Gy]", "-m", "V20Gy[cc]", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["structures"]
    names = [s["name"] for s in doc["structures"]]
    for required in ("Liver", "SpinalCord", "External", "Lung_L", "Lung_R"):
        assert required in names
    for s in doc["structures"]:
        assert set(s) == {"name", "volume_cc", "metrics", "warnings"}
        assert list(s["metrics"]) == ["Min[Gy]", "Mean[Gy]", "Max[Gy]", "D95%[Gy]", "V20Gy[cc]"]
        m = s["metrics"]
        assert s["volume_cc"] > 0
        assert 0 <= m["Min[Gy]"] <= m["D95%[Gy]"] <= m["Mean[Gy]"] + 1e-9 or \
            m["D95%[Gy]"] <= m["Mean[Gy]"]
        assert m["Min[Gy]"] <= m["Mean[Gy]"] <= m["Max[Gy]"]
        assert 0 <= m["V20Gy[cc]"] <= s["volume_cc"] + 1e-6


def test_table_is_the_default(plan_dir):
    result = _run([str(plan_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[:2] == ["Structure", "Volume[cc]"]


def test_malformed_metric_is_one_line_error(plan_dir):
    result = _run([str(plan_dir), "-m", "D2Gy[Gy]"])
    assert result.exit_code == 2
    assert "D2Gy[Gy]" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_metric_larger_than_structure_is_null_and_exit_2(plan_dir):
    result = _run([str(plan_dir), "-m", "D700cc[Gy]", "--json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    cord = next(s for s in doc["structures"] if s["name"] == "SpinalCord")
    assert cord["metrics"]["D700cc[Gy]"] is None
    assert any("700" in w for w in cord["warnings"])


def _copy(plan_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "plan"
    shutil.copytree(plan_dir, dst)
    return dst


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert err and err[-1].startswith("rtqa: error:"), result.stderr
    for f in fragments:
        assert f in err[-1], err[-1]


def test_truncated_dose_names_the_file(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path)
    dose = _files(d, RT_DOSE)[0]
    data = dose.read_bytes()
    dose.write_bytes(data[: len(data) // 2])
    _one_line_error(_run([str(d)]), dose.name)


def test_non_dicom_dcm_file_names_the_file(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path)
    (d / "notes.dcm").write_text("not a DICOM file")
    _one_line_error(_run([str(d)]), "notes.dcm", "not a DICOM file")


def test_non_dicom_other_files_are_ignored(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path)
    (d / "report.pdf").write_bytes(b"%PDF-1.4 fake")
    assert _run([str(d)]).exit_code == 0


def test_no_dose(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path)
    for p in _files(d, RT_DOSE):
        p.unlink()
    _one_line_error(_run([str(d)]), "no RTDOSE")


def test_frame_of_reference_mismatch(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path)
    rs = _files(d, RT_STRUCT)[0]
    ds = pydicom.dcmread(rs)
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.3.4.5.6.7.8.9"
    ds.save_as(rs)
    _one_line_error(_run([str(d)]), rs.name, "frame of reference")


def test_relative_dose_is_refused(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path)
    dose = _files(d, RT_DOSE)[0]
    ds = pydicom.dcmread(dose)
    ds.DoseUnits = "RELATIVE"
    ds.save_as(dose)
    _one_line_error(_run([str(d)]), dose.name, "RELATIVE")
