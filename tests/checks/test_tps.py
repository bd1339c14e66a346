"""Secondary check against the planning system's DVHs (RTDOSE DVHSequence).

A box of 40 x 30 x 20 mm (10 planes at 2 mm) in a dose rising linearly along z: with
half-slice end caps the dose is uniform over [D0 - G h/2, D0 + G h/2] (h = 20 mm), so the
cumulative DVH is V(D) = V0 (Dmax - D)/(Dmax - Dmin) between the two: mean D0,
D95 = Dmin + 0.05 (Dmax - Dmin), D2 = Dmax - 0.02 (Dmax - Dmin), max Dmax. The "planning
system's" DVHs written into the RTDOSE are that truth, or it with a known change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rtqa.checks.tps import compare, tps_values
from rtqa.dvh import compute_dvh
from rtqa.dvh.settings import Settings
from rtqa.reading import load_export
from rtqa.reading.tps_dvh import read_tps_dvhs
from rtqa.results import NOT_EVALUATED, PASS, WARN, Reason

try:
    import phantoms as ph
except ImportError:  # tests collected as a package
    from tests import phantoms as ph

C = (1.5, -2.25, 4.0)
SIZE = (40.0, 30.0, 20.0)
G, D0 = 0.5, 30.0
V0 = SIZE[0] * SIZE[1] * SIZE[2] / 1000.0  # cc, with half-slice end caps
DMIN, DMAX = D0 - G * SIZE[2] / 2, D0 + G * SIZE[2] / 2


def _truth_dvh(volume_cc: float, dose_scale: float = 1.0, bin_gy: float = 0.01):
    lo, hi = DMIN * dose_scale, DMAX * dose_scale
    n = int(np.ceil(hi / bin_gy)) + 1
    edges = np.arange(n) * bin_gy
    cum = volume_cc * np.clip((hi - edges) / (hi - lo), 0.0, 1.0)
    data = np.empty(2 * n)
    data[0::2] = bin_gy
    data[1::2] = cum
    return data


def _item(roi: int, data, units="GY", vunits="CM3", kind="CUMULATIVE"):
    it = Dataset()
    ref = Dataset()
    ref.ReferencedROINumber = roi
    ref.DVHROIContributionType = "INCLUDED"
    it.DVHReferencedROISequence = Sequence([ref])
    it.DVHType = kind
    it.DoseUnits = units
    it.DoseType = "PHYSICAL"
    it.DVHDoseScaling = "1"
    it.DVHVolumeUnits = vunits
    it.DVHNumberOfBins = len(data) // 2
    it.DVHData = [f"{v:.6g}" for v in data]
    it.DVHMeanDose = "100.0"  # Eclipse writes these in % of the prescription: never used
    it.DVHMaximumDose = "104.9"
    return it


def _export(tmp: Path, items, summation="PLAN", fractions=5):
    study = ph.Study()
    rois = [ph.Roi(1, "Box", ph.box_contours(C, SIZE, 2.0), "ORGAN"),
            ph.Roi(2, "Box2", ph.box_contours(C, SIZE, 2.0), "ORGAN")]
    ss = ph.write_struct(tmp / "RS.dcm", rois, study=study)
    plan = ph.write_plan(tmp / "RP.dcm", study=study, fractions=fractions,
                         structure_set_uid=ss)
    lo = [C[i] - 30 + p for i, p in enumerate((0.3, -0.7, 0.4))]
    scale = 1.0 / fractions if summation == "FRACTION" else 1.0
    ph.write_dose(tmp / "RD.dcm", lambda x, y, z: scale * (D0 + G * (z - C[2])), study=study,
                  plan_uid=plan, summation=summation, ipp=lo, cols=25, rows=25,
                  pixel_spacing=(2.5, 2.5), offsets=ph.regular_offsets(21, 3.0))
    ds = dcmread(tmp / "RD.dcm")
    ds.DVHSequence = Sequence(items)
    ds.save_as(tmp / "RD.dcm")
    ex = load_export([tmp])
    return ex.courses[0], ex.structure_sets[0]


def _rows(course, ss, caps="half"):
    rows = compare(course, ss, lambda s: compute_dvh(s, course.grid,
                                                     settings=Settings(end_caps=caps)), caps)
    return {(r.structure, r.metric): r for r in rows}


def test_tps_values_from_dvhdata_only(tmp_path):
    course, _ = _export(tmp_path, [_item(1, _truth_dvh(V0))])
    (t,) = read_tps_dvhs(course.sources[0])
    v = tps_values(t)
    assert v["volume"] == pytest.approx(V0, rel=1e-6)
    assert v["mean"] == pytest.approx(D0, abs=0.01)   # not DVHMeanDose (100.0)
    assert v["max"] == pytest.approx(DMAX, abs=0.011)  # not DVHMaximumDose (104.9)
    assert v["D95"] == pytest.approx(DMIN + 0.05 * (DMAX - DMIN), abs=0.01)
    assert v["D2"] == pytest.approx(DMAX - 0.02 * (DMAX - DMIN), abs=0.01)


def test_agreeing_tps_dvh_passes_every_value(tmp_path):
    rows = _rows(*_export(tmp_path, [_item(1, _truth_dvh(V0))]))
    assert len(rows) == 5
    for r in rows.values():
        assert r.status == PASS, r
        assert r.priority == "optimal" and r.category == "plan integrity"
        assert r.plans and r.fractions == (5,)


def test_volume_of_no_end_caps_is_explained_and_matched_by_the_option(tmp_path):
    # a TPS without end caps: the box spans 9 plane spacings (18 mm), not 20 mm
    truth_none = V0 * 9 / 10
    course, ss = _export(tmp_path, [_item(1, _truth_dvh(truth_none))])
    half = _rows(course, ss, "half")
    row = half[("Box", "Volume[cc]")]
    assert row.status == WARN and row.reason == Reason.TPS_DISAGREEMENT
    assert "end caps 'none'" in row.note and f"{truth_none:.2f} cc" in row.note
    assert row.value == pytest.approx(V0, rel=2e-3)
    none = _rows(course, ss, "none")
    assert none[("Box", "Volume[cc]")].status == PASS
    assert none[("Box", "Volume[cc]")].value == pytest.approx(truth_none, rel=2e-3)


def test_unusable_tps_dvhs_are_not_evaluated_and_fraction_doses_scaled(tmp_path):
    items = [_item(1, _truth_dvh(V0, 1 / 5)),          # per fraction, like the RTDOSE
             _item(2, _truth_dvh(V0), units="RELATIVE"),
             _item(7, _truth_dvh(V0))]                 # no such ROI
    rows = _rows(*_export(tmp_path, items, summation="FRACTION"))
    for m in ("Mean[Gy]", "D95%[Gy]", "D2%[Gy]", "Max[Gy]", "Volume[cc]"):
        assert rows[("Box", m)].status == PASS, rows[("Box", m)]
    assert "x 5" in rows[("Box", "Mean[Gy]")].note
    bad = rows[("Box2", "TPS DVH")]
    assert bad.status == NOT_EVALUATED and "RELATIVE" in bad.note
    assert bad.reason == Reason.INPUT_UNDEFINED
    assert rows[("ROI 7", "TPS DVH")].status == NOT_EVALUATED


def test_no_dvh_sequence_gives_no_rows(tmp_path):
    course, ss = _export(tmp_path, [])
    assert compare(course, ss, lambda s: compute_dvh(s, course.grid)) == []
