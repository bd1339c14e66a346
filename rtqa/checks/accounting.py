"""Dose accounting, fraction consistency, every plan listed and dose plausibility.

Rows (category "plan integrity", all mandatory, every NOT EVALUATED carries a ``Reason``):

``integrity.dose_accounting``
    Each RTDOSE is counted exactly once (rtqa.reading.export decides each file's role). A
    duplicate (near-identical grid under another UID), two disagreeing representations of
    one plan (PLAN vs the sum of its BEAMs vs FRACTION x n), a beam dosed twice, a plan sum
    (MULTI_PLAN) that cannot be split, or a dose of a multi-group plan not linked to one
    fraction group: NOT EVALUATED naming the files (``DOSE_DUPLICATE``,
    ``DOSE_INCONSISTENT``, ``FRACTIONS_INCONSISTENT``).
``integrity.plans.course``
    Doses of several RTPLANs on one structure set are summed only when the user confirms
    they form one course (``--sum-plans``); otherwise NOT EVALUATED (``PLANS_UNCONFIRMED``).
``integrity.plan_without_dose.<label>``
    Every RTPLAN is listed (``PlanInfo.checked``/``note``). An APPROVED plan with no dose in
    the export is NOT EVALUATED (``DOSE_MISSING``) unless the user named the plan to check
    (``--plan LABEL``): a checked unapproved sibling never stands in silently for it.
``integrity.fractions.<plan>``
    The RTPLAN's own numbers agree: for each target prescription, the BeamDose (Gy per
    fraction at the beam dose points) of the beams aimed at it, times each fraction
    group's NumberOfFractionsPlanned, lies within ``BEAM_DOSE_RATIO`` (0.9-1.7) of the
    TargetPrescriptionDose. The upper bound allows a beam dose point at the isocentre of
    a plan prescribed to the 60 % isodose (1/0.6 = 1.67); a fraction count edited after
    the dose was computed (5 -> 3: 19 Gy against 32 Gy) gives 0.6: NOT EVALUATED
    (``FRACTIONS_INCONSISTENT``).
``integrity.dose_vs_plan.<plan>``
    The dose grid agrees with the plan: BeamDose x fractions of a prescription (the dose at
    the beam dose point, inside the target) lies within the target's D98%-D2% range widened
    by ``GRID_TOLERANCE`` (10 %). Else NOT EVALUATED (``DOSE_INCONSISTENT``).
``integrity.dose_plausibility.<plan>``
    The course dose maximum lies within ``PLAUSIBLE_MAX_RATIO`` (0.5-2) of the plan's
    highest prescription; a FRACTION dose whose stored (per-fraction) maximum already
    reaches ``FRACTION_LOOKS_TOTAL`` (90 %) of the course prescription (n > 1) holds the
    course total. Either: NOT EVALUATED (``DOSE_INCONSISTENT``) saying which numbers
    disagree; the dose is never rescaled silently.
``integrity.contours.<ROI>``
    WARN per ROI with planes missing inside its z extent (a step between contour planes
    > ``GAP_FACTOR`` 1.5 x its median plane spacing), open contours, or contour points
    outside the planning CT image, with the dose the damaged part's region receives.
    Organ-at-risk rows on such a ROI that PASS or WARN become NOT EVALUATED
    (``CONTOUR_DAMAGE``) unless that region (bounding box of the neighbouring contours +
    5 mm) receives at most ``AWAY_FRACTION`` (20 %) of the course dose maximum: then the
    damage is clearly away from the high-dose region and the row says so.
Rows on a structure mostly outside the dose grid (> ``MOSTLY_OUTSIDE``, 50 % of its
volume) that PASS or WARN and whose metric the uncovered part could change (every metric
but a spared volume CVx held to a lower bound) become NOT EVALUATED
(``OUTSIDE_DOSE_GRID``): never numbers of the covered sliver. So do those of a structure
partly outside the grid when the grid is cut through dose: both its covered part and the
grid's outer faces receive more than ``AWAY_FRACTION`` (20 %) of the course dose maximum
(the part without dose could hold the structure's maximum). A FAIL stands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from rtqa.dvh.data import DVHData
from rtqa.dvh.metrics import dose_at_volume
from rtqa.errors import RtqaError
from rtqa.reading.export import CourseDose, DoseRole, Export
from rtqa.reading.plan import Plan
from rtqa.reading.structures import Structure, StructureSet
from rtqa.results import (NOT_EVALUATED, PASS, WARN, Check, DoseFileInfo, DoseView, PlanInfo,
                          Reason)

CAT = "plan integrity"
SRC_DOSE = "DICOM PS3.3 C.8.8.3 (RT Dose: DoseSummationType, ReferencedRTPlanSequence)"
SRC_PLAN = "DICOM PS3.3 C.8.8.10/C.8.8.13 (RT Prescription, RT Fraction Scheme)"
BEAM_DOSE_RATIO = (0.9, 1.7)
GRID_TOLERANCE = 0.10
PLAUSIBLE_MAX_RATIO = (0.5, 2.0)
FRACTION_LOOKS_TOTAL = 0.9
#: Per-fraction dose maximum (Gy) above which a FRACTION dose of n > 1 fractions without a
#: known prescription is taken as a course total (no clinical fraction is that high).
FRACTION_MAX_GY = 30.0

#: (structure, index of the course in the courses given) -> that course's physical DVH
DvhFor = Callable[[Structure, int], DVHData]


def _fx(c: CourseDose) -> tuple[int, ...]:
    return (int(c.plan.fractions),) if c.plan is not None and c.plan.fractions else ()


def _row(cid: str, status, note: str, *, reason=None, source=SRC_DOSE, metric=None,
         value=None, unit=None, limit=None, plans=(), fractions=(), rois=(), structure=None,
         dose_view=DoseView.NONE) -> Check:
    return Check(cid, CAT, status, source, structure=structure, rois=tuple(rois),
                 metric=metric, value=value, unit=unit, limit=limit, note=note,
                 dose_view=dose_view, plans=tuple(plans), fractions=tuple(fractions),
                 reason=reason)


# --- dose accounting ------------------------------------------------------------------------

def select_courses(export: Export, ss: StructureSet, named: str | None = None
                   ) -> list[CourseDose]:
    """The course doses to check: those in the structure set's frame of reference, only
    the plan named with --plan when given. Raises ``RtqaError`` when none is left, naming
    the accounting problem that left none."""
    courses = export.courses_in_frame(ss.frame_of_reference_uid)
    if named is not None:
        labels = sorted({c.plan.display for c in courses if c.plan is not None}
                        | {p.display for p in export.plans})
        courses = [c for c in courses if c.plan is not None
                   and named in (c.plan.label, c.plan.display, c.label)]
        if not courses:
            raise RtqaError(f"--plan {named}: no plan of that label has a usable dose in the "
                            "structure set's frame of reference (plans: "
                            + (", ".join(labels) or "none") + ")")
    if not courses:
        if export.accounting_problems:
            raise RtqaError("no usable RTDOSE: " + export.accounting_problems[0].message)
        raise RtqaError("no RTDOSE in the structure set's frame of reference", ss.path)
    return courses


def dose_accounting(export: Export) -> list[Check]:
    """One NOT EVALUATED row per dose that could not be counted exactly once; a PASS row
    summing up the roles otherwise."""
    out = []
    for i, p in enumerate(export.accounting_problems):
        labels = tuple(pl.display for u in p.plan_uids
                       if (pl := export.plan_by_uid(u)) is not None)
        out.append(_row(f"integrity.dose_accounting.{i + 1}", NOT_EVALUATED, p.message,
                        reason=Reason(p.reason), metric="dose files counted once",
                        plans=labels))
    if not out:
        used = sum(1 for r in export.dose_roles if r.used)
        out.append(_row("integrity.dose_accounting", PASS,
                        f"{len(export.dose_roles)} RTDOSE file(s), {used} used; each dose "
                        "counted once (see the dose files)", metric="dose files counted once",
                        value=float(len(export.dose_roles)), unit="files"))
    return out


def dose_files(export: Export, frame_uid: str) -> tuple[DoseFileInfo, ...]:
    """Every RTDOSE with its role, for the report; a dose in another frame of reference
    than the structure set is listed as not used."""
    by_path = {d.path: d for d in export.doses}
    out = []
    for r in export.dose_roles:
        d = by_path[r.path]
        role, used, note = str(r.role), r.used, r.note
        if d.frame_of_reference_uid != frame_uid:
            role, used = "other frame", False
            note = ("not used: in another frame of reference than the structure set "
                    f"({d.frame_of_reference_uid or 'none'})")
        group = f" FG{r.fraction_group}" if r.fraction_group is not None and \
            "FG" not in r.plan_label else ""
        out.append(DoseFileInfo(str(r.path), r.sop_instance_uid, r.summation_type,
                                r.plan_label + group, role, used, note))
    return tuple(out)


def several_plans(courses: Sequence[CourseDose], sum_plans: bool) -> list[Check]:
    """Doses of several RTPLANs on one structure set: summed only with --sum-plans."""
    uids = list(dict.fromkeys(c.plan.sop_instance_uid if c.plan else c.grid.path.name
                              for c in courses))
    if len(uids) < 2:
        return []
    labels = tuple(c.label for c in courses)
    fx = tuple(n for c in courses for n in _fx(c))
    listing = ", ".join(f"'{x}'" for x in labels)
    if sum_plans:
        return [_row("integrity.plans.course", PASS,
                     f"{len(uids)} plans ({listing}) summed as one course (--sum-plans)",
                     metric="plans in one course", value=float(len(uids)), unit="plans",
                     plans=labels, fractions=fx)]
    return [_row("integrity.plans.course", NOT_EVALUATED,
                 f"{len(uids)} RTPLANs with doses on one structure set ({listing}): alternative "
                 "plans (a re-plan next to the original) or one course? Their doses are not "
                 "summed without confirmation: check one plan at a time (--plan LABEL), or "
                 "confirm with --sum-plans that they are delivered together",
                 reason=Reason.PLANS_UNCONFIRMED, metric="plans in one course",
                 value=float(len(uids)), unit="plans", limit="1 or --sum-plans",
                 plans=labels, fractions=fx)]


# --- every plan listed ----------------------------------------------------------------------

def plan_listing(export: Export, courses: Sequence[CourseDose], frame_uid: str,
                 named: str | None, fractions_override: int | None = None
                 ) -> tuple[tuple[PlanInfo, ...], list[Check]]:
    """A PlanInfo for every RTPLAN (checked or not, and why; and for every dose checked
    without an RTPLAN) and a NOT EVALUATED row for every APPROVED plan without a dose,
    unless ``named`` (--plan) chose the plan to check."""
    checked = {c.plan.sop_instance_uid for c in courses if c.plan is not None}
    roles = {}
    for r in export.dose_roles:
        if r.plan_uid:
            roles.setdefault(r.plan_uid, []).append(r)
    infos, rows = [], []
    for p in export.plans:
        status = p.approval_status or "absent"
        own = roles.get(p.sop_instance_uid, [])
        if p.sop_instance_uid in checked:
            groups = [c.label for c in courses
                      if c.plan is not None and c.plan.sop_instance_uid == p.sop_instance_uid]
            why = f"checked (ApprovalStatus {status}); dose: " + "; ".join(
                c.note for c in courses
                if c.plan is not None and c.plan.sop_instance_uid == p.sop_instance_uid)
            if len(groups) > 1:
                why += f"; fraction groups checked separately: {', '.join(groups)}"
            infos.append(_info(p, True, why))
            continue
        if named is not None and named not in (p.label, p.display):
            why = f"not checked: --plan {named} names another plan (ApprovalStatus {status})"
        elif p.frame_of_reference_uid and p.frame_of_reference_uid != frame_uid:
            why = f"not checked: in another frame of reference (ApprovalStatus {status})"
        elif own:
            why = (f"not checked: none of its {len(own)} dose file(s) could be used "
                   f"(ApprovalStatus {status}): " + "; ".join(r.note for r in own))
        else:
            why = f"not checked: no RTDOSE in the export references it (ApprovalStatus {status})"
        infos.append(_info(p, False, why))
        if p.approval_status == "APPROVED" and named is None and not own:
            others = ", ".join(f"'{c.label}'" for c in courses) or "none"
            rows.append(_row(
                f"integrity.plan_without_dose.{p.display}", NOT_EVALUATED,
                f"RTPLAN '{p.display}' is APPROVED but the export has no RTDOSE for it: the "
                f"approved plan cannot be checked (checked instead: {others}). Export its "
                "dose, or name the plan to check with --plan LABEL",
                reason=Reason.DOSE_MISSING, source="DICOM PS3.3 C.8.8.16 (Approval)",
                metric="approved plan has a dose", plans=(p.display,),
                fractions=(p.fractions,) if p.fractions else ()))
    for c in courses:
        if c.plan is None:
            infos.append(PlanInfo(c.label, "", fractions_override, None, "",
                                  str(c.grid.path), True, "checked without an RTPLAN: "
                                  + c.note))
    return tuple(infos), rows


def _info(p: Plan, checked: bool, note: str) -> PlanInfo:
    return PlanInfo(p.display, p.sop_instance_uid, p.fractions, p.prescription_gy,
                    p.approval_status, str(p.path), checked, note)


# --- fraction consistency -------------------------------------------------------------------

def _beam_total(plan: Plan, uid: str, single: bool) -> tuple[float, str] | None:
    """(sum over fraction groups of BeamDose x NumberOfFractionsPlanned of the beams aimed
    at dose reference ``uid`` (all beams when ``single``), the arithmetic in words)."""
    total, parts = 0.0, []
    for g in plan.fraction_groups:
        bd = g.beam_dose_per_fraction_gy if single else g.beam_dose_for(uid)
        if bd is None:
            if g.beams and (single or any(b.dose_reference_uid == uid for b in g.beams)):
                return None
            continue
        if not g.fractions:
            return None
        total += bd * g.fractions
        parts.append(f"{bd:.4g} Gy x {g.fractions} fx")
    return (total, " + ".join(parts)) if parts else None


def fraction_consistency(export: Export, courses: Sequence[CourseDose], ss: StructureSet,
                         dvh_for: DvhFor) -> list[Check]:
    """BeamDose x fractions against each prescription (the plan's own numbers), and against
    the target's dose in the grid."""
    out = []
    seen = set()
    by_number = {s.roi_number: s for s in ss.structures}
    for c in courses:
        if c.plan is None or c.plan.sop_instance_uid in seen:
            continue
        seen.add(c.plan.sop_instance_uid)
        plan = export.plan_by_uid(c.plan.sop_instance_uid) or c.plan
        plan_courses = [k for k in courses if k.plan is not None
                        and k.plan.sop_instance_uid == plan.sop_instance_uid]
        labels = tuple(k.label for k in plan_courses)
        fx = tuple(g.fractions for g in plan.fraction_groups if g.fractions)
        single = len(plan.prescriptions) == 1
        bad, good, grid_bad, grid_good = [], [], [], []
        for rx in plan.prescriptions:
            found = _beam_total(plan, rx.uid, single) if (rx.uid or single) else None
            if found is None:
                continue
            total, how = found
            ratio = total / rx.dose_gy
            lo, hi = BEAM_DOSE_RATIO
            where = rx.description or (f"ROI {rx.roi_number}" if rx.roi_number else "target")
            text = (f"{where}: BeamDose {how} = {total:.2f} Gy against TargetPrescriptionDose "
                    f"{rx.dose_gy:g} Gy (ratio {ratio:.2f})")
            (good if lo <= ratio <= hi else bad).append(text)
            tgt = by_number.get(rx.roi_number) if rx.roi_number is not None else None
            if tgt is None or not tgt.has_volume or len(plan_courses) != 1:
                continue
            try:
                d = dvh_for(tgt, next(i for i, k in enumerate(courses)
                                      if k is plan_courses[0]))
            except RtqaError:
                continue
            if d.volume_cc <= 0:
                continue
            d98 = float(dose_at_volume(d.edges_gy, d.cum_cc, 0.98 * d.volume_cc))
            d2 = float(dose_at_volume(d.edges_gy, d.cum_cc, 0.02 * d.volume_cc))
            ok = (1 - GRID_TOLERANCE) * d98 <= total <= (1 + GRID_TOLERANCE) * d2
            msg = (f"{tgt.name}: BeamDose x fractions {total:.2f} Gy against the grid's "
                   f"D98%-D2% {d98:.2f}-{d2:.2f} Gy")
            (grid_good if ok else grid_bad).append((msg, tgt.name))
        if bad or good:
            lo, hi = BEAM_DOSE_RATIO
            out.append(_row(
                f"integrity.fractions.{plan.display}", NOT_EVALUATED if bad else PASS,
                ("the RTPLAN's numbers disagree (fraction count edited after the dose was "
                 "computed?): " if bad else "") + "; ".join(bad + good),
                reason=Reason.FRACTIONS_INCONSISTENT if bad else None, source=SRC_PLAN,
                metric="BeamDose x fractions / prescription", limit=f"{lo:g}-{hi:g}",
                plans=labels, fractions=fx))
        if grid_bad or grid_good:
            out.append(_row(
                f"integrity.dose_vs_plan.{plan.display}", NOT_EVALUATED if grid_bad else PASS,
                ("the dose grid does not match the RTPLAN (dose computed for another "
                 "fraction count or prescription?): " if grid_bad else "")
                + "; ".join(m for m, _ in grid_bad + grid_good)
                + f" (tolerance {100 * GRID_TOLERANCE:g}%)",
                reason=Reason.DOSE_INCONSISTENT if grid_bad else None, source=SRC_PLAN,
                metric="BeamDose x fractions within target D98%-D2%",
                rois=tuple(dict.fromkeys(n for _, n in grid_bad + grid_good)),
                plans=labels, fractions=fx, dose_view=DoseView.PHYSICAL))
    return out


# --- plausibility ---------------------------------------------------------------------------

def plausibility(courses: Sequence[CourseDose]) -> list[Check]:
    """The course dose maximum against the plan's prescription; a FRACTION dose that
    already holds the course total."""
    out = []
    for c in courses:
        if c.per_fraction:
            continue
        plan = c.plan
        rx = plan.prescription_gy if plan is not None else None
        n = plan.fractions if plan is not None else None
        dmax = float(np.max(c.grid.dose)) if c.grid.dose.size else 0.0
        frac = c.grid.summation_type == "FRACTION"
        stored = dmax / n if frac and n else None
        lo, hi = PLAUSIBLE_MAX_RATIO
        problems = []
        if frac and n and n > 1:
            if rx and stored >= FRACTION_LOOKS_TOTAL * rx:
                problems.append(
                    f"the FRACTION dose's own maximum {stored:.2f} Gy (one fraction) is already "
                    f"{100 * stored / rx:.0f}% of the course prescription {rx:g} Gy: its values "
                    f"look like the course total; x {n} fractions would give {dmax:.1f} Gy")
            elif not rx and stored > FRACTION_MAX_GY:
                problems.append(
                    f"the FRACTION dose's own maximum is {stored:.1f} Gy per fraction "
                    f"(> {FRACTION_MAX_GY:g} Gy): its values look like a course total; x {n} "
                    f"fractions would give {dmax:.1f} Gy")
        if rx and not problems:
            ratio = dmax / rx
            if ratio > hi:
                problems.append(f"course dose maximum {dmax:.2f} Gy is {ratio:.2f} x the "
                                f"prescription {rx:g} Gy (> {hi:g} x)")
            elif ratio < lo:
                problems.append(f"course dose maximum {dmax:.2f} Gy is only {ratio:.2f} x the "
                                f"prescription {rx:g} Gy (< {lo:g} x): a per-fraction dose "
                                "labelled as the whole plan, or a grid that misses the "
                                "targets?")
        if rx is None and not problems:
            continue
        note = ("; ".join(problems) + ": the dose does not match its RTPLAN and is not "
                "rescaled; check the export") if problems else (
            f"course dose maximum {dmax:.2f} Gy = {dmax / rx:.2f} x the prescription {rx:g} Gy")
        out.append(_row(f"integrity.dose_plausibility.{c.label}",
                        NOT_EVALUATED if problems else PASS, note,
                        reason=Reason.DOSE_INCONSISTENT if problems else None,
                        source=SRC_DOSE + "; " + SRC_PLAN, metric="dose maximum / prescription",
                        value=round(dmax / rx, 3) if rx else None, unit="",
                        limit=f"{lo:g}-{hi:g}", plans=(c.label,), fractions=_fx(c),
                        dose_view=DoseView.PHYSICAL))
    return out


# --- contour damage -------------------------------------------------------------------------

#: A damaged part of a contour is "clearly away from the high-dose region" when the dose
#: grid's maximum over its region (bounding box of the neighbouring contours + margin) is
#: at most this fraction of the course dose maximum.
AWAY_FRACTION = 0.2
AWAY_MARGIN_MM = 5.0
SRC_CONTOURS = "DICOM PS3.3 C.8.8.6 (ROI Contour); " + \
    "AAPM TG-275 (Ford et al. Med Phys 2020;47:e236) plan-review items"


class ContourDamage:
    """Gaps, open contours and points outside the CT image of one ROI, and whether every
    damaged part is clearly away from the high-dose region."""

    def __init__(self, structure: Structure):
        self.structure = structure
        self.findings: list[str] = []
        self.regions: list[tuple[np.ndarray, np.ndarray]] = []  # (lo xyz, hi xyz)
        self.region_max: float | None = None
        self.cleared = False

    def __bool__(self) -> bool:
        return bool(self.findings)


def _box(points: np.ndarray, z_lo: float, z_hi: float) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([points[:, 0].min() - AWAY_MARGIN_MM, points[:, 1].min() - AWAY_MARGIN_MM,
                   z_lo])
    hi = np.array([points[:, 0].max() + AWAY_MARGIN_MM, points[:, 1].max() + AWAY_MARGIN_MM,
                   z_hi])
    return lo, hi


def _region_max(grid, lo: np.ndarray, hi: np.ndarray) -> float | None:
    """Largest grid dose at the nodes inside the box, or at the nearest nodes when the box
    falls between them; None when the box is outside the grid."""
    idx = []
    for axis, c in enumerate((grid.x, grid.y, grid.z)):
        a, b = lo[axis], hi[axis]
        if b < c[0] or a > c[-1]:
            return None
        i0 = max(0, int(np.searchsorted(c, a, side="right")) - 1)
        i1 = min(c.size - 1, int(np.searchsorted(c, b, side="left")))
        idx.append(slice(i0, i1 + 1))
    block = grid.dose[idx[2], idx[1], idx[0]]
    return float(block.max()) if block.size else None


def contour_damage(ss: StructureSet, ct, grid) -> dict[str, ContourDamage]:
    """Per ROI with volume: planes missing inside its z extent, open contours, contour
    points outside the planning CT image; and whether all of it lies clearly away from
    the high-dose region of ``grid`` (the course dose)."""
    out = {}
    dmax = float(np.max(grid.dose)) if grid is not None and grid.dose.size else 0.0
    bounds = ct.xy_bounds if ct is not None else None
    ct_z = ct.z if ct is not None and ct.z.size else None
    for s in ss.structures:
        if s.interpreted_type == "EXTERNAL" or not (s.has_volume or s.open_contours):
            continue
        dmg = ContourDamage(s)
        planes = dict(s.planes)
        for z0, z1, n in s.gaps():
            near = np.concatenate(list(planes[z0]) + list(planes[z1]))
            dmg.findings.append(f"{n} contour plane(s) missing between z = {z0:.1f} and "
                                f"{z1:.1f} mm")
            dmg.regions.append(_box(near, z0, z1))
        if s.open_contours:
            dmg.findings.append(f"{len(s.open_contours)} open contour(s) (OPEN_PLANAR: no "
                                "volume) at z = " + ", ".join(
                                    f"{float(np.mean(p[:, 2])):.1f}" for p in s.open_contours[:5])
                                + (" ..." if len(s.open_contours) > 5 else "") + " mm")
            for p in s.open_contours:
                z = float(np.mean(p[:, 2]))
                dmg.regions.append(_box(p, z - AWAY_MARGIN_MM, z + AWAY_MARGIN_MM))
        if s.has_volume and (bounds is not None or ct_z is not None):
            pts = np.concatenate([np.column_stack([p, np.full(len(p), z)])
                                  for z, polys in s.planes for p in polys])
            outside = np.zeros(len(pts), dtype=bool)
            if bounds is not None:
                x0, x1, y0, y1 = bounds
                outside |= (pts[:, 0] < x0) | (pts[:, 0] > x1) | (pts[:, 1] < y0) | \
                    (pts[:, 1] > y1)
            if ct_z is not None and ct_z.size > 1:
                half = 0.5 * float(np.min(np.diff(ct_z)))
                outside |= (pts[:, 2] < ct_z[0] - half - 1e-3) | \
                    (pts[:, 2] > ct_z[-1] + half + 1e-3)
            if outside.any():
                bad = pts[outside]
                dmg.findings.append(f"{int(outside.sum())} contour point(s) outside the "
                                    "planning CT image")
                dmg.regions.append(_box(bad, float(bad[:, 2].min()) - AWAY_MARGIN_MM,
                                        float(bad[:, 2].max()) + AWAY_MARGIN_MM))
        if not dmg:
            continue
        maxima = [_region_max(grid, lo, hi) for lo, hi in dmg.regions] if grid is not None \
            else [None]
        if dmax > 0 and all(m is not None for m in maxima):
            dmg.region_max = max(maxima)
            dmg.cleared = dmg.region_max <= AWAY_FRACTION * dmax
        out[s.name] = dmg
    return out


def contour_rows(damage: dict[str, ContourDamage], guarded: dict[str, int], grid
                 ) -> list[Check]:
    """One row per damaged ROI: WARN (reported), saying how many limit rows it made NOT
    EVALUATED or why they were kept."""
    out = []
    dmax = float(np.max(grid.dose)) if grid is not None and grid.dose.size else 0.0
    for name, d in damage.items():
        where = ("the damaged part's region receives at most "
                 f"{d.region_max:.2f} Gy" if d.region_max is not None
                 else "the dose in the damaged part's region is unknown (outside the grid)")
        if d.cleared:
            verdict = (f"{where}, <= {100 * AWAY_FRACTION:g}% of the plan maximum "
                       f"{dmax:.2f} Gy: clearly away from the high-dose region; its rows "
                       "are evaluated")
        elif guarded.get(name):
            verdict = (f"{where} (plan maximum {dmax:.2f} Gy): {guarded[name]} limit row(s) "
                       "of this ROI NOT EVALUATED")
        else:
            verdict = f"{where} (plan maximum {dmax:.2f} Gy)"
        out.append(_row(f"integrity.contours.{name}", WARN,
                        f"ROI '{name}': " + "; ".join(d.findings) + f"; {verdict}",
                        reason=Reason.CONTOUR_DAMAGE, source=SRC_CONTOURS, structure=name,
                        rois=(name,), metric="contour damage",
                        value=float(d.region_max) if d.region_max is not None else None,
                        unit="Gy", dose_view=DoseView.PHYSICAL))
    return out


# --- rows a damaged or uncovered structure cannot support -----------------------------------

#: A structure with more than this fraction of its volume outside the dose grid is
#: "mostly outside": its rows that the uncovered part could change are NOT EVALUATED.
MOSTLY_OUTSIDE = 0.5


def _changeable(c: Check) -> bool:
    """Could a part of the structure without dose change the row's verdict from PASS?
    Every metric except a spared volume (CV...) held to a lower bound can."""
    metric = (c.metric or "").replace(" ", "")
    limit = (c.limit or "").replace(" ", "")
    return not (metric.startswith("CV") and limit.startswith(">"))


def _uncovered(o: tuple, dmax: float | None, edge: float | None = None) -> str | None:
    """Why the part of a ROI outside the dose grid could change its rows, or None.
    ``o``: (cc outside, total cc[, maximum dose on the covered part, Gy]); ``dmax``, ``edge``:
    the course dose maximum and the maximum on the grid's outer faces (Gy)."""
    if not o or o[1] <= 0 or o[0] <= 0:
        return None
    frac = o[0] / o[1]
    if frac > MOSTLY_OUTSIDE:
        return f"is {100 * frac:.2f}% outside the dose grid ({o[0]:.2f} of {o[1]:.2f} cc)"
    if len(o) > 2 and dmax and o[2] is not None and edge is not None and \
            min(o[2], edge) > AWAY_FRACTION * dmax:
        return (f"is {100 * frac:.2f}% outside the dose grid ({o[0]:.2f} of {o[1]:.2f} cc), "
                f"its covered part receives up to {o[2]:.2f} Gy and the grid's edge up to "
                f"{edge:.2f} Gy (> {100 * AWAY_FRACTION:.0f}% of the course maximum "
                f"{dmax:.2f} Gy): the grid is cut through dose")
    return None


def guard_rows(checks: Sequence[Check], damage: dict[str, ContourDamage],
               outside: dict[str, tuple], dmax: float | None = None,
               edge: float | None = None) -> tuple[list[Check], dict[str, int]]:
    """Organ-at-risk rows on a damaged ROI (not cleared) or on a ROI mostly outside the
    dose grid (``outside``: name -> (cc outside, total cc[, covered maximum Gy])), or
    partly outside where the grid is cut through dose (covered part and grid faces
    ``edge`` above ``AWAY_FRACTION`` of the course maximum ``dmax``), become NOT EVALUATED
    (``CONTOUR_DAMAGE`` / ``OUTSIDE_DOSE_GRID``) when they PASS or WARN and the missing
    part could change them; a FAIL stands (the missing part can only add to it or is
    reported by the ROI's row). Returns the rows and, per ROI, how many were changed."""
    out, changed = [], {}
    for c in checks:
        if c.category != "organs at risk" or c.status not in (PASS, WARN) or \
                c.priority != "mandatory" or not c.rois:
            out.append(c)
            continue
        why, reason = [], None
        for r in c.rois:
            d = damage.get(r)
            if d and not d.cleared:
                why.append(f"ROI '{r}' has damaged contours ({'; '.join(d.findings)}), not "
                           "clearly away from the high-dose region")
                reason = reason or Reason.CONTOUR_DAMAGE
            uncovered = _uncovered(outside.get(r), dmax, edge)
            if uncovered and _changeable(c):
                why.append(f"ROI '{r}' {uncovered}: its uncovered part could change "
                           f"{c.metric}")
                reason = reason or Reason.OUTSIDE_DOSE_GRID
        if not why:
            out.append(c)
            continue
        for r in c.rois:
            changed[r] = changed.get(r, 0) + 1
        was = f"{c.value:.4g} {c.unit or ''}".strip() if c.value is not None else "no value"
        note = "; ".join(why) + f" (on the drawn/covered part: {was}, {c.status})"
        out.append(replace(c, status=NOT_EVALUATED, reason=reason,
                           note=note + ("; " + c.note if c.note else "")))
    return out, changed


# --- the family on a plan context -----------------------------------------------------------

def evaluate(ctx, checks: Sequence[Check]):
    """The accounting family on a plan context (``rtqa.checks.context``), run after the
    other families: returns (their ``checks`` with the rows a damaged or mostly uncovered
    ROI cannot support made NOT EVALUATED, this family's ``Evaluation``, a ``PlanInfo``
    for every RTPLAN, a ``DoseFileInfo`` for every RTDOSE)."""
    from rtqa.checks.context import Evaluation
    export, ss, options = ctx.export, ctx.structure_set, ctx.options
    courses = ctx.courses
    frame = ss.frame_of_reference_uid
    out = dose_accounting(export)
    out += several_plans(courses, options.sum_plans)
    infos, rows = plan_listing(export, courses, frame, options.plan, options.fractions)
    out += rows
    out += fraction_consistency(
        export, courses, ss, lambda s, i: ctx.dose.dvh(s, DoseView.PHYSICAL, plans=(i,)))
    out += plausibility(courses)
    grid = ctx.dose.grid(DoseView.PHYSICAL)
    ct = export.ct_for(ss)
    damage = contour_damage(ss, ct, grid)
    outside = {s.name: (d.outside_cc, d.total_volume_cc, d.max_gy if d.volume_cc > 0 else None)
               for s, d in ctx.dose.computed()}
    dmax = edge = None
    if grid is not None and grid.dose.size:
        d = grid.dose
        dmax = float(np.max(d))
        edge = float(max(np.max(d[[0, -1]]), np.max(d[:, [0, -1]]), np.max(d[:, :, [0, -1]])))
    guarded_checks, guarded = guard_rows(checks, damage, outside, dmax, edge)
    guarded_checks = _guard_fractions(guarded_checks, out)
    out += contour_rows(damage, guarded, grid)
    return guarded_checks, Evaluation(tuple(out)), infos, dose_files(export, frame)


def _guard_fractions(checks: Sequence[Check], rows: Sequence[Check]) -> list[Check]:
    """BED / EQD2 rows that PASS or WARN on a plan whose fraction count contradicts its own
    numbers become NOT EVALUATED (``FRACTIONS_INCONSISTENT``): their conversion used that
    count (a fraction count edited after the dose was computed must not pass a lesion)."""
    bad = {p for r in rows if r.reason == Reason.FRACTIONS_INCONSISTENT
           and r.status == NOT_EVALUATED for p in r.plans}
    out = []
    for c in checks:
        if bad and c.status in (PASS, WARN) and set(c.plans) & bad and \
                c.dose_view in (DoseView.BED, DoseView.EQD2):
            c = replace(c, status=NOT_EVALUATED, reason=Reason.FRACTIONS_INCONSISTENT,
                        note=f"converted with the fraction count of "
                             f"{', '.join(sorted(set(c.plans) & bad))}, which contradicts "
                             f"the plan's own numbers (see integrity.fractions); "
                             + c.note)
        out.append(c)
    return out


def guard_lesions(results, checks: Sequence[Check]):
    """Lesion results whose ``lesion.<name>.bed`` row was made NOT EVALUATED here."""
    ne = {c.id for c in checks if c.status == NOT_EVALUATED}
    return tuple(replace(r, status=NOT_EVALUATED, bed_gy=r.bed_gy,
                         note="see " + f"lesion.{r.name}.bed" + ": not evaluated; " + r.note)
                 if f"lesion.{r.name}.bed" in ne and r.status != NOT_EVALUATED else r
                 for r in results)
