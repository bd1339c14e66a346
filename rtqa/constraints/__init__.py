"""Dose constraints: model, TOML loading and validation, selection by fraction count.

A constraint row says: on ``structure`` (a structure expression, see ``rtqa.structexpr``),
the TG-263 ``metric`` (see ``rtqa.metrics``) must satisfy ``limit``. Units are those of the
metric's result unit: Gy for dose metrics, cc or % for volume metrics. Every row carries
its ``source`` (paper and table) and verification ``status``:

* ``V``  value seen in a public reproduction of the primary table (on by default);
* ``V2`` seen only in a secondary compilation (off by default);
* ``U``  not confirmed (off by default).

Rows marked ``fractionation = "conventional"`` hold for 1.8-2 Gy fractions; for a
hypofractionated plan they are evaluated on the voxel-wise EQD2 distribution (see
``select``). The file format is documented in ``FORMAT_HELP`` (also ``rtqa constraints
--help``); protocols are described in ``load_protocol``.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from rtqa.errors import ConstraintFileError, MetricSyntaxError
from rtqa.paths import constraints_dir, protocols_dir
from rtqa.structexpr import TARGET_CLASSES, StructExpr, StructExprError, parse_structure

__all__ = [
    "Limit", "Constraint", "ConstraintSet", "Protocol", "SelectedRow", "LesionRule",
    "OligoprogressionRule", "PlanningCTRule", "PTVMarginRule", "load_constraint_file",
    "load_protocol", "resolve_protocol", "select", "is_hypofractionated",
    "default_alpha_beta", "FORMAT_HELP",
]

COMPARATORS = ("<", "<=", ">", ">=")
DOSE_TYPES = ("physical", "EQD2", "BED")
PRIORITIES = ("mandatory", "optimal")
STATUSES = ("V", "V2", "U")

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

APPLY, DISABLED, NONE = "apply", "disabled", "none"

FORMAT_HELP = """\
\b
name = "TG-101"                     # set name (required)
description = "..."                 # optional
source = "Benedict 2010, Table III" # optional
[[constraint]]                      # one table per row
structure = "Liver - GTV"           # TG-263 name or expression (+ union, - subtract)
metric = "CV15Gy[cc]"               # TG-263: D95%[Gy] D2cc[Gy] V20Gy[%] Mean[Gy] ...
limit = ">= 700"                    # < <= > >= and a number in the metric's [unit]
fractions = "3-5"                   # or [1, 3]; absent = any fraction count
source = "Pan et al. IJROBP 2010;76(3S):S94"   # paper and table
status = "V"                        # V verified; V2, U (only V is on by default)
note = "..."                        # optional
\b
Optional keys: fractionation = "conventional" (a 1.8-2 Gy/fx limit, evaluated on
EQD2 with α/β 3 Gy, 2 Gy for CNS, when the plan is hypofractionated), alpha_beta
(Gy), dose_type = "physical" | "EQD2" | "BED" (EQD2/BED need alpha_beta),
priority = "mandatory" | "optimal", enabled = true | false."""


# --- model -----------------------------------------------------------------------------

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
    ``[[constraint]]`` header; ``set_name`` is the ``name`` of its file."""

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
class Protocol:
    """A protocol: included constraint sets plus its own rows, and its settings (each
    None when the protocol file has no such section)."""

    name: str
    sets: tuple[ConstraintSet, ...]
    description: str = ""
    source: str = ""
    path: Path | None = None
    lesions: LesionRule | None = None
    oligoprogression: OligoprogressionRule | None = None
    planning_ct: PlanningCTRule | None = None
    ptv_margin: PTVMarginRule | None = None

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        return tuple(c for s in self.sets for c in s.constraints)

    def select(self, fractions: int, **kwargs) -> list["SelectedRow"]:
        """``select(self.constraints, fractions, **kwargs)``."""
        return select(self.constraints, fractions, **kwargs)


# --- selection by fraction count -------------------------------------------------------

@dataclass(frozen=True)
class SelectedRow:
    """One entry of a selection for ``fractions``.

    ``kind``: ``"apply"`` (evaluate ``constraint`` on ``dose_type`` dose: physical, EQD2 or
    BED with ``alpha_beta`` Gy, explained in ``conversion_note``), ``"disabled"`` (listed,
    not applied; ``reason`` says why) or ``"none"`` (no enabled row for this structure at
    this fraction count: ``reason`` = "no constraint for N fractions"; never a pass).
    """

    structure: str
    fractions: int
    kind: str
    constraint: Constraint | None = None
    dose_type: str | None = None
    alpha_beta: float | None = None
    conversion_note: str = ""
    reason: str = ""

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
    return SelectedRow(row.structure, n, APPLY, row, "physical")


def _why_disabled(row: Constraint) -> str:
    if row.status != "V":
        return f"disabled: status {row.status or 'missing'} (only V rows are on by default)"
    return "disabled in its file (enabled = false)"


def select(rows: Iterable[Constraint], fractions: int, *,
           dose_per_fraction_gy: float | None = None,
           alpha_beta: float | None = None) -> list[SelectedRow]:
    """What applies to a plan of ``fractions`` fractions, grouped by structure.

    For each structure (in order of first appearance): the enabled rows that apply
    (``fractions`` in their spec, or no spec), then the disabled rows that would apply.
    If no enabled row applies, a ``"none"`` entry comes first: "no constraint for N
    fractions". Conventional rows of a hypofractionated plan (``is_hypofractionated``)
    are evaluated on EQD2 with α/β = the row's ``alpha_beta``, else the global
    ``alpha_beta`` argument (Gy), else 2 Gy for CNS structures and 3 Gy otherwise:
    voxel-wise, each voxel's total dose D of n fractions becomes
    EQD2 = D·(D/n + α/β)/(2 + α/β).
    """
    if isinstance(fractions, bool) or not isinstance(fractions, int) or fractions < 1:
        raise ValueError(f"fractions must be a positive integer, got {fractions!r}")
    if alpha_beta is not None and not (math.isfinite(alpha_beta) and alpha_beta > 0):
        raise ValueError(f"alpha_beta must be > 0 Gy, got {alpha_beta!r}")
    hypo = is_hypofractionated(fractions, dose_per_fraction_gy)
    groups: dict[str, list[Constraint]] = {}
    for row in rows:
        groups.setdefault(row.structure, []).append(row)
    out: list[SelectedRow] = []
    for structure, group in groups.items():
        relevant = [r for r in group if r.applies_to(fractions)]
        on = [r for r in relevant if r.enabled]
        off = [r for r in relevant if not r.enabled]
        if not on:
            reason = f"no constraint for {fractions} fraction{'s' if fractions != 1 else ''}"
            if off:
                reason += f" ({len(off)} disabled row{'s' if len(off) != 1 else ''})"
            out.append(SelectedRow(structure, fractions, NONE, reason=reason))
        out.extend(_apply(r, fractions, hypo, alpha_beta) for r in on)
        out.extend(SelectedRow(structure, fractions, DISABLED, r, reason=_why_disabled(r))
                   for r in off)
    return out


# --- TOML reading helpers --------------------------------------------------------------

class _RowError(Exception):
    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _read_toml(path: Path) -> tuple[list[str], dict]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConstraintFileError("file not found", path) from None
    except OSError as exc:
        raise ConstraintFileError(f"cannot read file ({exc.strerror or exc})", path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConstraintFileError("not UTF-8 text", path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"line {m[1]}, column {m[2]}: " if m else ""
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        raise ConstraintFileError(f"{where}TOML syntax error: {msg}", path) from None
    return text.splitlines(), data


_HEADER = re.compile(r"^\s*\[")


def _header_lines(lines: list[str], table: str, array: bool) -> list[int]:
    key = rf"\s*\"?{re.escape(table)}\"?\s*"
    pat = re.compile(rf"^\s*\[\[{key}\]\]" if array else rf"^\s*\[{key}\](?!\])")
    return [i + 1 for i, line in enumerate(lines) if pat.match(line)]


def _key_line(lines: list[str], start: int | None, key: str) -> int | None:
    """Line (1-based) of ``key = ...`` in the table whose header is on line ``start``;
    ``start`` 0 means the top level (before the first table)."""
    if start is None:
        return None
    pat = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    for i in range(start, len(lines)):
        if _HEADER.match(lines[i]):
            break
        if pat.match(lines[i]):
            return i + 1
    return None


def _unknown_keys(table: dict, allowed: Iterable[str]) -> str | None:
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}"
    return None


def _text(table: dict, key: str, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise _RowError(f"missing required key {key!r}", key)
        return None
    if not isinstance(value, str) or not value.strip():
        raise _RowError(f"{key!r} must be non-empty text, got {value!r}", key)
    return value.strip()


def _number(table: dict, key: str, *, positive: bool = True, integer: bool = False,
            required: bool = True) -> float | int | None:
    value = table.get(key)
    if value is None:
        if required:
            raise _RowError(f"missing required key {key!r}", key)
        return None
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
        kind = "a whole number" if integer else "a number"
        raise _RowError(f"{key!r} must be {kind}, got {value!r}", key)
    if value < 0 or (positive and value == 0):
        raise _RowError(f"{key!r} must be {'> 0' if positive else '>= 0'}, got {value!r}", key)
    return value if integer else float(value)


# --- constraint rows -------------------------------------------------------------------

ROW_KEYS = ("structure", "metric", "limit", "fractions", "fractionation", "dose_type",
            "alpha_beta", "priority", "source", "status", "note", "enabled")


def parse_fractions(value) -> tuple[frozenset[int], str]:
    """``3``, ``[1, 3]`` or ``"3-5"`` -> (set of fraction counts, display text)."""
    def bad(why: str) -> _RowError:
        return _RowError(f"invalid fractions {value!r}: {why} (write [3], [1, 3] or "
                         "\"3-5\")", "fractions")
    if isinstance(value, bool):
        raise bad("not a fraction count")
    if isinstance(value, int):
        value = [value]
    if isinstance(value, list):
        if not value:
            raise bad("empty list")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
            raise bad("fraction counts are whole numbers >= 1")
        if len(set(value)) != len(value):
            raise bad("repeated fraction count")
        return frozenset(value), ", ".join(str(v) for v in sorted(value))
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
        if m is None:
            raise bad("a range is two whole numbers joined by '-'")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if lo < 1 or hi < lo or hi > 1000:
            raise bad("a range runs from a count >= 1 up to a larger count")
        return frozenset(range(lo, hi + 1)), f"{lo}-{hi}" if hi > lo else str(lo)
    raise bad("not a list or a range")


def _parse_row(raw: dict, set_name: str, path: Path, line: int | None) -> Constraint:
    from rtqa.metrics import parse_metric  # lazy: rtqa.metrics imports numpy

    problem = _unknown_keys(raw, ROW_KEYS)
    if problem:
        raise _RowError(problem, next(k for k in raw if k not in ROW_KEYS))
    structure = _text(raw, "structure", required=True)
    try:
        expr = parse_structure(structure)
    except StructExprError as exc:
        raise _RowError(str(exc), "structure") from None
    metric_text = _text(raw, "metric", required=True)
    try:
        metric = str(parse_metric(metric_text))
    except MetricSyntaxError as exc:
        raise _RowError(str(exc), "metric") from None
    if "limit" not in raw:
        raise _RowError("missing required key 'limit'", "limit")
    try:
        limit = Limit.parse(raw["limit"])
    except ValueError as exc:
        raise _RowError(str(exc), "limit") from None
    fractions, fractions_text = (None, "")
    if "fractions" in raw:
        fractions, fractions_text = parse_fractions(raw["fractions"])
    fractionation = _text(raw, "fractionation")
    if fractionation not in (None, "conventional"):
        raise _RowError(f"fractionation must be \"conventional\" (or absent), got "
                        f"{fractionation!r}", "fractionation")
    conventional = fractionation == "conventional"
    if conventional and fractions is not None:
        raise _RowError("a conventional row applies to every fraction count (it is "
                        "converted to EQD2 for hypofractionated plans): remove 'fractions'",
                        "fractions")
    dose_type = _text(raw, "dose_type") or "physical"
    canonical = {d.lower(): d for d in DOSE_TYPES}
    if dose_type.lower() not in canonical:
        raise _RowError(f"dose_type must be one of {', '.join(DOSE_TYPES)}, got "
                        f"{dose_type!r}", "dose_type")
    dose_type = canonical[dose_type.lower()]
    if conventional and dose_type != "physical":
        raise _RowError("a conventional row gives a physical-dose limit for 1.8-2 Gy "
                        "fractions; rtqa converts to EQD2 itself: remove 'dose_type'",
                        "dose_type")
    alpha_beta = _number(raw, "alpha_beta", required=False)
    if dose_type != "physical" and alpha_beta is None:
        raise _RowError(f"dose_type {dose_type} needs alpha_beta (Gy)", "dose_type")
    if alpha_beta is not None and dose_type == "physical" and not conventional:
        raise _RowError("alpha_beta only applies to EQD2/BED rows and conventional rows",
                        "alpha_beta")
    priority = _text(raw, "priority") or "mandatory"
    if priority not in PRIORITIES:
        raise _RowError(f"priority must be one of {', '.join(PRIORITIES)}, got "
                        f"{priority!r}", "priority")
    status = _text(raw, "status")
    if status is not None and status not in STATUSES:
        raise _RowError(f"status must be one of {', '.join(STATUSES)}, got {status!r}",
                        "status")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise _RowError(f"'note' must be text, got {note!r}", "note")
    enabled = raw.get("enabled", status == "V")
    if not isinstance(enabled, bool):
        raise _RowError(f"'enabled' must be true or false, got {enabled!r}", "enabled")
    return Constraint(
        structure=str(expr), metric=metric, limit=limit, expr=expr, fractions=fractions,
        fractions_text=fractions_text, conventional=conventional, dose_type=dose_type,
        alpha_beta=alpha_beta, priority=priority, source=_text(raw, "source"),
        status=status, note=note.strip(), enabled=enabled, set_name=set_name, file=path,
        line=line)


def _rows(data: dict, lines: list[str], path: Path, set_name: str) -> tuple[Constraint, ...]:
    raw_rows = data.get("constraint", [])
    if not isinstance(raw_rows, list) or not all(isinstance(r, dict) for r in raw_rows):
        line = _key_line(lines, 0, "constraint")
        raise ConstraintFileError(f"{'line %d: ' % line if line else ''}'constraint' must "
                                  "be written as [[constraint]] tables", path)
    headers = _header_lines(lines, "constraint", array=True)
    if len(headers) != len(raw_rows):  # e.g. an inline array of tables: no line numbers
        headers = [None] * len(raw_rows)
    out = []
    for k, (raw, line) in enumerate(zip(raw_rows, headers), start=1):
        try:
            out.append(_parse_row(raw, set_name, path, line))
        except _RowError as exc:
            where = f"line {line}: " if line else ""
            key_line = _key_line(lines, line, exc.key) if exc.key else None
            at = f" (key on line {key_line})" if key_line and key_line != line else ""
            what = raw.get("structure") if isinstance(raw.get("structure"), str) else None
            label = f"[[constraint]] #{k}" + (f" ({what})" if what else "")
            raise ConstraintFileError(f"{where}{label}: {exc}{at}", path) from None
    return tuple(out)


def _top_level(data: dict, lines: list[str], path: Path, allowed: Iterable[str]) -> None:
    problem = _unknown_keys(data, allowed)
    if problem:
        key = next(k for k in data if k not in allowed)
        line = _key_line(lines, 0, key) or next(iter(_header_lines(lines, key, False)
                                                   + _header_lines(lines, key, True)), None)
        raise ConstraintFileError(f"{'line %d: ' % line if line else ''}{problem}", path)


def load_constraint_file(path: str | Path) -> ConstraintSet:
    """Load and validate one constraint set (see ``FORMAT_HELP``).

    Raises ``ConstraintFileError`` naming the file, the line of the offending
    ``[[constraint]]`` table (or of the TOML syntax error) and the problem.
    """
    path = Path(path)
    lines, data = _read_toml(path)
    if "protocol" in data:
        raise ConstraintFileError("this is a protocol file (it has a [protocol] table); "
                                  "load it with load_protocol / --protocol", path)
    _top_level(data, lines, path, ("name", "description", "source", "constraint"))
    try:
        name = _text(data, "name", required=True)
        description = _text(data, "description") or ""
        source = _text(data, "source") or ""
    except _RowError as exc:
        line = _key_line(lines, 0, exc.key)
        raise ConstraintFileError(f"{'line %d: ' % line if line else ''}{exc}", path) from None
    return ConstraintSet(name, _rows(data, lines, path, name), description, source, path)


# --- protocols -------------------------------------------------------------------------

PROTOCOL_SECTIONS = ("protocol", "lesions", "oligoprogression", "planning_ct", "ptv_margin",
                     "constraint")


def resolve_protocol(name_or_path: str | Path) -> Path:
    """A bare name (``"oligo-hcc"``) -> ``constraints/protocols/oligo-hcc.toml``; anything
    with a path separator or a ``.toml`` ending is a path."""
    text = str(name_or_path).strip()
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith(".toml"):
        return Path(text).expanduser()
    folder = protocols_dir()
    path = folder / f"{text}.toml"
    if not text or not re.fullmatch(r"[A-Za-z0-9_.-]+", text) or not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        raise ConstraintFileError(f"no protocol named {text!r} (available: "
                                  f"{', '.join(known) or 'none'}; or give a path to a "
                                  ".toml file)", folder)
    return path


def _section(data: dict, key: str, lines: list[str], path: Path, build):
    table = data.get(key)
    if table is None:
        return None
    header = next(iter(_header_lines(lines, key, False)), None)
    where = f"line {header}: " if header else ""
    if not isinstance(table, dict):
        raise ConstraintFileError(f"{where}[{key}] must be a table", path)
    try:
        return build(table)
    except _RowError as exc:
        key_line = _key_line(lines, header, exc.key) if exc.key else None
        where = f"line {key_line or header}: " if (key_line or header) else ""
        raise ConstraintFileError(f"{where}[{key}]: {exc}", path) from None


def _check(table: dict, allowed: tuple[str, ...]) -> None:
    problem = _unknown_keys(table, allowed)
    if problem:
        raise _RowError(problem, next(k for k in table if k not in allowed))


def _lesions(t: dict) -> LesionRule:
    from rtqa.metrics import parse_metric

    _check(t, ("bed_limit", "alpha_beta", "coverage_metric", "coverage_structures",
               "source", "note"))
    if "bed_limit" not in t:
        raise _RowError("missing required key 'bed_limit'", "bed_limit")
    try:
        bed_limit = Limit.parse(t["bed_limit"])
    except ValueError as exc:
        raise _RowError(f"bed_limit: {exc}", "bed_limit") from None
    try:
        metric = parse_metric(_text(t, "coverage_metric", required=True))
    except MetricSyntaxError as exc:
        raise _RowError(str(exc), "coverage_metric") from None
    if not metric.is_dose or metric.result_unit != "Gy":
        raise _RowError(f"coverage_metric must be a dose in Gy, got {metric}",
                        "coverage_metric")
    classes = t.get("coverage_structures")
    if (not isinstance(classes, list) or not classes
            or any(c not in TARGET_CLASSES for c in classes)):
        raise _RowError(f"coverage_structures must be a list of {', '.join(TARGET_CLASSES)} "
                        f"in order of preference, got {classes!r}", "coverage_structures")
    return LesionRule(bed_limit, _number(t, "alpha_beta"), str(metric), tuple(classes),
                      _text(t, "source", required=True), _text(t, "note") or "")


def _oligo(t: dict) -> OligoprogressionRule:
    _check(t, ("max_lesions", "max_organs", "source", "note"))
    return OligoprogressionRule(_number(t, "max_lesions", integer=True),
                                _number(t, "max_organs", integer=True),
                                _text(t, "source", required=True), _text(t, "note") or "")


def _ct(t: dict) -> PlanningCTRule:
    _check(t, ("max_slice_spacing_mm", "max_pixel_size_mm", "source", "note"))
    return PlanningCTRule(_number(t, "max_slice_spacing_mm"), _number(t, "max_pixel_size_mm"),
                          _text(t, "source", required=True), _text(t, "note") or "")


def _margin(t: dict) -> PTVMarginRule:
    _check(t, ("min_mm", "max_mm", "source", "note"))
    lo, hi = _number(t, "min_mm", positive=False), _number(t, "max_mm", positive=False)
    if lo > hi:
        raise _RowError(f"min_mm ({_num(lo)}) is larger than max_mm ({_num(hi)})", "min_mm")
    return PTVMarginRule(lo, hi, _text(t, "source", required=True), _text(t, "note") or "")


def _include(entry, folder: Path) -> Path | None:
    p = Path(entry).expanduser()
    for cand in ([p] if p.is_absolute() else [folder / p, constraints_dir() / p]):
        if cand.is_file():
            return cand
    return None


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a protocol by bare name (``"oligo-hcc"``, from ``constraints/protocols/``) or
    path. Its ``[protocol]`` table has ``name``, ``description``, ``source`` and
    ``include`` (constraint-set files, looked up in the protocol's own folder first, then
    in the constraints folder); optional sections ``[lesions]``, ``[oligoprogression]``,
    ``[planning_ct]``, ``[ptv_margin]`` (each with its ``source``) and the protocol's own
    ``[[constraint]]`` rows."""
    path = resolve_protocol(name_or_path)
    lines, data = _read_toml(path)
    if "protocol" not in data:
        raise ConstraintFileError("no [protocol] table: this looks like a constraint set, "
                                  "which a protocol includes", path)
    _top_level(data, lines, path, PROTOCOL_SECTIONS)

    def head(t: dict):
        _check(t, ("name", "description", "source", "include"))
        inc = t.get("include", [])
        if not isinstance(inc, list) or not all(isinstance(i, str) and i for i in inc):
            raise _RowError("include must be a list of file names", "include")
        return (_text(t, "name", required=True), _text(t, "description") or "",
                _text(t, "source") or "", inc)

    name, description, source, includes = _section(data, "protocol", lines, path, head)
    sets, seen = [], set()
    for entry in includes:
        found = _include(entry, path.parent)
        line = _key_line(lines, next(iter(_header_lines(lines, "protocol", False)), None),
                         "include")
        where = f"line {line}: " if line else ""
        if found is None:
            raise ConstraintFileError(f"{where}include {entry!r} not found in "
                                      f"{path.parent} or {constraints_dir()}", path)
        if found.resolve() in seen:
            raise ConstraintFileError(f"{where}{entry!r} is included twice", path)
        seen.add(found.resolve())
        sets.append(load_constraint_file(found))
    own = _rows(data, lines, path, name)
    if own:
        sets.append(ConstraintSet(name, own, description, source, path))
    return Protocol(
        name=name, sets=tuple(sets), description=description, source=source, path=path,
        lesions=_section(data, "lesions", lines, path, _lesions),
        oligoprogression=_section(data, "oligoprogression", lines, path, _oligo),
        planning_ct=_section(data, "planning_ct", lines, path, _ct),
        ptv_margin=_section(data, "ptv_margin", lines, path, _margin))
