"""The reports of the failing sample (hcc_fail) as a reviewer reads them: identification
from the DICOM files (two patient identifiers, plan label and name, each target's
prescription, approval with reviewer and date), reasons first in the terminal, the CT
series as one provenance line. Values are those the sample writer puts in the files
(``rtqa/sample``)."""

from __future__ import annotations

import hashlib
import json

import pytest

from rtqa.report.html import render_html
from rtqa.report.json_report import dumps
from rtqa.report.text import render_text
from rtqa.results import FAIL, NOT_EVALUATED


@pytest.fixture(scope="module")
def report(fail_dir):
    from rtqa.api import check
    return check([str(fail_dir)])


def test_two_patient_identifiers_and_plan_identification(report, fail_dir):
    import pydicom
    rp = pydicom.dcmread(next(fail_dir.glob("RP.*.dcm")))
    assert report.patient_id == rp.PatientID and report.patient_name == str(rp.PatientName)
    assert report.patient_name  # the sample names its patient
    (plan,) = report.plans
    assert plan.label == rp.RTPlanLabel and plan.name == rp.RTPlanName
    assert plan.reviewer == str(rp.ReviewerName)
    d, t = rp.ReviewDate, rp.ReviewTime
    assert plan.review_date == f"{d[:4]}-{d[4:6]}-{d[6:8]}T{t[:2]}:{t[2:4]}:{t[4:6]}"
    # each target's prescription, linked to its ROI by number
    rs = pydicom.dcmread(next(fail_dir.glob("RS.*.dcm")))
    names = {int(r.ROINumber): r.ROIName for r in rs.StructureSetROISequence}
    expected = [(names[int(x.ReferencedROINumber)], float(x.TargetPrescriptionDose))
                for x in rp.DoseReferenceSequence if "TargetPrescriptionDose" in x]
    assert [(t.roi, t.dose_gy) for t in plan.targets] == expected
    assert len(expected) == 3


def test_identification_in_every_report(report):
    (plan,) = report.plans
    family = report.patient_name.split("^")[0]
    text = render_text(report, color=False)
    head = "\n".join(text.splitlines()[:10])
    assert family in head and report.patient_id in head and plan.name in head
    for t in plan.targets:
        assert f"{t.roi} {t.dose_gy:g} Gy" in head
    assert f"APPROVED by " in head and plan.review_date in head
    html = render_html(report)
    assert family in html and plan.name in html and plan.review_date in html
    doc = json.loads(dumps(report))
    assert doc["patient_name"] == report.patient_name
    assert doc["plans"][0]["targets"][0] == {"roi": plan.targets[0].roi,
                                             "dose_gy": plan.targets[0].dose_gy,
                                             "description": plan.targets[0].description}


def test_reasons_first_on_the_sample(report):
    lines = render_text(report, color=False).splitlines()
    first_fail = next(i for i, x in enumerate(lines) if x.startswith("FAIL ")) + 1
    assert first_fail <= 15  # was line 54 before the reasons came first
    details = lines.index("DETAILS")
    n = sum(c.status in (FAIL, NOT_EVALUATED) for c in report.checks)
    assert sum(x.startswith(("FAIL ", "NOT EVALUATED ")) for x in lines[:details]) == n
    # the 16 "0 cc outside the dose grid" rows fold into one line
    assert sum("volume outside dose grid" in x for x in lines) == 1
    # every EQD2 row is labelled with its α/β
    for c in report.checks:
        if str(c.dose_view) == "EQD2":
            assert any(f"EQD2(α/β {c.alpha_beta:g}) " in x and c.structure[:8] in x
                       for x in lines), c.id


def test_ct_series_is_one_provenance_line(report):
    html = render_html(report)
    ct = sorted((f for f in report.inputs if f.kind == "CT"), key=lambda f: f.path)
    assert len(ct) > 10
    series = hashlib.sha256("".join(f.sha256 + "\n" for f in ct).encode()).hexdigest()
    assert series in html and f"CT ({len(ct)} files)" in html
    assert sum(f.sha256 in html for f in ct) == 0
    for f in report.inputs:
        if f.kind != "CT":
            assert f.sha256 in html


def test_every_eqd2_row_is_on_a_curve_of_its_own_dose_view(report):
    """Each EQD2 row with a value is marked on the EQD2 curve (at its α/β) of its
    structure, each physical row on the physical curve; marks sit on their curve."""
    import numpy as np
    curves = {c.name: c for c in report.curves}
    eqd2 = [c for c in report.checks if str(c.dose_view) == "EQD2" and c.value is not None]
    assert len(eqd2) >= 10
    for c in eqd2 + [c for c in report.checks if c.category == "organs at risk"
                     and str(c.dose_view) == "physical" and c.value is not None]:
        name = (c.structure if str(c.dose_view) == "physical"
                else f"{c.structure} — EQD2(α/β {c.alpha_beta:g})")
        assert name in curves, (c.id, sorted(curves))
        labels = [m[2] for m in curves[name].marks]
        assert f"{c.metric} {c.limit}" in labels, c.id
    # the EQD2 mean of Liver - GTV (a FAIL) sits on its EQD2 curve, not the physical one
    liver = curves["Liver - GTV — EQD2(α/β 3)"]
    (mark,) = [m for m in liver.marks if m[2].startswith("Mean")]
    assert mark[3] == FAIL and mark[0] == pytest.approx(66.22, abs=0.01)
    vol = np.interp(mark[0], liver.dose_gy, liver.volume_pct)
    assert mark[1] == pytest.approx(vol, abs=1.0)
    html = render_html(report)
    assert "Cumulative DVH of Liver - GTV — EQD2(α/β 3)" in html


def test_limits_are_drawn_as_objectives_and_inside_the_axes(report):
    """Each mark has its limit on the same axes: the dose limit at the achieved volume for
    a D row (D0.035cc < 50 Gy -> 50 Gy), the volume limit at the dose of a V row."""
    curves = {c.name: c for c in report.curves}
    cord = curves["SpinalCord — EQD2(α/β 2)"]
    ((dose, vol, label, status),), (goal,) = cord.marks, cord.objectives
    assert label == "D0.035cc[Gy] < 50" and status == FAIL
    assert goal == (50.0, pytest.approx(vol))
    lung = curves["Lung_L + Lung_R - GTV — EQD2(α/β 3)"]
    v20 = lung.marks.index(next(m for m in lung.marks if m[2].startswith("V20Gy")))
    assert lung.objectives[v20] == (20.0, 30.0)
    from rtqa.report.html import dvh_svg
    svg = str(dvh_svg(curves["Heart"], 0))
    assert ">35<" in svg or ">40<" in svg  # the x axis reaches the 38 Gy limit (max 11 Gy)
