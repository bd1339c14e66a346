"""Declarative description of a synthetic plan export, and its analytic truth.

A :class:`CaseSpec` describes one patient: structures (analytic solids from
:mod:`rtqa.sample.shapes`), lesions (GTV, optional CTV, PTV), a planning CT geometry and
one or more plans. Everything here is pure: the same spec always gives the same numbers.
:mod:`rtqa.sample.writer` turns a spec into DICOM files.

Units and conventions
---------------------
* Lengths in mm (DICOM patient coordinates, head-first supine: +x patient left,
  +y posterior, +z superior), dose in Gy, volume in cc.
* Dose of a target: ``prescription_gy * f(d)`` where ``d`` is the signed distance (mm)
  from the PTV surface (negative inside) and

  - inside  (d <= 0): ``f = 1 + boost * (1 - exp(-(d / boost_depth_mm)^2))``: 100 % on the
    PTV surface rising smoothly to ``100 % + boost`` deep inside;
  - outside (d > 0):  ``f = 1 / (1 + (d / falloff_mm)^falloff_power)``: 50 % of the
    prescription at ``falloff_mm`` outside the PTV, a smooth tail beyond.

  ``f`` is continuous with a continuous first derivative at the surface (power > 1).
  A plan's dose is the sum over its targets plus optional :class:`DoseCloud` extras
  (e.g. a deliberate hot spot for a failing case).
* ``PixelSpacing`` of DICOM images is [row spacing (y), column spacing (x)];
  ``ImagePositionPatient`` is the centre of the first voxel. :class:`CTSpec` and
  :class:`DoseGridSpec` store spacings as named (x, y, z) fields to avoid that trap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rtqa.sample.shapes import Box, EllipticCylinder, Shape, sample_inside

__all__ = [
    "StructureSpec",
    "LesionSpec",
    "TargetDose",
    "DoseCloud",
    "DoseGridSpec",
    "PlanSpec",
    "Tissue",
    "CTSpec",
    "CaseSpec",
    "BeamInfo",
    "all_structures",
    "structure",
    "lesion",
    "plan",
    "roi_numbers",
    "profile",
    "target_dose",
    "cloud_dose",
    "plan_dose",
    "beam_dose",
    "plan_beams",
    "ct_hu",
    "validate_case",
    "contoured_shape",
    "sample_dose",
]

InterpretedType = Literal[
    "EXTERNAL", "ORGAN", "GTV", "CTV", "PTV", "ITV", "AVOIDANCE", "CONTROL", "BOLUS",
    "SUPPORT", "MARKER", "ISOCENTER", "CAVITY", "TREATED_VOLUME", "IRRAD_VOLUME", "DOSE_REGION",
]


@dataclass(frozen=True)
class StructureSpec:
    """One ROI of the structure set.

    name: ROIName as exported (free text). shape: the analytic solid.
    interpreted_type: RTROIInterpretedType (EXTERNAL, ORGAN, GTV, CTV, PTV, AVOIDANCE, ...).
    hu: CT number painted inside the solid (None: inherit what lies underneath).
    roi_number: ROINumber to export (None: next free number in listing order).
    color: ROIDisplayColor (R, G, B) 0-255 (None: derived from the name).
    contour_spacing_mm: vertex spacing of this ROI's contours (None: the case default).
    """

    name: str
    shape: Shape
    interpreted_type: str = "ORGAN"
    hu: float | None = None
    roi_number: int | None = None
    color: tuple[int, int, int] | None = None
    contour_spacing_mm: float | None = None


@dataclass(frozen=True)
class LesionSpec:
    """One lesion: a GTV, an optional CTV = GTV + ``ctv_margin_mm`` and a PTV =
    (CTV or GTV) + ``ptv_margin_mm``. Margins in mm (exact for spherical GTVs).

    ROI names default to ``GTV_<name>``, ``CTV_<name>``, ``PTV_<name>``.
    """

    name: str
    gtv: Shape
    ptv_margin_mm: float = 5.0
    ctv_margin_mm: float | None = None
    gtv_name: str | None = None
    ctv_name: str | None = None
    ptv_name: str | None = None

    @property
    def ctv(self) -> Shape | None:
        return None if self.ctv_margin_mm is None else self.gtv.expanded(self.ctv_margin_mm)

    @property
    def ptv(self) -> Shape:
        return (self.ctv or self.gtv).expanded(self.ptv_margin_mm)

    @property
    def roi_names(self) -> dict[str, str]:
        """{'GTV': name, 'CTV': name (if any), 'PTV': name}."""
        out = {"GTV": self.gtv_name or f"GTV_{self.name}"}
        if self.ctv_margin_mm is not None:
            out["CTV"] = self.ctv_name or f"CTV_{self.name}"
        out["PTV"] = self.ptv_name or f"PTV_{self.name}"
        return out


@dataclass(frozen=True)
class TargetDose:
    """Dose to one lesion within a plan.

    prescription_gy: whole-course TargetPrescriptionDose to the lesion's PTV (Gy).
    falloff_mm: distance outside the PTV where the dose is 50 % of the prescription.
    falloff_power: steepness of the fall-off (> 1; larger = sharper shoulder, shorter tail).
    boost: relative overdose deep inside the PTV (0.05 -> up to 105 %).
    boost_depth_mm: depth scale over which the overdose builds up inside the PTV.
    beams: number of beams treating this lesion (the plan's BeamSequence gets them all).
    """

    lesion: str
    prescription_gy: float
    falloff_mm: float = 8.0
    falloff_power: float = 2.0
    boost: float = 0.05
    boost_depth_mm: float = 5.0
    beams: int = 3


@dataclass(frozen=True)
class DoseCloud:
    """An extra dose blob not tied to a target (e.g. a deliberate hot spot).

    The dose is ``dose_gy * f(d)`` with ``d`` the signed distance (mm) from ``shape`` and
    the same profile as :class:`TargetDose`. In BEAM exports the cloud is shared equally
    by all beams of the plan.
    """

    shape: Shape
    dose_gy: float
    falloff_mm: float = 4.0
    falloff_power: float = 2.0
    boost: float = 0.0
    boost_depth_mm: float = 5.0
    label: str = "cloud"


SummationType = Literal["PLAN", "FRACTION", "BEAM"]


@dataclass(frozen=True)
class DoseGridSpec:
    """Geometry and encoding of the RTDOSE grid of one plan.

    x_mm, y_mm, z_mm: (first, last) voxel-centre coordinate along each axis, mm; nodes
      are ``first + k * spacing`` up to ``last`` (inclusive, within 1e-6 mm).
    spacing_mm: (dx = column spacing, dy = row spacing, dz = frame spacing), mm.
      The exported PixelSpacing is [dy, dx].
    z_positions_mm: explicit frame z positions (mm, any order, need not be even);
      overrides z_mm / dz.
    z_order: frames by increasing or decreasing z.
    frame_offsets: GridFrameOffsetVector "relative" (first 0) or "absolute" (z values).
    summation: DoseSummationType PLAN (whole course), FRACTION (one fraction),
      BEAM (one RTDOSE per beam; the beams sum to the plan).
    bits: 16 or 32 (unsigned); DoseGridScaling maps stored values to Gy.
    units: "GY", or "RELATIVE": the grid's dose (per summation type) divided by the
      plan's highest whole-course TargetPrescriptionDose (for negative tests).
    """

    x_mm: tuple[float, float]
    y_mm: tuple[float, float]
    z_mm: tuple[float, float]
    spacing_mm: tuple[float, float, float] = (3.0, 3.0, 3.0)
    z_positions_mm: tuple[float, ...] | None = None
    z_order: Literal["increasing", "decreasing"] = "increasing"
    frame_offsets: Literal["relative", "absolute"] = "relative"
    summation: SummationType = "PLAN"
    bits: Literal[16, 32] = 16
    units: Literal["GY", "RELATIVE"] = "GY"

    @staticmethod
    def _axis(lo: float, hi: float, step: float) -> np.ndarray:
        n = int(math.floor((hi - lo) / step + 1e-6)) + 1
        return lo + step * np.arange(max(n, 1))

    @property
    def xs(self) -> np.ndarray:
        """Column centres x (mm), increasing."""
        return self._axis(*self.x_mm, self.spacing_mm[0])

    @property
    def ys(self) -> np.ndarray:
        """Row centres y (mm), increasing."""
        return self._axis(*self.y_mm, self.spacing_mm[1])

    @property
    def zs(self) -> np.ndarray:
        """Frame z positions (mm) in file order."""
        if self.z_positions_mm is not None:
            z = np.asarray(self.z_positions_mm, dtype=float)
        else:
            z = self._axis(*self.z_mm, self.spacing_mm[2])
        return np.sort(z) if self.z_order == "increasing" else np.sort(z)[::-1]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, rows, columns)."""
        return len(self.zs), len(self.ys), len(self.xs)

    def points(self, frame: int | None = None) -> np.ndarray:
        """Voxel centres (mm) as an array of shape (frames, rows, cols, 3), or (rows, cols, 3)
        for one frame index."""
        xx, yy = np.meshgrid(self.xs, self.ys, indexing="xy")
        if frame is not None:
            return np.stack([xx, yy, np.full_like(xx, self.zs[frame])], axis=-1)
        zs = self.zs
        shp = (len(zs),) + xx.shape
        return np.stack([np.broadcast_to(xx, shp), np.broadcast_to(yy, shp),
                         np.broadcast_to(zs[:, None, None], shp)], axis=-1)

    @classmethod
    def covering(cls, lo, hi, spacing_mm=(3.0, 3.0, 3.0), pad_mm=(0.5, 0.5, 1.5), *,
                 align: bool = False, **kw) -> DoseGridSpec:
        """The smallest grid whose nodes cover the box [lo - pad, hi + pad] (mm).

        pad_mm: per axis (or one number). align=True puts nodes on multiples of the
        spacing (round origin, up to one node more per side); otherwise the nodes are
        centred on the box and the origin is rounded to 0.01 mm.
        """
        pads = (pad_mm,) * 3 if np.isscalar(pad_mm) else tuple(pad_mm)
        ax = []
        for i in range(3):
            s = float(spacing_mm[i])
            a, b = float(lo[i]) - pads[i], float(hi[i]) + pads[i]
            if align:
                ax.append((math.floor(a / s) * s, math.ceil(b / s) * s))
                continue
            n = int(math.ceil((b - a) / s - 1e-9)) + 1
            first = round(0.5 * (a + b) - 0.5 * (n - 1) * s, 2)
            while first > a + 1e-9:
                first -= 0.01
            while first + (n - 1) * s < b - 1e-9:
                n += 1
            ax.append((round(first, 2), round(first + (n - 1) * s, 2)))
        return cls(ax[0], ax[1], ax[2], tuple(map(float, spacing_mm)), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PlanSpec:
    """One RTPLAN with its RTDOSE.

    label: RTPlanLabel (<= 16 characters, also used in file names).
    fractions: NumberOfFractionsPlanned.
    targets: the lesions this plan treats, with whole-course prescriptions.
    clouds: extra dose blobs (hot spots) added to the plan dose.
    grid: the RTDOSE grid and its encoding.
    approval: ApprovalStatus (APPROVED, UNAPPROVED, REJECTED).
    write_plan: False omits the RTPLAN file (the RTDOSE still references its UID).
    """

    label: str
    fractions: int
    targets: tuple[TargetDose, ...]
    grid: DoseGridSpec
    clouds: tuple[DoseCloud, ...] = ()
    approval: Literal["APPROVED", "UNAPPROVED", "REJECTED"] = "APPROVED"
    plan_name: str | None = None
    description: str | None = None
    machine: str = "SynthLinac"
    energy_mv: float = 6.0
    write_plan: bool = True


@dataclass(frozen=True)
class Tissue:
    """A CT-only region (no ROI), e.g. bone: ``shape`` painted with ``hu``."""

    name: str
    shape: Shape
    hu: float


@dataclass(frozen=True)
class CTSpec:
    """Planning CT geometry; also defines the contour planes of the structure set.

    z_mm, slice_spacing_mm: slices at ``z_first + k * spacing`` up to ``z_last`` (mm).
    slice_positions_mm: explicit slice z positions (any spacing); overrides the above.
    pixel_spacing_mm: (dx = column spacing, dy = row spacing) in mm; the exported
      PixelSpacing is [dy, dx].
    rows, columns: image matrix; the image is centred on ``centre_xy_mm``.
    background_hu / tissues: HU outside every structure, and CT-only regions painted
      last (after the structures that carry an ``hu``).
    write: False omits the CT files (the RTSTRUCT still references their UIDs).
    rle: encode pixel data with RLE Lossless (otherwise Explicit VR Little Endian).
    """

    z_mm: tuple[float, float]
    slice_spacing_mm: float = 3.0
    slice_positions_mm: tuple[float, ...] | None = None
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)
    rows: int = 256
    columns: int = 360
    centre_xy_mm: tuple[float, float] = (0.0, 0.0)
    background_hu: float = -1000.0
    tissues: tuple[Tissue, ...] = ()
    write: bool = True
    rle: bool = True

    @property
    def zs(self) -> np.ndarray:
        """Slice z positions (mm), increasing."""
        if self.slice_positions_mm is not None:
            return np.sort(np.asarray(self.slice_positions_mm, dtype=float))
        return DoseGridSpec._axis(*self.z_mm, self.slice_spacing_mm)

    @property
    def origin_xy(self) -> tuple[float, float]:
        """(x, y) of the centre of pixel (row 0, column 0), mm."""
        dx, dy = self.pixel_spacing_mm
        return (self.centre_xy_mm[0] - 0.5 * (self.columns - 1) * dx,
                self.centre_xy_mm[1] - 0.5 * (self.rows - 1) * dy)

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x of each column, y of each row), mm."""
        x0, y0 = self.origin_xy
        dx, dy = self.pixel_spacing_mm
        return x0 + dx * np.arange(self.columns), y0 + dy * np.arange(self.rows)


@dataclass(frozen=True)
class CaseSpec:
    """A whole synthetic export (one patient, one study, one frame of reference).

    structures: organs, External and helper ROIs (lesion ROIs are added from ``lesions``).
    contour_spacing_mm / min_contour_points: vertex spacing along contours (mm) and the
      minimum vertex count per contour.
    coordinate_decimals: ContourData rounding (mm decimals).
    seed: extra entropy for UIDs (UIDs derive from ``name`` and ``seed`` only, so the same
      spec always gives the same UIDs and bytes).
    roi_contour_order: order of ROIContourSequence relative to StructureSetROISequence
      ("reversed" exercises readers that must link by ROINumber).
    """

    name: str
    structures: tuple[StructureSpec, ...]
    ct: CTSpec
    lesions: tuple[LesionSpec, ...] = ()
    plans: tuple[PlanSpec, ...] = ()
    patient_id: str = "RTQA-SYNTH"
    patient_name: str = "RTQA^Synthetic"
    description: str = ""
    contour_spacing_mm: float = 1.0
    min_contour_points: int = 32
    coordinate_decimals: int = 2
    seed: str = ""
    roi_contour_order: Literal["same", "reversed"] = "same"
    study_date: str = "20250101"
    notes: tuple[str, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------------------
# Derived views
# ---------------------------------------------------------------------------------------


def all_structures(case: CaseSpec) -> tuple[StructureSpec, ...]:
    """Every ROI of the export: ``case.structures`` then, per lesion, GTV, CTV, PTV."""
    out = list(case.structures)
    for les in case.lesions:
        names = les.roi_names
        out.append(StructureSpec(names["GTV"], les.gtv, "GTV"))
        if les.ctv is not None:
            out.append(StructureSpec(names["CTV"], les.ctv, "CTV"))
        out.append(StructureSpec(names["PTV"], les.ptv, "PTV"))
    return tuple(out)


def structure(case: CaseSpec, name: str) -> StructureSpec:
    """The ROI called ``name`` (exact match)."""
    for s in all_structures(case):
        if s.name == name:
            return s
    raise KeyError(f"no structure {name!r} in case {case.name!r}")


def lesion(case: CaseSpec, name: str) -> LesionSpec:
    for les in case.lesions:
        if les.name == name:
            return les
    raise KeyError(f"no lesion {name!r} in case {case.name!r}")


def plan(case: CaseSpec, label: str | int = 0) -> PlanSpec:
    """A plan by RTPlanLabel or index."""
    if isinstance(label, int):
        return case.plans[label]
    for p in case.plans:
        if p.label == label:
            return p
    raise KeyError(f"no plan {label!r} in case {case.name!r}")


def roi_numbers(case: CaseSpec) -> dict[str, int]:
    """ROIName -> ROINumber as exported (explicit numbers kept, others numbered upward)."""
    structs = all_structures(case)
    used = {s.roi_number for s in structs if s.roi_number is not None}
    out: dict[str, int] = {}
    nxt = 1
    for s in structs:
        if s.roi_number is not None:
            out[s.name] = s.roi_number
            continue
        while nxt in used:
            nxt += 1
        out[s.name] = nxt
        used.add(nxt)
    return out


def validate_case(case: CaseSpec) -> None:
    """Raise ValueError for specs that cannot be exported consistently."""
    names = [s.name for s in all_structures(case)]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"duplicate ROI names: {sorted(dup)}")
    nums = list(roi_numbers(case).values())
    if len(set(nums)) != len(nums):
        raise ValueError("duplicate ROI numbers")
    lesion_names = {les.name for les in case.lesions}
    labels = [p.label for p in case.plans]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate plan labels: {labels}")
    for p in case.plans:
        if not 0 < len(p.label) <= 16:
            raise ValueError(f"RTPlanLabel must be 1-16 characters: {p.label!r}")
        if p.fractions < 1:
            raise ValueError(f"plan {p.label}: fractions must be >= 1")
        if not p.targets and not p.clouds:
            raise ValueError(f"plan {p.label}: no targets and no dose clouds")
        for t in p.targets:
            if t.lesion not in lesion_names:
                raise ValueError(f"plan {p.label}: unknown lesion {t.lesion!r}")
            if t.beams < 1:
                raise ValueError(f"plan {p.label}: target {t.lesion} needs >= 1 beam")
        if p.grid.bits not in (16, 32):
            raise ValueError("dose grid bits must be 16 or 32")
    if len(case.ct.zs) < 1:
        raise ValueError("CT has no slices")


# ---------------------------------------------------------------------------------------
# Analytic dose
# ---------------------------------------------------------------------------------------


def profile(d: np.ndarray, falloff_mm: float, falloff_power: float = 2.0, boost: float = 0.05,
            boost_depth_mm: float = 5.0) -> np.ndarray:
    """Relative dose (1.0 = prescription) at signed distance ``d`` (mm) from the PTV surface."""
    d = np.asarray(d, dtype=float)
    inside = 1.0 + boost * (1.0 - np.exp(-(np.minimum(d, 0.0) / boost_depth_mm) ** 2))
    outside = 1.0 / (1.0 + (np.maximum(d, 0.0) / falloff_mm) ** falloff_power)
    return np.where(d <= 0.0, inside, outside)


def target_dose(case: CaseSpec, target: TargetDose, points: np.ndarray) -> np.ndarray:
    """Whole-course physical dose (Gy) of one target of a plan at ``points`` (mm, (..., 3))."""
    d = lesion(case, target.lesion).ptv.signed_distance(points)
    return target.prescription_gy * profile(d, target.falloff_mm, target.falloff_power,
                                            target.boost, target.boost_depth_mm)


def cloud_dose(cloud: DoseCloud, points: np.ndarray) -> np.ndarray:
    """Whole-course dose (Gy) of an extra dose blob at ``points`` (mm)."""
    d = cloud.shape.signed_distance(points)
    return cloud.dose_gy * profile(d, cloud.falloff_mm, cloud.falloff_power, cloud.boost,
                                   cloud.boost_depth_mm)


def plan_dose(case: CaseSpec, plan_spec: PlanSpec | str | int, points: np.ndarray, *,
              per_fraction: bool = False) -> np.ndarray:
    """Analytic physical dose (Gy) of a plan at arbitrary ``points`` (mm, shape (..., 3)).

    Whole course by default (what a DoseSummationType PLAN grid holds); ``per_fraction``
    divides by NumberOfFractionsPlanned. Vectorised; returns shape ``points.shape[:-1]``.
    """
    p = plan_spec if isinstance(plan_spec, PlanSpec) else plan(case, plan_spec)
    pts = np.asarray(points, dtype=float)
    total = np.zeros(pts.shape[:-1])
    for t in p.targets:
        total += target_dose(case, t, pts)
    for c in p.clouds:
        total += cloud_dose(c, pts)
    return total / p.fractions if per_fraction else total


@dataclass(frozen=True)
class BeamInfo:
    """A beam of a plan as exported: BeamNumber, BeamName, the lesion it treats, gantry
    angle (deg), isocentre (mm), BeamDose (Gy per fraction at the target) and BeamMeterset."""

    number: int
    name: str
    lesion: str
    gantry_deg: float
    isocentre: tuple[float, float, float]
    dose_per_fraction_gy: float
    meterset_mu: float
    field_half_mm: float


def plan_beams(case: CaseSpec, plan_spec: PlanSpec) -> tuple[BeamInfo, ...]:
    """The beams of a plan: ``target.beams`` per target, gantry angles spread evenly."""
    out = []
    num = 1
    for t in plan_spec.targets:
        les = lesion(case, t.lesion)
        lo, hi = les.ptv.bounds()
        iso = tuple(round(float(v), 2) for v in les.ptv.centre)
        half = float(np.max(hi - lo)) / 2 + 5.0
        per_beam = t.prescription_gy / plan_spec.fractions / t.beams
        for k in range(t.beams):
            gantry = (180.0 + 360.0 * k / t.beams) % 360.0 if t.beams > 1 else 0.0
            out.append(BeamInfo(num, f"{les.name}_{k + 1}", les.name, round(gantry, 1), iso,
                                per_beam, round(per_beam * 100.0 * 1.25, 1), round(half, 1)))
            num += 1
    return tuple(out)


def beam_dose(case: CaseSpec, plan_spec: PlanSpec, beam_number: int, points: np.ndarray) -> np.ndarray:
    """Whole-course dose (Gy) of one beam: its target's dose / that target's beam count,
    plus the plan's clouds / all beams. The beams of a plan sum to :func:`plan_dose`."""
    beams = plan_beams(case, plan_spec)
    beam = next(b for b in beams if b.number == beam_number)
    target = next(t for t in plan_spec.targets if t.lesion == beam.lesion)
    pts = np.asarray(points, dtype=float)
    out = target_dose(case, target, pts) / target.beams
    for c in plan_spec.clouds:
        out += cloud_dose(c, pts) / len(beams)
    return out


# ---------------------------------------------------------------------------------------
# CT numbers
# ---------------------------------------------------------------------------------------


def ct_hu(case: CaseSpec, points: np.ndarray) -> np.ndarray:
    """CT number (HU) at ``points`` (mm): background, then every structure carrying an
    ``hu`` in listing order, then the CT-only tissues (later paints win)."""
    pts = np.asarray(points, dtype=float)
    hu = np.full(pts.shape[:-1], float(case.ct.background_hu))
    for s in all_structures(case):
        if s.hu is not None:
            hu[s.shape.contains(pts)] = s.hu
    for t in case.ct.tissues:
        hu[t.shape.contains(pts)] = t.hu
    return hu


# ---------------------------------------------------------------------------------------
# Truth for DVH comparisons
# ---------------------------------------------------------------------------------------


def contoured_shape(case: CaseSpec, name: str) -> Shape:
    """The solid of ROI ``name`` limited to what its contours describe: cylinders and boxes
    that run past the scan are cut at the outer faces of the first and last CT slab
    (half a slice gap beyond the end slices). Other solids are returned unchanged."""
    shape = structure(case, name).shape
    zs = case.ct.zs
    h0 = 0.5 * (zs[1] - zs[0]) if len(zs) > 1 else 0.5 * case.ct.slice_spacing_mm
    h1 = 0.5 * (zs[-1] - zs[-2]) if len(zs) > 1 else 0.5 * case.ct.slice_spacing_mm
    lo, hi = zs[0] - h0, zs[-1] + h1
    if isinstance(shape, EllipticCylinder):
        return EllipticCylinder(shape.centre_xy, shape.semi_axes_xy, max(shape.z_min, lo), min(shape.z_max, hi))
    if isinstance(shape, Box):
        a, b = shape.bounds()
        z0, z1 = max(a[2], lo), min(b[2], hi)
        return Box((shape.centre[0], shape.centre[1], 0.5 * (z0 + z1)), (shape.size[0], shape.size[1], z1 - z0))
    return shape


def sample_dose(case: CaseSpec, names: str | tuple[str, ...], plan_spec: PlanSpec | str | int = 0, *,
                spacing_mm: float = 1.0, exclude: str | tuple[str, ...] = ()) -> tuple[np.ndarray, float]:
    """Analytic truth for a DVH: whole-course dose (Gy) at the points of a regular grid
    (pitch ``spacing_mm``) inside the union of ROIs ``names`` (as contoured, see
    :func:`contoured_shape`) and outside every ROI in ``exclude``; plus the cc each point
    stands for. E.g. normal liver: ``sample_dose(case, "Liver", exclude="GTV_Liver")``.

    Volume = ``len(doses) * cc``; D2cc, V20Gy, mean, ... follow from the sorted doses.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    excl = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    pts, cc = [], spacing_mm**3 / 1000.0
    for i, n in enumerate(names):
        p, cc = sample_inside(contoured_shape(case, n), spacing_mm)
        for prev in names[:i]:  # union: drop points already counted
            p = p[~contoured_shape(case, prev).contains(p)]
        pts.append(p)
    p = np.concatenate(pts) if pts else np.empty((0, 3))
    for n in excl:
        p = p[~structure(case, n).shape.contains(p)]
    return plan_dose(case, plan_spec, p), cc
