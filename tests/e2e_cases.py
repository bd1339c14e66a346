"""Case builders for the end-to-end tests of ``rtqa check`` (tests/acceptance/test_check_e2e.py).

Every builder starts from :func:`rtqa.sample.hcc_pass` (which passes every check of the
default protocol oligo-hcc) and changes ONE thing with ``dataclasses.replace``, so that
exactly one kind of check fails or cannot be evaluated. The analytic truth of each case
(``rtqa.sample.sample_dose`` on 1-2 mm point grids; 5 fractions; EQD2 voxel-wise with
α/β 3 Gy: EQD2 = D (D/5 + 3) / 5) is quoted in its docstring, with the margin to the
limit, so a failing assertion can be told apart from a badly built case.

Files are written by :func:`rtqa.sample.write_case`; the file-level variants (no RTDOSE,
no RTSTRUCT, ...) are made by copying a written hcc_pass folder and editing it
(:func:`copy_without`, :func:`move_structure_set_to_other_frame`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from rtqa.sample import (
    Box,
    CaseSpec,
    DoseCloud,
    PlanSpec,
    Ring,
    StructureSpec,
    hcc_pass,
    sphere,
    structure,
)
from rtqa.sample.cases import LIVER_LESION

# --- helpers --------------------------------------------------------------------------------


def _plan(case: CaseSpec) -> PlanSpec:
    assert len(case.plans) == 1, "hcc_pass has one plan"
    return case.plans[0]


def _with_plan(case: CaseSpec, name: str, **changes) -> CaseSpec:
    return replace(case, name=name, plans=(replace(_plan(case), **changes),))


def _with_clouds(name: str, *clouds: DoseCloud) -> CaseSpec:
    base = hcc_pass()
    return _with_plan(base, name, clouds=_plan(base).clouds + tuple(clouds))


def _without_ct(case: CaseSpec) -> CaseSpec:
    """CT files not written (faster). Only for cases that stop with an input error before
    any check is evaluated: without a CT the planning-CT checks are NOT EVALUATED."""
    return replace(case, ct=replace(case.ct, write=False))


# --- the passing case -----------------------------------------------------------------------

#: Analytic truths of hcc_pass (plans_sample/README.md): BED10 of D95% of each PTV, Gy.
PASS_BED_TRUTH = {"Liver": 100.6, "Lung": 100.7, "T10": 73.7}


def passing() -> CaseSpec:
    """hcc_pass as shipped: PASS on every check (CT written, 3 mm slices, 1 mm pixels)."""
    return hcc_pass()


# --- one kind of failure each ---------------------------------------------------------------


def lesion_underdosed() -> CaseSpec:
    """PTV_Lung prescribed 30 Gy in 5 fractions instead of 50 Gy: BED10 = 30 (1 + 6/10)
    = 48 Gy < 60 Gy. Nothing else changes (the plan's own prescription to PTV_Lung is 30 Gy
    too, so the prescription-consistency check still passes; lower lung dose only helps the
    organs at risk)."""
    base = hcc_pass()
    targets = tuple(replace(t, prescription_gy=30.0) if t.lesion == "Lung" else t
                    for t in _plan(base).targets)
    return _with_plan(base, "e2e_underdosed", targets=targets)


def normal_liver_spread() -> CaseSpec:
    """A uniform 15.5 Gy wash over the liver (a box z -84..-22 mm, clear of heart,
    oesophagus, duodenum, stomach, kidneys and lungs) except a sphere of r 55 mm around the
    liver lesion; sharp edge (50 % at 2 mm, power 6).

    Truth: normal liver below 15 Gy 606 cc < 700 cc -> the 700 cc rule FAILS; mean
    normal-liver EQD2 23.3 Gy < 28 Gy (QUANTEC row still passes); every other organ and
    every PTV as in hcc_pass.
    """
    wash = Ring(Box((-57.5, -28.5, -53.0), (195.0, 133.0, 62.0)), sphere(LIVER_LESION, 55.0))
    return _with_clouds("e2e_liver700",
                        DoseCloud(wash, 15.5, falloff_mm=2.0, falloff_power=6.0,
                                  label="liver wash"))


def liver_mean_hot() -> CaseSpec:
    """A 50 Gy sphere (r 38 mm at (-5, -30, -55), inside the medial liver, sharp edge) far
    from the liver lesion.

    Truth: mean normal-liver EQD2 39.8 Gy > 28 Gy -> the QUANTEC Liver - GTV mean row
    FAILS; normal liver below 15 Gy 933 cc >= 700 cc (the 700 cc rule still passes);
    other organs and PTVs as in hcc_pass.
    """
    return _with_clouds("e2e_livermean",
                        DoseCloud(sphere((-5.0, -30.0, -55.0), 38.0), 50.0, falloff_mm=2.0,
                                  falloff_power=6.0, label="liver hot"))


def esophagus_hot_spot() -> CaseSpec:
    """A 45 Gy hot spot (sphere r 5 mm) on the oesophagus at z = 100 mm (above the heart,
    between the lungs).

    Truth: oesophagus point maximum 46.2 Gy > 35 Gy (TG-101 5 fx, D0.035cc) -> FAILS;
    D5cc 3.6 Gy < 19.5 Gy; mean EQD2 9.8 Gy < 34 Gy; V35/V50/V70 (EQD2) 8.3/7.4/6.3 %
    < 50/40/20 %; other organs and PTVs as in hcc_pass.
    """
    return _with_clouds("e2e_esohot",
                        DoseCloud(sphere((16.0, 12.0, 100.0), 5.0), 45.0, falloff_mm=3.0,
                                  falloff_power=3.0, label="oesophagus hot spot"))


# --- one cause of ERROR each -----------------------------------------------------------------


def without_liver() -> CaseSpec:
    """hcc_pass without the Liver ROI: the normal-liver rule (Liver - GTV) cannot be
    evaluated."""
    base = hcc_pass()
    return replace(base, name="e2e_noliver",
                   structures=tuple(s for s in base.structures if s.name != "Liver"))


def ambiguous_liver() -> CaseSpec:
    """hcc_pass plus a second liver ROI ``Liver_old`` (same solid, an edit-suffix near
    match): 'Liver' is ambiguous until ``--map Liver=Liver``."""
    base = hcc_pass()
    liver = structure(base, "Liver")
    extra = StructureSpec("Liver_old", liver.shape, "ORGAN", color=(120, 60, 30))
    return replace(base, name="e2e_ambiguous", structures=base.structures + (extra,))


def grid_misses_lung_lesion() -> CaseSpec:
    """The dose grid stops at z = 60 mm: PTV_Lung (z 66..94 mm) lies entirely outside it,
    so the lung lesion's BED cannot be evaluated (upper lungs, heart and oesophagus are
    partly outside too)."""
    base = hcc_pass()
    grid = _plan(base).grid
    z0 = grid.z_mm[0]
    return _with_plan(base, "e2e_gridmiss", grid=replace(grid, z_mm=(z0, 60.0)))


def relative_dose() -> CaseSpec:
    """RTDOSE with DoseUnits RELATIVE (CT not written: the reader refuses the dose)."""
    base = hcc_pass()
    grid = replace(_plan(base).grid, units="RELATIVE")
    return _without_ct(_with_plan(base, "e2e_relative", grid=grid))


def other_patient() -> CaseSpec:
    """A second patient (another PatientID, other UIDs), CT not written: written next to
    hcc_pass in one folder."""
    return _without_ct(replace(hcc_pass(), name="e2e_other_patient",
                               patient_id="RTQA-HCC-002", patient_name="RTQA^Other"))


# --- file-level variants of a written export ------------------------------------------------


def copy_without(src: Path, dst: Path, prefix: str) -> list[Path]:
    """Copy the export folder ``src`` to ``dst`` leaving out the files whose name starts
    with ``prefix`` ("RD.", "RS.", "RP."); return the names left out (never empty)."""
    shutil.copytree(src, dst)
    gone = sorted(p for p in dst.iterdir() if p.name.startswith(prefix))
    assert gone, f"no {prefix}* file in {src}"
    for p in gone:
        p.unlink()
    return gone


def move_structure_set_to_other_frame(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` and give the RTSTRUCT another FrameOfReferenceUID (top level,
    ReferencedFrameOfReferenceSequence and ROI references); return the RTSTRUCT path."""
    import pydicom

    shutil.copytree(src, dst)
    (rs,) = sorted(dst.glob("RS.*.dcm"))
    ds = pydicom.dcmread(rs)
    new = "2.25.1234567890123456789012345678901234567"
    if "FrameOfReferenceUID" in ds:
        ds.FrameOfReferenceUID = new
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        fr.FrameOfReferenceUID = new
    for roi in ds.get("StructureSetROISequence", []):
        roi.ReferencedFrameOfReferenceUID = new
    ds.save_as(rs, enforce_file_format=True)
    return rs


def alternative_plans() -> CaseSpec:
    """hcc_pass with a re-plan under another label, exported next to the original: the
    same dose plus a 3 Gy blob (sphere r 5 mm in the upper mediastinum, z 110 mm, clear of
    every organ), so that the grids differ (an identical grid would be a duplicate dose).
    Each plan alone covers every lesion; their sum would pass every lesion on twice the
    dose."""
    base = hcc_pass()
    p = _plan(base)
    v2 = replace(p, label="SBRT_5fx_v2",
                 clouds=p.clouds + (DoseCloud(sphere((0.0, -60.0, 110.0), 5.0), 3.0,
                                              label="re-plan difference"),))
    return replace(base, name="alternatives", plans=(p, v2))



# --- ROI interpretation (issue 14 item 2, issue 13 mis-typed targets, issue 12 items 5, 8) --


@dataclass(frozen=True)
class Union:
    """Disjoint solids drawn as one ROI (``Lungs``: both lungs), for the sample writer."""

    parts: tuple

    @property
    def centre(self):
        return self.parts[0].centre

    def contains(self, p):
        out = self.parts[0].contains(p)
        for s in self.parts[1:]:
            out = out | s.contains(p)
        return out

    def signed_distance(self, p):
        import numpy as np
        return np.minimum.reduce([s.signed_distance(p) for s in self.parts])

    def sections(self, z, spacing_mm=1.0, min_points=32):
        return [loop for s in self.parts for loop in s.sections(z, spacing_mm, min_points)]

    def bounds(self):
        import numpy as np
        lo, hi = zip(*(s.bounds() for s in self.parts))
        return np.min(lo, axis=0), np.max(hi, axis=0)

    @property
    def volume_cc(self):
        return sum(s.volume_cc for s in self.parts)

    def expanded(self, margin_mm):
        return Union(tuple(s.expanded(margin_mm) for s in self.parts))


#: Cyrillic small letter ie (U+0435), a look-alike of the Latin 'e'.
CYRILLIC_LIVER = "Liv\u0435r"


def renamed_organs() -> CaseSpec:
    """hcc_pass with the organs named as real exports name them: one ``Lungs`` ROI (both
    lungs) and one ``Kidneys`` ROI, ``Herz`` (German) for the heart, ``STOM`` for the
    stomach, ``Cord_PRV0`` for the spinal cord. The liver gets its Cyrillic look-alike
    name afterwards (:func:`rename_roi`: the writer's character set is Latin-1). Same
    solids, same dose: every value equals hcc_pass's once the names are resolved."""
    base = hcc_pass()
    s = {x.name: x for x in base.structures}
    rename = {"Heart": "Herz", "Stomach": "STOM", "SpinalCord": "Cord_PRV0"}
    out = []
    for x in base.structures:
        if x.name in ("Lung_L", "Kidney_L"):
            continue
        if x.name == "Lung_R":
            x = replace(x, name="Lungs", shape=Union((s["Lung_R"].shape, s["Lung_L"].shape)))
        elif x.name == "Kidney_R":
            x = replace(x, name="Kidneys",
                        shape=Union((s["Kidney_R"].shape, s["Kidney_L"].shape)))
        elif x.name in rename:
            x = replace(x, name=rename[x.name])
        out.append(x)
    return replace(base, name="e2e_renamed", structures=tuple(out))


def rename_roi(folder: Path, old: str, new: str) -> None:
    """Rename an ROI in the export's RTSTRUCT (UTF-8, ISO_IR 192)."""
    import pydicom

    (rs,) = sorted(folder.glob("RS.*.dcm"))
    ds = pydicom.dcmread(rs)
    ds.SpecificCharacterSet = "ISO_IR 192"
    (item,) = [r for r in ds.StructureSetROISequence if r.ROIName == old]
    item.ROIName = new
    for ob in ds.get("RTROIObservationsSequence", []):
        if ob.get("ROIObservationLabel") == old:
            ob.ROIObservationLabel = new
    ds.save_as(rs, enforce_file_format=True)


def retype_roi(folder: Path, name: str, roi_type: str) -> None:
    """Set an ROI's RTROIInterpretedType in the export's RTSTRUCT."""
    import pydicom

    (rs,) = sorted(folder.glob("RS.*.dcm"))
    ds = pydicom.dcmread(rs)
    (number,) = [r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == name]
    (ob,) = [o for o in ds.RTROIObservationsSequence if o.ReferencedROINumber == number]
    ob.RTROIInterpretedType = roi_type
    ds.save_as(rs, enforce_file_format=True)


def mistyped_target_and_ring() -> CaseSpec:
    """hcc_pass whose T10 PTV is named ``T10_PTV`` (retyped ORGAN after writing, with
    :func:`retype_roi`) and with a ring ``PTV1_WALL`` (typed ORGAN) 3-8 mm around
    PTV_Liver, as RayStation writes rings. Truth: 3 lesions (a ring is never a lesion);
    the T10 lesion is found by its GTV alone until the user states the PTV's type."""
    base = hcc_pass()
    lesions = tuple(replace(les, ptv_name="T10_PTV") if les.name == "T10" else les
                    for les in base.lesions)
    ptv_r = 15.0 + 5.0 + 4.0
    ring = StructureSpec("PTV1_WALL", Ring(sphere(LIVER_LESION, ptv_r + 8.0),
                                           sphere(LIVER_LESION, ptv_r + 3.0)), "ORGAN",
                         color=(90, 90, 200))
    return replace(base, name="e2e_mistyped", lesions=lesions,
                   structures=base.structures + (ring,))


def lung_ptv_half_mm() -> CaseSpec:
    """hcc_pass with PTV_Lung = GTV_Lung + 0.5 mm (no CTV): the protocol's 2 mm lower
    bound fails; the measured margin is 0.5 mm. Dose conformed to the smaller PTV."""
    base = hcc_pass()
    lesions = tuple(replace(les, ptv_margin_mm=0.5) if les.name == "Lung" else les
                    for les in base.lesions)
    return replace(base, name="e2e_margin05", lesions=lesions)


#: A lymph node r 6 mm whose surface lies 11 mm in front of the liver (the liver's front
#: surface is at y = -26 - 64 = -90 mm at x = -58, z = -56).
NODE_CENTRE = (-58.0, -90.0 - 11.0 - 6.0, -56.0)


def node_outside_liver() -> CaseSpec:
    """hcc_pass plus a lymph node (GTV_LN r 6 mm, PTV_LN +3 mm) 11 mm outside the liver,
    40 Gy in 5 fractions. Truth: its organ is unknown (it is in no organ contour); the
    plan has Liver, Lung and two lesions of unknown organ (T10, LN): 2 to 4 organs, so
    the <= 3 organs row cannot be judged until the user names them."""
    from rtqa.sample import LesionSpec, TargetDose, all_structures
    from rtqa.sample.cases import _organ_grid

    base = hcc_pass()
    node = LesionSpec("LN", sphere(NODE_CENTRE, 6.0), ptv_margin_mm=3.0)
    case = replace(base, name="e2e_node", lesions=base.lesions + (node,))
    p = _plan(case)
    grid = _organ_grid(all_structures(case), case.ct)
    targets = p.targets + (TargetDose("LN", 40.0, falloff_mm=6.0, falloff_power=2.0),)
    return replace(case, plans=(replace(p, grid=grid, targets=targets),))
