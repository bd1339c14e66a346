"""Organ-at-risk constraint rows of a protocol, evaluated on a plan (category
"organs at risk" of the report).

``evaluate_oars`` selects the protocol's rows for the fraction count
(``Protocol.select``), finds each row's structure among the plan's ROIs
(``rtqa.checks.names.match_rois``; never guessed), builds expressions geometrically
(``rtqa.dvh.structops``), computes DVHs and evaluates the TG-263 metric (``rtqa.dvh.metrics``).
One ``Check`` per applied row; rules (fail closed):

* PASS / FAIL from ``limit.holds(value)``; ``priority`` from the row ("optimal" rows that
  fail stay FAIL; the overall status ignores them).
* Structure not found:
  - no operand of the expression matches any ROI: NOT EVALUATED, priority "optimal"
    (the protocol lists organs that a given plan does not have), except *required* rows
    (the protocol file's own rows and the sets in ``REQUIRED_SET_FILES``, i.e. the
    trial's normal-liver rule): NOT EVALUATED, mandatory;
  - an operand ambiguous (two ROIs match, candidates listed) or only some operands found
    (``Lung_L + Lung_R`` without ``Lung_R``): NOT EVALUATED, mandatory;
  - a subtracted target class the plan lacks (``- GTV`` without GTV) removes nothing
    (noted). A positive operand's class must exist.
* ``"none"`` selections (no enabled, derived or protocol row for the fraction count) of
  an organ the plan has: NOT EVALUATED, mandatory, reason ``NO_LIMIT`` (a contoured organ
  without a limit is never silently fine); ``"exempt"`` selections (the protocol's
  ``[limits] no_limit`` names the organ): WARN "no limit by protocol" with the protocol's
  justification. Disabled rows are not reported.
* Derived rows (LQ isoeffect, ``rtqa.constraints.derivation``) carry
  ``Check.derivation`` ("derived (LQ) from <source>, <n> fx"); informative conventional
  rows (an SBRT row for the same structure and metric applies) are priority "optimal".
* Dose: every DVH comes from the plan context's dose service (``rtqa.dvh.service``):
  physical rows on the course dose; EQD2/BED rows (and conventional rows converted
  to EQD2 by ``select``) on the exact dose-axis conversion of the physical DVH for one
  plan. Several plans (in an order that does not depend on files or labels):

  - delivered concurrently (same days) with one fraction count n: the rows of n on the
    physical sum, EQD2/BED rows on the LQ dose of the physical sum in n fractions;
  - otherwise (different fraction counts, or ``delivery="sequential"``): each plan's
    fraction-specific physical rows on that plan's own dose with its own count (ids
    ``...@<plan label>``; "no constraint" WARNs per plan too), and every other row once
    on the voxel-wise sum: physical rows for any count on the physical sum, EQD2/BED
    rows sequential (each plan's EQD2/BED with its own count, summed) or concurrent
    (LQ dose of the physical sum in the fewest fractions of the plans).
  - Delivery not stated: concurrent, the conservative assumption for organs (the LQ dose
    of a physical sum in the fewest fractions is at least the sequential sum in every
    voxel).
* Spared-volume rules (a V/CV[cc] metric with a lower limit, e.g. the normal-liver rule
  ``CV15Gy[cc] >= 700`` on ``Liver - GTV``; or ``DCxcc``): when the whole structure is
  smaller than the limit the check FAILs with "normal liver is only X cc: the rule
  (>= 700 cc below 15 Gy) cannot be met". The metric is the row's own: never D700cc or a
  maximum dose.
* A metric that cannot be evaluated (``RtqaError``, e.g. D2cc of a 1 cc organ) or a
  structure entirely outside the dose grid: NOT EVALUATED with the reason. A structure
  partly outside the grid is evaluated on its covered part; the note gives the rest.
* Curves: one per evaluated structure, physical dose (Gy) against volume (% of the
  covered volume), at most ``MAX_CURVE_POINTS`` points, with a mark for every evaluated
  physical-dose row on it (EQD2/BED rows are not marked on a physical-dose curve):
  Dx -> (value, x %); DCx -> (value, 100 - x %); Vx -> (x Gy, value %); CVx -> (x Gy,
  100 - value %); Max -> (value, 0 %); Min -> (value, 100 %); Mean -> (value, the curve's
  volume % at the mean dose), so every mark lies on the curve.

Check ids: ``oar.<constraint file stem>.<structure, spaces removed>.<metric without its
unit>`` (``oar.tg101.SpinalCord.D0.035cc``; a repeat gets ``#2``; a derived row
``oar.lq.<reference file stem>...``), ``oar.none.<structure>``
for NOT EVALUATED / WARN rows of organs without a limit. Units: Gy, cc, % as in each metric's result unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np

from rtqa.constraints import (APPLY, EXEMPT, NONE, Constraint, Limit, Protocol,
                              SelectedRow)
from rtqa.dvh.dosesum import course_fractions
from rtqa.dvh.data import DVHData
from rtqa.dvh.service import DoseService
from rtqa.checks.context import MAX_CURVE_POINTS, Evaluation, curve
from rtqa.errors import RtqaError
from rtqa.dvh.metrics import Metric, parse_metric, volume_at_least
from rtqa.dvh.metrics import evaluate as metric_value
from rtqa.checks.names import NameMatch, hidden_in, load_aliases, map_hint, match_rois
from rtqa.reading.export import CourseDose
from rtqa.reading.structures import Structure, StructureSet
from rtqa.results import (FAIL, NOT_EVALUATED, PASS, WARN, Category, Check, Curve, DoseView,
                          Priority, Reason)
from rtqa.constraints.structexpr import StructExpr, parse_structure
from rtqa.dvh.structops import build

__all__ = ["OarResult", "evaluate", "evaluate_oars", "is_required", "REQUIRED_SET_FILES",
           "MAX_CURVE_POINTS", "CATEGORY"]

CATEGORY = Category.OARS
#: Constraint-set files whose rows are mandatory even when their structure is absent
#: (the oligo-hcc trial requires the normal-liver rule).
REQUIRED_SET_FILES = frozenset({"normal_liver.toml"})


@dataclass(frozen=True)
class OarResult:
    """``checks``: one per applied row (and WARN per "none" organ); ``curves``: DVHs to
    plot; ``structures_used``: operand (TG-263 name or target class) -> plan ROI names."""

    checks: tuple[Check, ...]
    curves: tuple[Curve, ...]
    structures_used: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}))


def is_required(protocol: Protocol, row: Constraint) -> bool:
    """True for a row of the protocol file itself or of a set in ``REQUIRED_SET_FILES``."""
    if row.file is None:
        return False
    own = protocol.path is not None and row.file.resolve() == protocol.path.resolve()
    return own or row.file.name in REQUIRED_SET_FILES


# --- structures ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Resolved:
    """An expression's operands found among the plan's ROIs."""

    expr: StructExpr
    organs: Mapping[str, Structure]
    targets: Mapping[str, tuple[Structure, ...]]
    used: Mapping[str, tuple[str, ...]]      # operand -> ROI names
    missing: tuple[str, ...]
    ambiguous: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...]

    @property
    def rois(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for names in self.used.values() for r in names))

    @property
    def present(self) -> bool:
        """Some organ operand matched or is ambiguous (the plan has this organ)."""
        return bool(self.organs or self.ambiguous)

    def problem(self, roi_names: Sequence[str]) -> str | None:
        out = []
        if self.missing:
            names = " or ".join(f"'{m}'" for m in self.missing)
            out.append(f"no structure matching {names} (ROIs: {', '.join(roi_names)})")
        for std, cands in self.ambiguous.items():
            out.append(f"'{std}' is ambiguous: ROIs {', '.join(repr(c) for c in cands)} all "
                       f"match; never guessed: choose one with --map {std}=<ROI>")
        empty = [s for s in self.organs.values() if not s.has_volume]
        empty += [s for members in self.targets.values() for s in members if not s.has_volume]
        for s in empty:
            why = f" ({'; '.join(s.warnings[:2])})" if s.warnings else ""
            out.append(f"ROI '{s.name}' has no closed contours, so no volume{why}: never "
                       "evaluated without it")
        if out and self.present and not self.expr.is_single:
            out.append(f"'{self.expr}' cannot be built without every operand")
        return "; ".join(out) or None

    def reason(self) -> Reason:
        """The reason code of ``problem``: ambiguous, missing, else empty."""
        if self.ambiguous:
            return Reason.STRUCTURE_AMBIGUOUS
        if self.missing:
            return Reason.STRUCTURE_MISSING
        return Reason.STRUCTURE_EMPTY

    def structure(self) -> Structure:
        """The ROI itself for a plain organ (no non-empty subtraction), else built."""
        plain = not self.targets and len(self.expr.organs) == 1 and all(
            t.sign > 0 for t in self.expr.terms if not t.operand.is_target_class)
        if plain:
            return next(iter(self.organs.values()))
        return build(self.expr, self.organs, self.targets, name=str(self.expr))


def _combined(std: str, expr: StructExpr, match: NameMatch, notes: list) -> str | None:
    """The combined ROI (``Lungs``) for ``Lung_L`` when the expression adds both sides,
    neither side is in the plan and the combined one is (TG-263 combined names)."""
    from rtqa.checks.names import combined_standard
    comb = combined_standard(std)
    other = std[:-1] + ("R" if std.endswith("L") else "L")
    adds = {t.operand.name for t in expr.terms if t.sign > 0}
    if (comb is None or match.roi(comb) is None or other not in adds
            or match.roi(other) is not None or other in match.ambiguous):
        return None
    text = f"{std[:-2]}_L + {std[:-2]}_R taken as the combined ROI '{match.roi(comb)}' ({comb})"
    if text not in notes:
        notes.append(text)
    return match.roi(comb)


def _resolve(expr: StructExpr, match: NameMatch,
             by_name: Mapping[str, list[Structure]]) -> _Resolved:
    table = load_aliases()
    organs, targets, used, ambiguous = {}, {}, {}, {}
    missing, notes = [], []
    for term in expr.terms:
        op = term.operand
        if op.is_target_class:
            names = match.targets.get(op.name, ())
            if names:
                targets[op.name] = tuple(s for n in names for s in by_name.get(n, ()))
                used[op.name] = tuple(names)
            elif term.sign > 0:
                missing.append(op.name)
            else:
                notes.append(f"no {op.name} in the plan: nothing subtracted")
            continue
        std = op.name if (op.name in match.standard_to_roi or op.name in match.ambiguous) \
            else (table.canonical(op.name) or op.name)
        roi = match.roi(std)
        if roi is None and std not in match.ambiguous:
            roi = _combined(std, expr, match, notes)
        if roi is not None:
            organs[op.name] = by_name[roi][0]
            used[op.name] = (roi,)
        elif std in match.ambiguous:
            ambiguous[op.name] = tuple(match.ambiguous[std])
        else:
            missing.append(op.name)
    return _Resolved(expr, MappingProxyType(organs), MappingProxyType(targets),
                     MappingProxyType(used), tuple(missing), MappingProxyType(ambiguous),
                     tuple(notes))


# --- dose ------------------------------------------------------------------------------

class _Plans:
    """The plan(s) the rows are evaluated for: their doses come from ``service``."""

    def __init__(self, service: DoseService, structure_set: StructureSet, fractions: int,
                 index: tuple[int, ...] | None = None, delivery: str = "sequential",
                 concurrent_fractions: int | None = None):
        frame = structure_set.frame_of_reference_uid
        self.service = service
        courses = service.courses
        self.delivery, self.concurrent_fractions = delivery, concurrent_fractions
        self.index = index if index is not None else tuple(
            i for i, c in enumerate(courses) if not frame
            or not c.grid.frame_of_reference_uid
            or c.grid.frame_of_reference_uid == frame)
        self.courses = tuple(courses[i] for i in self.index)
        self.fractions = fractions
        self.problem = self.reason = None
        if not courses:
            self.problem = "no RTDOSE: no dose to evaluate the limit on"
            self.reason = Reason.DOSE_MISSING
        elif not self.courses:
            self.problem = (f"no RTDOSE in the structure set's frame of reference "
                            f"{frame} (doses: {', '.join(c.label for c in courses)})")
            self.reason = Reason.DOSE_MISSING
        for c in self.courses:
            if c.per_fraction:
                self.problem = (f"{c.label}: the dose is per fraction and the fraction count "
                                "is unknown; whole-course limits cannot be checked")
                self.reason = Reason.FRACTIONS_UNKNOWN
        self.fx = tuple(course_fractions(c) for c in self.courses)
        self.mixed = len(self.courses) > 1 and len(set(self.fx)) > 1
        single = len(self.courses) == 1 and self.courses[0].plan is not None
        self.prescription_gy = self.courses[0].plan.prescription_gy if single else None
        self.labels = tuple(c.label for c in self.courses)
        self.counts = tuple(service.fractions[i] or 0 for i in self.index)

    @property
    def dose_per_fraction_gy(self) -> float | None:
        rx = self.prescription_gy
        return rx / self.fractions if rx and rx > 0 else None

    @property
    def plans_text(self) -> str:
        return " + ".join(f"{c.label} ({n or '?'} fx)" for c, n in zip(self.courses, self.fx))

    def dvh(self, structure: Structure, kind: str, ab: float | None) -> DVHData:
        """DVH of ``structure`` in ``kind`` dose (physical/EQD2/BED) of these plans."""
        return self.service.dvh(structure, kind, self.index, ab, self.delivery,
                                self.concurrent_fractions)

    def only(self, k: int, fractions: int) -> "_Plans":
        """The k-th of these plans alone, for rows of its own fraction count."""
        return _Plans(self.service, _NO_FRAME, fractions, (self.index[k],))

    def sum_note(self, kind: str) -> str:
        if kind == "physical":
            return f"voxel-wise physical sum of {self.plans_text}"
        if self.delivery == "concurrent":
            return (f"{kind} of the voxel-wise physical sum of {self.plans_text} in "
                    f"{self.concurrent_fractions} fractions (concurrent delivery)")
        return f"voxel-wise {kind} sum of {self.plans_text} (sequential delivery)"


class _NoFrame:
    frame_of_reference_uid = ""


_NO_FRAME = _NoFrame()


# --- one row ---------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _row_id(row: Constraint) -> str:
    set_key = row.file.stem if row.file is not None else _slug(row.set_name)
    metric = row.metric.split("[", 1)[0]
    lq = "lq." if row.derivation is not None else ""   # derived: oar.lq.tg101.Stomach.D10cc
    return f"oar.{lq}{set_key}.{_slug(row.structure)}.{metric}"


def _source(row: Constraint) -> str:
    return f"{row.source or row.set_name} (status {row.status or '?'}; {row.ref})"


def _organ_label(expr: StructExpr) -> str:
    subtracts_targets = any(t.sign < 0 for t in expr.terms) and all(
        t.operand.is_target_class for t in expr.terms if t.sign < 0)
    if expr.positive_organs == ("Liver",) and subtracts_targets and len(expr.organs) == 1:
        return "normal liver"
    return f"'{expr}'"


def _cannot_meet(metric: Metric, limit: Limit, total_cc: float, expr: StructExpr) -> str | None:
    """The note for a spared/irradiated-volume rule the structure is too small to meet."""
    if metric.kind in ("V", "CV") and metric.result_unit == "cc" and limit.comparator in \
            (">", ">=") and metric.value_unit != "%" and not limit.holds(total_cc):
        where = "below" if metric.kind == "CV" else "at or above"
        dose = metric.value / 100.0 if metric.value_unit == "cGy" else metric.value
        rule = f"{limit} cc {where} {dose:g} Gy"
    elif (metric.kind == "DC" and metric.value_unit == "cc" and limit.comparator in ("<", "<=")
          and metric.value > total_cc):
        where = "below" if limit.comparator == "<" else "at or below"
        rule = f">= {metric.value:g} cc {where} {limit.value:g} {metric.result_unit}"
    else:
        return None
    return f"{_organ_label(expr)} is only {total_cc:.1f} cc: the rule ({rule}) cannot be met"


def _coverage(dvh: DVHData) -> list[str]:
    notes = list(dvh.warnings)
    if dvh.outside_cc > 0 and not any("outside the dose grid" in w for w in notes):
        notes.append(f"{dvh.outside_cc:.2f} cc of {dvh.total_volume_cc:.2f} cc lie outside "
                     f"the dose grid: evaluated on the covered {dvh.volume_cc:.2f} cc")
    return notes


def _no_limit(sel: SelectedRow, res: _Resolved, protocol: Protocol, dose: _Plans,
              suffix: str = "") -> Check:
    """The row of a contoured organ with no applicable limit (``"none"``: NOT EVALUATED,
    mandatory) or one the protocol deliberately leaves without a limit (``"exempt"``:
    WARN)."""
    family = f".{sel.metric.split('[', 1)[0]}" if sel.metric else ""
    common = dict(id=f"oar.none.{_slug(sel.structure)}{family}{suffix}", category=CATEGORY,
                  metric=sel.metric or None,
                  structure=sel.structure, rois=res.rois, dose_view=DoseView.NONE,
                  plans=dose.labels, fractions=dose.counts, reason=Reason.NO_LIMIT)
    if sel.kind == EXEMPT:
        return Check(status=WARN, priority=Priority.OPTIMAL, note=sel.reason,
                     source=f"protocol {protocol.name}: [limits] no_limit", **common)
    note = (f"{sel.reason}: no sourced, derived or protocol limit applies to this contoured "
            "organ, so it is not evaluated; " + (sel.hint or "add a row for it to the "
                                                 "protocol, or list it under [limits] "
                                                 "no_limit with a justification"))
    return Check(status=NOT_EVALUATED, priority=Priority.MANDATORY, note=note,
                 source=f"protocol {protocol.name}: no applicable limit", **common)


def _evaluate_row(sel: SelectedRow, res: _Resolved, dose: _Plans, structure: Structure | None,
                  base: dict) -> Check:
    row = sel.constraint
    metric = parse_metric(row.metric)
    notes = [n for n in (sel.conversion_note,) if n] + list(res.notes)

    def out(status, value=None, extra=(), reason=None):
        return Check(status=status, value=value, note="; ".join([*notes, *extra]),
                     reason=(reason or Reason.OTHER) if status == NOT_EVALUATED else None,
                     **base)

    if dose.problem:
        return out(NOT_EVALUATED, extra=[dose.problem], reason=dose.reason)
    kind = sel.dose_type or "physical"
    if dose.mixed and kind == "physical" and row.fractions is not None:
        return out(NOT_EVALUATED, reason=Reason.MIXED_FRACTIONATION, extra=[
            f"a fraction-specific limit ({row.fraction_label}) cannot be applied to a sum of "
            f"plans with different fractionation ({dose.plans_text}); only EQD2/BED rows "
            "are evaluated on the voxel-wise sum"])
    if kind != "physical" and metric.needs_prescription:
        return out(NOT_EVALUATED, reason=Reason.METRIC_UNDEFINED,
                   extra=[f"{metric} gives its dose in % of the prescription "
                          f"(physical Gy), which cannot be read on {kind}"])
    if len(dose.courses) > 1:
        notes.append(dose.sum_note(kind))
    elif kind != "physical" and dose.fx[0] and dose.fx[0] != dose.fractions:
        notes.append(f"converted for {dose.fractions} fractions (RTPLAN "
                     f"{dose.courses[0].label}: {dose.fx[0]})")
    try:
        dvh = dose.dvh(structure, kind, sel.alpha_beta)
    except RtqaError as exc:
        return out(NOT_EVALUATED, extra=[str(exc)])
    notes.extend(_coverage(dvh))
    cannot = _cannot_meet(metric, row.limit, dvh.total_volume_cc, res.expr)
    try:
        rx = dose.prescription_gy if kind == "physical" else None
        value = metric_value(metric, dvh, rx)
    except RtqaError as exc:
        if cannot:
            return out(FAIL, extra=[cannot])
        return out(NOT_EVALUATED, extra=[str(exc)], reason=Reason.METRIC_UNDEFINED)
    ok = row.limit.holds(value)
    return out(PASS if ok else FAIL, value, [cannot] if cannot and not ok else [])


# --- curves ----------------------------------------------------------------------------

def _mark(metric: Metric, value: float, dvh: DVHData, rx: float | None):
    """(dose Gy, volume %) of a physical-dose metric's point on the cumulative DVH."""
    vol = dvh.volume_cc
    gy_value = value / 100.0 if metric.result_unit == "cGy" else value
    if metric.kind in ("D", "DC"):
        x = metric.value if metric.value_unit == "%" else 100.0 * metric.value / vol
        return gy_value, (x if metric.kind == "D" else 100.0 - x)
    if metric.kind in ("V", "CV"):
        if metric.value_unit == "%":
            if not rx:
                return None
            dose = metric.value * rx / 100.0
        else:
            dose = metric.value / 100.0 if metric.value_unit == "cGy" else metric.value
        pct = value if metric.result_unit == "%" else 100.0 * value / vol
        return dose, (pct if metric.kind == "V" else 100.0 - pct)
    if metric.kind == "Max":
        return gy_value, 0.0
    if metric.kind == "Min":
        return gy_value, 100.0
    return gy_value, 100.0 * float(volume_at_least(dvh.edges_gy, dvh.cum_cc, gy_value)) / vol


# --- entry point -----------------------------------------------------------------------

def evaluate_oars(protocol: Protocol, structure_set: StructureSet,
                  courses: Sequence[CourseDose], *, fractions: int,
                  overrides: Mapping[str, str] | None = None,
                  dose: DoseService | None = None, match: NameMatch | None = None,
                  ct_z: np.ndarray | None = None, alpha_beta: float | None = None,
                  required: Callable[[Constraint], bool] | None = None,
                  delivery: str | None = None) -> OarResult:
    """Evaluate the protocol's organ-at-risk rows on one structure set and its dose.

    ``courses``: the course doses (only those in the structure set's frame of reference
    are used; several are summed voxel-wise). ``fractions``: the fraction count rows are
    selected for (and a single plan is converted to EQD2/BED with). ``overrides``: TG-263
    name -> ROI name (``--map``). ``dose``: the dose service of ``courses`` (the plan
    context's; default: one built here with ``ct_z``, the planning-CT slice positions in
    mm). ``match``: the ROI name matches (default: ``match_rois`` with ``overrides``).
    ``alpha_beta``: global α/β (Gy) for conventional rows (see ``constraints.select``).
    ``required(row)``: rows mandatory even when their structure is absent (default
    ``is_required``). ``delivery``: how several plans add up, "concurrent" or
    "sequential" (default: concurrent, the conservative one for organs; see ``_jobs``).
    Rules: see the module docstring.
    """
    roi_names = [s.name for s in structure_set.structures]
    if match is None:
        types = {s.name: s.interpreted_type for s in structure_set.structures}
        match = match_rois(roi_names, overrides, roi_types=types)
    by_name: dict[str, list[Structure]] = {}
    for s in structure_set.structures:
        by_name.setdefault(s.name, []).append(s)
    if dose is None:
        courses = sorted(courses, key=_plan_key)  # one order whatever the file order
        # a per-fraction dose stays unscaled: its fraction count is unknown (NOT EVALUATED)
        counts = [None if c.per_fraction else fractions if len(courses) == 1
                  else course_fractions(c) or fractions for c in courses]
        dose = DoseService(courses, ct_z, counts)
    dose = _Plans(dose, structure_set, fractions)
    required = required or (lambda row: is_required(protocol, row))
    jobs = _jobs(protocol, dose, fractions, alpha_beta, delivery)

    resolved: dict[str, _Resolved] = {}
    built: dict[str, Structure | RtqaError] = {}
    checks: list[Check] = []
    seen: dict[str, int] = {}
    by_structure: dict[str, list[tuple[SelectedRow, Check]]] = {}
    for sel, plans, suffix in jobs:
        if sel.structure not in resolved:
            expr = sel.constraint.expr if sel.constraint is not None else \
                parse_structure(sel.structure)
            resolved[sel.structure] = _resolve(expr, match, by_name)
        res = resolved[sel.structure]
        if sel.kind in (NONE, EXEMPT):
            if res.present:
                checks.append(_no_limit(sel, res, protocol, plans, suffix))
            continue
        row = sel.constraint
        cid = _row_id(row) + suffix
        seen[cid] = seen.get(cid, 0) + 1
        metric = parse_metric(row.metric)
        base = dict(id=cid if seen[cid] == 1 else f"{cid}#{seen[cid]}", category=CATEGORY,
                    source=_source(row), structure=row.structure, rois=res.rois,
                    metric=row.metric, unit=metric.result_unit, limit=str(row.limit),
                    priority=row.priority, dose_view=DoseView(sel.dose_type or "physical"),
                    alpha_beta=sel.alpha_beta if (sel.dose_type or "physical") != "physical"
                    else None, plans=plans.labels, fractions=plans.counts,
                    derivation=row.derivation.label if row.derivation else None)
        problem = res.problem(roi_names)
        if problem:
            optional = not res.present and not required(row)
            hidden: dict[str, tuple[str, str]] = {}
            for m in res.missing:
                for roi, why in hidden_in(m, match):
                    hidden.setdefault(roi, (m, why))
            if hidden:  # the organ may be there under a name rtqa did not recognise
                optional = False
                problem += "; the plan has organ-like ROIs it may be hidden in: " + \
                    map_hint(hidden)
            base["priority"] = "optimal" if optional else "mandatory"
            notes = [n for n in (sel.conversion_note, problem) if n]
            checks.append(Check(status=NOT_EVALUATED, note="; ".join(notes), reason=(
                Reason.STRUCTURE_UNRECOGNISED if hidden else res.reason()), **base))
            continue
        if sel.structure not in built:
            try:
                built[sel.structure] = res.structure()
            except RtqaError as exc:
                built[sel.structure] = exc
        structure = built[sel.structure]
        if isinstance(structure, RtqaError):
            checks.append(Check(status=NOT_EVALUATED, note=str(structure), reason=Reason.OTHER,
                                **base))
            continue
        check = _evaluate_row(sel, res, plans, structure, base)
        checks.append(check)
        if plans is dose:
            by_structure.setdefault(sel.structure, []).append((sel, check))

    curves = _curves(by_structure, resolved, built, dose)
    used = {op: rois for res in resolved.values() if res.present
            for op, rois in res.used.items()}
    return OarResult(tuple(checks), tuple(curves), MappingProxyType(used))


def _plan_key(course: CourseDose) -> tuple[str, str]:
    """Order of plans that does not depend on file names, file order or labels."""
    uid = course.plan.sop_instance_uid if course.plan else ""
    return (uid, course.grid.sop_instance_uid)


def _jobs(protocol: Protocol, dose: _Plans, fractions: int, alpha_beta: float | None,
          delivery: str | None) -> list[tuple[SelectedRow, _Plans, str]]:
    """(selected row, plans it is evaluated on, id suffix) for every row to report.

    One plan, or several of one fraction count delivered concurrently: the rows of that
    count on the plans' (summed) dose. Otherwise (different fraction counts, or
    sequential delivery) each plan's fraction-specific physical rows on that plan's own
    dose with its own count (ids end in ``@<plan label>``), and every other row
    (EQD2/BED, conventional rows on EQD2, rows for any count) once, on the voxel-wise sum
    of all plans. ``delivery`` None is conservative for organs: concurrent (the physical
    sum then LQ with the fewest fractions: voxel-wise at least the sequential EQD2/BED)."""
    keep = (APPLY, NONE, EXEMPT)
    counts = [n for n in dose.counts if n]
    if len(dose.courses) <= 1 or len(counts) != len(dose.courses):
        sel = protocol.select(fractions, dose_per_fraction_gy=dose.dose_per_fraction_gy,
                              alpha_beta=alpha_beta)
        return [(s, dose, "") for s in sel if s.kind in keep]
    delivery = delivery or "concurrent"
    dose.delivery, dose.concurrent_fractions = delivery, min(counts)
    if delivery == "concurrent" and len(set(counts)) == 1:
        sel = protocol.select(counts[0], alpha_beta=alpha_beta)
        return [(s, dose, "") for s in sel if s.kind in keep]
    own, shared, seen = [], [], {}
    for k in sorted(range(len(dose.courses)), key=lambda k: _plan_key(dose.courses[k])):
        n = dose.counts[k]
        alone = dose.only(k, n)
        rx = alone.dose_per_fraction_gy
        for s in protocol.select(n, dose_per_fraction_gy=rx, alpha_beta=alpha_beta):
            if s.kind not in keep:
                continue
            kind = s.dose_type or "physical"
            if s.kind in (NONE, EXEMPT) or (kind == "physical"
                                             and s.constraint.fractions is not None):
                own.append((s, alone, f"@{dose.courses[k].label}"))
                continue
            # one shared row per source row: each plan's selection makes its own copy of an
            # informative row, so the row's identity is its file and line. A conventional
            # row read on physical dose for one plan (<= 2 Gy per fraction) and on EQD2 for
            # another is evaluated once, on EQD2 of the sum (a physical sum with a
            # hypofractionated plan has no conventional meaning); informative at one
            # plan's count but applying at another's: it applies.
            key = (s.constraint.ref, s.constraint.structure, s.constraint.metric)
            if key not in seen:
                seen[key] = len(shared)
                shared.append((s, dose, ""))
                continue
            kept = shared[seen[key]][0]
            if (kept.dose_type or "physical") == "physical" and kind != "physical":
                s, other = s, kept
            else:
                s, other = kept, s
            if s.informative and not other.informative:
                s = replace(s, constraint=other.constraint, informative=False)
            shared[seen[key]] = (s, dose, "")
    return own + shared


def _objective(metric: Metric, sel, dvh: DVHData, rx: float | None):
    """(dose Gy, volume %) of the row's limit on the same axes as its achieved point:
    D0.035cc < 50 Gy -> (50 Gy, volume % of 0.035 cc); V20Gy <= 30% -> (20 Gy, 30 %);
    a mean -> (limit Gy, volume receiving it). None when it has no point."""
    limit = getattr(sel.constraint, "limit", None)
    if limit is None or not dvh.volume_cc:
        return None
    try:
        point = _mark(metric, float(limit.value), dvh, rx)
    except (ValueError, ZeroDivisionError):
        return None
    return None if point is None else (float(point[0]), float(point[1]))


def _curves(by_structure, resolved, built, dose: _Plans) -> list[Curve]:
    """One curve per structure and dose view (physical; EQD2/BED at each α/β its rows
    use), each row marked on the curve of its own dose view."""
    out = []
    for text, items in by_structure.items():
        views: dict[tuple, list] = {}
        for sel, c in items:
            kind = sel.dose_type or "physical"
            ab = sel.alpha_beta if kind != "physical" else None
            views.setdefault((kind, ab), []).append((sel, c))
        for (kind, ab), rows in views.items():
            if not any(c.status in (PASS, FAIL) for _, c in rows):
                continue
            try:
                dvh = dose.dvh(built[text], kind, ab)
            except RtqaError:
                continue
            marks, objectives = [], []
            for sel, c in rows:
                if c.value is None:
                    continue
                metric = parse_metric(c.metric)
                point = _mark(metric, c.value, dvh, dose.prescription_gy)
                if point is not None:
                    marks.append((float(point[0]), float(point[1]),
                                  f"{c.metric} {c.limit}", c.status))
                    objectives.append(_objective(metric, sel, dvh, dose.prescription_gy))
            name = text if kind == "physical" else f"{text} — {kind}(α/β {ab:g})"
            out.append(curve(name, dvh, marks, objectives, dose_view=kind, alpha_beta=ab))
    return out


def evaluate(ctx) -> Evaluation:
    """The organ-at-risk family on a plan context (``rtqa.checks.context``): rows
    selected for the fraction count of the first plan, on the plans' summed dose (see
    the module docstring); the rows of organs the plan does not have (optional) are
    collapsed into one row ``oar.absent``."""
    from rtqa.checks.bed import fractions_of
    ns = fractions_of(ctx.courses, ctx.fractions_override)
    result = evaluate_oars(ctx.protocol, ctx.structure_set, ctx.courses, fractions=ns[0],
                           overrides=ctx.options.overrides or None, dose=ctx.dose,
                           match=ctx.names, delivery=ctx.options.delivery)
    return Evaluation(tuple(_collapse_absent(list(result.checks))), result.curves)


def _collapse_absent(checks: list[Check]) -> list[Check]:
    """Rows of organs the plan does not contain (optional, NOT EVALUATED) become one row
    naming those organs and how many rows they carry, instead of one row each."""
    absent = [c for c in checks if c.status == NOT_EVALUATED and c.priority == "optimal"
              and c.reason == Reason.STRUCTURE_MISSING]
    if not absent:
        return checks
    organs = list(dict.fromkeys(c.structure for c in absent))
    keep = [c for c in checks if c not in absent]
    keep.append(Check(
        "oar.absent", CATEGORY, NOT_EVALUATED,
        "protocol constraint sets (see constraints list)", structure="organs not in the plan",
        metric=f"{len(absent)} rows", note="no structure in the plan for: "
        + ", ".join(organs) + " — their rows are not evaluated (they do not fail the plan; "
        "map a differently named ROI with --map STANDARD=ROI)", priority="optimal",
        reason=Reason.STRUCTURE_MISSING))
    return keep
