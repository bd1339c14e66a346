"""Adversarial case builders for the independent audit of issue 12 (clinical rules).

Every builder starts from :func:`rtqa.sample.hcc_pass` and changes what the audit finding
is about. The expected values are NOT taken from rtqa: they are either analytic (the
generator's solids and dose profiles, sampled with :func:`rtqa.sample.sample_dose`) or
computed in the tests from published limits with the LQ formulas written out there.

All cases share one case name (:data:`NAME`), so the CT series (whose UIDs derive from the
name) is written once per session and hard-linked into every export by :func:`write`
(3 s saved per case). The RTSTRUCT, RTPLAN and RTDOSE are written per case.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from rtqa.sample import (
    Box,
    CaseSpec,
    DoseCloud,
    EllipticCylinder,
    LesionSpec,
    PlanSpec,
    Ring,
    StructureSpec,
    TargetDose,
    all_structures,
    hcc_pass,
    sphere,
    write_case,
)
from rtqa.sample.cases import LIVER_LESION, _organ_grid

NAME = "audit12"

# --- writing -------------------------------------------------------------------------------

_CT_DIRS: dict[str, Path] = {}


def _ct_dir(cache_root: Path) -> Path:
    key = str(cache_root)
    if key not in _CT_DIRS:
        d = cache_root / "ct_cache"
        if not d.is_dir():
            base = replace(hcc_pass(), name=NAME)
            tmp = cache_root / "ct_cache.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            write_case(base, tmp)
            for p in tmp.iterdir():
                if not p.name.startswith("CT."):
                    p.unlink()
            tmp.rename(d)
        _CT_DIRS[key] = d
    return _CT_DIRS[key]


def write(case: CaseSpec, out: Path, cache_root: Path) -> Path:
    """Write ``case`` to ``out`` under the shared name, with the shared planning CT."""
    case = replace(case, name=NAME, ct=replace(case.ct, write=False))
    out.mkdir(parents=True, exist_ok=True)
    write_case(case, out)
    for p in _ct_dir(cache_root).iterdir():
        os.link(p, out / p.name)
    return out


# --- helpers ---------------------------------------------------------------------------------

def plan0(case: CaseSpec) -> PlanSpec:
    return case.plans[0]


def with_plan(case: CaseSpec, **changes) -> CaseSpec:
    return replace(case, plans=(replace(plan0(case), **changes),))


def regrid(case: CaseSpec) -> CaseSpec:
    """Recompute every plan's grid so it covers every (new) structure."""
    grid = _organ_grid(all_structures(case), case.ct)
    return replace(case, plans=tuple(replace(p, grid=replace(grid, summation=p.grid.summation))
                                     for p in case.plans))


def hot(centre, r_mm: float, dose_gy: float, label: str) -> DoseCloud:
    """A hot sphere: ``dose_gy`` inside (no boost), 50 % 1.5 mm outside, steep tail."""
    return DoseCloud(sphere(centre, r_mm), dose_gy, falloff_mm=1.5, falloff_power=4.0,
                     label=label)


# --- anatomy added for the audit: great vessels, a rib, a skin patch -------------------------

#: Thoracic aorta above the diaphragm, clear of the lungs, heart and the T10 PTV.
GREAT_VESSELS = StructureSpec("GreatVes", EllipticCylinder((-22.0, 34.0), (8.0, 8.0), 40.0, 125.0),
                              color=(200, 0, 0))
#: A rib segment at the left lateral chest wall (1.9 cc), clear of the left lung.
RIB = StructureSpec("Rib", EllipticCylinder((158.0, 0.0), (3.0, 5.0), 40.0, 80.0),
                    color=(230, 230, 200))
#: A skin patch under the right lateral body surface (4 x 60 x 80 mm, 19.2 cc).
SKIN = StructureSpec("Skin", Box((-162.0, 0.0, 60.0), (4.0, 60.0, 80.0)), color=(255, 220, 180))

#: Hot-spot centres and radii inside each serial organ (all inside the organ solid).
HOT_SPOTS = {
    "Stomach": ((90.0, -22.0, -30.0), 5.0),
    "Duodenum": ((10.0, 12.0, -102.0), 5.0),
    "Esophagus": ((16.0, 12.0, 110.0), 5.0),
    "Heart": ((5.0, -50.0, 36.0), 5.0),
    "SpinalCord": ((0.0, 76.0, 60.0), 6.0),
    "GreatVes": ((-22.0, 34.0, 80.0), 5.0),
    "Rib": ((158.0, 0.0, 60.0), 5.0),
    "Skin": ((-162.0, 0.0, 60.0), 6.0),
}


def serial_organs_case(fractions: int, hot_doses: dict[str, float] | None = None) -> CaseSpec:
    """hcc_pass plus GreatVes, Rib and Skin, at ``fractions`` fractions with the same
    whole-course physical doses, and a hot sphere of ``hot_doses[organ]`` Gy (whole course)
    inside each organ named (None: no hot spots, the control)."""
    base = hcc_pass()
    case = replace(base, structures=base.structures + (GREAT_VESSELS, RIB, SKIN))
    clouds = tuple(hot(HOT_SPOTS[o][0], HOT_SPOTS[o][1], d, f"{o} hot spot")
                   for o, d in (hot_doses or {}).items())
    p = plan0(case)
    case = replace(case, plans=(replace(p, fractions=fractions, clouds=p.clouds + clouds,
                                        label=f"SBRT_{fractions}fx"),))
    return regrid(case)


# --- the normal-liver rule: 559 cc spared -----------------------------------------------------

def liver_wash(spare_r_mm: float, dose_gy: float = 16.0) -> DoseCloud:
    """A uniform wash over the liver box (clear of heart, oesophagus, duodenum, stomach,
    kidneys and lungs) except a sphere of ``spare_r_mm`` around the liver lesion."""
    wash = Ring(Box((-57.5, -28.5, -53.0), (195.0, 133.0, 62.0)), sphere(LIVER_LESION, spare_r_mm))
    return DoseCloud(wash, dose_gy, falloff_mm=2.0, falloff_power=6.0, label="liver wash")


def liver_spared_case(fractions: int, spare_r_mm: float) -> CaseSpec:
    base = hcc_pass()
    p = plan0(base)
    return with_plan(base, fractions=fractions, clouds=p.clouds + (liver_wash(spare_r_mm),),
                     label=f"SBRT_{fractions}fx")


# --- two plans ---------------------------------------------------------------------------------

def two_plans(fx_a: int, fx_b: int, labels=("PlanA", "PlanB"), stomach_gy: float = 0.0,
              same_lesions: bool = False) -> CaseSpec:
    """Plan A treats the liver lesion (50 Gy), plan B the lung and T10 lesions (50 / 40 Gy),
    each with its own fraction count. ``stomach_gy``: a hot sphere in the stomach in plan B
    only (whole course of plan B)."""
    base = hcc_pass()
    p = plan0(base)
    ta = tuple(t for t in p.targets if t.lesion == "Liver")
    tb = tuple(t for t in p.targets if t.lesion != "Liver")
    cb = (hot(HOT_SPOTS["Stomach"][0], 5.0, stomach_gy, "stomach hot spot"),) if stomach_gy else ()
    a = replace(p, label=labels[0], fractions=fx_a, targets=ta, clouds=())
    b = replace(p, label=labels[1], fractions=fx_b, targets=tb, clouds=cb)
    return replace(base, plans=(a, b))


def liver_mean_plans(fx: int, dose_a: float, dose_b: float, fx_b: int | None = None) -> CaseSpec:
    """Two plans of ``fx`` fractions, each only a uniform wash of the liver box (no
    lesion dose): plan A ``dose_a`` Gy, plan B ``dose_b`` Gy (whole course), no sparing
    sphere. The normal liver then sees ``dose_a + dose_b`` Gy almost everywhere."""
    base = hcc_pass()
    p = plan0(base)
    wash = Box((-57.5, -28.5, -53.0), (195.0, 133.0, 62.0))
    # the lesions keep their own plan so they are covered: plan A carries them
    a = replace(p, label="WashA", fractions=fx,
                clouds=(DoseCloud(wash, dose_a, falloff_mm=2.0, falloff_power=6.0,
                                  label="wash A"),))
    b = replace(p, label="WashB", fractions=fx_b or fx, targets=(),
                clouds=(DoseCloud(wash, dose_b, falloff_mm=2.0, falloff_power=6.0,
                                  label="wash B"),))
    return replace(base, plans=(a, b))


# --- organs renamed or combined --------------------------------------------------------------

def renamed(mapping: dict[str, str]) -> CaseSpec:
    """hcc_pass with ROIs renamed (``old -> new``); same solids and dose."""
    base = hcc_pass()
    return replace(base, structures=tuple(replace(s, name=mapping.get(s.name, s.name))
                                          for s in base.structures))


def combined(pair: tuple[str, str], name: str, extra: tuple[StructureSpec, ...] = ()) -> CaseSpec:
    """hcc_pass with the two ROIs ``pair`` drawn as one ROI ``name``."""
    from tests.e2e_cases import Union
    base = hcc_pass()
    s = {x.name: x for x in base.structures}
    out = []
    for x in base.structures:
        if x.name == pair[1]:
            continue
        if x.name == pair[0]:
            x = replace(x, name=name, shape=Union((s[pair[0]].shape, s[pair[1]].shape)))
        out.append(x)
    return replace(base, structures=tuple(out) + extra)


def with_extra_rois(*extra: StructureSpec) -> CaseSpec:
    base = hcc_pass()
    return replace(base, structures=base.structures + tuple(extra))


def without(*names: str) -> CaseSpec:
    base = hcc_pass()
    return replace(base, structures=tuple(s for s in base.structures if s.name not in names))


# --- lesions: margins and organs ---------------------------------------------------------------

def lung_margin(ptv_margin_mm: float, ctv: bool = False) -> CaseSpec:
    """PTV_Lung = GTV_Lung + ``ptv_margin_mm`` (no CTV) — dose conformed to that PTV."""
    base = hcc_pass()
    lesions = tuple(replace(les, ptv_margin_mm=ptv_margin_mm) if les.name == "Lung" else les
                    for les in base.lesions)
    return replace(base, lesions=lesions)


def node_case(gap_mm: float, r_mm: float = 6.0, inside_depth_mm: float | None = None) -> CaseSpec:
    """hcc_pass plus a node GTV_LN (sphere r ``r_mm``, PTV +3 mm, 40 Gy) whose surface is
    ``gap_mm`` in front of the liver's front surface (y = -90 at x = -58, z = -56);
    ``inside_depth_mm``: instead, its centre that deep inside the liver."""
    base = hcc_pass()
    if inside_depth_mm is not None:
        centre = (-58.0, -90.0 + inside_depth_mm, -56.0)
    else:
        centre = (-58.0, -90.0 - gap_mm - r_mm, -56.0)
    node = LesionSpec("LN", sphere(centre, r_mm), ptv_margin_mm=3.0)
    case = replace(base, lesions=base.lesions + (node,))
    p = plan0(case)
    targets = p.targets + (TargetDose("LN", 40.0, falloff_mm=6.0, falloff_power=2.0),)
    return regrid(replace(case, plans=(replace(p, targets=targets),)))


# --- dose plausibility and grid coverage ----------------------------------------------------

def summation(kind: str) -> CaseSpec:
    base = hcc_pass()
    return with_plan(base, grid=replace(plan0(base).grid, summation=kind))


def grid_cut(z_max: float) -> CaseSpec:
    base = hcc_pass()
    g = plan0(base).grid
    return with_plan(base, grid=replace(g, z_mm=(g.z_mm[0], z_max)))


# --- independent LQ arithmetic ---------------------------------------------------------------

def bed(total: float, n: int, ab: float) -> float:
    return total * (1.0 + total / n / ab)


def isoeffective_total(bed_value: float, n: int, ab: float) -> float:
    """The total dose in ``n`` fractions with the given BED: solves n d (1 + d / ab) = B."""
    d = (-ab + math.sqrt(ab * ab + 4.0 * ab * bed_value / n)) / 2.0
    return n * d


def eqd2(total: float, n: int, ab: float) -> float:
    return bed(total, n, ab) / (1.0 + 2.0 / ab)


def np_eqd2(d: np.ndarray, n: int, ab: float) -> np.ndarray:
    return d * (d / n + ab) / (2.0 + ab)


def split_course(fx: int, each_gy: float, labels=("HalfA", "HalfB")) -> CaseSpec:
    """Two plans of ``fx`` fractions, each giving every lesion ``each_gy`` (whole course):
    the same treatment split in two plans (concurrent: the same days)."""
    base = hcc_pass()
    p = plan0(base)
    ta = tuple(replace(t, prescription_gy=each_gy) for t in p.targets)
    # the second plan's fall-off differs (another beam arrangement): not a duplicate dose
    tb = tuple(replace(t, falloff_mm=t.falloff_mm - 2.0) for t in ta)
    return replace(base, plans=(replace(p, label=labels[0], fractions=fx, targets=ta),
                                replace(p, label=labels[1], fractions=fx, targets=tb)))


def rib_partly_outside_grid(x_centre: float, hot_gy: float = 25.0) -> CaseSpec:
    """hcc_pass plus a rib segment at x = ``x_centre`` (semi-axes 3 x 5 mm, z 40-80 mm)
    on hcc_pass's dose grid (not regridded: its right edge is about x = 154.5 mm), with a
    25 Gy hot sphere on the part that is outside the grid."""
    base = hcc_pass()
    rib = StructureSpec("Rib", EllipticCylinder((x_centre, 0.0), (3.0, 5.0), 40.0, 80.0))
    case = replace(base, structures=base.structures + (rib,))
    p = plan0(case)
    if not hot_gy:
        return case
    return replace(case, plans=(replace(p, clouds=p.clouds + (
        hot((x_centre + 2.0, 0.0, 60.0), 3.0, hot_gy, "rib hot spot"),)),))


def edit_dose(folder: Path, fn) -> None:
    """Apply ``fn(ds)`` to the export's single RTDOSE and save it."""
    import pydicom
    (rd,) = sorted(folder.glob("RD.*.dcm"))
    ds = pydicom.dcmread(rd)
    fn(ds)
    ds.save_as(rd, enforce_file_format=True)


def low_prescription_high_d95() -> CaseSpec:
    """PTV_Lung dosed as 36.5 Gy in 5 fx (D95 ~36.4 Gy: BED10 ~63 Gy); after writing,
    :func:`prescribe` sets the RTPLAN's prescription to 34 Gy (BED10 57.1 Gy < 60)."""
    base = hcc_pass()
    p = plan0(base)
    targets = tuple(replace(t, prescription_gy=36.5) if t.lesion == "Lung" else t
                    for t in p.targets)
    return with_plan(base, targets=targets)


def prescribe(folder: Path, ptv: str, gy: float) -> None:
    """Set the TargetPrescriptionDose of the RTPLAN's dose reference for ``ptv``."""
    import pydicom
    (rp,) = sorted(folder.glob("RP.*.dcm"))
    ds = pydicom.dcmread(rp)
    (dr,) = [d for d in ds.DoseReferenceSequence if d.DoseReferenceDescription == ptv]
    dr.TargetPrescriptionDose = f"{gy:g}"
    ds.PrescriptionDescription = ds.PrescriptionDescription.replace("36.5 Gy", f"{gy:g} Gy")
    ds.save_as(rp, enforce_file_format=True)


def heterogeneous_70pct_isodose() -> CaseSpec:
    """PTV_Liver prescribed 50 Gy to its surface (the 70 % isodose: the dose rises to
    50 / 0.7 = 71.4 Gy deep inside; boost 0.43 over 3 mm), as SBRT plans are prescribed."""
    base = hcc_pass()
    p = plan0(base)
    targets = tuple(replace(t, boost=0.4286, boost_depth_mm=3.0) if t.lesion == "Liver" else t
                    for t in p.targets)
    return with_plan(base, targets=targets)


def liver_partly_hot(fractions: int, hot_gy: float = 60.0, r_mm: float = 26.0) -> CaseSpec:
    """A ``hot_gy`` sphere (r ``r_mm``) in the medial liver, far from the lesion: a small
    part of the liver very hot, the rest cold; low physical mean, high EQD2 mean."""
    base = hcc_pass()
    p = plan0(base)
    cloud = DoseCloud(sphere((-5.0, -30.0, -55.0), r_mm), hot_gy, falloff_mm=2.0,
                      falloff_power=6.0, label="hot medial liver")
    return with_plan(base, fractions=fractions, clouds=p.clouds + (cloud,),
                     label=f"SBRT_{fractions}fx")


def liver_ptv_margin(ptv_margin_mm: float) -> CaseSpec:
    """PTV_Liver = CTV_Liver (GTV + 5 mm) + ``ptv_margin_mm``."""
    base = hcc_pass()
    lesions = tuple(replace(les, ptv_margin_mm=ptv_margin_mm) if les.name == "Liver" else les
                    for les in base.lesions)
    return replace(base, lesions=lesions)


def node_straddling_liver(offset_mm: float, r_mm: float = 8.0) -> CaseSpec:
    """A node GTV (sphere r ``r_mm``) centred ``offset_mm`` in front of the liver's front
    surface (negative: behind it, inside the liver), PTV +3 mm, 40 Gy."""
    base = hcc_pass()
    centre = (-58.0, -90.0 - offset_mm, -56.0)
    node = LesionSpec("LN", sphere(centre, r_mm), ptv_margin_mm=3.0)
    case = replace(base, lesions=base.lesions + (node,))
    p = plan0(case)
    targets = p.targets + (TargetDose("LN", 40.0, falloff_mm=6.0, falloff_power=2.0),)
    return regrid(replace(case, plans=(replace(p, targets=targets),)))
