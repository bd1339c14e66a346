"""Plan-integrity checks: the automatable part of an AAPM TG-275 plan review.

Each function returns ``Check`` records (category "plan integrity" unless stated):
UID links and one frame of reference; dose-grid coverage of the checked structures;
each prescription's SBRT coverage and maximum on the ROI it is linked to; RTPLAN ApprovalStatus;
dose-grid resolution for small targets; planning CT slice spacing and pixel size (mm);
the PTV margin around the CTV (category "protocol", checked geometrically).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rtqa.dvh.data import DVHData
from rtqa.constraints.model import PrescriptionRule
from rtqa.dvh.metrics import dose_at_volume, volume_at_least
from rtqa.reading.export import CourseDose, Export
from rtqa.reading.structures import Structure, StructureSet
from rtqa.errors import RtqaError
from rtqa.results import FAIL, NOT_EVALUATED, PASS, WARN, Check, DoseView, Reason

CAT = "plan integrity"
TG275 = "AAPM TG-275 (Ford et al. Med Phys 2020;47:e236) plan-review items"
SMALL_TARGET_CC = 1.0
#: The PTV maximum must reach the prescription (the prescription isodose lies in the ROI),
#: less this fraction: the maximum rtqa samples on the dose grid may lie a little below
#: the planning system's (a plan prescribed to the 100 % isodose of its maximum).
MAX_FLOOR_TOLERANCE = 0.02
SMALL_TARGET_GRID_MM = 2.0


def links(export: Export, ss: StructureSet, fractions_given: bool = False) -> list[Check]:
    """Every RTDOSE → RTPLAN → RTSTRUCT → CT link resolves, in one frame of reference.

    A missing RTPLAN is tolerated (WARN) only when the user gave the fraction count
    explicitly (``--fractions``), the one thing rtqa needs from the plan."""
    problems: list[str] = []
    tolerated: list[str] = []
    for d in export.doses:
        if not d.referenced_plan_uid:
            (tolerated if fractions_given else problems).append(
                f"{d.path.name} references no RTPLAN")
        elif export.plan_by_uid(d.referenced_plan_uid) is None:
            (tolerated if fractions_given else problems).append(
                f"{d.path.name} references an RTPLAN that is not in the export")
    for p in export.plans:
        if export.structure_set_by_uid(p.referenced_structure_set_uid) is None:
            problems.append(f"{p.path.name} references an RTSTRUCT that is not in the export")
    if ss.referenced_series_uids and not any(
            c.series_instance_uid in ss.referenced_series_uids for c in export.ct_series):
        problems.append(f"{ss.path.name} references a CT series that is not in the export")
    frames = {o.frame_of_reference_uid for o in (*export.doses, *export.plans, ss,
                                                  *export.ct_series) if o.frame_of_reference_uid}
    status = NOT_EVALUATED if problems else WARN if tolerated else PASS
    note = "; ".join(problems + tolerated)
    if tolerated and not problems:
        note += " (fraction count given with --fractions)"
    out = [Check("integrity.links", CAT, status,
                 "DICOM PS3.3 C.8.8 (RT references); " + TG275,
                 metric="UID links", value=float(len(problems) + len(tolerated)),
                 unit="broken", limit="= 0", note=note)]
    out.append(Check("integrity.frame_of_reference", CAT,
                     PASS if len(frames) == 1 else NOT_EVALUATED,
                     "DICOM PS3.3 C.7.4.1 (Frame of Reference)",
                     metric="frames of reference", value=float(len(frames)), unit="",
                     limit="= 1", note="" if len(frames) == 1 else
                     "objects in several frames of reference: " + ", ".join(sorted(frames))))
    return out


def coverage(checked: dict[str, DVHData]) -> list[Check]:
    """The dose grid covers every checked structure (cc outside; mandatory when a target)."""
    out = []
    for name, d in checked.items():
        frac = d.outside_cc / d.total_volume_cc if d.total_volume_cc > 0 else 1.0
        status = PASS if d.outside_cc == 0 else (NOT_EVALUATED if d.volume_cc <= 0 else WARN)
        note = "" if status == PASS else (
            f"{d.outside_cc:.2f} cc ({100 * frac:.1f}%) outside the dose grid: "
            + ("mostly outside: its rows that the uncovered part could change are NOT "
               "EVALUATED" if frac > 0.5 else "evaluated on the covered part"))
        out.append(Check(f"integrity.coverage.{name}", CAT, status, TG275, structure=name,
                         rois=(name,), metric="volume outside dose grid",
                         value=round(d.outside_cc, 4), unit="cc", limit="= 0", note=note))
    return out


def prescription(course: CourseDose, rx_gy: float | None, target: Structure | None,
                 dvh: DVHData | None, missing_roi: int | None = None,
                 rule: PrescriptionRule | None = None) -> list[Check]:
    """A prescription (Gy, whole course) against the dose of the ROI it is linked to:
    the SBRT checks of ``rule`` (the protocol's ``[prescription]``, defaults when None),
    each value as % of the prescription Rx:

    * ``integrity.prescription.<plan>.<ROI>.coverage``: V100%Rx >= ``coverage_volume_pct``
      % of the ROI (equivalently D<coverage_volume_pct>% >= Rx);
    * ``....near_min``: D<near_min_volume_pct>% >= ``near_min_dose_pct`` % of Rx;
    * ``....max``: the ROI's maximum (hottest DVH bin) <= ``max_dose_pct`` % of Rx, i.e.
      the prescription isodose >= 100/max_dose_pct of the maximum; below
      ``min_max_dose_pct`` (when set) WARN: the plan is more homogeneous than the
      protocol's SBRT convention (prescription isodose <= 90 %); below 98 % of Rx
      (``MAX_FLOOR_TOLERANCE``) FAIL
      (priority ``rule.max_priority``, ``Reason.DOSE_INCONSISTENT``) whatever the
      protocol: no point of the ROI receives the prescription, so the dose and the
      RTPLAN disagree (e.g. a dose scaled to 90 % of the plan: the coverage rows are
      optional, and the former median rule failed it).

    The coverage rows have ``rule.coverage_priority`` ("optimal" by default: the trial
    allows a lower dose where organ limits require it, and the lesion's BED row judges
    the dose received), the maximum ``rule.max_priority``. This replaces the former
    median rule (D50% within 95-115 % of Rx), which failed correct SBRT plans prescribed
    to the 60-90 % isodose (median ~115-130 % of Rx).

    ``missing_roi``: the RTPLAN links the prescription to this ROI number, which the
    structure set does not contain (a structure set that is not the plan's?): NOT
    EVALUATED, never a warning."""
    rule = rule or PrescriptionRule()
    plan = course.plan
    name = target.name if target is not None else "target"
    cid = f"integrity.prescription.{course.label}.{name}"
    src = TG275 + " (prescription consistency)"
    if missing_roi is not None:
        return [Check(f"integrity.prescription.{course.label}.roi{missing_roi}", CAT,
                      NOT_EVALUATED, src, metric="prescription", note=(
                          f"{course.label}: the RTPLAN prescribes {rx_gy:g} Gy to ROI number "
                          f"{missing_roi}, which the structure set does not contain: is this "
                          "the structure set the plan was made on?"))]
    if plan is None or rx_gy is None:
        return [Check(cid, CAT, WARN, src, metric="prescription", note=
                      "no prescription in the RTPLAN (TargetPrescriptionDose or BeamDose)")]
    if not rx_gy > 0:
        return [Check(cid, CAT, NOT_EVALUATED, src, metric="prescription",
                      note=f"{course.label}: prescription of {rx_gy:g} Gy is not a dose")]
    if target is None or dvh is None:
        return [Check(cid, CAT, WARN, src, metric="prescription", note="no target linked "
                      "to the prescription could be found")]
    head = f"Rx {rx_gy:g} Gy in {plan.fractions} fx"
    common = dict(structure=target.name, rois=(target.name,), dose_view=DoseView.PHYSICAL)
    if not dvh.volume_cc > 0:
        return [Check(cid, CAT, NOT_EVALUATED, src, metric="prescription", note=head +
                      f": {target.name} has no volume inside the dose grid",
                      reason=Reason.OUTSIDE_DOSE_GRID, **common)]
    rows = []
    cov = float(rule.coverage_volume_pct)
    v100 = 100.0 * volume_at_least(dvh.edges_gy, dvh.cum_cc, rx_gy) / dvh.volume_cc
    d_cov = float(dose_at_volume(dvh.edges_gy, dvh.cum_cc, cov / 100 * dvh.volume_cc))
    ok = v100 >= cov - 1e-9
    rows.append(Check(
        cid + ".coverage", CAT, PASS if ok else FAIL, rule.coverage_source,
        metric="V100%[%]",
        value=round(float(v100), 3), unit="%", limit=f">= {cov:g}",
        priority=rule.coverage_priority,
        note="" if ok else (f"{head}: D{cov:g}% {100 * d_cov / rx_gy:.1f}% of Rx; if "
                            "organ limits required it, see the lesion's BED and headroom"),
        **common))
    vol, pct = float(rule.near_min_volume_pct), float(rule.near_min_dose_pct)
    d_min = float(dose_at_volume(dvh.edges_gy, dvh.cum_cc, vol / 100 * dvh.volume_cc))
    lim = pct / 100 * rx_gy
    ok = d_min >= lim - 1e-9
    rows.append(Check(
        cid + ".near_min", CAT, PASS if ok else FAIL, rule.coverage_source,
        metric=f"D{vol:g}%[Gy]", value=round(d_min, 3), unit="Gy", limit=f">= {lim:.2f}",
        priority=rule.coverage_priority,
        note="" if ok else f"{head}: {100 * d_min / rx_gy:.1f}% of Rx (limit {pct:g}%)",
        **common))
    top = float(dvh.max_gy)
    ratio = 100 * top / rx_gy
    hi = rule.max_dose_pct / 100 * rx_gy
    lo = rule.min_max_dose_pct / 100 * rx_gy if rule.min_max_dose_pct else None
    status, reason, extra = PASS, None, ""
    floor = (1 - MAX_FLOOR_TOLERANCE) * rx_gy
    if top < floor - 1e-9:
        # below ~100 % of Rx whatever the protocol's conventions: the prescription isodose
        # is nowhere in the ROI (a dose scaled or normalised short of the RTPLAN's
        # prescription), which the former median rule failed too
        status, reason = FAIL, Reason.DOSE_INCONSISTENT
        extra = (": the ROI's maximum is below the prescription (no point of it receives "
                 "the prescribed dose): dose and RTPLAN prescription disagree")
    elif top > hi + 1e-9:
        status, extra = FAIL, (f": the prescription isodose is {100 / ratio * 100:.0f}% of "
                               f"the maximum, below {100 / rule.max_dose_pct * 100:.0f}%")
    elif lo is not None and top < lo - 1e-9:
        status, reason = WARN, Reason.DOSE_INCONSISTENT
        extra = (f": more homogeneous than the protocol's SBRT convention (prescription "
                 f"isodose {100 / ratio * 100:.0f}% of the maximum, above "
                 f"{100 / rule.min_max_dose_pct * 100:.0f}%)")
    rows.append(Check(
        cid + ".max", CAT, status, rule.max_source, metric="Max[Gy]", value=round(top, 3),
        unit="Gy", limit=f"{(lo if lo is not None else floor):.2f}-{hi:.2f}",
        priority=rule.max_priority, reason=reason,
        note=f"{head}: {ratio:.1f}% of Rx (the {100 / ratio * 100:.0f}% isodose)"
             f"{extra}", **common))
    return rows


def approval(course: CourseDose) -> Check:
    status = course.plan.approval_status if course.plan else ""
    verdict = PASS if status == "APPROVED" else FAIL if status == "REJECTED" else WARN
    return Check(f"integrity.approval.{course.label}", CAT, verdict,
                 "DICOM PS3.3 C.8.8.16 (Approval); " + TG275, metric="ApprovalStatus",
                 note=f"ApprovalStatus {status or 'absent'}", limit="APPROVED")


def grid_resolution(course: CourseDose, targets: dict[str, DVHData]) -> list[Check]:
    dx, dy, dz = course.grid.spacing
    worst = max(dx, dy, dz)
    out = []
    for name, d in targets.items():
        if d.total_volume_cc < SMALL_TARGET_CC:
            ok = worst <= SMALL_TARGET_GRID_MM
            out.append(Check(
                f"integrity.grid_resolution.{name}", CAT, PASS if ok else WARN,
                "AAPM TG-101 (Benedict 2010): dose grid <= 2 mm for small SBRT targets",
                structure=name, rois=(name,), metric="dose grid spacing", value=worst,
                unit="mm", limit=f"<= {SMALL_TARGET_GRID_MM:g}",
                note=f"target of {d.total_volume_cc:.2f} cc"))
    return out


def planning_ct(export: Export, ss: StructureSet, max_slice_mm: float, max_pixel_mm: float,
                source: str) -> list[Check]:
    ct = export.ct_for(ss)
    note = None
    if ct is None:
        note = "no planning CT series in the export: slice spacing and pixel size unknown"
    elif not ct.axial:
        note = ("the planning CT is not axial (oblique or tilted ImageOrientationPatient): "
                "slice spacing along z does not measure it")
    if note is not None:
        return [Check("integrity.ct.slice_spacing", CAT, NOT_EVALUATED, source,
                      metric="CT slice spacing", unit="mm", limit=f"<= {max_slice_mm:g}",
                      note=note, reason=Reason.INPUT_UNDEFINED),
                Check("integrity.ct.pixel_size", CAT, NOT_EVALUATED, source,
                      metric="CT pixel size", unit="mm", limit=f"<= {max_pixel_mm:g}",
                      note=note, reason=Reason.INPUT_UNDEFINED)]
    pixel = max(ct.pixel_spacing)
    pixel_row = Check("integrity.ct.pixel_size", CAT,
                      PASS if pixel <= max_pixel_mm + 1e-6 else FAIL, source,
                      metric="CT pixel size (largest of PixelSpacing)", value=round(pixel, 4),
                      unit="mm", limit=f"<= {max_pixel_mm:g}")
    spacings = np.asarray(ct.slice_spacings, dtype=float)
    undefined = None
    if ct.z.size < 2:
        undefined = (f"the planning CT has {ct.z.size} slice(s): a slice spacing needs two "
                     "(is the export missing the CT series?)")
    elif spacings.size == 0 or not np.all(np.isfinite(spacings)):
        undefined = "the slice spacing cannot be computed from ImagePositionPatient"
    if undefined is not None:
        return [Check("integrity.ct.slice_spacing", CAT, NOT_EVALUATED, source,
                      metric="CT slice spacing (largest, from ImagePositionPatient)",
                      unit="mm", limit=f"<= {max_slice_mm:g}", note=undefined,
                      reason=Reason.INPUT_UNDEFINED), pixel_row]
    spacing = float(np.max(spacings))
    return [
        Check("integrity.ct.slice_spacing", CAT,
              PASS if spacing <= max_slice_mm + 1e-6 else FAIL, source,
              metric="CT slice spacing (largest, from ImagePositionPatient)",
              value=round(spacing, 4), unit="mm", limit=f"<= {max_slice_mm:g}",
              note=f"{ct.z.size} slices"),
        pixel_row,
    ]


def _margin_mm(inner: Structure, outer: Structure) -> np.ndarray:
    """Distance (mm) from every contour vertex of ``inner`` to the surface of ``outer``:
    the 3-D distance to the contour lines of ``outer``'s planes (through the plane
    offset); 0 for a vertex outside ``outer`` (outside its cross-section on the nearest
    plane, or beyond its first or last plane by more than half a plane spacing).
    Vectorised per plane pair with shapely."""
    import shapely
    from rtqa.dvh.structops import plane_geometry
    oz = outer.z_planes
    geoms = [plane_geometry(polys) for _, polys in outer.planes]
    bounds = [g.boundary for g in geoms]
    half = 0.5 * float(np.median(np.diff(oz))) if oz.size > 1 else 1.5
    out = []
    for z, polys in inner.planes:
        pts = np.concatenate(polys)
        pts_geom = shapely.points(pts[:, 0], pts[:, 1])
        near = int(np.argmin(np.abs(oz - z)))
        if abs(oz[near] - z) > half + 1e-3:
            out.append(np.zeros(len(pts)))
            continue
        best = np.full(len(pts), np.inf)
        for j in np.argsort(np.abs(oz - z)):
            dz = abs(oz[j] - z)
            if dz >= best.max():
                break
            best = np.minimum(best, np.hypot(shapely.distance(pts_geom, bounds[j]), dz))
        best[shapely.distance(pts_geom, geoms[near]) > 1e-6] = 0.0
        out.append(best)
    return np.concatenate(out) if out else np.empty(0)


def ptv_margin(ctv, ptv: Structure, min_mm: float, max_mm: float, source: str,
               tolerance_mm: float = 0.5, inner_is_gtv: bool = False) -> Check:
    """PTV margin around the CTV: 3-D distance from each CTV contour vertex to the PTV's
    surface (its contour lines and end planes); the 5th-95th percentile range must lie
    within [min, max] mm (± tolerance for contour discretisation).

    ``ctv``: a structure, or several (every GTV of a lesion: distances of all of them).
    ``inner_is_gtv``: the lesion has no CTV, ``ctv`` is its GTV(s). PTV − GTV is CTV margin
    plus PTV margin, so only the lower bound can be judged (5th percentile >= min -
    tolerance); the upper bound cannot and the note says so."""
    inner = [ctv] if isinstance(ctv, Structure) else list(ctv)
    d = np.concatenate([_margin_mm(c, ptv) for c in inner]) if inner else np.empty(0)
    ctv = inner[0]
    label = " + ".join(c.name for c in inner)
    if d.size == 0 or not np.all(np.isfinite(d)):
        return Check(f"protocol.ptv_margin.{ptv.name}", "protocol", NOT_EVALUATED, source,
                     structure=f"{ptv.name} - {ctv.name}", rois=(ctv.name, ptv.name),
                     metric="PTV margin", unit="mm", limit=f"{min_mm:g}-{max_mm:g}",
                     reason=Reason.INPUT_UNDEFINED,
                     note="no contour points to measure the margin on")
    lo, hi, med = (float(np.percentile(d, 5)), float(np.percentile(d, 95)),
                   float(np.median(d)))
    if inner_is_gtv:
        ok = lo >= min_mm - tolerance_mm
        return Check(f"protocol.ptv_margin.{ptv.name}", "protocol", PASS if ok else FAIL,
                     source, structure=f"{ptv.name} - {label}",
                     rois=(*(c.name for c in inner), ptv.name),
                     metric="PTV margin around the GTV (5th percentile)", value=round(lo, 2),
                     unit="mm", limit=f">= {min_mm:g}",
                     note=f"no CTV: PTV - GTV measured instead, {lo:.1f}-{hi:.1f} mm (5th-95th "
                          f"percentile, median {med:.1f} mm), tolerance ±{tolerance_mm} mm; "
                          f"only the lower bound ({min_mm:g} mm) can be judged from the GTV "
                          f"(it includes the CTV margin), the upper bound ({max_mm:g} mm) "
                          "cannot")
    ok = lo >= min_mm - tolerance_mm and hi <= max_mm + tolerance_mm
    return Check(f"protocol.ptv_margin.{ptv.name}", "protocol", PASS if ok else FAIL, source,
                 structure=f"{ptv.name} - {ctv.name}", rois=(ctv.name, ptv.name),
                 metric="PTV margin (5th-95th percentile)", value=round(med, 2),
                 unit="mm", limit=f"{min_mm:g}-{max_mm:g}",
                 note=f"margin {lo:.1f}-{hi:.1f} mm (median {med:.1f} mm), "
                      f"tolerance ±{tolerance_mm} mm")


# --- the family on a plan context -----------------------------------------------------

def _fill(rows, *, plans=(), fractions=(), reason=None) -> list[Check]:
    """``rows`` with the plan(s) and fraction count(s) they are about, and ``reason`` on
    NOT EVALUATED rows that have none yet."""
    out = []
    for c in rows:
        kw = {}
        if plans and not c.plans:
            kw.update(plans=tuple(plans), fractions=tuple(n for n in fractions if n))
        if c.status == NOT_EVALUATED and c.reason is None:
            kw["reason"] = reason or Reason.OTHER
        out.append(replace(c, **kw) if kw else c)
    return out


def evaluate(ctx, checked_rows=()):
    """The plan-integrity family on a plan context (``rtqa.checks.context``): links,
    dose-grid coverage of every ROI used by ``checked_rows`` (the other families' rows),
    per plan its prescription (on that plan's own physical dose, with the CT slice
    positions), approval and grid resolution, and the planning CT."""
    from rtqa.checks import prescription as prescription_rules, tps
    from rtqa.checks.context import Evaluation
    options, dose = ctx.options, ctx.dose
    warnings: list[str] = []
    labels = tuple(c.label for c in ctx.courses)
    out = _fill(links(ctx.export, ctx.structure_set,
                      fractions_given=options.fractions is not None),
                reason=Reason.REFERENCE_BROKEN)
    checked = {}
    for c in checked_rows:
        for r in c.rois:
            s = ctx.by_name.get(r)
            if s is not None and s.has_volume and c.category != CAT:
                try:
                    checked[r] = dose.dvh(s)
                except RtqaError:
                    pass
    out += _fill(coverage(checked), plans=labels, fractions=ctx.fractions,
                 reason=Reason.OUTSIDE_DOSE_GRID)
    target_dvhs = {}
    for les in ctx.lesions:
        for t in les.targets:
            try:
                target_dvhs[t.structure.name] = dose.dvh(t.structure)
            except RtqaError:
                pass
    for i, course in enumerate(ctx.courses):
        own = dict(plans=(course.label,), fractions=(ctx.fractions[i],))
        def physical(s, i=i):
            return dose.dvh(s, DoseView.PHYSICAL, plans=(i,))
        out += _fill(prescription_rules.evaluate(
            course, ctx.structure_set, [t.structure for les in ctx.lesions
                                        for t in les.targets], physical,
            rule=ctx.protocol.prescription),
            **own, reason=Reason.INPUT_UNDEFINED)
        out += _fill(tps.compare(course, ctx.structure_set, physical, options.end_caps,
                                 ctx.fractions[i]), **own, reason=Reason.INPUT_UNDEFINED)
        out += _fill([approval(course)], **own)
        out += _fill(grid_resolution(course, target_dvhs), **own)
    rule = ctx.protocol.planning_ct
    if rule:
        out += _fill(planning_ct(ctx.export, ctx.structure_set, rule.max_slice_spacing_mm,
                                 rule.max_pixel_size_mm, rule.source),
                     reason=Reason.INPUT_UNDEFINED)
    return Evaluation(tuple(out), (), tuple(warnings))
