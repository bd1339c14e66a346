"""Limits for fraction counts the literature has no row for, derived by LQ isoeffect,
within the SBRT range only (1-8 fractions).

Units: doses in Gy, dose per fraction in Gy, α/β in Gy, fraction counts whole numbers >= 1.

TG-101 tabulates serial organs at 1, 3 and 5 fractions, HyTEC the cord at 1-5, QUANTEC's
SBRT liver rows 3 and 6; SABR for oligoprogressive HCC is given in 3-8 fractions, most
often 60 Gy in 4 (KROG 20-04). A family of rows (one structure expression and one metric,
across every constraint set of the protocol) that has sourced rows for some fraction
counts but none for the plan's count N gets a *derived* row for N:

* **Reference schedule** (conservative): the sourced count k nearest to N; when two are
  equally near (e.g. N = 4 between TG-101's 3 and 5), each is tried; when several sourced
  rows exist at the reference count(s) (e.g. the cord's HyTEC and TG-101 point maxima),
  each is tried. The row giving the LOWEST derived limit is kept.
* **Isoeffect** (linear-quadratic model): the reference limit D_k in k fractions has
  BED = D_k·(1 + D_k/(k·α/β)). The limit for N fractions is D_N = N·d with
  N·d·(1 + d/(α/β)) = BED, i.e. d = (α/β/2)·(√(1 + 4·BED/(N·α/β)) − 1).
  α/β = 3 Gy (late-responding tissue), 2 Gy for CNS structures (cord, brainstem, optic
  pathway, cauda equina; ``selection.default_alpha_beta``).
* The value is rounded DOWN to 0.01 Gy (never above the exact isoeffective dose).
* Only rows whose limit is an upper bound on a dose (``D…``, ``DC…``, ``Mean``, ``Max``
  metrics in Gy with ``<`` or ``<=``, physical dose) are derived; volume rules
  (``V…``/``CV…``) are not (their dose threshold sits inside the metric).
* Only enabled rows (status V) are references: an unverified row never becomes a limit
  through a derivation.
* A sourced row for N (of any enabled set, including the protocol's own rows) always
  wins: derivation only fills gaps, so a protocol replaces a derived row by writing its
  own row for that structure, metric and fraction count, or, when its own rule is the
  same limit written with another metric (the trial's ``CV15Gy[cc] >= 700`` and TG-101's
  ``DC700cc[Gy]``), by ``[[limits.replace]]`` (``model.Replacement``): the derived row is
  then listed "replaced by protocol <name>" and not evaluated, and the replacing row's
  note names it. ``[limits] derive_lq = false`` in a protocol turns derivation off.

**Derivation range: 1-8 fractions** (``DERIVATION_MAX_FRACTIONS``). Both the plan's count
N and the reference count k lie in 1-8, the span of the sourced SBRT schedules: TG-101
(Benedict et al. Med Phys 2010;37:4078, Table III) 1/3/5 fx, HyTEC (e.g. Sahgal et al.
IJROBP 2021;110:124) 1-5 fx, the UK SABR Consortium consensus (Hanna et al. Clin Oncol
2018;30:5; Diez et al. Clin Oncol 2022;34:288) 1/3/5/8 fx, and the trial's own 3-8 fx.
Inside it a derived row interpolates between tabulated schedules (2 and 4 fx) or
extrapolates by at most 3 fractions (6-8 fx from 5), with doses per fraction of the same
order as the reference. Beyond it the LQ model would carry an SBRT limit (5-15 Gy per
fraction, where its validity is itself disputed: Brenner, Semin Radiat Oncol
2008;18:234 -- "reasonably well validated up to about 10 Gy/fraction"; Kirkpatrick, Meyer
and Marks, ibid. 2008;18:240 -- the LQ model overestimates the effect of large fractions)
to 2-3 Gy fractions, a clinically meaningless extrapolation (TG-101's great vessels D10cc
47 Gy in 5 fx would become 94.7 Gy in 30 fx). So:

* **1-8 fractions (SBRT)**: fraction-specific rows (sourced, else derived); conventional
  rows on voxel-wise EQD2, informative only where an SBRT row for the same structure and
  metric applies.
* **9 fractions and more** (moderately hypofractionated 9-24 fx, e.g. 50 Gy/10 or 45 Gy/15,
  and conventional courses): no derived rows. The conventional rows (QUANTEC) apply, on
  voxel-wise EQD2 when the plan is hypofractionated (dose per fraction > 2 Gy; by count,
  fewer than 25 fractions, when the dose per fraction is unknown: ``selection.
  is_hypofractionated``; LQ conversion of 2.5-6 Gy fractions is inside the validated range
  above), on physical dose when it is conventionally fractionated (<= 2 Gy per fraction);
  rows for any count (the normal-liver rule) and protocol rows naming the count apply too.
  A structure that has none of these (e.g. the great vessels, ribs, duodenum: QUANTEC has
  no row for them) has no limit: a contoured one is NOT EVALUATED (plan ERROR) until the
  protocol adds a row for that count or lists it under ``[limits] no_limit``.

Every derived row says so: ``Constraint.derivation`` (``Derivation``) and its ``source``
text "derived (LQ) from <reference source>, <k> fx". The LQ model is questioned at high
dose per fraction; a derived row is a documented extrapolation, not a published limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from rtqa.constraints.model import Constraint, Limit, _num

__all__ = ["Derivation", "bed", "isoeffective_total_dose", "derivable", "derive_rows",
           "round_down", "in_derivation_range", "DERIVATION_MAX_FRACTIONS"]

#: Derived limits are rounded down to this step (Gy).
ROUNDING_GY = 0.01
#: LQ derivation only for plans (and from references) of 1 to this many fractions (the
#: span of the sourced SBRT schedules; see the module docstring).
DERIVATION_MAX_FRACTIONS = 8


def in_derivation_range(fractions: int) -> bool:
    """True for 1-``DERIVATION_MAX_FRACTIONS`` fractions (SBRT schedules)."""
    return 1 <= fractions <= DERIVATION_MAX_FRACTIONS


def bed(total_gy: float, fractions: int, alpha_beta: float) -> float:
    """BED (Gy) of ``total_gy`` in ``fractions`` equal fractions: D·(1 + D/(n·α/β))."""
    return total_gy * (1.0 + total_gy / (fractions * alpha_beta))


def isoeffective_total_dose(total_gy: float, ref_fractions: int, fractions: int,
                            alpha_beta: float) -> float:
    """Total dose (Gy) in ``fractions`` with the same BED as ``total_gy`` in
    ``ref_fractions`` (LQ, α/β in Gy): N·d with d = (α/β/2)(√(1 + 4·BED/(N·α/β)) − 1)."""
    if ref_fractions < 1 or fractions < 1:
        raise ValueError("fraction counts must be >= 1")
    if not (alpha_beta > 0 and math.isfinite(alpha_beta)):
        raise ValueError(f"alpha/beta must be > 0 Gy, got {alpha_beta!r}")
    if total_gy < 0 or not math.isfinite(total_gy):
        raise ValueError(f"dose must be >= 0 Gy, got {total_gy!r}")
    b = bed(total_gy, ref_fractions, alpha_beta)
    d = 0.5 * alpha_beta * (math.sqrt(1.0 + 4.0 * b / (fractions * alpha_beta)) - 1.0)
    return fractions * d


def round_down(value_gy: float) -> float:
    """Round down to ``ROUNDING_GY`` (a tiny tolerance absorbs binary noise)."""
    steps = math.floor(value_gy / ROUNDING_GY + 1e-9)
    return round(steps * ROUNDING_GY, 10)


@dataclass(frozen=True)
class Derivation:
    """How a derived row was obtained: from ``reference`` (a sourced row) at
    ``reference_fractions`` fractions, LQ isoeffect with ``alpha_beta`` (Gy), same
    ``bed_gy``; ``exact_gy`` is the unrounded isoeffective limit for ``fractions``."""

    reference: Constraint
    reference_fractions: int
    fractions: int
    alpha_beta: float
    alpha_beta_reason: str
    bed_gy: float
    exact_gy: float

    @property
    def label(self) -> str:
        """``"derived (LQ) from Benedict et al. ..., Table III, 3 fx"``."""
        ref = self.reference.source or self.reference.set_name
        return f"derived (LQ) from {ref}, {self.reference_fractions} fx"

    @property
    def detail(self) -> str:
        """The arithmetic, for notes and listings."""
        r = self.reference
        return (f"{r.metric} {r.limit} Gy in {self.reference_fractions} fx "
                f"({r.set_name} {r.status or '?'}, {r.ref}) -> BED "
                f"(α/β {_num(self.alpha_beta)} Gy) {self.bed_gy:.2f} Gy -> "
                f"{self.exact_gy:.3f} Gy in {self.fractions} fx, rounded down")


def derivable(row: Constraint) -> bool:
    """A reference candidate: enabled, fraction-specific, physical, an upper bound on a
    dose metric in Gy."""
    from rtqa.dvh.metrics import parse_metric  # lazy: numpy

    if not row.enabled or row.fractions is None or row.conventional:
        return False
    if not any(in_derivation_range(k) for k in row.fractions):
        return False
    if row.dose_type != "physical" or row.limit.comparator not in ("<", "<="):
        return False
    metric = parse_metric(row.metric)
    return metric.kind in ("D", "DC", "Mean", "Max") and metric.result_unit == "Gy"


def _derive(ref: Constraint, k: int, n: int) -> Constraint:
    from rtqa.constraints.selection import default_alpha_beta  # (imports this module)

    ab, why = default_alpha_beta(ref.expr)
    exact = isoeffective_total_dose(ref.limit.value, k, n, ab)
    der = Derivation(ref, k, n, ab, why, bed(ref.limit.value, k, ab), exact)
    note = f"{der.label}: {der.detail}."
    if ref.note:
        note += f" Reference row: {ref.note}"
    return Constraint(
        structure=ref.structure, metric=ref.metric,
        limit=Limit(ref.limit.comparator, round_down(exact)), expr=ref.expr,
        fractions=frozenset({n}), fractions_text=str(n), dose_type="physical",
        priority=ref.priority, source=der.label, status=ref.status, note=note,
        enabled=True, set_name=ref.set_name, file=ref.file, line=ref.line,
        derivation=der)


def derive_rows(rows: Iterable[Constraint], fractions: int, *,
                hypofractionated: bool = True) -> list[Constraint]:
    """Derived rows for a plan of ``fractions`` fractions, one per (structure, metric)
    family that has derivable sourced rows at other counts but no enabled row for this
    count (see the module docstring). For a conventionally fractionated plan
    (``hypofractionated`` False) an enabled conventional row of the family counts as
    sourced. Order: first appearance of the family. Nothing is derived for a count outside
    1-``DERIVATION_MAX_FRACTIONS``, nor from a reference count outside it."""
    if not in_derivation_range(fractions):
        return []
    rows = list(rows)
    families: dict[tuple[str, str], list[Constraint]] = {}
    for r in rows:
        families.setdefault((r.structure, r.metric), []).append(r)
    out: list[Constraint] = []
    for family in families.values():
        sourced = [r for r in family if r.enabled and (
            (r.fractions is None and not r.conventional)
            or (r.fractions is not None and fractions in r.fractions)
            or (r.conventional and not hypofractionated))]
        if sourced:
            continue
        refs = [r for r in family if derivable(r)]
        if not refs:
            continue
        counts = sorted({k for r in refs for k in r.fractions if in_derivation_range(k)})
        best = min(abs(k - fractions) for k in counts)
        candidates = [_derive(r, k, fractions) for r in refs for k in sorted(r.fractions)
                      if in_derivation_range(k) and abs(k - fractions) == best]
        out.append(min(candidates, key=lambda c: (c.derivation.exact_gy,
                                                  c.derivation.reference_fractions)))
    return out
