"""Protocol files: a protocol's constraint sets, its own rows and its per-lesion and plan
rules (``load_protocol``, ``resolve_protocol``).

Units: ``[lesions]`` ``bed_limit`` and ``alpha_beta`` in Gy; ``[planning_ct]`` slice
spacing and pixel size in mm; ``[ptv_margin]`` ``min_mm``/``max_mm`` in mm;
``[oligoprogression]`` counts of lesions and organs.

A bare protocol name is looked up in the ``protocols/`` folder of the constraint library
(``rtqa.paths``: the top-level ``constraints/`` folder of the source tree, or
``RTQA_CONSTRAINTS_DIR``); included constraint-set files in the protocol's own folder
first, then in the constraints folder.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from rtqa.constraints.constraint_file import _rows, load_constraint_file, parse_fractions
from rtqa.constraints.model import (ConstraintSet, LesionRule, Limit, LimitsRule,
                                    OligoprogressionRule, PrescriptionRule,
                                    PlanningCTRule, Protocol, PTVMarginRule, Replacement, _num)
from rtqa.constraints.toml_reading import (_header_lines, _key_line, _number, _read_toml,
                                           _RowError, _text, _top_level, _unknown_keys)
from rtqa.errors import ConstraintFileError, MetricSyntaxError
from rtqa.paths import constraints_dir, protocols_dir
from rtqa.constraints.structexpr import TARGET_CLASSES, StructExprError, parse_structure


PROTOCOL_SECTIONS = ("protocol", "lesions", "oligoprogression", "planning_ct", "ptv_margin",
                     "limits", "prescription", "constraint")


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
    from rtqa.dvh.metrics import parse_metric

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


def _limits(t: dict) -> LimitsRule:
    _check(t, ("derive_lq", "no_limit", "no_limit_source", "note", "replace"))
    derive = t.get("derive_lq", True)
    if not isinstance(derive, bool):
        raise _RowError(f"derive_lq must be true or false, got {derive!r}", "derive_lq")
    names = t.get("no_limit", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise _RowError("no_limit must be a list of structure names or expressions, e.g. "
                        "[\"Skin\"]", "no_limit")
    canonical = []
    for n in names:
        try:
            canonical.append(str(parse_structure(n)))
        except StructExprError as exc:
            raise _RowError(f"no_limit: {exc}", "no_limit") from None
    if len(set(canonical)) != len(canonical):
        raise _RowError("no_limit names a structure twice", "no_limit")
    source = _text(t, "no_limit_source") or ""
    if canonical and not source.strip():
        raise _RowError("no_limit needs no_limit_source: the source or justification for "
                        "giving these organs no limit", "no_limit_source")
    return LimitsRule(derive, tuple(canonical), source, _text(t, "note") or "")


REPLACE_KEYS = ("structure", "metric", "by_metric", "fractions", "source", "note")


def _replacement(t, rows, protocol: str, line: int | None) -> Replacement:
    """One ``[[limits.replace]]`` table, checked against the protocol's rows."""
    from rtqa.constraints.derivation import derivable
    from rtqa.dvh.metrics import parse_metric

    if not isinstance(t, dict):
        raise _RowError("[[limits.replace]] entries must be tables")
    _check(t, REPLACE_KEYS)
    try:
        structure = str(parse_structure(_text(t, "structure", required=True)))
    except StructExprError as exc:
        raise _RowError(str(exc), "structure") from None
    metrics = {}
    for key in ("metric", "by_metric"):
        try:
            metrics[key] = str(parse_metric(_text(t, key, required=True)))
        except MetricSyntaxError as exc:
            raise _RowError(f"{key}: {exc}", key) from None
    fractions, fractions_text = (None, "")
    if "fractions" in t:
        fractions, fractions_text = parse_fractions(t["fractions"])
    source = _text(t, "source", required=True)
    family = [r for r in rows if r.structure == structure and r.metric == metrics["metric"]]
    if not any(derivable(r) for r in family):
        raise _RowError(f"the protocol has no enabled SBRT row of {structure} "
                        f"{metrics['metric']} that a limit could be derived from: nothing to "
                        "replace", "metric")
    by = [r for r in rows if r.structure == structure and r.metric == metrics["by_metric"]
          and r.enabled]
    if not by:
        raise _RowError(f"by_metric: the protocol has no enabled row of {structure} "
                        f"{metrics['by_metric']} to replace the derived rows with", "by_metric")
    if metrics["by_metric"] == metrics["metric"]:
        raise _RowError("by_metric is the replaced metric: a row of the protocol for that "
                        "structure, metric and fraction count already replaces the derived "
                        "one", "by_metric")
    return Replacement(structure, metrics["metric"], metrics["by_metric"], source, fractions,
                       fractions_text, _text(t, "note") or "", protocol, line)


def _replacements(data: dict, lines: list[str], path: Path, name: str,
                  sets) -> tuple[Replacement, ...]:
    table = data.get("limits")
    entries = table.get("replace", []) if isinstance(table, dict) else []
    if not isinstance(entries, list):
        raise ConstraintFileError("[limits] replace must be written as [[limits.replace]] "
                                  "tables", path)
    headers = _header_lines(lines, "limits.replace", True)
    rows = [c for st in sets for c in st.constraints]
    out: list[Replacement] = []
    for i, entry in enumerate(entries):
        header = headers[i] if i < len(headers) else None
        try:
            rep = _replacement(entry, rows, name, header)
            for other in out:
                if (other.structure, other.metric) == (rep.structure, rep.metric) and (
                        other.fractions is None or rep.fractions is None
                        or other.fractions & rep.fractions):
                    raise _RowError(f"{rep.structure} {rep.metric} is replaced twice for the "
                                    "same fraction counts", "metric")
        except _RowError as exc:
            key_line = _key_line(lines, header, exc.key) if exc.key else None
            where = f"line {key_line or header}: " if (key_line or header) else ""
            raise ConstraintFileError(f"{where}[[limits.replace]]: {exc}", path) from None
        out.append(rep)
    return tuple(out)


def _prescription(t: dict) -> PrescriptionRule:
    keys = ("coverage_volume_pct", "near_min_volume_pct", "near_min_dose_pct",
            "coverage_priority", "coverage_source", "max_dose_pct", "min_max_dose_pct",
            "max_priority", "max_source", "note")
    _check(t, keys)
    nums = {k: _number(t, k, required=False) for k in keys if k.endswith("_pct")}
    for k in ("coverage_volume_pct", "near_min_volume_pct", "near_min_dose_pct"):
        if nums[k] is not None and nums[k] > 100:
            raise _RowError(f"{k} must be <= 100, got {_num(nums[k])}", k)
    for k in ("max_dose_pct", "min_max_dose_pct"):
        if nums[k] is not None and nums[k] < 100:
            raise _RowError(f"{k} is a maximum dose as % of the prescription (>= 100), got "
                            f"{_num(nums[k])}", k)
    if (nums["min_max_dose_pct"] is not None and nums["max_dose_pct"] is not None
            and nums["min_max_dose_pct"] > nums["max_dose_pct"]):
        raise _RowError("min_max_dose_pct is larger than max_dose_pct", "min_max_dose_pct")
    kw = {k: v for k, v in nums.items() if v is not None}
    for k in ("coverage_priority", "max_priority"):
        v = _text(t, k)
        if v is not None and v not in ("mandatory", "optimal"):
            raise _RowError(f"{k} must be \"mandatory\" or \"optimal\", got {v!r}", k)
        if v is not None:
            kw[k] = v
    groups = {"coverage": ("coverage_volume_pct", "near_min_volume_pct", "near_min_dose_pct"),
              "max": ("max_dose_pct", "min_max_dose_pct")}
    for k, members in groups.items():
        if f"{k}_source" in t:
            kw[f"{k}_source"] = _text(t, f"{k}_source")
        elif any(m in kw for m in members):
            raise _RowError(f"{', '.join(m for m in members if m in kw)} given without "
                            f"{k}_source: every value needs its source", f"{k}_source")
    return PrescriptionRule(**kw, note=_text(t, "note") or "")


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
    ``[planning_ct]``, ``[ptv_margin]`` (each with its ``source``), ``[limits]``
    (``derive_lq`` = true|false: derive limits for fraction counts without a sourced row
    by LQ isoeffect, default true; ``no_limit`` = structures deliberately given no limit,
    with ``no_limit_source``; ``[[limits.replace]]`` tables with ``structure``,
    ``metric``, ``by_metric``, optional ``fractions``, ``source`` and ``note``: the derived
    rows of that family are replaced by the protocol's row of ``by_metric``, see
    ``model.Replacement``), ``[prescription]`` (``rtqa.constraints.model.PrescriptionRule``:
    SBRT coverage and maximum-dose checks as % of the prescription, each value with its
    source; defaults when absent) and the protocol's own ``[[constraint]]`` rows."""
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
    limits = _section(data, "limits", lines, path, _limits) or LimitsRule()
    replaced = _replacements(data, lines, path, name, sets)
    if replaced:
        limits = dataclasses.replace(limits, replace=replaced)
    return Protocol(
        name=name, sets=tuple(sets), description=description, source=source, path=path,
        lesions=_section(data, "lesions", lines, path, _lesions),
        oligoprogression=_section(data, "oligoprogression", lines, path, _oligo),
        planning_ct=_section(data, "planning_ct", lines, path, _ct),
        ptv_margin=_section(data, "ptv_margin", lines, path, _margin),
        limits=limits,
        prescription=(_section(data, "prescription", lines, path, _prescription)
                      or PrescriptionRule()))
