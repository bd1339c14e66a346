"""Dose-scaling headroom of a lesion that falls short (issue 12 item 7).

The trial allows a lower dose where organ-at-risk limits require it. When a lesion's
coverage BED (``lesion.<name>.bed``) or its prescribed BED (``lesion.<name>.prescribed_bed``)
fails the protocol's limit, the physicist must judge whether the organs at risk allowed
more. This module puts the two numbers that judgement needs on the lesion result
(``LesionResult.headroom``, a ``rtqa.results.Headroom``); it never changes a verdict.

Scaling model: the whole plan dose (every plan, every voxel) multiplied by one factor f,
fraction counts unchanged (what a planner does when renormalising a plan).

* ``factor_to_bed_limit``: f at which the lesion's coverage metric reaches the rule's
  BED limit (e.g. BED10 60 Gy). For a D metric of one plan of n fractions, the exact
  root of the LQ quadratic f·D (1 + f·D/(n α/β)) = BED_limit, i.e. f = D*/D with
  D* = ``total_dose_for_bed``; for another metric (Mean), bisection on the coverage
  structure's physical DVH scaled by f, its BED taken bin by bin (never re-binned). Several plans summed:
  not computed (None, said in the note).
* ``factor_prescription_to_bed_limit``: the same for the prescription, f = D*/Rx (one
  plan; the BED of a sum of prescriptions is not one quadratic).
* ``factor_first_oar_fail``: the smallest f at which a mandatory organ-at-risk row
  (category "organs at risk", PASS or FAIL, with a value) fails, and that row
  (``binding_row`` id, structure, metric, dose view). Per row, from the DVH of its own
  structure on its own plan(s) (the dose service's physical DVH, scaled by f):

  - physical Dx, DCx, Max, Mean, Min in Gy: f = L / value (homogeneous in dose);
  - physical Vx / CVx (cc or %): the DVH scaled by f, Vx(f) = V(x/f): bisection;
  - EQD2 / BED rows of one plan (or the concurrent LQ of a physical sum in the fewest
    fractions, the organ default): Dx/Max exactly, f = D*(L)/D (D* the physical dose
    whose LQ dose is L, D the physical metric on the same voxels); Vx/CVx: the volume
    above the physical dose D*(x), bisection; mean EQD2/BED: the LQ dose of each DVH
    bin of the scaled dose, volume-weighted (voxel-wise), bisection;
  - a sequential EQD2/BED sum of several plans is not scaled (listed in
    ``rows_not_scaled``), nor a row whose recomputed value at f = 1 does not reproduce
    its reported value (the structure could not be identified; never guessed).

  Bisection on f in [1e-3, 1e3] (log-spaced), 60 halvings (relative precision far below
  0.01 %): a row that still holds at f = 1000 never binds (no factor).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from rtqa.constraints import Limit
from rtqa.constraints.structexpr import parse_structure
from rtqa.dvh.data import DVHData
from rtqa.dvh.metrics import evaluate as metric_value
from rtqa.dvh.metrics import parse_metric
from rtqa.dvh.radiobiology import bed, eqd2, total_dose_for_bed
from rtqa.errors import RtqaError
from rtqa.results import (FAIL, PASS, Category, Check, DoseView, Headroom, LesionResult,
                          Priority)

__all__ = ["evaluate", "lesion_factor", "row_factor", "scaled"]

F_LO, F_HI = 1e-3, 1e3
HALVINGS = 60
#: agreement required between a row's reported value and its recomputation (relative,
#: absolute in the row's unit): rtqa re-bins an LQ-converted DVH at 0.01 Gy
CONSISTENCY = 1e-3
CONSISTENCY_ABS = 0.02


def scaled(dvh: DVHData, f: float) -> DVHData:
    """The physical DVH of the dose multiplied by ``f`` (> 0)."""
    return replace(dvh, edges_gy=np.asarray(dvh.edges_gy, float) * f,
                   min_gy=dvh.min_gy * f, max_gy=dvh.max_gy * f, mean_gy=dvh.mean_gy * f)


def _bisect(fails: Callable[[float], bool]) -> float | None:
    """Smallest f in [F_LO, F_HI] with ``fails(f)`` (monotone: holds below, fails above);
    None when it never fails up to F_HI; F_LO when it fails already there."""
    if not fails(F_HI):
        return None
    if fails(F_LO):
        return F_LO
    lo, hi = math.log(F_LO), math.log(F_HI)
    for _ in range(HALVINGS):
        mid = 0.5 * (lo + hi)
        if fails(math.exp(mid)):
            hi = mid
        else:
            lo = mid
    return math.exp(hi)


def lesion_factor(dose_gy: float, fractions: int, alpha_beta: float, bed_limit: float) -> float:
    """f with BED(f·D) = ``bed_limit`` for one plan: f = D*/D (exact LQ root)."""
    return float(total_dose_for_bed(bed_limit, fractions, alpha_beta)) / dose_gy


def _lq(view: DoseView, n: int, ab: float):
    """(LQ map of a total physical dose to ``view``, its inverse), for n fractions
    (``rtqa.dvh.radiobiology``: BED = D(1 + D/(n·α/β)), EQD2 = BED/(1 + 2/α/β))."""
    if view is DoseView.BED:
        return (lambda d: bed(d, n, ab), lambda b: float(total_dose_for_bed(b, n, ab)))
    k = 1 + 2 / ab
    return (lambda d: eqd2(d, n, ab), lambda e: float(total_dose_for_bed(e * k, n, ab)))


def _lq_mean(physical: DVHData, f: float, lq) -> float:
    """Volume-weighted mean of the LQ dose of the physical dose x f, bin by bin of the
    DVH (voxel-wise; the same sum ``convert_dvh`` takes for its mean)."""
    e = np.asarray(physical.edges_gy, float) * f
    dv = -np.diff(np.asarray(physical.cum_cc, float))
    return float(np.dot(dv, lq(0.5 * (e[1:] + e[:-1]))) / physical.volume_cc)


def row_factor(row: Check, physical: DVHData, view: DoseView, fractions: int | None
               ) -> float | None:
    """Factor f at which ``row`` (its metric and limit) stops holding when the physical
    dose behind ``physical`` is multiplied by f (see the module docstring); None when
    it never does in [1e-3, 1e3]. ``fractions``: the LQ fraction count of an EQD2/BED
    row. The LQ view is applied voxel-wise through the DVH's dose axis (monotone: a dose
    quantile maps to the quantile of the LQ dose, a volume above x to the volume above
    the physical dose of x, the mean bin by bin), never re-binned. Raises ``ValueError``
    when the row cannot be recomputed."""
    metric = parse_metric(row.metric)
    limit = Limit.parse(row.limit)
    if metric.result_unit == "cGy" or (metric.kind in ("V", "CV")
                                       and metric.value_unit != "Gy"):
        raise ValueError(f"{row.id}: metric {metric} is not scaled")
    if view is DoseView.PHYSICAL:
        lq = inv = None
        m = metric
    else:
        lq, inv = _lq(view, int(fractions), float(row.alpha_beta))
        m = metric
        if metric.kind in ("V", "CV"):  # the volume above x (view) = above inv(x) (physical)
            m = replace(metric, value=inv(metric.value))

    def value(f: float) -> float:
        d = scaled(physical, f)
        if lq is None or metric.kind in ("V", "CV"):
            return metric_value(m, d)
        if metric.kind == "Mean":
            return _lq_mean(physical, f, lq)
        return float(lq(metric_value(m, d)))

    at_one = value(1.0)
    if row.value is None or not math.isclose(at_one, row.value, rel_tol=CONSISTENCY,
                                             abs_tol=CONSISTENCY_ABS):
        raise ValueError(f"{row.id}: recomputed {at_one!r} differs from the reported "
                         f"{row.value!r}")
    if (metric.result_unit == "Gy" and metric.kind != "Mean" and view is not
            DoseView.PHYSICAL and limit.comparator in ("<", "<=") and at_one > 0):
        # exact: LQ(f D) = L  ->  f = inv(L) / D (D: the physical metric, same voxels)
        return inv(limit.value) / metric_value(m, physical)
    if (view is DoseView.PHYSICAL and metric.result_unit == "Gy"
            and limit.comparator in ("<", "<=") and row.value > 0):
        return limit.value / row.value       # homogeneous of degree 1 in the dose
    return _bisect(lambda f: not limit.holds(value(f)))


def _row_dvh(ctx, row: Check) -> tuple[DVHData, DoseView, int | None]:
    """The physical DVH behind ``row`` (its structure on its plans) and how its value is
    derived from it. Raises ``ValueError`` when that cannot be identified."""
    labels = [c.label for c in ctx.courses]
    idx = tuple(labels.index(p) for p in row.plans) if row.plans else \
        tuple(range(len(labels)))
    view = DoseView(row.dose_view)
    names = {row.structure or ""}
    try:
        names.add(str(parse_structure(row.structure)))
    except Exception:  # noqa: BLE001 - a display name that is not an expression
        pass
    if len(row.rois) == 1:
        names.add(row.rois[0])
    structure = None
    for v in (DoseView.PHYSICAL, view):
        for s, _ in ctx.dose.computed(v, idx):
            if s.name in names:
                structure = s
                break
        if structure is not None:
            break
    if structure is None:
        raise ValueError(f"{row.id}: its structure's DVH was not found")
    n = None
    if view is not DoseView.PHYSICAL:
        if len(idx) > 1 and (ctx.options.delivery == "sequential"):
            raise ValueError(f"{row.id}: a sequential {view} sum of several plans does not "
                             "scale from one DVH")
        n = min(int(x) for x in row.fractions) if row.fractions else None
        if not n:
            raise ValueError(f"{row.id}: fraction count unknown")
    return ctx.dose.dvh(structure, DoseView.PHYSICAL, idx), view, n


def oar_factors(ctx, checks: Sequence[Check]) -> tuple[list[tuple[float, Check]], list[str]]:
    """(factor, row) of every mandatory evaluated organ-at-risk row that binds somewhere in
    [1e-3, 1e3], sorted by factor, and the ids of the rows that could not be scaled."""
    found, skipped = [], []
    for row in checks:
        if (row.category != Category.OARS or row.priority != Priority.MANDATORY
                or row.status not in (PASS, FAIL) or row.value is None or not row.limit
                or not row.metric):
            continue
        try:
            physical, view, n = _row_dvh(ctx, row)
            f = row_factor(row, physical, view, n)
        except (RtqaError, ValueError, KeyError):
            skipped.append(row.id)
            continue
        if f is not None:
            found.append((f, row))
    found.sort(key=lambda fr: (fr[0], fr[1].id))
    return found, skipped


def _lesion_part(ctx, les: LesionResult, rule) -> tuple[float | None, float | None, list[str]]:
    notes = []
    limit = float(rule.bed_limit.value)
    ab = float(les.alpha_beta)
    f_cov = f_rx = None
    if len(les.fractions) != 1:
        notes.append("several plans treat this lesion: the factors to the BED limit are "
                     "not computed (the BED of a scaled sum is no single quadratic)")
        return None, None, notes
    n = int(les.fractions[0])
    metric = parse_metric(les.metric)
    if les.dose_gy is not None and les.dose_gy > 0 and metric.kind == "D":
        f_cov = lesion_factor(les.dose_gy, n, ab, limit)
    elif les.bed_gy is not None:
        from rtqa.checks.bed import coverage_target
        by_name = {x.name: x for x in ctx.lesions}
        target = coverage_target(by_name[les.name], rule.coverage_structures) \
            if les.name in by_name else None
        if target is not None:
            try:
                d = ctx.dose.dvh(target.structure, DoseView.PHYSICAL, plans=(
                    [c.label for c in ctx.courses].index(les.plans[0]),))
                lq, _ = _lq(DoseView.BED, n, ab)
                if metric.kind == "Mean":
                    f_cov = _bisect(lambda f: _lq_mean(d, f, lq) >= limit)
                else:  # D, Max, Min: the LQ dose of the same voxels
                    f_cov = _bisect(lambda f: float(lq(metric_value(metric, scaled(d, f))))
                                    >= limit)
            except (RtqaError, ValueError):
                notes.append("coverage factor not computed")
    if les.prescribed_bed_gy is not None and les.prescribed_bed_gy > 0:
        rx = float(total_dose_for_bed(les.prescribed_bed_gy, n, ab))
        f_rx = lesion_factor(rx, n, ab, limit)
    return f_cov, f_rx, notes


def evaluate(ctx, results: Sequence[LesionResult], checks: Sequence[Check]
             ) -> tuple[LesionResult, ...]:
    """``results`` with ``headroom`` set on every lesion whose coverage BED row or
    prescribed-BED row FAILs (see the module docstring); others unchanged."""
    rule = ctx.protocol.lesions
    if rule is None or not results:
        return tuple(results)
    status = {c.id: c.status for c in checks}
    short = [r for r in results
             if status.get(f"lesion.{r.name}.bed") == FAIL
             or status.get(f"lesion.{r.name}.prescribed_bed") == FAIL]
    if not short:
        return tuple(results)
    oars, skipped = oar_factors(ctx, checks)
    out = []
    for r in results:
        if r not in short:
            out.append(r)
            continue
        f_cov, f_rx, notes = _lesion_part(ctx, r, rule)
        first = oars[0] if oars else None
        if first is None:
            notes.append("no mandatory organ-at-risk row binds within a factor of 1000")
        if skipped:
            notes.append(f"{len(skipped)} organ-at-risk row(s) not scaled: "
                         + ", ".join(skipped))
        row = first[1] if first else None
        out.append(replace(r, headroom=Headroom(
            factor_to_bed_limit=f_cov, factor_prescription_to_bed_limit=f_rx,
            factor_first_oar_fail=first[0] if first else None,
            binding_row=row.id if row else None,
            binding_structure=row.structure if row else None,
            binding_metric=row.metric if row else None,
            binding_dose_view=str(row.dose_view) if row else None,
            rows_not_scaled=tuple(skipped), note="; ".join(notes))))
    return tuple(out)
