"""End-cap conventions (``Settings.end_caps``) against closed-form truth.

A box of height H contoured on n planes at spacing s (first plane s/2 above its base):
with half-slice end caps the structure spans the whole box (volume lx ly n s); with no
end caps it ends on its outermost planes (volume lx ly (n - 1) s), so in a dose rising
along z its maximum is the dose at the last plane, not at the top face.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtqa.dvh import compute_dvh
from rtqa.dvh.geometry import slabs_for
from rtqa.dvh.metrics import evaluate, parse_metric
from rtqa.dvh.settings import Settings

try:
    import phantoms as ph
except ImportError:  # tests collected as a package
    from tests import phantoms as ph

from rtqa.reading import load_export

C = (1.5, -2.25, 4.0)
SIZE = (40.0, 30.0, 20.0)  # 10 planes at 2 mm
SPACING = 2.0
G = 0.5  # Gy/mm along z
D0 = 30.0


def _box(tmp_path):
    study = ph.Study()
    rois = [ph.Roi(1, "Box", ph.box_contours(C, SIZE, SPACING), "ORGAN"),
            ph.Roi(2, "Flat", [("CLOSED_PLANAR", ph.rectangle(C[0], C[1], 10.0, 10.0, C[2]))],
                   "ORGAN")]
    ph.write_struct(tmp_path / "RS.dcm", rois, study=study)
    lo = [C[i] - 30 + p for i, p in enumerate((0.3, -0.7, 0.4))]
    ph.write_dose(tmp_path / "RD.dcm", lambda x, y, z: D0 + G * (z - C[2]), study=study,
                  ipp=lo, cols=25, rows=25, pixel_spacing=(2.5, 2.5),
                  offsets=ph.regular_offsets(21, 3.0))
    ex = load_export([tmp_path])
    return {s.name: s for s in ex.structure_sets[0].structures}, ex.courses[0].grid


def test_slabs_for_end_caps():
    z = np.array([0.0, 2.0, 4.0, 20.0, 22.0, 40.0])  # runs [0..4], [20, 22], [40]
    half = slabs_for(z, 0.0, end_caps="half")
    none = slabs_for(z, 0.0, end_caps="none")
    assert half.thickness.sum() == pytest.approx(6 * 2.0)
    # none: each run of n planes spans (n - 1) spacings; the lone plane keeps one spacing
    assert none.thickness.sum() == pytest.approx(2 * 2.0 + 1 * 2.0 + 2.0)
    assert none.lo[0] == 0.0 and none.hi[2] == 4.0 and none.lo[3] == 20.0
    assert (none.lo[5], none.hi[5]) == (39.0, 41.0)
    with pytest.raises(ValueError):
        slabs_for(z, 0.0, end_caps="full")


@pytest.mark.parametrize("caps", ["half", "none"])
def test_box_end_caps(tmp_path, caps):
    s, grid = _box(tmp_path)
    d = compute_dvh(s["Box"], grid, settings=Settings(end_caps=caps))
    n = round(SIZE[2] / SPACING)
    height = n * SPACING if caps == "half" else (n - 1) * SPACING
    assert d.total_volume_cc == pytest.approx(SIZE[0] * SIZE[1] * height / 1000, rel=2e-3)
    # z uniform over [-height/2, height/2] around the centre: mean is D0, max D0 + G h/2
    assert d.mean_gy == pytest.approx(D0, abs=0.02)
    assert d.max_gy == pytest.approx(D0 + G * height / 2, abs=0.02)
    d95 = evaluate(parse_metric("D95%[Gy]"), d)
    assert d95 == pytest.approx(D0 + G * (height / 2 - 0.95 * height), abs=0.03)
    # a structure on one plane keeps a slab (of the dose frame spacing) under both
    flat = compute_dvh(s["Flat"], grid, settings=Settings(end_caps=caps))
    assert flat.total_volume_cc == pytest.approx(10 * 10 * 3.0 / 1000, rel=1e-3)
