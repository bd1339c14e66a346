"""The machine-readable report of ``rtqa check``: JSON, schema ``rtqa-report/2``.

``to_dict(report)`` gives the document, ``dumps(report)`` its text. The layout is fixed
and documented field by field in ``rtqa/report/schema/rtqa-report-2.json`` (JSON Schema
draft 2020-12, see ``schema_path()``). Rules:

* Top-level keys, always in this order: ``schema``, ``status``, ``rtqa_version``,
  ``created``, ``protocol``, ``patient_id``, ``patient_name``, ``plans``, ``doses``,
  ``lesions``, ``checks``, ``structures``, ``rois``, ``warnings``, ``errors``, ``inputs``,
  ``conventions``, ``curves``, ``overview``.
* Records keep the order the pipeline gave them; keys within a record are in the fixed
  order of the schema. Every field is present (``null`` when unknown).
* A number that is not finite (NaN, ±inf) is written as ``null``; the text never
  contains ``NaN`` or ``Infinity``.
* Deterministic: two renders of the same report differ only in ``created``, the
  report's timestamp (taken from ``Report.created``; the current UTC time when empty).
* DVH curves (``Report.curves``) are exported last (``curves``): each cumulative DVH as
  dose (Gy) and volume (% of the structure) nodes, the constraint marks on it and, per
  mark, its limit as a point on the same axes (``objectives``); then ``overview``, the
  physical DVH of every structure (no marks), in the order of ``structures``.

``check_report(report)`` is the consistency check every renderer runs first: a status,
category or priority outside the result model, or an overall status milder than the
checks imply, raises ``ValueError`` (a bug in the pipeline, never rendered as a pass).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import rtqa
from rtqa.results import CATEGORIES, NOT_EVALUATED, FAIL, SCHEMA, STATUSES, Report, overall_status

__all__ = ["to_dict", "dumps", "check_report", "created_of", "version_of", "schema_path",
           "OVERALL_STATUSES", "PRIORITIES", "TOP_LEVEL_KEYS"]

OVERALL_STATUSES = ("PASS", "FAIL", "ERROR")
PRIORITIES = ("mandatory", "optimal")
TOP_LEVEL_KEYS = ("schema", "status", "rtqa_version", "created", "protocol", "patient_id",
                  "patient_name", "plans", "doses", "lesions", "checks", "structures", "rois",
                  "warnings", "errors", "inputs", "conventions", "curves", "overview")
_SEVERITY = {"PASS": 0, "FAIL": 1, "ERROR": 2}
_PROTOCOL_KEYS = ("name", "path", "source")


def schema_path() -> Path:
    """Path of the JSON Schema file shipped with rtqa (``rtqa/report/schema/rtqa-report-2.json``)."""
    return Path(str(resources.files("rtqa.report") / "schema" / "rtqa-report-2.json"))


def check_report(report: Report) -> None:
    """Raise ``ValueError`` when ``report`` is outside the result model or its overall
    status is milder than its checks, lesions and errors imply (fail closed)."""
    problems = []
    if report.status not in OVERALL_STATUSES:
        problems.append(f"overall status {report.status!r} is not one of {OVERALL_STATUSES}")
    for c in report.checks:
        if c.status not in STATUSES:
            problems.append(f"check {c.id!r}: status {c.status!r} is not one of {STATUSES}")
        if c.category not in CATEGORIES:
            problems.append(f"check {c.id!r}: category {c.category!r} is not one of {CATEGORIES}")
        if c.priority not in PRIORITIES:
            problems.append(f"check {c.id!r}: priority {c.priority!r} is not one of {PRIORITIES}")
    for les in report.lesions:
        if les.status not in STATUSES:
            problems.append(f"lesion {les.name!r}: status {les.status!r} is not one of {STATUSES}")
    for curve in report.curves:
        for mark in curve.marks:
            if len(mark) != 4 or mark[3] not in STATUSES:
                problems.append(f"curve {curve.name!r}: mark {mark!r} is not "
                                "(dose Gy, volume %, label, status)")
    if not problems:
        implied = overall_status(report.checks, report.errors)
        if any(les.status == NOT_EVALUATED for les in report.lesions):
            implied = "ERROR"
        elif implied == "PASS" and any(les.status == FAIL for les in report.lesions):
            implied = "FAIL"
        if _SEVERITY[report.status] < _SEVERITY[implied]:
            problems.append(f"overall status {report.status} but the checks, lesions and "
                            f"errors imply {implied}")
    if problems:
        raise ValueError("inconsistent report: " + "; ".join(problems))


def created_of(report: Report, now: datetime | None = None) -> str:
    """The report's timestamp: ``Report.created``, else ``now`` (default: current UTC time)
    in ISO 8601 with seconds and offset."""
    if report.created:
        return report.created
    now = now or datetime.now(timezone.utc)
    return now.isoformat(timespec="seconds")


def version_of(report: Report) -> str:
    """The rtqa version that made the report (``Report.rtqa_version``, else this rtqa)."""
    return report.rtqa_version or rtqa.__version__


def _num(x):
    """A JSON number or null: None and non-finite floats become None."""
    if x is None:
        return None
    if isinstance(x, bool):
        raise TypeError(f"expected a number, got {x!r}")
    x = float(x) if not isinstance(x, int) else x
    return x if isinstance(x, int) or math.isfinite(x) else None


def _int(x):
    if x is None:
        return None
    if isinstance(x, bool) or int(x) != x:
        raise TypeError(f"expected a whole number, got {x!r}")
    return int(x)


def _jsonable(obj, where: str):
    """Convert free-form values (protocol, conventions) to JSON values; non-finite floats
    become None; anything that is not plain data raises TypeError naming ``where``."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON data")


def _protocol(protocol: dict) -> dict:
    protocol = _jsonable(dict(protocol or {}), "protocol")
    out = {k: protocol.get(k) for k in _PROTOCOL_KEYS}
    out.update((k, v) for k, v in protocol.items() if k not in _PROTOCOL_KEYS)
    return out


def to_dict(report: Report, *, now: datetime | None = None) -> dict:
    """The JSON document of ``report`` (plain dicts, lists, str, numbers, None).

    ``now`` is used for ``created`` only when ``Report.created`` is empty.
    Raises ``ValueError`` (see ``check_report``) or ``TypeError`` for non-JSON values.
    """
    check_report(report)
    return {
        "schema": SCHEMA,
        "status": report.status,
        "rtqa_version": version_of(report),
        "created": created_of(report, now),
        "protocol": _protocol(report.protocol),
        "patient_id": report.patient_id,
        "patient_name": report.patient_name,
        "plans": [{
            "label": p.label,
            "sop_instance_uid": p.sop_instance_uid,
            "fractions": _int(p.fractions),
            "prescription_gy": _num(p.prescription_gy),
            "approval_status": p.approval_status,
            "file": p.file,
            "checked": bool(p.checked),
            "note": p.note,
            "name": p.name,
            "reviewer": p.reviewer,
            "review_date": p.review_date,
            "targets": [{"roi": t.roi, "dose_gy": _num(t.dose_gy),
                         "description": t.description} for t in p.targets],
        } for p in report.plans],
        "doses": [{
            "file": d.file,
            "sop_instance_uid": d.sop_instance_uid,
            "summation_type": d.summation_type,
            "plan": d.plan,
            "role": str(d.role),
            "used": bool(d.used),
            "note": d.note,
        } for d in report.doses],
        "lesions": [{
            "name": les.name,
            "targets": list(les.targets),
            "plans": list(les.plans),
            "fractions": [_int(n) for n in les.fractions],
            "metric": les.metric,
            "dose_gy": _num(les.dose_gy),
            "bed_gy": _num(les.bed_gy),
            "alpha_beta": _num(les.alpha_beta),
            "required_bed_gy": _num(les.required_bed_gy),
            "status": les.status,
            "organ": les.organ,
            "prescribed_bed_gy": _num(les.prescribed_bed_gy),
            "note": les.note,
            "comparator": les.comparator,
            "headroom": None if les.headroom is None else {
                "factor_to_bed_limit": _num(les.headroom.factor_to_bed_limit),
                "factor_prescription_to_bed_limit":
                    _num(les.headroom.factor_prescription_to_bed_limit),
                "factor_first_oar_fail": _num(les.headroom.factor_first_oar_fail),
                "binding_row": les.headroom.binding_row,
                "binding_structure": les.headroom.binding_structure,
                "binding_metric": les.headroom.binding_metric,
                "binding_dose_view": les.headroom.binding_dose_view,
                "rows_not_scaled": list(les.headroom.rows_not_scaled),
                "note": les.headroom.note,
            },
        } for les in report.lesions],
        "checks": [{
            "id": c.id,
            "category": c.category,
            "structure": c.structure,
            "rois": list(c.rois),
            "metric": c.metric,
            "value": _num(c.value),
            "unit": c.unit,
            "limit": c.limit,
            "status": c.status,
            "source": c.source,
            "note": c.note,
            "priority": c.priority,
            "dose_view": str(c.dose_view),
            "alpha_beta": _num(c.alpha_beta),
            "plans": list(c.plans),
            "fractions": [_int(n) for n in c.fractions],
            "reason": None if c.reason is None else str(c.reason),
            "derivation": c.derivation,
        } for c in report.checks],
        "structures": [{
            "name": s.name,
            "volume_cc": _num(s.volume_cc),
            "min_gy": _num(s.min_gy),
            "mean_gy": _num(s.mean_gy),
            "max_gy": _num(s.max_gy),
            "standard_name": s.standard_name,
            "outside_cc": _num(s.outside_cc),
        } for s in report.structures],
        "rois": [{
            "name": r.name,
            "roi_number": _int(r.roi_number),
            "interpreted_type": r.interpreted_type,
            "role": r.role,
            "standard": r.standard,
            "reason": r.reason,
            "hint": r.hint,
        } for r in report.rois],
        "warnings": list(report.warnings),
        "errors": list(report.errors),
        "inputs": [{
            "path": f.path,
            "kind": f.kind,
            "sop_instance_uid": f.sop_instance_uid,
            "sha256": f.sha256,
        } for f in report.inputs],
        "conventions": _jsonable(dict(report.conventions or {}), "conventions"),
        "curves": [_curve(cv) for cv in report.curves],
        "overview": [_curve(cv) for cv in report.overview],
    }


def _curve(cv) -> dict:
    return {
        "name": cv.name,
        "dose_gy": [_num(x) for x in cv.dose_gy],
        "volume_pct": [_num(x) for x in cv.volume_pct],
        "volume_cc": _num(cv.volume_cc),
        "marks": [{"dose_gy": _num(m[0]), "volume_pct": _num(m[1]), "label": m[2],
                   "status": str(m[3])} for m in cv.marks],
        "objectives": [None if o is None else {"dose_gy": _num(o[0]),
                                               "volume_pct": _num(o[1])}
                       for o in cv.objectives],
        "dose_view": str(cv.dose_view),
        "alpha_beta": _num(cv.alpha_beta) if cv.alpha_beta is not None else None,
    }


def dumps(report: Report, *, now: datetime | None = None) -> str:
    """The JSON text of ``report``: UTF-8 characters kept, 2-space indent, final newline."""
    return _dumps_indented(to_dict(report, now=now)) + "\n"


class _Unusual(Exception):
    """A value the fast writer leaves to ``json.dumps`` (which then says what is wrong)."""


_INF = float("inf")
_SCALARS = (float, int, type(None))   # bool is an int


def _dumps_indented(doc) -> str:
    """``json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)``, the same text
    (tests/report/test_report_json.py compares them) in about a third of the time: the
    standard library writes indented JSON with its pure-Python encoder, one generator
    step per value, and a report holds tens of thousands of DVH numbers. Lists of plain
    numbers are written by the C encoder in one call. Anything but str keys, str, int,
    float, bool, None, list, tuple and dict, and any non-finite float, is left to
    ``json.dumps`` (same text, same error)."""
    try:
        return _value(doc, "\n")
    except (_Unusual, RecursionError):
        return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)


_ESCAPE = json.encoder.encode_basestring       # C version when available (as json's)
_C_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _value(o, nl: str) -> str:
    # ``nl``: newline and indent of the line holding ``o``
    if isinstance(o, str):
        return _ESCAPE(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        if o != o or o == _INF or o == -_INF:
            raise _Unusual
        return float.__repr__(o)
    inner = nl + "  "
    if isinstance(o, dict):
        if not o:
            return "{}"
        parts = []
        for k, v in o.items():
            if not isinstance(k, str):
                raise _Unusual
            parts.append(_ESCAPE(k) + ": " + _value(v, inner))
        return "{" + inner + ("," + inner).join(parts) + nl + "}"
    if isinstance(o, (list, tuple)):
        if not o:
            return "[]"
        if isinstance(o[0], _SCALARS):   # most likely a list of numbers (a DVH)
            try:
                flat = _C_COMPACT.encode(o)[1:-1]
            except (TypeError, ValueError):   # not JSON data, a non-finite float
                raise _Unusual from None
            if '"' not in flat and "[" not in flat and "{" not in flat:
                # numbers, true, false, null only: ", " separates the items, nothing else
                return "[" + inner + flat.replace(", ", "," + inner) + nl + "]"
        return "[" + inner + ("," + inner).join(_value(v, inner) for v in o) + nl + "]"
    raise _Unusual
