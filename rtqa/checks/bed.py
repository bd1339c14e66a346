"""Per-lesion BED: which plan treats which lesion, the protocol's BED rule, and the
oligoprogression criteria (lesion and organ counts).

Fractions (no plan, no guess)
-----------------------------
Every course is converted with its own plan's NumberOfFractionsPlanned, or with the
user's ``fractions_override`` (``--fractions N``, applied to every course). A course
without an RTPLAN (or whose RTPLAN has no fraction count) and no override raises
``RtqaError``: the BED cannot be computed. A dose still per fraction (DoseSummationType
FRACTION that the reader could not scale) is multiplied by the override (in the dose
service, ``rtqa.dvh.service``).

Which plan treats a lesion
--------------------------
The coverage structure is the lesion's outermost target of the first class in the rule's
``coverage_structures`` that it has (PTV, else GTV). A plan *contributes* to the lesion
when its physical coverage metric there (e.g. D95%) is at least ``CONTRIBUTION_FRACTION``
(20 %) of the plan's reference dose: its highest prescription (``Plan.prescription_gy``),
or the maximum of its dose grid when the prescription is unknown. Leaving out a plan
below that level can only lower the BED found (fail-safe for a ">=" rule). When no plan
contributes, every plan is summed and the lesion is marked untreated in the note.

BED of the coverage metric (Gy, LQ with the rule's α/β)
------------------------------------------------------
* One contributing plan of n fractions: the physical metric D (Gy) on the structure's
  DVH, then BED = D (1 + D / (n α/β)) (``rtqa.dvh.radiobiology.bed``; BED is monotone in
  dose, so this is the metric of the voxel-wise BED distribution). A ``Mean`` metric is
  taken on the DVH re-expressed in BED (``rtqa.dvh.convert.convert_dvh``).
* Several contributing plans: the metric of the DVH of the voxel-wise BED sum, each plan
  converted with its own n (sequential delivery; the dose service's BED view of those
  plans, ``rtqa.dvh.service``), or of the BED of their voxel-wise physical sum in the
  largest n (concurrent delivery: same days). Unless the delivery is stated
  (``--delivery``), both are computed and the lower BED is used (fail-safe for coverage).
The rule holds when ``rule.bed_limit.holds(BED)`` (exactly 60 Gy passes ">= 60"). A
coverage structure reaching outside a contributing plan's dose grid by more than
``OUTSIDE_TOLERANCE`` of its volume, or any other failure to compute, gives NOT EVALUATED.

Prescribed BED
--------------
A row of its own, ``lesion.<name>.prescribed_bed`` (mandatory, the rule's limit, e.g.
BED10 >= 60 Gy): the BED of what the RTPLAN prescribes, separately from the achieved
coverage (``_prescribed_row``). Per contributing plan: the TargetPrescription linked (ReferencedROINumber) to the
coverage ROI, else to another ROI of the lesion; else, if the plan treats this lesion
only and its prescriptions are one dose, ``Plan.prescription_gy``; else
unknown (never the highest of several unlinked prescriptions). The prescribed BED is the sum over the
contributing plans (None if any is unknown). An achieved BED more than
``PRESCRIPTION_TOLERANCE`` (2 %) below it is noted and reported as a WARN check
``lesion.<name>.prescription`` (a smaller shortfall is within what a DVH on a 2-3 mm
dose grid reads low at the steep edge of a small PTV, and is not flagged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rtqa.constraints import Limit, LesionRule, OligoprogressionRule
from rtqa.dvh.convert import convert_dvh
from rtqa.dvh.data import DVHData
from rtqa.errors import RtqaError
from rtqa.checks.lesions import UNKNOWN_ORGAN, Lesion, Target
from rtqa.dvh.metrics import Metric, parse_metric
from rtqa.dvh.metrics import evaluate as metric_value
from rtqa.dvh.radiobiology import bed
from rtqa.dvh.service import DELIVERIES, DoseService
from rtqa.reading.export import CourseDose
from rtqa.results import (FAIL, NOT_EVALUATED, PASS, WARN, Category, Check, DoseView,
                          LesionResult, Reason)

__all__ = ["LesionEvaluation", "evaluate", "evaluate_lesions", "oligoprogression_checks",
           "fractions_of", "coverage_target", "CONTRIBUTION_FRACTION"]

CONTRIBUTION_FRACTION = 0.20
OUTSIDE_TOLERANCE = 0.001  # fraction of the coverage structure's volume
PRESCRIPTION_TOLERANCE = 0.02  # relative BED shortfall below the prescription not flagged
NO_PLAN = "no RTPLAN: the number of fractions is unknown; give --fractions N"


@dataclass(frozen=True)
class LesionEvaluation:
    """One ``LesionResult`` and one ``lesions`` check per lesion (plus WARN checks)."""

    results: tuple[LesionResult, ...]
    checks: tuple[Check, ...]


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def fractions_of(courses: Sequence[CourseDose], override: int | None = None
                 ) -> tuple[int, ...]:
    """Fraction count of each course: ``override`` or its RTPLAN's; raises ``RtqaError``
    when it is unknown (no plan, no guess)."""
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, (int, np.integer)) \
                or override < 1:
            raise RtqaError(f"--fractions must be a whole number >= 1, got {override!r}")
        return (int(override),) * len(courses)
    out = []
    for c in courses:
        if c.plan is None:
            raise RtqaError(NO_PLAN + f" (dose {c.grid.path.name})")
        if not c.plan.fractions:
            raise RtqaError(f"RTPLAN '{c.plan.display}' has no NumberOfFractionsPlanned: "
                            "the number of fractions is unknown; give --fractions N",
                            c.plan.path)
        out.append(int(c.plan.fractions))
    return tuple(out)


def coverage_target(lesion: Lesion, classes: Sequence[str]) -> Target | None:
    """The lesion's outermost target of the first class in ``classes`` it has."""
    for cls in classes:
        found = lesion.of_class(cls)
        if found:
            return max(found, key=lambda t: t.volume_cc)
    return None


def _reference_gy(c: CourseDose) -> float:
    rx = c.plan.prescription_gy if c.plan else None
    return float(rx) if rx else float(np.max(c.grid.dose))


def _bed_of(metric: Metric, dvh: DVHData, n: int, ab: float) -> tuple[float, float]:
    """(physical metric value, its BED) for one plan of n fractions (Gy)."""
    dose = metric_value(metric, dvh)
    if metric.kind == "Mean":
        return dose, metric_value(metric, convert_dvh(dvh, "BED", n, ab))
    return dose, float(bed(max(dose, 0.0), n, ab))


def _outside(dvh: DVHData) -> bool:
    return dvh.outside_cc > OUTSIDE_TOLERANCE * dvh.total_volume_cc


@dataclass(frozen=True, eq=False)
class _Coverage:
    """Pass 1 of one lesion: coverage target, physical DVH and metric per course (None
    where the structure misses the grid), contributing course indices, notes."""

    target: Target | None
    dvhs: tuple[DVHData | None, ...] = ()
    values: tuple[float | None, ...] = ()
    contributors: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()
    error: str = ""
    reason: Reason | None = None


def _coverage(lesion: Lesion, courses, rule: LesionRule, metric: Metric,
              dose: DoseService) -> _Coverage:
    target = coverage_target(lesion, rule.coverage_structures)
    if target is None:
        return _Coverage(None, error=f"no {' or '.join(rule.coverage_structures)} in this "
                                     "lesion: the coverage rule cannot be applied",
                         reason=Reason.STRUCTURE_MISSING)
    dvhs, values, notes = [], [], []
    for i, c in enumerate(courses):
        try:
            d = dose.dvh(target.structure, DoseView.PHYSICAL, plans=(i,))
            dvhs.append(d)
            values.append(metric_value(metric, d))
        except RtqaError as exc:
            dvhs.append(None)
            values.append(None)
            notes.append(f"{c.label}: {exc.reason}")
    ok = [i for i, v in enumerate(values) if v is not None]
    contrib = tuple(i for i in ok
                    if values[i] >= CONTRIBUTION_FRACTION * _reference_gy(courses[i]))
    if not ok:
        return _Coverage(target, tuple(dvhs), tuple(values), (), tuple(notes),
                         f"{target.roi} has no dose in any plan", Reason.OUTSIDE_DOSE_GRID)
    if not contrib:
        notes.append(f"no plan gives {metric} >= {100 * CONTRIBUTION_FRACTION:.0f}% of its "
                     "prescription here (lesion untreated?): BED from all plans summed")
        contrib = tuple(ok)
    return _Coverage(target, tuple(dvhs), tuple(values), contrib, tuple(notes))


def _prescription(course: CourseDose, lesion: Lesion, target: Target,
                  treats_only_this: bool) -> float | None:
    plan = course.plan
    if plan is None:
        return None
    by_roi: dict[int, float] = {}   # several prescriptions linked to one ROI: the lowest
    for p in plan.prescriptions:     # (conservative for a lower bound on BED)
        if p.roi_number is not None:
            by_roi[p.roi_number] = min(p.dose_gy, by_roi.get(p.roi_number, p.dose_gy))
    for t in (target, *lesion.targets):
        if t.roi_number in by_roi:
            return by_roi[t.roi_number]
    if not treats_only_this or len({p.dose_gy for p in plan.prescriptions}) > 1:
        # several different prescriptions, none linked to this lesion: which one is its
        # own cannot be told (their maximum, Plan.prescription_gy, is never assumed)
        return None
    return plan.prescription_gy


def _check(lesion: Lesion, rule: LesionRule, target: Target | None, status: str,
           value: float | None, note: str, plans: tuple[str, ...], fx: tuple[int, ...],
           reason: Reason | None) -> Check:
    return Check(
        id=f"lesion.{lesion.name}.bed", category=Category.LESIONS, status=status,
        source=rule.source, structure=target.roi if target else None,
        rois=(target.roi,) if target else (),
        metric=f"BED{rule.alpha_beta:g} of {rule.coverage_metric}", value=value, unit="Gy",
        limit=str(rule.bed_limit), note=note, dose_view=DoseView.BED,
        alpha_beta=float(rule.alpha_beta), plans=plans, fractions=fx,
        reason=reason if status == NOT_EVALUATED else None)


def _prescribed_row(lesion: Lesion, cov: _Coverage, courses, ns, rule: LesionRule,
                    treated_by: dict[int, int], used: tuple[int, ...],
                    plans: tuple[str, ...], fx: tuple[int, ...], blocked: Reason | None,
                    sum_plans: bool) -> tuple[float | None, Check]:
    """(prescribed BED, the ``lesion.<name>.prescribed_bed`` row): the BED (the rule's
    α/β) of the RTPLAN prescription of the plan(s) treating the lesion, D (1 + d/(α/β))
    with D = TargetPrescriptionDose and d = D / n, summed over the contributing plans;
    it must meet the rule's limit on its own (mandatory), whatever the dose achieved:
    a lesion prescribed 34 Gy in 5 fx (BED10 57.1 Gy) FAILs even when its D95% is above
    the prescription. NOT EVALUATED (never absent) when no prescription can be tied to
    the lesion (``PRESCRIPTION_UNLINKED``: none linked to its ROIs and the plan treats
    other lesions too), when it has no coverage structure or no plan reaches it, or when
    several unconfirmed plans treat it (``PLANS_UNCONFIRMED``)."""
    ab = float(rule.alpha_beta)
    target = cov.target
    base = dict(id=f"lesion.{lesion.name}.prescribed_bed", category=Category.LESIONS,
                source=rule.source + "; prescription: RTPLAN DoseReferenceSequence "
                "TargetPrescriptionDose (or BeamDose x fractions) and "
                "NumberOfFractionsPlanned", structure=target.roi if target else None,
                rois=(target.roi,) if target else (), metric=f"BED{ab:g} of Rx[Gy]",
                unit="Gy", limit=str(rule.bed_limit), dose_view=DoseView.BED,
                alpha_beta=ab, plans=plans, fractions=fx)
    if target is None or not used:
        why = cov.error or "no plan reaches this lesion"
        return None, Check(status=NOT_EVALUATED, reason=cov.reason or Reason.OTHER,
                           note=f"{why}: no prescription can be tied to it", **base)
    if blocked == Reason.PLANS_UNCONFIRMED and not sum_plans:
        return None, Check(status=NOT_EVALUATED, reason=Reason.PLANS_UNCONFIRMED,
                           note="several plans treat this lesion, not confirmed as one "
                                "course (--sum-plans): their prescriptions are not added",
                           **base)
    rx = [_prescription(courses[i], lesion, target, treated_by.get(i) == 1) for i in used]
    no_plan = [courses[i].label for i in used if courses[i].plan is None]
    if no_plan:
        return None, Check(
            status=NOT_EVALUATED, reason=Reason.PRESCRIPTION_UNLINKED,
            note=f"no RTPLAN for {', '.join(no_plan)}: the prescription is unknown, its "
                 "BED cannot be judged (give the RTPLAN)", **base)
    missing = [courses[i].label for r, i in zip(rx, used) if r is None]
    if missing:
        return None, Check(
            status=NOT_EVALUATED, reason=Reason.PRESCRIPTION_UNLINKED,
            note=f"no prescription of {', '.join(missing)} can be tied to this lesion: no "
                 "TargetPrescriptionDose is linked (ReferencedROINumber) to its ROIs "
                 f"({', '.join(lesion.roi_names)}) and the plan treats other lesions too "
                 "or carries several different prescriptions; its prescribed BED cannot "
                 "be judged", **base)
    parts = [(r, ns[i], float(bed(r, ns[i], ab))) for r, i in zip(rx, used)]
    total = float(sum(b for _, _, b in parts))
    text = " + ".join(f"{r:g} Gy in {n} fx ({r / n:.2f} Gy/fx): BED{ab:g} {b:.2f} Gy"
                      for r, n, b in parts)
    if len(parts) > 1:
        text += f"; sum {total:.2f} Gy (sequential courses)"
    ok = rule.bed_limit.holds(total)
    if not ok:
        text += (f"; the prescription itself is below the protocol's BED{ab:g} "
                 f"{rule.bed_limit}, whatever the dose achieved")
    return total, Check(status=PASS if ok else FAIL, value=total, note="prescribed " + text,
                        **base)


def _alternatives(cov: _Coverage, courses, ns, used, rule: LesionRule, metric: Metric,
                  ab: float) -> str:
    """'' unless the contributing courses come from several RTPLANs (the fraction groups of
    one RTPLAN are one course): several plans treating one lesion are alternatives (a
    re-plan, a copy) or one course, which only the user can tell; never summed
    unconfirmed, whether each plan alone meets the rule or not (a failing plan plus a
    second copy of its dose would pass on the sum)."""
    plan_ids = {courses[i].plan.sop_instance_uid if courses[i].plan else courses[i].label
                for i in used}
    if len(plan_ids) < 2:
        return ""
    try:
        alone = [_bed_of(metric, cov.dvhs[i], ns[i], ab)[1] for i in used]
        each = ", ".join(f"'{courses[i].label}' {b:.1f} Gy" for i, b in zip(used, alone))
    except RtqaError:
        each = ", ".join(f"'{courses[i].label}'" for i in used)
    return (f"{len(plan_ids)} plans treat {cov.target.roi} (BED{ab:g} of {metric} of each "
            f"alone: {each}): alternative plans, not one course? Not summed: check one "
            "plan at a time (--plan LABEL, or give its files), or confirm with --sum-plans "
            "that they are delivered together")


def _evaluate_one(lesion: Lesion, cov: _Coverage, courses, ns, rule: LesionRule,
                  metric: Metric, dose_service: DoseService, override: int | None,
                  treated_by: dict[int, int], sum_plans: bool = False,
                  delivery: str | None = None
                  ) -> tuple[LesionResult, list[Check]]:
    ab = float(rule.alpha_beta)
    notes = list(cov.notes)
    used = cov.contributors
    plans = tuple(courses[i].label for i in used)
    fx = tuple(ns[i] for i in used)
    base = dict(name=lesion.name, targets=lesion.roi_names, plans=plans, fractions=fx,
                metric=rule.coverage_metric, alpha_beta=ab,
                required_bed_gy=rule.bed_limit.value, organ=lesion.organ,
                comparator=rule.bed_limit.comparator)
    dose = value = prescribed = None
    status, error, reason = NOT_EVALUATED, cov.error, cov.reason
    if not error:
        outside = [courses[i].label for i in used if _outside(cov.dvhs[i])]
        if outside:
            error = (f"{cov.target.roi} reaches outside the dose grid of "
                     f"{', '.join(outside)}: its {metric} cannot be trusted")
            reason = Reason.OUTSIDE_DOSE_GRID
    if not error and len(used) > 1 and not sum_plans:
        error = _alternatives(cov, courses, ns, used, rule, metric, ab)
        reason = Reason.PLANS_UNCONFIRMED if error else None
    if not error:
        try:
            if len(used) == 1:
                i = used[0]
                dose, value = _bed_of(metric, cov.dvhs[i], ns[i], ab)
                notes.insert(0, f"{metric} {dose:.2f} Gy in {ns[i]} fx ({plans[0]}) -> "
                                f"BED{ab:g} {value:.2f} Gy")
            else:
                found = {}
                for how in ((delivery,) if delivery else DELIVERIES):
                    d = dose_service.dvh(cov.target.structure, DoseView.BED, plans=used,
                                         alpha_beta=ab, delivery=how, fractions=max(fx))
                    if _outside(d):
                        reason = Reason.OUTSIDE_DOSE_GRID
                        raise RtqaError(f"{cov.target.roi} reaches outside the summed dose "
                                        "grid")
                    found[how] = metric_value(metric, d)
                how = min(found, key=lambda k: (found[k], k))  # the lower BED: fail-safe
                value = found[how]
                parts = " + ".join(f"{p} ({n} fx)" for p, n in zip(plans, fx))
                if how == "concurrent":
                    text = (f"{metric} of the BED{ab:g} of the voxel-wise physical sum of "
                            f"{parts} in {max(fx)} fractions (concurrent delivery)")
                else:
                    text = (f"{metric} of the voxel-wise BED{ab:g} sum of {parts} "
                            "(sequential delivery)")
                text += f": {value:.2f} Gy"
                if len(found) > 1:
                    other = "sequential" if how == "concurrent" else "concurrent"
                    text += (f" (the lower of the two deliveries; {other}: "
                             f"{found[other]:.2f} Gy; --delivery to state it)")
                notes.insert(0, text)
            status = PASS if rule.bed_limit.holds(value) else FAIL
        except RtqaError as exc:
            error, value, dose = exc.reason, None, None
            reason = reason or Reason.OTHER
    if error:
        notes.insert(0, error)
    checks = []
    prescribed, rx_row = _prescribed_row(lesion, cov, courses, ns, rule, treated_by, used,
                                         plans, fx, reason if error else None, sum_plans)
    if cov.target is not None and used and prescribed is not None:
        rx = [_prescription(courses[i], lesion, cov.target, treated_by.get(i) == 1)
              for i in used]
        if value is not None and value < prescribed * (1 - PRESCRIPTION_TOLERANCE):
            short = 100 * (1 - value / prescribed)
            text = (f"achieved BED{ab:g} {_fmt(value)} Gy is {short:.1f}% below the "
                    f"prescribed "
                    f"{_fmt(prescribed)} Gy (" + " + ".join(
                        f"{r:g} Gy in {ns[i]} fx" for r, i in zip(rx, used)) + ")")
            notes.append(text)
            checks.append(Check(
                id=f"lesion.{lesion.name}.prescription", category=Category.LESIONS,
                status=WARN, dose_view=DoseView.BED, alpha_beta=ab, plans=plans,
                fractions=fx,
                source="RTPLAN DoseReferenceSequence TargetPrescriptionDose ("
                       + ", ".join(plans) + ")",
                structure=cov.target.roi, rois=(cov.target.roi,),
                metric=f"BED{ab:g} of {rule.coverage_metric}", value=value, unit="Gy",
                limit=f">= {_fmt(prescribed)}", note=text))
    if lesion.organ_note:
        notes.append(f"organ {lesion.organ}: {lesion.organ_note}")
    notes.extend(lesion.notes)
    if override is not None:
        notes.append(f"fractions from --fractions {override}")
    note = "; ".join(notes)
    result = LesionResult(**base, dose_gy=dose, bed_gy=value, status=status,
                          prescribed_bed_gy=prescribed, note=note)
    return result, [_check(lesion, rule, cov.target, status, value, note, plans, fx,
                           reason or Reason.OTHER), rx_row, *checks]


def evaluate_lesions(lesions: Sequence[Lesion], courses: Sequence[CourseDose],
                     rule: LesionRule, *, fractions_override: int | None = None,
                     dose: DoseService | None = None, sum_plans: bool = False,
                     delivery: str | None = None
                     ) -> LesionEvaluation:
    """Evaluate the protocol's per-lesion BED rule (see the module docstring).

    ``courses``: the course doses in the lesions' frame of reference. ``dose``: the dose
    service of those courses (the plan context's; default one built here without CT
    slice positions). ``sum_plans``: the user confirmed that several plans each
    meeting the rule alone at one lesion are delivered together (else that lesion is NOT
    EVALUATED: they look like alternatives). ``delivery``: how several plans treating
    one lesion add up ("sequential": sum of BED; "concurrent": BED of the physical sum
    in the largest fraction count); None: both, and the lower BED is used. Raises ``RtqaError`` when a fraction count
    is unknown or there is no dose at all.
    """
    metric = parse_metric(rule.coverage_metric)
    if not lesions:
        return LesionEvaluation((), (Check(
            id="lesions.found", category=Category.LESIONS, status=NOT_EVALUATED,
            source=rule.source, reason=Reason.STRUCTURE_MISSING,
            note="no target structure (GTV, CTV, ITV, PTV) found: no lesion to check"),))
    if not courses:
        raise RtqaError("no RTDOSE: there is no dose to evaluate the lesions on")
    ns = fractions_of(courses, fractions_override)
    if dose is None:
        dose = DoseService(courses, fractions=ns)
    elif dose.fractions != ns or len(dose.courses) != len(courses):
        raise ValueError("the dose service does not hold these courses and fraction counts")
    courses = dose.courses  # per-fraction doses multiplied by their fraction count
    covs = [_coverage(les, courses, rule, metric, dose) for les in lesions]
    treated_by: dict[int, int] = {}
    for cov in covs:
        for i in cov.contributors:
            treated_by[i] = treated_by.get(i, 0) + 1
    results, checks = [], []
    for les, cov in zip(lesions, covs):
        r, cs = _evaluate_one(les, cov, courses, ns, rule, metric, dose,
                              fractions_override, treated_by, sum_plans, delivery)
        results.append(r)
        checks.extend(cs)
    return LesionEvaluation(tuple(results), tuple(checks))


def oligoprogression_checks(lesions: Sequence[Lesion], rule: OligoprogressionRule | None
                            ) -> list[Check]:
    """Protocol checks: number of lesions <= ``max_lesions`` and of organs <= ``max_organs``.

    Each GTV counts as a lesion (a PTV holding two GTVs counts twice). A lesion of unknown
    organ may lie in an organ of its own: the organ check passes only if it would pass
    even then, fails if the known organs already exceed the limit, and is NOT EVALUATED
    in between. No lesion at all: both NOT EVALUATED.
    """
    if rule is None:
        return []
    n_lim, o_lim = Limit("<=", rule.max_lesions), Limit("<=", rule.max_organs)
    count = sum(max(1, les.n_gtv) for les in lesions)
    listing = ", ".join(f"{les.name} ({les.organ or UNKNOWN_ORGAN})" for les in lesions)
    rois = tuple(les.targets[0].roi for les in lesions if les.targets)
    common = dict(category=Category.PROTOCOL, source=rule.source, rois=rois,
                  dose_view=DoseView.NONE)
    if not lesions:
        why = "no lesion found (no GTV, CTV, ITV or PTV): cannot count"
        return [Check("protocol.oligoprogression.lesions", status=NOT_EVALUATED,
                      metric="lesions", unit="lesions", limit=str(n_lim), note=why,
                      reason=Reason.STRUCTURE_MISSING, **common),
                Check("protocol.oligoprogression.organs", status=NOT_EVALUATED,
                      metric="organs", unit="organs", limit=str(o_lim), note=why,
                      reason=Reason.STRUCTURE_MISSING, **common)]
    extra = "" if count == len(lesions) else f" ({count} GTVs in {len(lesions)} PTV groups)"
    lesion_check = Check(
        "protocol.oligoprogression.lesions", status=PASS if n_lim.holds(count) else FAIL,
        metric="lesions", value=float(count), unit="lesions", limit=str(n_lim),
        note=f"{count} lesion(s){extra}: {listing}", **common)
    known = sorted({les.organ for les in lesions if les.organ and les.organ != UNKNOWN_ORGAN})
    unknown = [les.name for les in lesions if not les.organ or les.organ == UNKNOWN_ORGAN]
    lo, hi = len(known), len(known) + len(unknown)
    note = f"{lo} organ(s): {', '.join(known) or 'none'}"
    if unknown:
        note += f"; organ unknown for {', '.join(unknown)} (up to {hi} organs)"
    reason = None
    if not o_lim.holds(lo):
        status = FAIL
    elif o_lim.holds(hi):
        status = PASS
    else:
        status, reason = NOT_EVALUATED, Reason.LESION_ORGAN_UNKNOWN
        first = next(les for les in lesions if not les.organ or les.organ == UNKNOWN_ORGAN)
        note += (": cannot tell whether the limit is met; name the organ of each such lesion, "
                 f"e.g. --lesion-organ {first.targets[0].roi if first.targets else first.name}"
                 "=<organ>")
    organ_check = Check("protocol.oligoprogression.organs", status=status, metric="organs",
                        value=float(lo), unit="organs", limit=str(o_lim), note=note,
                        reason=reason, **common)
    return [lesion_check, organ_check]


def evaluate(ctx) -> "Evaluation":
    """The lesion family on a plan context (``rtqa.checks.context``): one BED row (and
    ``LesionResult``) per lesion, a NOT EVALUATED row per target ROI without volume, and
    the coverage structure's physical DVH curve with its D95 point marked."""
    from rtqa.checks.context import Evaluation, curve
    from rtqa.dvh.metrics import dose_at_volume
    rule = ctx.protocol.lesions
    empty = _empty_targets(ctx)
    if rule is None:
        return Evaluation(tuple(empty))
    ev = evaluate_lesions(ctx.lesions, ctx.courses, rule,
                          fractions_override=ctx.fractions_override, dose=ctx.dose,
                          sum_plans=ctx.options.sum_plans, delivery=ctx.options.delivery)
    curves = []
    by_name = {les.name: les for les in ctx.lesions}
    for r in ev.results:
        les = by_name.get(r.name)
        target = coverage_target(les, rule.coverage_structures) if les else None
        if target is None:
            continue
        try:
            d = ctx.dose.dvh(target.structure)
        except RtqaError:
            continue
        d95 = dose_at_volume(d.edges_gy, d.cum_cc, 0.95 * d.volume_cc)
        text = "n/a" if r.bed_gy is None else f"{r.bed_gy:.1f} Gy"
        curves.append(curve(target.roi, d, [(float(d95), 95.0, f"{r.metric} (BED {text})",
                                             r.status)]))
    return Evaluation(ev.checks + tuple(empty), tuple(curves), (), ev.results)


def _empty_targets(ctx) -> list[Check]:
    """A target ROI without volume cannot be placed in a lesion: NOT EVALUATED (ERROR),
    never left out silently (the lesion would be judged on its other targets)."""
    from rtqa.checks.lesions import empty_targets
    rule = ctx.protocol.lesions
    source = rule.source if rule else "lesion discovery"
    out = []
    for s in empty_targets(ctx.structure_set, ctx.names):
        why = "; ".join(s.warnings[:3]) if s.warnings else "it has no closed contours"
        out.append(Check(
            f"lesion.target_without_volume.{s.name}", Category.LESIONS, NOT_EVALUATED,
            source, structure=s.name, rois=(s.name,), metric="target volume",
            reason=Reason.STRUCTURE_EMPTY,
            note=f"target ROI '{s.name}' has no volume ({why}): its lesion cannot be "
                 "evaluated; remove the ROI from the export if it is an unused placeholder"))
    return out
