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


# --- prescriptions of %-of-prescription metrics (issue 15, item 7) --------------------

def _rx_by_roi(plan_dir: Path) -> dict[str, float]:
    """ROI name -> TargetPrescriptionDose read from the files with pydicom (not rtqa)."""
    rp = pydicom.dcmread(next(p for p in sorted(plan_dir.iterdir()) if p.name.startswith("RP.")))
    rs = pydicom.dcmread(_files(plan_dir, RT_STRUCT)[0])
    names = {int(r.ROINumber): str(r.ROIName) for r in rs.StructureSetROISequence}
    return {names[int(ref.ReferencedROINumber)]: float(ref.TargetPrescriptionDose)
            for ref in rp.DoseReferenceSequence if ref.DoseReferenceType == "TARGET"}


def test_v95_uses_each_targets_own_prescription_and_says_which(plan_dir):
    rx = _rx_by_roi(plan_dir)
    assert rx == {"PTV_Liver": 50.0, "PTV_Lung": 50.0, "PTV_T10": 40.0}
    # the same volumes asked with the dose in Gy: 95 % of 50 Gy and of 40 Gy
    result = _run([str(plan_dir), "-m", "V95%[%]", "-m", "V47.5Gy[%]", "-m", "V38Gy[%]",
                   "--json"])
    assert result.exit_code == 0, result.output
    rows = {s["name"]: s for s in json.loads(result.stdout)["structures"]}
    for name, own, frm in (("PTV_T10", "V38Gy[%]", "own"), ("GTV_T10", "V38Gy[%]", "lesion"),
                           ("PTV_Liver", "V47.5Gy[%]", "own"),
                           ("GTV_Liver", "V47.5Gy[%]", "lesion"),
                           ("CTV_Liver", "V47.5Gy[%]", "lesion"),
                           ("Liver", "V47.5Gy[%]", "plan"), ("SpinalCord", "V47.5Gy[%]", "plan")):
        m = rows[name]["metrics"]
        assert m["V95%[%]"] == pytest.approx(m[own], abs=1e-9), name
        assert rows[name]["prescription"] == {
            "dose_gy": 40.0 if "T10" in name else 50.0, "from": frm, "plan": "SBRT_5fx"}, name
    # PTV_T10 on its own 40 Gy is covered; on the plan's 50 Gy it would not be
    assert rows["PTV_T10"]["metrics"]["V95%[%]"] > 95.0
    assert rows["PTV_T10"]["metrics"]["V47.5Gy[%]"] < 1.0


def test_prescription_source_in_the_table(plan_dir):
    result = _run([str(plan_dir), "-m", "V95%[%]"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["Structure", "Volume[cc]", "Rx[Gy]"]
    t10 = next(line for line in lines if line.startswith("PTV_T10"))
    assert "40 (own)" in t10
    assert any(line.startswith("Rx (plan): ") for line in lines)
    # without a relative metric the output is unchanged: no Rx column, no prescription
    plain = _run([str(plan_dir), "--json"])
    assert all("prescription" not in s for s in json.loads(plain.stdout)["structures"])


def test_prescription_option_applies_to_every_structure(plan_dir):
    result = _run([str(plan_dir), "-m", "V95%[%]", "-m", "V19Gy[%]", "--prescription", "20",
                   "--json"])
    assert result.exit_code == 0, result.output
    for s in json.loads(result.stdout)["structures"]:
        assert s["prescription"]["from"] == "option" and s["prescription"]["dose_gy"] == 20.0
        assert s["metrics"]["V95%[%]"] == pytest.approx(s["metrics"]["V19Gy[%]"], abs=1e-9)


def test_lesion_with_two_prescriptions_has_none():
    """A GTV whose lesion holds targets prescribed differently gets no prescription."""
    from types import SimpleNamespace as NS

    from rtqa.cli.dvh import prescription_for
    from rtqa.reading.plan import TargetPrescription
    plan = NS(prescriptions=(TargetPrescription(50.0, 2, ""), TargetPrescription(40.0, 3, "")),
              prescription_gy=50.0)

    def pairing(roi):
        return NS(course=NS(plan=plan), structure=NS(roi_number=roi))
    groups = {1: (1, 2, 3), 2: (1, 2, 3), 3: (1, 2, 3)}
    assert prescription_for(pairing(2), None, groups)[:2] == (50.0, "own")
    rx, frm, why = prescription_for(pairing(1), None, groups)
    assert rx is None and frm is None and "40 Gy, 50 Gy" in why
    assert prescription_for(pairing(9), None, groups)[:2] == (50.0, "plan")
    assert prescription_for(pairing(1), 12.5, groups)[:2] == (12.5, "option")
    no_plan = NS(course=NS(plan=None), structure=NS(roi_number=1))
    assert prescription_for(no_plan, None, groups)[:2] == (None, None)


# --- CSV export of the curves (issue 15, item 3) ---------------------------------------

def test_csv_rows_are_the_cumulative_dvh(plan_dir, tmp_path):
    out = tmp_path / "dvh.csv"
    result = _run([str(plan_dir), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[:2] == ["Structure", "Volume[cc]"]  # table too
    lines = out.read_text().splitlines()
    assert lines[0] == "structure,dose_gy,volume_cc,volume_pct"
    by: dict[str, list[tuple[float, float, float]]] = {}
    for line in lines[1:]:
        name, d, cc, pct = line.rsplit(",", 3)
        by.setdefault(name, []).append((float(d), float(cc), float(pct)))
    doc = json.loads(_run([str(plan_dir), "-m", "V20Gy[cc]", "-m", "V20Gy[%]",
                           "--json"]).stdout)
    assert list(by) == [s["name"] for s in doc["structures"]]
    for s in doc["structures"]:
        rows = by[s["name"]]
        doses = [r[0] for r in rows]
        assert doses[0] == 0.0 and all(b - a == pytest.approx(0.1) for a, b in
                                       zip(doses, doses[1:-1]))
        assert doses[-1] >= s["metrics"]["Max[Gy]"] - 1e-6
        cc = [r[1] for r in rows]
        assert all(b <= a + 1e-9 for a, b in zip(cc, cc[1:]))          # cumulative
        assert rows[0][2] == pytest.approx(100.0)
        at20 = next(r for r in rows if abs(r[0] - 20.0) < 1e-9) if doses[-1] >= 20 else None
        if at20:
            assert at20[1] == pytest.approx(s["metrics"]["V20Gy[cc]"], abs=1e-3)
            assert at20[2] == pytest.approx(s["metrics"]["V20Gy[%]"], abs=1e-3)


def test_csv_to_stdout_and_step(plan_dir):
    result = _run([str(plan_dir), "--csv", "-", "--csv-step", "1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "structure,dose_gy,volume_cc,volume_pct"
    cord = [line for line in lines if line.startswith("SpinalCord,")]
    assert [line.split(",")[1] for line in cord[:3]] == ["0.00", "1.00", "2.00"]


def test_csv_refusals(plan_dir, tmp_path):
    both = _run([str(plan_dir), "--csv", "-", "--json"])
    assert both.exit_code == 2 and "choose one" in both.stderr
    missing = _run([str(plan_dir), "--csv", str(tmp_path / "no" / "dvh.csv")])
    _one_line_error(missing, "dvh.csv", "does not exist")
    rs = _files(plan_dir, RT_STRUCT)[0]
    over = _run([str(plan_dir), "--csv", str(rs)])
    assert over.exit_code == 2 and rs.exists() and rs.stat().st_size > 1000


def test_csv_field_quoting():
    from rtqa.cli.dvh import _csv_field
    assert _csv_field("PTV_T10") == "PTV_T10"
    assert _csv_field('Lung, "left"') == '"Lung, ""left"""'
    assert _csv_field("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _csv_field("-GTV") == "'-GTV"


def test_csv_dose_column_is_the_dose_of_the_row(plan_dir):
    """--csv-step 0.015: the rows are at 0, 0.015, 0.03, 0.045 Gy and the dose column says
    so (it printed 0.01 and 0.04, two decimals, for the volumes at 0.015 and 0.045 Gy)."""
    result = _run([str(plan_dir), "--csv", "-", "--csv-step", "0.015"])
    assert result.exit_code == 0, result.output
    cord = [line for line in result.stdout.splitlines() if line.startswith("SpinalCord,")]
    assert [line.split(",")[1] for line in cord[:4]] == ["0.000", "0.015", "0.030", "0.045"]
    doses = [float(line.split(",")[1]) for line in cord[:-1]]
    assert all(b - a == pytest.approx(0.015) for a, b in zip(doses, doses[1:]))


def test_an_empty_csv_path_is_refused_not_ignored(pass_dir):
    from click.testing import CliRunner

    from rtqa.cli import main

    res = CliRunner().invoke(main, ["dvh", str(pass_dir), "--csv", ""])
    assert res.exit_code == 2
    assert "--csv needs a file path" in res.output
