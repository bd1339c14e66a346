"""Named synthetic cases: ``hcc_pass``, ``hcc_fail`` and ``body_bench``.

One adult torso (body 340 x 240 mm) with oligoprogressive hepatocellular carcinoma: an
HCC in the right liver lobe, a metastasis in the left upper lung and one in the T10
vertebral body. Geometry in mm, head-first supine (+x patient left, +y posterior,
+z superior); the diaphragm dome is near z = 0. Solids (centre; semi-axes, mm):

==============  ==================================================  =========
ROI             Solid                                               Volume
==============  ==================================================  =========
External        elliptic cylinder (0, 0); 170 x 120; whole CT       -
Lung_R, Lung_L  ellipsoids (-/+92, 12, 60); 62 x 80 x 68            1413 cc
Liver           ellipsoid (-58, -26, -56); 92 x 64 x 58             1430 cc
Heart           ellipsoid (5, -50, 36); 48 x 40 x 48                386 cc
Esophagus       elliptic cylinder (16, 12); 8 x 6; z -18 to CT top  22 cc
Stomach         ellipsoid (90, -22, -50); 38 x 36 x 42              241 cc
Duodenum        ellipsoid (10, 12, -102); 36 x 14 x 14              30 cc
Kidney_R        ellipsoid (-74, 68, -67); 30 x 24 x 46              139 cc
Kidney_L        ellipsoid (74, 68, -62); 30 x 24 x 46               139 cc
SpinalCord      elliptic cylinder (0, 76); 5 x 4; whole CT          16 cc
GTV_Liver       sphere (-78, -40, -48) r 15; CTV_Liver +5; PTV_Liver +4 (r 24)
GTV_Lung        sphere (92, 25, 80) r 10; PTV_Lung +4 (r 14)
GTV_T10         sphere (0, 45, 10) r 11; PTV_T10 +3 (r 14), 13 mm in front of the cord
zRing_PTV       CONTROL: shell 3-18 mm around PTV_Liver (hole on every plane it cuts)
opt_avoid       AVOIDANCE: cylinder (0, 76); 11 x 10; z -30 to 50 (around the cord)
==============  ==================================================  =========

CT: HU air -1000, soft tissue 40, lung -800, bone 400 (vertebral body and posterior arch
are CT-only bone). Organs overlap each other by < 2 cc at most (ellipsoids cannot nest).
``plans_sample/README.md`` summarises the plans and the expected verdicts.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rtqa.sample.phantom import (
    CaseSpec,
    CTSpec,
    DoseCloud,
    DoseGridSpec,
    LesionSpec,
    PlanSpec,
    StructureSpec,
    TargetDose,
    Tissue,
    all_structures,
)
from rtqa.sample.shapes import Ellipsoid, EllipticCylinder, Ring, cylinder, sphere

__all__ = ["hcc_pass", "hcc_fail", "body_bench", "CASES", "anatomy", "get_case"]

# HU classes of the planning CT (piecewise constant)
HU_AIR = -1000.0
HU_SOFT = 40.0
HU_LUNG = -800.0
HU_BONE = 400.0

BIG = 10_000.0  # z extent of solids that run through the whole scan (mm)

# Lesion centres (mm)
LIVER_LESION = (-78.0, -40.0, -48.0)
LUNG_LESION = (92.0, 25.0, 80.0)
T10_LESION = (0.0, 45.0, 10.0)
CORD_XY = (0.0, 76.0)


def anatomy() -> tuple[tuple[StructureSpec, ...], tuple[LesionSpec, ...], tuple[Tissue, ...]]:
    """Organs (with CT numbers), lesions and CT-only bone of the HCC patient."""
    organs = (
        StructureSpec("External", EllipticCylinder((0.0, 0.0), (170.0, 120.0), -BIG, BIG),
                      "EXTERNAL", hu=HU_SOFT, color=(0, 255, 0), contour_spacing_mm=2.5),
        StructureSpec("Lung_R", Ellipsoid((-92.0, 12.0, 60.0), (62.0, 80.0, 68.0)), hu=HU_LUNG,
                      color=(0, 128, 255)),
        StructureSpec("Lung_L", Ellipsoid((92.0, 12.0, 60.0), (62.0, 80.0, 68.0)), hu=HU_LUNG,
                      color=(0, 200, 255)),
        StructureSpec("Liver", Ellipsoid((-58.0, -26.0, -56.0), (92.0, 64.0, 58.0)),
                      color=(160, 82, 45)),
        StructureSpec("Heart", Ellipsoid((5.0, -50.0, 36.0), (48.0, 40.0, 48.0)),
                      color=(255, 0, 0)),
        StructureSpec("Esophagus", EllipticCylinder((16.0, 12.0), (8.0, 6.0), -18.0, BIG),
                      color=(255, 128, 0)),
        StructureSpec("Stomach", Ellipsoid((90.0, -22.0, -50.0), (38.0, 36.0, 42.0)),
                      color=(255, 200, 100)),
        StructureSpec("Duodenum", Ellipsoid((10.0, 12.0, -102.0), (36.0, 14.0, 14.0)),
                      color=(200, 150, 50)),
        StructureSpec("Kidney_R", Ellipsoid((-74.0, 68.0, -67.0), (30.0, 24.0, 46.0)),
                      color=(128, 0, 128)),
        StructureSpec("Kidney_L", Ellipsoid((74.0, 68.0, -62.0), (30.0, 24.0, 46.0)),
                      color=(160, 32, 240)),
        StructureSpec("SpinalCord", EllipticCylinder(CORD_XY, (5.0, 4.0), -BIG, BIG),
                      color=(255, 255, 0)),
    )
    lesions = (
        LesionSpec("Liver", sphere(LIVER_LESION, 15.0), ptv_margin_mm=4.0, ctv_margin_mm=5.0),
        LesionSpec("Lung", sphere(LUNG_LESION, 10.0), ptv_margin_mm=4.0),
        LesionSpec("T10", sphere(T10_LESION, 11.0), ptv_margin_mm=3.0),
    )
    bone = (
        Tissue("vertebral body", EllipticCylinder((0.0, 44.0), (20.0, 17.0), -BIG, BIG), HU_BONE),
        Tissue("posterior arch", Ring(EllipticCylinder((0.0, 78.0), (17.0, 16.0), -BIG, BIG),
                                      EllipticCylinder(CORD_XY, (8.0, 7.0), -BIG, BIG)), HU_BONE),
    )
    return organs, lesions, bone


def _helpers() -> tuple[StructureSpec, ...]:
    """Optimisation helpers a checker must ignore (not organs, not targets)."""
    ptv_r = 15.0 + 5.0 + 4.0
    return (
        StructureSpec("zRing_PTV", Ring(sphere(LIVER_LESION, ptv_r + 15.0), sphere(LIVER_LESION, ptv_r + 3.0)),
                      "CONTROL", color=(200, 200, 200)),
        StructureSpec("opt_avoid", EllipticCylinder(CORD_XY, (11.0, 10.0), T10_LESION[2] - 40.0, T10_LESION[2] + 40.0),
                      "AVOIDANCE", color=(150, 150, 150)),
    )


# Planning CT: 3 mm slices, 1 x 1 mm pixels, from below the kidneys to above the lungs.
_CT_Z = (-117.0, 129.0)


def _ct(tissues) -> CTSpec:
    return CTSpec(z_mm=_CT_Z, slice_spacing_mm=3.0, pixel_spacing_mm=(1.0, 1.0), rows=256,
                  columns=352, tissues=tissues)


def _organ_grid(structures, ct: CTSpec, spacing=(3.0, 3.0, 3.0), **kw) -> DoseGridSpec:
    """A dose grid covering every non-EXTERNAL structure (x, y: + 0.5 mm) and the whole
    CT (z: + half a slice, so the end slabs of the long organs are inside too)."""
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for s in structures:
        if s.interpreted_type == "EXTERNAL":
            continue
        a, b = s.shape.bounds()
        lo, hi = np.minimum(lo, a), np.maximum(hi, b)
    zs = ct.zs
    lo[2] = max(lo[2], zs[0])
    hi[2] = min(hi[2], zs[-1])
    # 0.5 mm in-plane; 1.5 mm (half a slice) in z so the end slabs are covered too
    return DoseGridSpec.covering(lo, hi, spacing, pad_mm=(0.5, 0.5, 1.5), **kw)


_PASS_NOTES = (
    "One plan (SBRT_5fx), 5 fractions: PTV_Liver 50 Gy, PTV_Lung 50 Gy, PTV_T10 40 Gy.",
    "BED10 of the prescriptions: 100 / 100 / 72 Gy (>= 60 Gy).",
    "Expected verdict: PASS (exit 0): every mandatory check passes.",
)

_FAIL_NOTES = (
    "Same anatomy; one plan (SBRT_5fx_bad), 5 fractions.",
    "PTV_T10 prescribed 30 Gy / 5 fx: BED10 48 Gy < 60 Gy -> FAIL (lesion under-dosed).",
    "Liver dose spread (50 % isodose 38 mm outside PTV_Liver): ~450 cc of normal liver "
    "below 15 Gy (< 700 cc) -> FAIL; the normal-liver mean (~29 Gy) and its other dose "
    "limits at 5 fractions fail for the same reason.",
    "30 Gy hot spot on the spinal cord at the T10 level (cord max ~35 Gy): D0.035cc, "
    "D0.35cc and D1.2cc over their 5-fraction limits -> FAIL.",
    "Everything else as in hcc_pass (liver and lung PTVs covered, other OARs within limits).",
    "Expected verdict: FAIL (exit 1) for these three problems; the terminal report lists "
    "every failing row first.",
)


def _base(name: str, description: str, notes, plans_fn) -> CaseSpec:
    """The HCC patient (CT, 20 ROIs, vertices 2 mm apart at 0.1 mm precision) with the
    plans ``plans_fn(grid)`` on a 3 mm dose grid covering every organ."""
    organs, lesions, bone = anatomy()
    structures = organs + _helpers()
    ct = _ct(bone)
    probe = CaseSpec(name, structures, ct, lesions)
    grid = _organ_grid(all_structures(probe), ct)
    return CaseSpec(
        name=name,
        structures=structures,
        ct=ct,
        lesions=lesions,
        plans=plans_fn(grid),
        patient_id="RTQA-HCC-001",
        patient_name="RTQA^HCC Oligoprogression",
        description=description,
        contour_spacing_mm=2.0,
        min_contour_points=16,
        coordinate_decimals=1,
        notes=tuple(notes),
    )


def hcc_pass() -> CaseSpec:
    """Oligoprogressive HCC, one 5-fraction SBRT plan that meets every trial check.

    PTV_Liver 50 Gy, PTV_Lung 50 Gy, PTV_T10 40 Gy in 5 fractions (BED10 100 / 100 / 72 Gy);
    normal liver ~1415 cc with ~1200 cc below 15 Gy (mean ~8.6 Gy); all OARs well inside
    TG-101 5-fraction limits; CT 3 mm slices x 1 x 1 mm pixels; 3 mm dose grid covering
    every organ (not the whole External).
    """

    def plans(grid: DoseGridSpec) -> tuple[PlanSpec, ...]:
        return (PlanSpec(
            label="SBRT_5fx",
            fractions=5,
            targets=(
                TargetDose("Liver", 50.0, falloff_mm=9.0, falloff_power=2.0),
                TargetDose("Lung", 50.0, falloff_mm=8.0, falloff_power=2.0),
                TargetDose("T10", 40.0, falloff_mm=6.0, falloff_power=2.0),
            ),
            grid=grid,
            plan_name="HCC oligoprogression SBRT",
            description="50 Gy/5 fx PTV_Liver, PTV_Lung; 40 Gy/5 fx PTV_T10",
        ),)

    return _base("hcc_pass", "Oligoprogressive HCC: liver, lung and T10 lesions, SBRT 5 fx (passes)",
                 _PASS_NOTES, plans)


def hcc_fail() -> CaseSpec:
    """The hcc_pass patient with a plan that fails three checks for clear reasons:
    PTV_T10 30 Gy / 5 fx (BED10 48 < 60), liver dose spread (~450 cc < 700 cc of normal
    liver below 15 Gy; mean normal-liver dose ~29 Gy) and a 30 Gy hot spot on the spinal
    cord (cord max ~35 Gy: D0.03cc > 30 Gy, D0.35cc > 23 Gy)."""
    cord_hot = cylinder(CORD_XY, 5.0, T10_LESION[2] - 6.0, T10_LESION[2] + 6.0)

    def plans(grid: DoseGridSpec) -> tuple[PlanSpec, ...]:
        return (PlanSpec(
            label="SBRT_5fx_bad",
            fractions=5,
            targets=(
                TargetDose("Liver", 50.0, falloff_mm=38.0, falloff_power=6.0),
                TargetDose("Lung", 50.0, falloff_mm=8.0, falloff_power=2.0),
                TargetDose("T10", 30.0, falloff_mm=6.0, falloff_power=2.0),
            ),
            clouds=(DoseCloud(cord_hot, 30.0, falloff_mm=3.0, falloff_power=3.0,
                              label="cord hot spot"),),
            grid=grid,
            plan_name="HCC oligoprogression SBRT (bad)",
            description="50 Gy/5 fx PTV_Liver, PTV_Lung; 30 Gy/5 fx PTV_T10",
        ),)

    return _base("hcc_fail", "Oligoprogressive HCC, same anatomy, plan failing 3 checks",
                 _FAIL_NOTES, plans)


def body_bench(with_ct: bool = False) -> CaseSpec:
    """Speed-benchmark case (not committed): the hcc_pass patient and plan, 20 ROIs with
    contours every 2 mm (vertices 1 mm apart, External 2 mm: a few hundred per contour,
    at least 64; coordinates to 0.01 mm) and a 2.5 mm dose grid over 400 x 260 x 340 mm.
    CT off by default (``with_ct=True`` writes 171 slices)."""
    base = hcc_pass()
    ct = replace(base.ct, z_mm=(-170.0, 170.0), slice_spacing_mm=2.0, write=with_ct)
    grid = replace(base.plans[0].grid, x_mm=(-200.0, 200.0), y_mm=(-130.0, 130.0),
                   z_mm=(-170.0, 170.0), spacing_mm=(2.5, 2.5, 2.5))
    plan0 = replace(base.plans[0], grid=grid)
    structures = tuple(replace(s, contour_spacing_mm=2.0) if s.interpreted_type == "EXTERNAL" else s
                       for s in base.structures)
    return replace(base, name="body_bench", ct=ct, plans=(plan0,), structures=structures,
                   contour_spacing_mm=1.0, min_contour_points=64, coordinate_decimals=2,
                   description="Body-sized benchmark: 20 ROIs, 2 mm planes, 2.5 mm dose grid",
                   notes=("Benchmark only: same patient and plan as hcc_pass, denser sampling.",))


CASES = {"hcc_pass": hcc_pass, "hcc_fail": hcc_fail, "body_bench": body_bench}


def get_case(name: str) -> CaseSpec:
    """A named case (``hcc_pass``, ``hcc_fail``, ``body_bench``)."""
    try:
        return CASES[name]()
    except KeyError:
        raise KeyError(f"unknown case {name!r}; choose from {sorted(CASES)}") from None
