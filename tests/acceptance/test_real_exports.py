"""Real planning-system exports: what a physicist would conclude from each.

* ``../shared/real-exports/monaco-lung-imrt`` (Elekta Monaco 5.11): bare data sets without
  the PS3.10 header, RTPLAN + RTDOSE only;
* ``../shared/real-exports/raystation-srs-imrt`` (RaySearch RayStation 6.1): brain SRS,
  5 lesions PTV_1..PTV_5, ring ROIs PTVn_WALL (ORGAN) and a point ROI 'ptv4' (ISOCENTER);
* the Varian Eclipse example of dicompyler-core 0.5.6 (breast, 14 Gy in 7 fractions, one CT
  slice, DVHs of the planning system in the RTDOSE): ``make eclipse-example`` fetches it
  into ``.cache/real-exports``; ``RTQA_ECLIPSE_EXAMPLE`` may point at its folder instead.

Each part skips when its data is absent. Values that come from the files themselves are
read here independently with pydicom; the rest are what the plan's physics says (a prescription
point's dose is the dose the planning system wrote there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtqa.checks.pipeline import CheckOptions, run_check
from rtqa.errors import RtqaError
from rtqa.reading import load_export
from rtqa.results import FAIL, NOT_EVALUATED, PASS, WARN, Reason

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "real-exports"
MONACO = REAL / "monaco-lung-imrt"
RAYSTATION = REAL / "raystation-srs-imrt"


def _eclipse() -> Path:
    env = os.environ.get("RTQA_ECLIPSE_EXAMPLE")
    p = Path(env) if env else (REPO / ".cache" / "real-exports" / "dicompyler-core-0.5.6"
                               / "tests" / "testdata" / "example_data")
    if not (p / "rtdose.dcm").is_file():
        pytest.skip("Eclipse example absent (make eclipse-example, or RTQA_ECLIPSE_EXAMPLE)")
    return p


def _need(p: Path) -> Path:
    if not p.is_dir():
        pytest.skip(f"{p} is absent")
    return p


def _valueless_fails(report):
    return [c.id for c in report.checks if c.status == FAIL and c.value is None]


# --- Monaco: no Part 10 header --------------------------------------------------------

def test_monaco_bare_data_sets_are_read_with_a_warning_naming_each_file():
    folder = _need(MONACO)
    ex = load_export([folder])
    assert sorted(f.kind for f in ex.scanned.files) == ["RTDOSE", "RTPLAN"]
    for f in folder.iterdir():
        assert f.read_bytes()[128:132] != b"DICM"  # the fact under test
        w = [w for w in ex.warnings if str(f) in w]
        assert len(w) == 1 and "File Meta Information missing" in w[0]
        assert "implicit VR little endian" in w[0]
    # the plan and dose read as pydicom reads them with force=True
    rp = pydicom.dcmread(folder / "2018CompLung_IMRT2.dcm", force=True)
    assert ex.plans[0].fractions == int(rp.FractionGroupSequence[0].NumberOfFractionsPlanned)
    rd = pydicom.dcmread(folder / "2018CompLung_IMRT2_Dose.dcm", force=True)
    rd.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    want = rd.pixel_array.max() * float(rd.DoseGridScaling)
    assert float(ex.courses[0].grid.dose.max()) == pytest.approx(want, rel=1e-6)
    # the check itself stops for the right reason: no structure set, not "not DICOM"
    with pytest.raises(RtqaError, match="no RTSTRUCT"):
        run_check([str(folder)])


# --- RayStation: rings, isocenter point, five lesions ------------------------------------

@pytest.fixture(scope="module")
def raystation():
    return run_check([str(_need(RAYSTATION))])


def test_raystation_no_valueless_fail_and_no_guessed_prescription(raystation):
    assert not _valueless_fails(raystation)
    rx = [c for c in raystation.checks if c.id.startswith("integrity.prescription")]
    # no TargetPrescriptionDose; BeamDose at three isocentres: nothing to compare, said so
    assert [c.status for c in rx] == [WARN]
    assert rx[0].reason == Reason.PRESCRIPTION_UNLINKED and rx[0].structure is None


def test_raystation_every_lesion_bed10_reported(raystation):
    real = [les for les in raystation.lesions if les.name.upper().startswith("PTV_")]
    assert len(real) == 5
    for les in real:  # the issue: BED10 77-108 Gy on the five real lesions
        assert les.bed_gy is not None and 70.0 < les.bed_gy < 115.0, les
        assert les.alpha_beta == 10.0


# These three depend on ROI classification by RTROIInterpretedType (issue 14 item 2, the
# "rois" branch); they pass once it has landed.
def test_raystation_five_lesions_no_ring_lesions(raystation):
    names = [les.name for les in raystation.lesions]
    assert len(names) == 5, names
    assert not [n for n in names if "WALL" in n.upper()]
    assert not any("WALL" in t.upper() for les in raystation.lesions for t in les.targets)


def test_raystation_isocenter_point_is_not_a_target(raystation):
    assert not [c for c in raystation.checks if "ptv4" in c.id and c.category == "lesions"]
    assert not any("ptv4" in les.targets for les in raystation.lesions)


def test_raystation_lesion_count_passes(raystation):
    row = next(c for c in raystation.checks if c.id == "protocol.oligoprogression.lesions")
    assert row.status == PASS and row.value == 5


# --- Eclipse: unlinked prescription, one CT slice, TPS DVHs -------------------------------

@pytest.fixture(scope="module")
def eclipse():
    folder = _eclipse()
    return {caps: run_check([str(folder)], CheckOptions(end_caps=caps))
            for caps in ("half", "none")}


def test_eclipse_prescription_never_against_a_guessed_target(eclipse):
    report = eclipse["half"]
    rows = {c.id: c for c in report.checks if c.id.startswith("integrity.prescription")}
    assert not [c for c in rows.values() if c.status == FAIL]
    site = rows["integrity.prescription.B1.ref1"]  # SITE 'Breast', 14 Gy, no ROI
    assert site.reason == Reason.PRESCRIPTION_UNLINKED and site.structure is None
    assert site.status == PASS  # some target (the tumour bed, ~102%) receives it
    assert 0.95 * 14 <= site.value <= 1.15 * 14
    # the COORDINATES reference 'CALC POINT': the planning system's dose there
    rp = pydicom.dcmread(_eclipse() / "rtplan.dcm")
    want = float(rp.DoseReferenceSequence[1].TargetPrescriptionDose)
    point = rows["integrity.prescription.B1.ref2"]
    assert point.status == PASS and point.value == pytest.approx(want, rel=1e-3)


def test_eclipse_single_ct_slice_no_valueless_fail(eclipse):
    report = eclipse["half"]
    assert not _valueless_fails(report)
    row = next(c for c in report.checks if c.id == "integrity.ct.slice_spacing")
    assert row.status == NOT_EVALUATED and row.reason == Reason.INPUT_UNDEFINED


def _tps(report):
    out = {}
    for c in report.checks:
        if c.id.startswith("tps.") and c.metric != "TPS DVH":
            tps = float(c.limit.split()[1])
            out[(c.structure, c.metric)] = (c.value, tps, c)
    return out


def test_eclipse_tps_comparison_in_json_and_html(eclipse):
    from rtqa.report.html import render_html
    from rtqa.report.json_report import dumps
    report = eclipse["half"]
    rows = _tps(report)
    rd = pydicom.dcmread(_eclipse() / "rtdose.dcm")
    n_dvh = len(rd.DVHSequence)
    assert len(rows) == 5 * n_dvh  # every DVH of the planning system, five values each
    doc = json.loads(dumps(report))
    ids = {c["id"] for c in doc["checks"]}
    assert {c.id for *_, c in rows.values()} <= ids
    html = render_html(report)
    assert "Tumor Bed Block" in html and "TPS 62.883" in html
    # the planning system's volume is the first DVHData volume (cc), read independently
    for item in rd.DVHSequence:
        num = int(item.DVHReferencedROISequence[0].ReferencedROINumber)
        name = next(r.ROIName for r in pydicom.dcmread(_eclipse() / "rtss.dcm")
                    .StructureSetROISequence if int(r.ROINumber) == num)
        assert rows[(name, "Volume[cc]")][1] == pytest.approx(float(item.DVHData[1]),
                                                             abs=5e-4)
    # disagreements are WARN (never FAIL) and carry a likely cause
    for value, tps, c in rows.values():
        assert c.status in (PASS, WARN) and c.priority == "optimal"
        if c.status == WARN:
            assert c.reason == Reason.TPS_DISAGREEMENT and "likely cause" in c.note


def _agreement(report, min_cc=0.0):
    rows = _tps(report)
    vol = {s: t for (s, m), (_, t, _) in rows.items() if m == "Volume[cc]"}
    sel = [(v, t) for (s, m), (v, t, _) in rows.items() if vol[s] >= min_cc]
    return sum(abs(v - t) <= 0.02 * abs(t) for v, t in sel), len(sel)


def test_eclipse_agreement_per_end_cap_convention(eclipse):
    """Values within 2% of the planning system's (measured: half 22/30 for ROIs >= 10 cc
    and 25/45 for all; none 23/30 and 29/45). The misses for ROIs >= 10 cc under 'none'
    are D95 of organs at a few cGy, where 2% is under 0.002 Gy, and the BODY, whose TPS
    DVH covers 13944 cc of a body rtqa measures at 14733 cc."""
    half, none = eclipse["half"], eclipse["none"]
    ok_h, n_h = _agreement(half, 10.0)
    ok_n, n_n = _agreement(none, 10.0)
    assert n_h == n_n == 30
    assert ok_n >= ok_h >= 20
    assert _agreement(none)[0] > _agreement(half)[0]
    # volumes: 'none' reproduces Eclipse, 'half' is a slab per end plane larger
    vh, vn = _tps(half), _tps(none)
    for roi in ("Tumor Bed", "Nodes", "Breast", "Lt Lung", "Heart", "Tumor Bed Block"):
        v, t, _ = vn[(roi, "Volume[cc]")]
        assert abs(v - t) <= 0.02 * t, roi
    for roi in ("Tumor Bed", "Nodes", "Borders", "Scar"):  # few planes: half is larger
        assert vh[(roi, "Volume[cc]")][0] > vn[(roi, "Volume[cc]")][0]
    # the row explains a half-cap volume miss by the end caps
    _, _, row = vh[("Nodes", "Volume[cc]")]
    assert row.status == WARN and "end caps 'none'" in row.note
    # the conventions say which end caps were used
    assert "half-slice end caps" in half.conventions["dvh_geometry"]
    assert "no end caps" in none.conventions["dvh_geometry"]
