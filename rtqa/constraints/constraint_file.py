"""Constraint-set files: the format (``FORMAT_HELP``), loading and validation of one set
(``load_constraint_file``) and of its ``[[constraint]]`` rows.

Units: ``limit`` in the metric's result unit (Gy, cc or %, from the metric's ``[unit]``);
``alpha_beta`` in Gy; ``fractions`` as fraction counts. Errors are
``ConstraintFileError``s naming the file, the line of the offending ``[[constraint]]``
table (or of the TOML syntax error) and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path

from rtqa.constraints.model import (DOSE_TYPES, PRIORITIES, STATUSES, Constraint,
                                    ConstraintSet, Limit)
from rtqa.constraints.toml_reading import (_header_lines, _key_line, _number, _read_toml,
                                           _RowError, _text, _top_level, _unknown_keys)
from rtqa.errors import ConstraintFileError, MetricSyntaxError
from rtqa.constraints.structexpr import StructExprError, parse_structure


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
    from rtqa.dvh.metrics import parse_metric  # lazy: rtqa.dvh.metrics imports numpy

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
