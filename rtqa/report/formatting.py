"""Labels and numbers shared by the terminal, HTML and PDF reports and the DVH plots.

Everything here reads the structured fields of the result model (``Check.dose_view``,
``Check.alpha_beta``, ``Check.status``, ``Check.reason``, ``Check.limit``); nothing is
decided from note text.

* ``fmt_number``: whole numbers print as whole numbers ("3", "50"), others with 2
  decimals (3 significant digits below 0.1); "—" unknown, "n/a" not finite.
* ``view_label`` / ``metric_label``: a value on an EQD2 or BED dose carries its view and
  α/β: ``EQD2(α/β 3) Mean[Gy]``, ``BED(α/β 10) D95%[Gy]``; physical and non-dose rows
  keep the bare metric.
* ``reason_rows``: the rows a verdict rests on (every FAIL and NOT EVALUATED row), with
  the reason in words and, when several failing rows bind the same structure and metric,
  which one binds (the largest excess over its own limit, relative to that limit).
* ``fold_passes``: PASS rows that only repeat one another (same category, metric, value,
  limit and source, no note) fold into one entry listing their structures.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from rtqa.results import FAIL, NOT_EVALUATED, PASS, Check, DoseView, Reason

__all__ = ["COUNT_UNITS", "clean", "fmt_number", "fmt_exact", "fmt_value", "fmt_limit", "short_source",
           "view_label", "metric_label", "limit_excess", "reason_rows", "ReasonRow",
           "fold_passes", "Folded", "REASON_WORDS", "FOLD_MIN"]

#: at least this many identical PASS rows fold into one
FOLD_MIN = 3


def clean(text) -> str:
    """Text safe for a terminal: control/format/line-separator characters escaped."""
    text = "" if text is None else str(text)
    if text.isprintable():   # no Cc, Cf, Zl or Zp character (nor any other unprintable)
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def fmt_number(x) -> str:
    """A value for people: "—" when unknown, "n/a" when not finite, whole numbers as whole
    numbers, otherwise 2 decimals (3 significant digits below 0.1)."""
    if x is None:
        return "—"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    if abs(x) < 0.1:
        return f"{x:.3g}"
    return f"{x:.2f}"


def _unit_suffix(unit) -> str:
    if not unit:
        return ""
    return "%" if unit == "%" else f" {unit}"


def fmt_exact(x) -> str:
    """A parameter (α/β, required dose) to 6 significant digits without padding zeros."""
    s = fmt_number(x)
    return s if s in ("—", "n/a") else f"{float(x):.6g}"


#: units of count rows (plural -> singular): a count prints as a whole number, "1 file"
COUNT_UNITS = {"lesions": "lesion", "organs": "organ", "files": "file", "slices": "slice",
               "rows": "row", "plans": "plan", "fractions": "fraction",
               "structures": "structure", "broken": "broken"}


def fmt_value(value, unit) -> str:
    """Value with its unit ("19.84 Gy", "3.1%", "3 lesions", "1 file"), "—" when not
    evaluated. A count (``COUNT_UNITS``) prints as a whole number, singular for 1."""
    s = fmt_number(value)
    if s in ("—", "n/a"):
        return s
    if unit in COUNT_UNITS and float(value).is_integer():
        n = int(value)
        return f"{n} {COUNT_UNITS[unit] if n == 1 else unit}"
    return s + clean(_unit_suffix(unit))


def fmt_limit(limit, unit) -> str:
    """The limit with the unit appended when it ends in a number ("< 18 Gy")."""
    if limit is None or limit == "":
        return "—"
    limit = clean(limit)
    if unit and re.search(r"\d$", limit):
        return limit + clean(_unit_suffix(unit))
    return limit


_AUTHOR_YEAR = re.compile(r"^(?P<author>[A-Z][\w'’-]+) et al\.?\s.*?\b(?P<year>(?:19|20)\d\d)\b")
_TABLE = re.compile(r"\bTable\s+(?P<t>[0-9IVXL]+[a-z]?)\b")
_PS33 = re.compile(r"^DICOM (?P<part>PS3\.\d+)\s+(?P<sec>[A-Z]?[\d.]+\d)")
_NCT = re.compile(r"\b(?P<nct>NCT\d{8})\b")


_DERIVED = "derived (LQ) from "


def short_source(source) -> str:
    """A short form of a source for the terminal: "Benedict 2010, Table III",
    "PS3.3 C.8.8.16", "NCT06261047 protocol"; otherwise its first clause. A derived
    limit's source ("derived (LQ) from Benedict et al. ...") -> "LQ from Benedict 2010"."""
    s = clean(source).strip()
    if s.startswith(_DERIVED):
        return "LQ from " + short_source(s[len(_DERIVED):])
    m = _AUTHOR_YEAR.match(s)
    if m:
        t = _TABLE.search(s)
        return f"{m['author']} {m['year']}" + (f", Table {t['t']}" if t else "")
    m = _PS33.match(s)
    if m:
        return f"{m['part']} {m['sec']}"
    m = _NCT.search(s)
    if m:
        return f"{m['nct']} protocol"
    return re.split(r";|,|\s\(|:", s, maxsplit=1)[0].strip() or s


# --- dose views --------------------------------------------------------------------

def view_label(dose_view, alpha_beta) -> str:
    """``EQD2(α/β 3)`` / ``BED(α/β 10)`` for a row on an LQ dose, ``EQD2(α/β ?)`` when its
    α/β is missing; "" for physical dose and for rows that are not a dose."""
    view = str(dose_view or DoseView.NONE)
    if view not in (DoseView.EQD2, DoseView.BED):
        return ""
    ab = "?" if alpha_beta is None else fmt_exact(alpha_beta)
    return f"{view}(α/β {ab})"


_LQ_PREFIX = re.compile(r"^(?:BED|EQD2)[\d.]*\s+of\s+")


def metric_label(metric, dose_view=None, alpha_beta=None) -> str:
    """The metric as a reader should see it: ``EQD2(α/β 3) Mean[Gy]``. A metric that
    already names its LQ quantity ("BED10 of D95%[Gy]") is shown with the label in the
    same form ("BED(α/β 10) D95%[Gy]")."""
    metric = clean(metric) if metric else "—"
    label = view_label(dose_view, alpha_beta)
    if not label:
        return metric
    return f"{label} {_LQ_PREFIX.sub('', metric)}"


def check_metric(c: Check) -> str:
    return metric_label(c.metric, c.dose_view, c.alpha_beta)


__all__.append("check_metric")


# --- reasons -----------------------------------------------------------------------

REASON_WORDS = {
    Reason.STRUCTURE_MISSING: "structure not in the plan",
    Reason.STRUCTURE_UNRECOGNISED: "ROI not recognised",
    Reason.STRUCTURE_AMBIGUOUS: "several ROIs match",
    Reason.STRUCTURE_EMPTY: "structure empty",
    Reason.CONTOUR_DAMAGE: "damaged contours",
    Reason.OUTSIDE_DOSE_GRID: "outside the dose grid",
    Reason.NO_LIMIT: "no limit for this fraction count",
    Reason.FRACTIONS_UNKNOWN: "fraction count unknown",
    Reason.FRACTIONS_INCONSISTENT: "fraction counts inconsistent",
    Reason.DOSE_MISSING: "no dose",
    Reason.DOSE_INCONSISTENT: "dose implausible for the plan",
    Reason.DOSE_DUPLICATE: "duplicate dose",
    Reason.PLANS_UNCONFIRMED: "plans not confirmed as one course",
    Reason.PRESCRIPTION_UNLINKED: "prescription not linked to a target",
    Reason.LESION_ORGAN_UNKNOWN: "lesion organ unknown",
    Reason.METRIC_UNDEFINED: "metric undefined for this structure",
    Reason.INPUT_UNDEFINED: "input undefined",
    Reason.OTHER: "not evaluated",
    Reason.MIXED_FRACTIONATION: "plans differ in fractionation",
    Reason.REFERENCE_BROKEN: "broken reference",
    Reason.TPS_DISAGREEMENT: "differs from the planning system",
}

_BOUND = re.compile(r"^\s*(?P<op><=|>=|<|>|=|≤|≥)?\s*(?P<x>[-+]?\d+(?:\.\d+)?)\s*(?P<rest>.*)$")
_RANGE = re.compile(r"^\s*(?P<lo>[-+]?\d+(?:\.\d+)?)\s*[-–]\s*(?P<hi>[-+]?\d+(?:\.\d+)?)\s*$")


def limit_excess(c: Check) -> float | None:
    """How far ``c.value`` lies beyond ``c.limit``, relative to the limit (0.57 = 57 %
    over an upper limit, or 57 % short of a lower one); None when the limit is not a
    plain bound or range, or the value is unknown."""
    if c.value is None or c.limit is None or not math.isfinite(float(c.value)):
        return None
    v = float(c.value)
    m = _RANGE.match(str(c.limit))
    if m:
        lo, hi = float(m["lo"]), float(m["hi"])
        if v > hi and hi:
            return (v - hi) / abs(hi)
        if v < lo and lo:
            return (lo - v) / abs(lo)
        return 0.0
    m = _BOUND.match(str(c.limit))
    if not m or m["rest"] or not float(m["x"]):
        return None
    x, op = float(m["x"]), m["op"] or "="
    if op in ("<", "<=", "≤"):
        return max(0.0, (v - x) / abs(x))
    if op in (">", ">=", "≥"):
        return max(0.0, (x - v) / abs(x))
    return abs(v - x) / abs(x)


@dataclass(frozen=True)
class ReasonRow:
    """One row the verdict rests on: the check, its labelled metric, the reason in words,
    and for a failing row sharing its structure and metric with other failing rows,
    whether it binds (``binds`` True/False; None when it is alone)."""

    check: Check
    metric: str
    reason: str
    binds: bool | None = None
    group: int = 1  # failing rows on the same structure and metric


def _fail_reason(c: Check, excess: float | None) -> str:
    if excess is not None and excess > 0:
        where = "below" if str(c.limit or "").lstrip().startswith((">", "≥")) else "over"
        return f"{excess * 100:.0f}% {where} the limit ({short_source(c.source)})"
    return f"limit not met ({short_source(c.source)})"


def reason_rows(checks) -> list[ReasonRow]:
    """Every FAIL row, then every NOT EVALUATED row (mandatory before optimal, otherwise in
    report order), with its reason. Failing rows on the same structure and metric are
    kept together; the one with the largest relative excess over its limit binds."""
    checks = list(checks)
    fails = [c for c in checks if c.status == FAIL]
    groups: dict[tuple, list[Check]] = {}
    for c in fails:
        groups.setdefault((c.structure, c.metric), []).append(c)
    out: list[ReasonRow] = []
    done: set[int] = set()
    for c in sorted(fails, key=lambda c: c.priority != "mandatory"):
        if id(c) in done:
            continue
        group = groups[(c.structure, c.metric)]
        excess = {id(g): limit_excess(g) for g in group}
        # only a mandatory row decides the verdict, so only a mandatory row can bind
        deciding = [g for g in group if g.priority == "mandatory"]
        binding = max(deciding, default=None,
                      key=lambda g: -1.0 if excess[id(g)] is None else excess[id(g)])
        for g in group:
            done.add(id(g))
            reason = _fail_reason(g, excess[id(g)])
            binds = None
            if g.priority != "mandatory":
                reason += "; informative only"
            elif len(deciding) > 1:
                binds = g is binding
                reason += "; BINDS (largest excess)" if binds else "; another row binds"
            out.append(ReasonRow(g, check_metric(g), reason, binds, len(group)))
    ne = [c for c in checks if c.status == NOT_EVALUATED]
    for c in sorted(ne, key=lambda c: c.priority != "mandatory"):
        words = REASON_WORDS.get(c.reason, "not evaluated") if c.reason else "not evaluated"
        text = words + (f": {clean(c.note)}" if c.note else "")
        if c.priority != "mandatory":
            text += " (optimal: does not fail the plan)"
        out.append(ReasonRow(c, check_metric(c), text))
    return out


# --- folding -----------------------------------------------------------------------

@dataclass(frozen=True)
class Folded:
    """PASS rows that only repeat one another, shown as one line."""

    checks: tuple[Check, ...]

    @property
    def first(self) -> Check:
        return self.checks[0]

    @property
    def structures(self) -> list[str]:
        return [clean(c.structure) if c.structure else "—" for c in self.checks]


def _fold_key(c: Check):
    if c.status != PASS or c.note or c.value is None:
        return None
    return (c.category, c.metric, str(c.dose_view), c.alpha_beta, fmt_number(c.value),
            c.unit, c.limit, c.source, c.priority)


def fold_passes(checks, minimum: int = FOLD_MIN) -> list:
    """``checks`` with every run of at least ``minimum`` PASS rows that repeat one another
    (same category, metric, dose view, shown value, unit, limit, source, priority; no note)
    replaced by one ``Folded`` entry at the place of the first."""
    checks = list(checks)
    keyed: dict = {}
    for c in checks:
        k = _fold_key(c)
        if k is not None:
            keyed.setdefault(k, []).append(c)
    folds = {k: v for k, v in keyed.items() if len(v) >= minimum}
    out, seen = [], set()
    for c in checks:
        k = _fold_key(c)
        if k in folds:
            if k not in seen:
                seen.add(k)
                out.append(Folded(tuple(folds[k])))
            continue
        out.append(c)
    return out


# --- identification and provenance ---------------------------------------------------

def fmt_person(pn) -> str:
    """A DICOM person name for people: "Family^Given^Middle^Prefix^Suffix" is shown as
    "Family, Prefix Given Middle Suffix"; the ideographic/phonetic groups after "=" are
    dropped. "" when empty."""
    text = clean(pn).split("=")[0].strip()
    if not text:
        return ""
    parts = [p.strip() for p in text.split("^")]
    parts += [""] * (5 - len(parts))
    family, given, middle, prefix, suffix = parts[:5]
    rest = " ".join(x for x in (prefix, given, middle, suffix) if x)
    return f"{family}, {rest}" if family and rest else (family or rest)


def fmt_approval(plan) -> str:
    """"APPROVED by Physicist, RTQA on 2025-03-14T09:26" from a ``PlanInfo``; "—" when
    the RTPLAN has no approval status."""
    status = clean(plan.approval_status) or "—"
    if plan.reviewer:
        status += f" by {fmt_person(plan.reviewer)}"
    if plan.review_date:
        status += f" on {clean(plan.review_date)}"
    return status


def fmt_targets(plan) -> str:
    """Each target prescription of a ``PlanInfo``: "PTV_Liver 50 Gy; PTV_T10 30 Gy"."""
    out = []
    for t in plan.targets:
        name = clean(t.roi) or clean(t.description) or "target (no ROI link)"
        out.append(f"{name} {fmt_value(t.dose_gy, 'Gy')}")
    return "; ".join(out)


@dataclass(frozen=True)
class ProvenanceLine:
    """One line of the provenance summary: a file, or a whole CT series."""

    kind: str
    path: str
    uid: str        # SOP Instance UID, or "" for a series
    sha256: str     # of the file, or of the series (see ``provenance``)
    count: int = 1


def provenance(inputs) -> list[ProvenanceLine]:
    """The input files summarised: all CT images as one line (first and last path, the
    count, and a digest: SHA-256 of the files' SHA-256 hex digests in path order, one per
    line), every other file one line."""
    ct = sorted((f for f in inputs if str(f.kind).upper() == "CT"), key=lambda f: f.path)
    out = []
    if ct:
        import hashlib
        digest = hashlib.sha256("".join(f"{f.sha256}\n" for f in ct).encode()).hexdigest()
        first, last = clean(ct[0].path), clean(ct[-1].path)
        head, _, name = last.replace("\\", "/").rpartition("/")
        if head and first.replace("\\", "/").startswith(head + "/"):
            last = name  # same folder: named once
        span = first if len(ct) == 1 else f"{first} … {last}"
        out.append(ProvenanceLine("CT", span, "", digest, len(ct)))
    out += [ProvenanceLine(clean(f.kind), clean(f.path), clean(f.sop_instance_uid),
                           clean(f.sha256)) for f in inputs if str(f.kind).upper() != "CT"]
    return out


__all__ += ["fmt_person", "fmt_approval", "fmt_targets", "provenance", "ProvenanceLine"]
