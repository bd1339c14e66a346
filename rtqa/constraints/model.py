"""The constraint model: limits, constraint rows and sets, protocols and their per-lesion
and plan rules (frozen dataclasses).

Units: a row's ``limit`` is in the metric's result unit: Gy for dose metrics, cc or % for
volume metrics (``rtqa.dvh.metrics``); α/β in Gy; margins, slice spacing and pixel size in
mm; fraction counts are whole numbers >= 1.

A constraint row says: on ``structure`` (a structure expression, see ``rtqa.constraints.structexpr``),
the TG-263 ``metric`` must satisfy ``limit``; it carries its ``source`` (paper and table)
and verification ``status`` (one of ``STATUSES``: V, V2, U; only V rows are on by
default). ``Limit.holds`` compares exactly and never passes a NaN or infinite value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rtqa.constraints.structexpr import StructExpr, parse_structure

if TYPE_CHECKING:
    from rtqa.constraints.derivation import Derivation
    from rtqa.constraints.selection import SelectedRow


COMPARATORS = ("<", "<=", ">", ">=")
DOSE_TYPES = ("physical", "EQD2", "BED")
PRIORITIES = ("mandatory", "optimal")
STATUSES = ("V", "V2", "U")


def _num(x: float) -> str:
    return f"{x:.12g}"


@dataclass(frozen=True)
class Limit:
    """``comparator`` and ``value`` (in the metric's result unit: Gy, cc or %).

    ``holds`` compares exactly: a value equal to the limit passes ``<=``/``>=`` and fails
    ``<``/``>``. A NaN or infinite value never passes (fail closed).
    """

    comparator: str
    value: float

    def __post_init__(self):
        if self.comparator not in COMPARATORS:
            raise ValueError(f"comparator must be one of {', '.join(COMPARATORS)}, "
                             f"got {self.comparator!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"limit value must be finite, got {self.value!r}")

    @classmethod
    def parse(cls, text: str) -> "Limit":
        """``"< 30"``, ``"<= 20"``, ``">= 700"``; ``≤``/``≥`` are accepted."""
        if isinstance(text, bool) or isinstance(text, (int, float)):
            raise ValueError(f"limit needs a comparator, e.g. limit = \"< {text}\"")
        if not isinstance(text, str):
            raise ValueError(f"limit must be text like \"< 30\", got {text!r}")
        s = text.strip().replace("≤", "<=").replace("≥", ">=")
        m = re.fullmatch(r"(<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)?)", s)
        if m is None:
            why = ("the unit comes from the metric's [unit]; write the number only"
                   if re.search(r"[0-9]\s*[A-Za-z%]", s) else
                   "expected one of < <= > >= followed by a non-negative number")
            raise ValueError(f"invalid limit {text!r}: {why}")
        return cls(m[1], float(m[2]))

    def holds(self, x: float) -> bool:
        x = float(x)
        if not math.isfinite(x):
            return False
        v = self.value
        return {"<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[self.comparator]

    def __str__(self) -> str:
        return f"{self.comparator} {_num(self.value)}"


@dataclass(frozen=True)
class Constraint:
    """One constraint row. ``structure`` is the canonical expression text (the grouping
    key); ``fractions`` None means any fraction count; ``file``/``line`` locate the row's
    ``[[constraint]]`` header; ``set_name`` is the ``name`` of its file. ``derivation``
    is set on rows derived by LQ isoeffect for a fraction count no source covers
    (``rtqa.constraints.derivation``; ``file``/``line`` then locate the reference row)."""

    structure: str
    metric: str
    limit: Limit
    expr: StructExpr = field(repr=False, compare=False, default=None)
    fractions: frozenset[int] | None = None
    fractions_text: str = ""
    conventional: bool = False
    dose_type: str = "physical"
    alpha_beta: float | None = None
    priority: str = "mandatory"
    source: str | None = None
    status: str | None = None
    note: str = ""
    enabled: bool = False
    set_name: str = ""
    file: Path | None = None
    line: int | None = None
    derivation: "Derivation | None" = field(default=None, compare=False)

    def __post_init__(self):
        expr = self.expr if self.expr is not None else parse_structure(self.structure)
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "structure", str(expr))

    def applies_to(self, fractions: int) -> bool:
        return self.fractions is None or fractions in self.fractions

    @property
    def label(self) -> str:
        """``"D0.035cc[Gy] < 30"``."""
        return f"{self.metric} {self.limit}"

    @property
    def fraction_label(self) -> str:
        if self.conventional:
            return "conventional"
        return "any" if self.fractions is None else f"{self.fractions_text} fx"

    @property
    def derived(self) -> bool:
        return self.derivation is not None

    @property
    def ref(self) -> str:
        """``"tg101.toml:123"`` (file name and line of the row)."""
        name = self.file.name if self.file else "?"
        return f"{name}:{self.line}" if self.line else name


@dataclass(frozen=True)
class ConstraintSet:
    name: str
    constraints: tuple[Constraint, ...]
    description: str = ""
    source: str = ""
    path: Path | None = None


@dataclass(frozen=True)
class LesionRule:
    """Per-lesion dose rule: BED (α/β in Gy) of ``coverage_metric`` (a dose metric, e.g.
    ``D95%[Gy]``) on the first target class in ``coverage_structures`` that the lesion has
    (e.g. PTV, else GTV) must satisfy ``bed_limit`` (Gy)."""

    bed_limit: Limit
    alpha_beta: float
    coverage_metric: str
    coverage_structures: tuple[str, ...]
    source: str
    note: str = ""


@dataclass(frozen=True)
class OligoprogressionRule:
    """At most ``max_lesions`` treated lesions in at most ``max_organs`` organs."""

    max_lesions: int
    max_organs: int
    source: str
    note: str = ""


@dataclass(frozen=True)
class PlanningCTRule:
    """Planning CT: slice spacing and pixel size must not exceed these (mm)."""

    max_slice_spacing_mm: float
    max_pixel_size_mm: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class PTVMarginRule:
    """PTV = CTV + a margin between ``min_mm`` and ``max_mm`` (inclusive, mm)."""

    min_mm: float
    max_mm: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Replacement:
    """``[[limits.replace]]`` of a protocol: the rows DERIVED by LQ for the family
    (``structure``, ``metric``) at ``fractions`` (None: every count) are replaced by the
    protocol's enabled row on the same structure with metric ``by_metric``, which states
    the same rule in another form (``CV15Gy[cc] >= 700`` for ``DC700cc[Gy] < x``). A
    replaced row is still listed ("replaced by protocol <protocol>"), not evaluated, and
    the replacing row's report note names it. Sourced rows are never replaced this way;
    when the ``by_metric`` row does not apply at a count, the derived row stays a limit.
    ``line``: the ``[[limits.replace]]`` header line in the protocol file."""

    structure: str
    metric: str
    by_metric: str
    source: str
    fractions: frozenset[int] | None = None
    fractions_text: str = ""
    note: str = ""
    protocol: str = ""
    line: int | None = None

    def applies_to(self, fractions: int) -> bool:
        return self.fractions is None or fractions in self.fractions

    @property
    def label(self) -> str:
        fx = "every fraction count" if self.fractions is None else f"{self.fractions_text} fx"
        return f"{self.structure} {self.metric} replaced by {self.by_metric} ({fx})"


@dataclass(frozen=True)
class LimitsRule:
    """``[limits]`` of a protocol: ``derive_lq`` fills fraction counts without a sourced
    row by LQ isoeffect (``rtqa.constraints.derivation``); ``no_limit`` names structures
    (canonical expression text) the protocol deliberately gives no limit, with
    ``no_limit_source`` saying why. A contoured organ with no applicable limit that is
    not in ``no_limit`` is NOT EVALUATED. ``replace``: derived-row families the protocol's
    own rule replaces (``Replacement``)."""

    derive_lq: bool = True
    no_limit: tuple[str, ...] = ()
    no_limit_source: str = ""
    note: str = ""
    replace: tuple[Replacement, ...] = ()


#: Defaults of ``[prescription]`` (used when a protocol has no such section); their
#: sources are in ``constraints/protocols/oligo-hcc.toml`` and ``rtqa.checks.prescription``.
RX_COVERAGE_SOURCE = ("RTOG 0813 plan evaluation: 95% of the PTV receives the prescription, "
                      "99% of it at least 90% of it (secondary source: NCI case 131 on "
                      "econtour.org; the protocol text itself was not seen)")
RX_MAX_SOURCE = ("RTOG 0813 / RTOG 0915: prescription to the 60-90% isodose of the maximum, "
                 "i.e. PTV maximum 111-167% of Rx (unverified: as stated in rtqa issue 12, "
                 "the protocol text itself was not seen)")


@dataclass(frozen=True)
class PrescriptionRule:
    """``[prescription]`` of a protocol: SBRT prescription checks on the ROI a prescription
    is linked to (``rtqa.checks.prescription``), each as % of the prescription dose Rx.

    ``coverage_volume_pct``: V100%Rx >= this % of the PTV; ``near_min_volume_pct`` and
    ``near_min_dose_pct``: D<volume>% >= <dose>% of Rx; both rows have
    ``coverage_priority`` ("optimal": a shortfall is shown, never fails the plan, since
    the trial allows a lower dose where organ limits require it; "mandatory"). The PTV
    maximum must be at most ``max_dose_pct`` % of Rx (priority ``max_priority``) and, when
    ``min_max_dose_pct`` is set, at least that (below it: WARN, a homogeneous plan); a
    maximum below 98 % of Rx always FAILs (the prescription is received nowhere)."""

    coverage_volume_pct: float = 95.0
    near_min_volume_pct: float = 99.0
    near_min_dose_pct: float = 90.0
    coverage_priority: str = "optimal"
    coverage_source: str = RX_COVERAGE_SOURCE
    max_dose_pct: float = 166.7
    min_max_dose_pct: float | None = None
    max_priority: str = "mandatory"
    max_source: str = RX_MAX_SOURCE
    note: str = ""


@dataclass(frozen=True)
class Protocol:
    """A protocol: included constraint sets plus its own rows, and its settings (each
    None when the protocol file has no such section; ``limits`` defaults to deriving
    limits by LQ and no organ without a limit)."""

    name: str
    sets: tuple[ConstraintSet, ...]
    description: str = ""
    source: str = ""
    path: Path | None = None
    lesions: LesionRule | None = None
    oligoprogression: OligoprogressionRule | None = None
    planning_ct: PlanningCTRule | None = None
    ptv_margin: PTVMarginRule | None = None
    limits: LimitsRule = field(default_factory=LimitsRule)
    prescription: PrescriptionRule = field(default_factory=PrescriptionRule)

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        return tuple(c for s in self.sets for c in s.constraints)

    def select(self, fractions: int, **kwargs) -> list["SelectedRow"]:
        """``select(self.constraints, fractions, **kwargs)`` with this protocol's
        ``[limits]`` settings (LQ derivation, organs without a limit)."""
        from rtqa.constraints.selection import select  # (selection imports this module)

        kwargs.setdefault("derive", self.limits.derive_lq)
        kwargs.setdefault("no_limit", {s: self.limits.no_limit_source
                                       for s in self.limits.no_limit})
        kwargs.setdefault("replacements", self.limits.replace)
        return select(self.constraints, fractions, **kwargs)
