"""Which constraint rows apply to a plan of a given fraction count (``select``).

Units: dose and dose per fraction in Gy, α/β in Gy.

Rows marked ``fractionation = "conventional"`` hold for 1.8-2 Gy fractions; for a
hypofractionated plan (``is_hypofractionated``) they are evaluated on the voxel-wise EQD2
distribution, EQD2 = D·(D/n + α/β)/(2 + α/β), with the row's α/β, else the global one,
else 2 Gy for CNS structures and 3 Gy otherwise (``default_alpha_beta``).

Fraction regimes (``rtqa.constraints.derivation`` gives the sources):

* 1-8 fractions (SBRT): a (structure, metric) family with sourced rows for other fraction
  counts but none for this one gets a row derived by LQ isoeffect from the nearest
  sourced schedule (its ``Constraint.derivation`` says so), unless the protocol's
  ``[[limits.replace]]`` (``model.Replacement``) replaces that family's derived rows by
  its own rule: the derived row is then listed as ``"replaced"`` (not evaluated; the
  replacing row's note names it).
* 9 fractions and more: nothing is derived. Conventional rows apply (on EQD2 when the
  plan is hypofractionated, ``is_hypofractionated``), with rows for any count and rows
  naming the count; a structure with none of them has no limit.

Where an SBRT
row (sourced or derived) applies to a structure and metric, the conventional row for the
same structure and metric, converted to EQD2, is informative only (``informative``,
priority "optimal"): it never overrides the SBRT row. A structure with no applicable
enabled row gets a ``"none"`` entry, "no constraint for N fractions" (the organ, when
contoured, is NOT EVALUATED), unless the protocol lists it as having no limit
(``"exempt"`` entry, with the protocol's justification).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from rtqa.constraints.model import Constraint, _num
from rtqa.constraints.structexpr import StructExpr

if TYPE_CHECKING:
    from rtqa.constraints.model import Replacement


#: α/β (Gy) used to convert conventional rows to EQD2: late-responding tissue / CNS.
ALPHA_BETA_LATE = 3.0
ALPHA_BETA_CNS = 2.0
#: Organs converted with α/β = 2 Gy (their PRVs too, e.g. SpinalCord_PRV05).
CNS_STRUCTURES = frozenset({
    "SpinalCord", "SpinalCord_Cerv", "SpinalCord_Thor", "SpinalCord_Lum", "SpinalCord_Sac",
    "SpinalCanal", "ThecalSac", "CaudaEquina", "Brainstem", "Brainstem_Core",
    "Brainstem_Surf", "Brain", "OpticChiasm", "OpticNrv", "OpticNrv_L", "OpticNrv_R"})
#: A plan is conventionally fractionated when its prescription dose per fraction is at
#: most this (Gy); when the dose per fraction is unknown, when it has at least
#: ``CONVENTIONAL_MIN_FRACTIONS`` fractions (10-24 fraction courses are usually 2.5-5 Gy
#: per fraction, e.g. 50 Gy/10 or 45 Gy/15, and must not be read as conventional).
CONVENTIONAL_MAX_DOSE_PER_FRACTION_GY = 2.0
CONVENTIONAL_MIN_FRACTIONS = 25

APPLY, DISABLED, NONE, EXEMPT, REPLACED = "apply", "disabled", "none", "exempt", "replaced"


@dataclass(frozen=True)
class SelectedRow:
    """One entry of a selection for ``fractions``.

    ``kind``: ``"apply"`` (evaluate ``constraint`` on ``dose_type`` dose: physical, EQD2 or
    BED with ``alpha_beta`` Gy, explained in ``conversion_note``), ``"disabled"`` (listed,
    not applied; ``reason`` says why), ``"none"`` (no enabled row for this structure at
    this fraction count: ``reason`` = "no constraint for N fractions"; never a pass) or
    ``"exempt"`` (no row, and the protocol says this structure has no limit; ``reason``
    gives the protocol's justification). ``informative``: a conventional row shown for
    information only because an SBRT row for the same structure and metric applies
    (its constraint's priority is "optimal"). A derived row's constraint has
    ``derivation`` set. ``"replaced"``: a derived row the protocol replaces by its own
    rule (``[[limits.replace]]``): listed, not evaluated (``replaced_by`` says by what; the
    replacing row's ``conversion_note`` names it).
    ``hint`` (``"none"`` entries): why there is no limit and how a protocol adds one.
    ``metric`` (``"none"`` entries beyond the derivation range): the metric family whose
    SBRT rows stop there while other rows of the structure still apply (e.g. the
    stomach's point maximum at 10 fx, where only QUANTEC's D100% row applies); empty
    when the whole structure has no row.
    """

    structure: str
    fractions: int
    kind: str
    constraint: Constraint | None = None
    dose_type: str | None = None
    alpha_beta: float | None = None
    conversion_note: str = ""
    reason: str = ""
    informative: bool = False
    replaced_by: str = ""
    hint: str = ""
    metric: str = ""

    @property
    def derived(self) -> bool:
        return self.constraint is not None and self.constraint.derivation is not None

    @property
    def applied(self) -> bool:
        return self.kind == APPLY


def is_hypofractionated(fractions: int, dose_per_fraction_gy: float | None = None) -> bool:
    """True unless the plan is conventionally fractionated (see the module constants):
    dose per fraction > 2 Gy when known, else fewer than 25 fractions."""
    if dose_per_fraction_gy is not None:
        d = float(dose_per_fraction_gy)
        if not math.isfinite(d) or d <= 0:
            raise ValueError(f"dose per fraction must be > 0 Gy, got {dose_per_fraction_gy!r}")
        return d > CONVENTIONAL_MAX_DOSE_PER_FRACTION_GY + 1e-9
    return fractions < CONVENTIONAL_MIN_FRACTIONS


def _base_organ(name: str) -> str:
    return re.sub(r"_PRV[0-9.]*$", "", name)


def default_alpha_beta(expr: StructExpr) -> tuple[float, str]:
    """(α/β Gy, reason) for EQD2 conversion: 2 Gy if any added organ is CNS, else 3 Gy."""
    if any(_base_organ(o) in CNS_STRUCTURES for o in expr.positive_organs):
        return ALPHA_BETA_CNS, "CNS"
    return ALPHA_BETA_LATE, "late-responding tissue"


def _apply(row: Constraint, n: int, hypo: bool, alpha_beta: float | None) -> SelectedRow:
    fx = f"{n} fraction{'s' if n != 1 else ''}"
    if row.conventional and hypo:
        if row.alpha_beta is not None:
            ab, why = row.alpha_beta, "row setting"
        elif alpha_beta is not None:
            ab, why = float(alpha_beta), "global setting"
        else:
            ab, why = default_alpha_beta(row.expr)
        note = (f"{row.set_name} conventional limit evaluated on EQD2 (α/β = {_num(ab)} Gy, "
                f"{why}), voxel-wise, {fx}")
        return SelectedRow(row.structure, n, APPLY, row, "EQD2", ab, note)
    if row.conventional:
        note = (f"{row.set_name} conventional limit on physical dose (plan conventionally "
                f"fractionated, {fx})")
        return SelectedRow(row.structure, n, APPLY, row, "physical", None, note)
    if row.dose_type != "physical":
        note = (f"limit in {row.dose_type} (α/β = {_num(row.alpha_beta)} Gy, row setting), "
                f"voxel-wise for {fx}")
        return SelectedRow(row.structure, n, APPLY, row, row.dose_type, row.alpha_beta, note)
    if row.derivation is not None:
        return SelectedRow(row.structure, n, APPLY, row, "physical", None,
                           f"derived (LQ): {row.derivation.detail}")
    return SelectedRow(row.structure, n, APPLY, row, "physical")


def _short_source(row: Constraint) -> str:
    """A row's source; for a derived row its reference set and count (the full text is
    the derived row's own source)."""
    d = row.derivation
    if d is not None:
        return f"derived (LQ) from {d.reference.set_name}, {d.reference_fractions} fx"
    return row.source or row.set_name


def _informative(sel: SelectedRow, sbrt: list[Constraint]) -> SelectedRow:
    """A conventional EQD2 row shown for information: priority optimal, marked."""
    what = "; ".join(f"{r.label} ({_short_source(r)})" for r in sbrt)
    note = (f"informative only (priority optimal): the SBRT row for the same structure "
            f"and metric applies at {sel.fractions} fx: {what}")
    return replace(sel, constraint=replace(sel.constraint, priority="optimal"),
                   informative=True,
                   conversion_note="; ".join(n for n in (sel.conversion_note, note) if n))


def _replaced(sel: SelectedRow, rep, by: list[Constraint]) -> SelectedRow:
    """A derived row the protocol's own rule replaces: kind ``"replaced"`` (listed, not
    evaluated), priority optimal, saying what replaces it."""
    what = "; ".join(f"{r.structure} {r.label}" for r in by)
    text = f"protocol {rep.protocol}: {what}"
    fx = "" if rep.fractions is None else f", {rep.fractions_text} fx"
    note = f"replaced by {text} (the same rule; [[limits.replace]]{fx}); not evaluated"
    return replace(sel, kind=REPLACED, constraint=replace(sel.constraint, priority="optimal"),
                   informative=True, replaced_by=text,
                   conversion_note="; ".join(n for n in (sel.conversion_note, note) if n))


def _replacing(sel: SelectedRow, replaced: list[tuple[SelectedRow, "Replacement"]]
               ) -> SelectedRow:
    """The protocol row that replaces derived rows: its note names them."""
    what = "; ".join(f"{r.constraint.label} ({r.constraint.source})" for r, _ in replaced)
    note = (f"replaces the derived {what}, the same rule ([[limits.replace]] of protocol "
            f"{replaced[0][1].protocol})")
    return replace(sel, conversion_note="; ".join(n for n in (sel.conversion_note, note)
                                                  if n))


def _no_row_hint(structure: str, fractions: int) -> str:
    """Why a structure has no limit at this count, and how a protocol gives it one."""
    from rtqa.constraints.derivation import DERIVATION_MAX_FRACTIONS, in_derivation_range

    why = "" if in_derivation_range(fractions) else (
        f"limits are not derived by LQ beyond {DERIVATION_MAX_FRACTIONS} fractions and no "
        f"conventional row, row for any count or row for {fractions} fractions exists; ")
    return (f"{why}to set a limit, add to the protocol a [[constraint]] with structure = "
            f"\"{structure}\", metric, limit, fractions = [{fractions}], source and status, "
            "or list the structure under [limits] no_limit with no_limit_source")


def _hot_spot(row: Constraint) -> bool:
    """An upper bound on a structure's hot spot: Max, or D at an absolute volume (cc)."""
    from rtqa.dvh.metrics import parse_metric  # lazy: numpy

    m = parse_metric(row.metric)
    return row.limit.comparator in ("<", "<=") and (
        m.kind == "Max" or (m.kind == "D" and m.value_unit == "cc"))


def _families_without_row(structure: str, group: list[Constraint],
                          applying: list[Constraint], fractions: int,
                          hypofractionated: bool) -> list[SelectedRow]:
    """Beyond the LQ derivation range, in a hypofractionated plan (``is_hypofractionated``:
    above 2 Gy per fraction, or by count below 25 fx; e.g. 50 Gy in 10 fx): a structure whose sourced SBRT rows limit its hot
    spot (Max, or D at a volume in cc, e.g. TG-101's point maxima) but where no applying
    row bounds a hot spot any more (e.g. the stomach at 10 fx, where only QUANTEC's
    D100% row, a minimum dose, applies) gets a ``"none"`` entry for that family: fail
    closed, visible, and it stops a PASS. Any applying hot-spot bound (e.g. QUANTEC's
    conventional cord Dmax) counts as a limit for every hot-spot family. A conventionally
    fractionated plan is judged by the conventional rows (QUANTEC), as the trial asks."""
    from rtqa.constraints.derivation import derivable, in_derivation_range

    if (in_derivation_range(fractions) or not hypofractionated
            or any(_hot_spot(r) for r in applying)):
        return []
    families = dict.fromkeys(r.metric for r in group if derivable(r) and _hot_spot(r))
    s = "s" if fractions != 1 else ""
    return [SelectedRow(structure, fractions, NONE, metric=m,
                        reason=f"no hot-spot limit ({m} or any Max/D-cc row) for {fractions} "
                               f"fraction{s}: its SBRT rows stop at the LQ derivation range "
                               "and the rows that apply do not bound its maximum",
                        hint=_no_row_hint(structure, fractions).replace(
                            "metric, limit", f"metric = \"{m}\", limit"))
            for m in families][:1]


def _why_disabled(row: Constraint) -> str:
    if row.status != "V":
        return f"disabled: status {row.status or 'missing'} (only V rows are on by default)"
    return "disabled in its file (enabled = false)"


def select(rows: Iterable[Constraint], fractions: int, *,
           dose_per_fraction_gy: float | None = None,
           alpha_beta: float | None = None, derive: bool = True,
           no_limit: Mapping[str, str] | None = None,
           replacements: Sequence["Replacement"] = ()) -> list[SelectedRow]:
    """What applies to a plan of ``fractions`` fractions, grouped by structure.

    For each structure (in order of first appearance): the enabled rows that apply
    (``fractions`` in their spec, or no spec), then (``derive``) rows derived by LQ
    isoeffect for families without a sourced row at this count
    (``derivation.derive_rows``), then the disabled rows that would apply. A
    conventional row whose structure and metric also has an applicable SBRT row is
    informative only (``SelectedRow.informative``, priority "optimal").
    If no enabled or derived row applies, an ``"exempt"`` entry comes first when
    ``no_limit`` (structure text -> justification) names the structure, else a ``"none"``
    entry: "no constraint for N fractions" (``hint``: how to add a row). ``replacements``: the
    protocol's ``[[limits.replace]]`` entries; a derived row of a replaced family is
    ``"replaced"`` (listed, not evaluated) where the replacing row applies.
    Conventional rows of a hypofractionated plan (``is_hypofractionated``)
    are evaluated on EQD2 with α/β = the row's ``alpha_beta``, else the global
    ``alpha_beta`` argument (Gy), else 2 Gy for CNS structures and 3 Gy otherwise:
    voxel-wise, each voxel's total dose D of n fractions becomes
    EQD2 = D·(D/n + α/β)/(2 + α/β).
    """
    if isinstance(fractions, bool) or not isinstance(fractions, int) or fractions < 1:
        raise ValueError(f"fractions must be a positive integer, got {fractions!r}")
    if alpha_beta is not None and not (math.isfinite(alpha_beta) and alpha_beta > 0):
        raise ValueError(f"alpha_beta must be > 0 Gy, got {alpha_beta!r}")
    from rtqa.constraints.derivation import derive_rows  # (imports this module)
    from rtqa.constraints.structexpr import parse_structure

    hypo = is_hypofractionated(fractions, dose_per_fraction_gy)
    exempt = {str(parse_structure(k)): v for k, v in (no_limit or {}).items()}
    groups: dict[str, list[Constraint]] = {}
    for row in rows:
        groups.setdefault(row.structure, []).append(row)
    out: list[SelectedRow] = []
    for structure, group in groups.items():
        relevant = [r for r in group if r.applies_to(fractions)]
        on = [r for r in relevant if r.enabled]
        off = [r for r in relevant if not r.enabled]
        derived = derive_rows(group, fractions, hypofractionated=hypo) if derive else []
        if not on and not derived:
            if structure in exempt:
                out.append(SelectedRow(structure, fractions, EXEMPT,
                                       reason=f"no limit by protocol: {exempt[structure]}"))
            else:
                reason = f"no constraint for {fractions} fraction" \
                    f"{'s' if fractions != 1 else ''}"
                if off:
                    reason += f" ({len(off)} disabled row{'s' if len(off) != 1 else ''})"
                out.append(SelectedRow(structure, fractions, NONE, reason=reason,
                                       hint=_no_row_hint(structure, fractions)))
        if (on or derived) and structure not in exempt:
            out.extend(_families_without_row(structure, group, on + derived, fractions, hypo))
        sbrt = [r for r in on + derived if not r.conventional]
        from_derived: list[SelectedRow] = []
        replaced_by: dict[int, list[tuple[SelectedRow, Replacement]]] = {}
        for r in derived:
            sel = _apply(r, fractions, hypo, alpha_beta)
            rep = next((x for x in replacements if x.structure == structure
                        and x.metric == r.metric and x.applies_to(fractions)), None)
            by = [o for o in on if rep is not None and o.metric == rep.by_metric]
            if by:
                sel = _replaced(sel, rep, by)
                for o in by:
                    replaced_by.setdefault(id(o), []).append((sel, rep))
            from_derived.append(sel)
        for r in on:
            sel = _apply(r, fractions, hypo, alpha_beta)
            same = [s for s in sbrt if s.metric == r.metric]
            if r.conventional and hypo and same:
                sel = _informative(sel, same)
            if id(r) in replaced_by:
                sel = _replacing(sel, replaced_by[id(r)])
            out.append(sel)
        out.extend(from_derived)
        out.extend(SelectedRow(structure, fractions, DISABLED, r, reason=_why_disabled(r))
                   for r in off)
    return out
