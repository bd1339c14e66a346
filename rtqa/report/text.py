"""The terminal report of ``rtqa check``: plain text, optional ANSI colour.

``render_text(report, color=..., width=...)`` gives, in order: a header (rtqa version and
date, patient ID, protocol, plans with fractions and prescription, verdict); one section
per check category in the order of ``rtqa.results.CATEGORIES`` (plan integrity, lesions
(BED) with the lesion table first, organs at risk, protocol), each row giving status,
structure, metric, value with unit, limit and a shortened source (the full source is in
the JSON and HTML reports), with the note, the ROIs used and "optimal" on indented lines;
warnings; errors; and a last line summarising the result (``summary_line``)::

    FAIL — 2 failed, 1 optimal not met, 2 not evaluated, 27 passed, 4 warnings (protocol oligo-hcc)

Counts are over the check rows: *failed* are mandatory FAIL rows (they fail the plan),
*optimal not met* are optimal FAIL rows, *warnings* are WARN rows plus warning messages;
errors are listed when present. Lesions are counted through their check rows.

Colour only when ``color=True`` (the CLI passes ``sys.stdout.isatty()``): PASS green,
FAIL red, WARN yellow, NOT EVALUATED magenta, ERROR bold red. The layout depends only on
``width`` (default 100 columns), never on the terminal. Strings from the input files are
made safe for a terminal: control and format characters (escape sequences, newlines,
bidirectional overrides) are shown as ``\\x1b``-style escapes.
"""

from __future__ import annotations

import math
import re
import textwrap
import unicodedata

from rtqa.report.json_report import check_report, created_of, version_of
from rtqa.results import CATEGORIES, FAIL, NOT_EVALUATED, PASS, WARN, Check, Report

__all__ = ["render_text", "summary_line", "counts", "short_source", "fmt_number",
           "fmt_value", "fmt_exact", "fmt_limit", "clean", "DEFAULT_WIDTH"]

DEFAULT_WIDTH = 100
_MIN_WIDTH = 60
_RESET = "\x1b[0m"
_COLORS = {PASS: "32", FAIL: "31", WARN: "33", NOT_EVALUATED: "35",
           "ERROR": "1;31", "PASS!": "1;32", "FAIL!": "1;31"}
_TITLES = {"plan integrity": "PLAN INTEGRITY", "lesions": "LESIONS (BED)",
           "organs at risk": "ORGANS AT RISK", "protocol": "PROTOCOL"}
_GAP = "  "


# --- counting ----------------------------------------------------------------------

def counts(report: Report) -> dict[str, int]:
    """Counts of the check rows: ``passed``, ``failed`` (mandatory FAIL),
    ``optimal_not_met`` (optimal FAIL), ``not_evaluated``, ``warn`` (WARN rows),
    ``warnings`` (WARN rows + warning messages), ``errors`` (error messages),
    ``mandatory_not_evaluated``."""
    checks = report.checks
    warn = sum(c.status == WARN for c in checks)
    return {
        "passed": sum(c.status == PASS for c in checks),
        "failed": sum(c.status == FAIL and c.priority == "mandatory" for c in checks),
        "optimal_not_met": sum(c.status == FAIL and c.priority != "mandatory" for c in checks),
        "not_evaluated": sum(c.status == NOT_EVALUATED for c in checks),
        "mandatory_not_evaluated": sum(c.status == NOT_EVALUATED and c.priority == "mandatory"
                                       for c in checks),
        "warn": warn,
        "warnings": warn + len(report.warnings),
        "errors": len(report.errors),
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary_line(report: Report) -> str:
    """One line: verdict and counts, e.g.
    ``FAIL — 2 failed, 1 not evaluated, 41 passed, 3 warnings (protocol oligo-hcc)``."""
    n = counts(report)
    parts = [f"{n['failed']} failed"]
    if n["optimal_not_met"]:
        parts.append(f"{n['optimal_not_met']} optimal not met")
    parts += [f"{n['not_evaluated']} not evaluated", f"{n['passed']} passed",
              _plural(n["warnings"], "warning")]
    if n["errors"]:
        parts.append(_plural(n["errors"], "error"))
    name = clean(str((report.protocol or {}).get("name") or "unnamed"))
    return f"{report.status} — {', '.join(parts)} (protocol {name})"


# --- formatting --------------------------------------------------------------------

def clean(text) -> str:
    """Text safe for a terminal: control/format/line-separator characters escaped."""
    text = "" if text is None else str(text)
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def fmt_number(x) -> str:
    """A value for people: "—" when unknown, "n/a" when not finite, 2 decimals (3
    significant digits below 0.1), integers as integers."""
    if x is None:
        return "—"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
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


def fmt_value(value, unit) -> str:
    """Value with its unit ("19.84 Gy", "3.1%"), "—" when not evaluated."""
    s = fmt_number(value)
    return s if s in ("—", "n/a") else s + clean(_unit_suffix(unit))


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


def _width(text: str) -> int:
    """Display width in terminal cells (wide East Asian characters 2, combining 0)."""
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with an ellipsis."""
    if _width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool = False) -> str:
    space = " " * max(0, width - _width(text))
    return space + text if right else text + space


def _paint(text: str, key: str, color: bool) -> str:
    code = _COLORS.get(key)
    return f"\x1b[{code}m{text}{_RESET}" if color and code else text


# --- tables ------------------------------------------------------------------------

def _table(headers, rows, *, width, flex, right=(), mins=None, drop=(), color=False):
    """Lines of a table that fits ``width`` where it can.

    ``rows``: (cells, status, details, full): the first column is the status (coloured),
    ``details`` are indented lines under the row, ``full`` maps a column to the text to
    show in the details when its cell had to be cut (default: the cell itself).
    When the table is too wide even with the ``flex`` columns at their ``mins``, the
    ``drop`` columns move into the details one by one; then the widest ``flex`` column
    gives up one cell at a time. Nothing is lost: a cut cell is repeated in full below.
    """
    mins = mins or {}
    cols = list(range(len(headers)))
    natural = {i: max([_width(headers[i])] + [_width(r[0][i]) for r in rows]) for i in cols}
    floors = {i: min(natural[i], mins.get(i, 8)) for i in flex}

    def total(columns, sizes):
        return sum(sizes[i] for i in columns) + len(_GAP) * (len(columns) - 1)

    dropped = []
    for i in drop:
        if total(cols, {**natural, **floors}) <= width:
            break
        cols.remove(i)
        dropped.append(i)
    widths = dict(natural)
    excess = total(cols, widths) - width
    while excess > 0:  # one cell at a time from the widest shrinkable column
        room = [i for i in flex if i in cols and widths[i] > floors[i]]
        if not room:
            break  # too narrow: the table overflows rather than hide anything
        widest = max(room, key=lambda i: (widths[i], -flex.index(i)))
        widths[widest] -= 1
        excess -= 1

    def line(cells, status=None):
        parts = []
        for i in cols:
            text = _fit(cells[i], widths[i])
            padded = _pad(text, widths[i], right=i in right)
            if i == 0 and status:
                padded = _paint(text, status, color) + padded[len(text):]
            parts.append(padded)
        return _GAP.join(parts).rstrip()

    indent = " " * min(widths[0] + len(_GAP), 16)
    out = [line(headers), line(["─" * widths[i] for i in range(len(headers))])]
    for cells, status, details, full in rows:
        out.append(line(cells, status))
        extra = [f"{headers[i]}: {full.get(i, cells[i])}" for i in cols
                 if _width(cells[i]) > widths[i]]
        extra += [f"{headers[i]}: {full.get(i, cells[i])}" for i in dropped]
        for detail in extra + list(details):
            out.extend(textwrap.wrap(detail, width=max(20, width - len(indent)),
                                     initial_indent=indent, subsequent_indent=indent + "  ",
                                     break_on_hyphens=False) or [indent])
    return out


def _check_rows(checks: list[Check]):
    rows = []
    for c in checks:
        details = []
        if c.priority != "mandatory":
            details.append(f"{clean(c.priority)}: does not fail the plan")
        rois = tuple(c.rois)
        if rois and rois != (c.structure,):
            details.append("ROIs: " + ", ".join(clean(r) for r in rois))
        if c.note:
            details.append(clean(c.note))
        cells = [c.status, clean(c.structure) if c.structure else "—",
                 clean(c.metric) if c.metric else "—", fmt_value(c.value, c.unit),
                 fmt_limit(c.limit, c.unit), short_source(c.source)]
        rows.append((cells, c.status, details, {5: clean(c.source)}))
    return rows


def _exact_gy(x) -> str:
    s = fmt_exact(x)
    return s if s in ("—", "n/a") else s + " Gy"


def _lesion_rows(report: Report):
    rows = []
    for les in report.lesions:
        details = []
        if les.targets:
            details.append("Targets: " + ", ".join(clean(t) for t in les.targets))
        if les.prescribed_bed_gy is not None:
            details.append(f"Prescribed BED {_exact_gy(les.prescribed_bed_gy)}")
        if les.note:
            details.append(clean(les.note))
        cells = [les.status, clean(les.name), clean(les.organ) if les.organ else "—",
                 ", ".join(clean(p) for p in les.plans) or "—",
                 "+".join(str(n) for n in les.fractions) or "—", clean(les.metric),
                 fmt_value(les.dose_gy, "Gy"), _exact_gy(les.alpha_beta), fmt_value(les.bed_gy, "Gy"),
                 "≥ " + _exact_gy(les.required_bed_gy)]
        rows.append((cells, les.status, details, {}))
    return rows


# --- the report --------------------------------------------------------------------

def _header(report: Report, width: int, color: bool) -> list[str]:
    title = f"rtqa {clean(version_of(report))} — radiotherapy plan QA report"
    created = clean(created_of(report))
    room = width - _width(title) - _width(created)
    lines = [title + " " * room + created] if room >= 2 else [title, created]
    lines.append("")
    protocol = report.protocol or {}
    lines.append(f"{'Patient ID':<12}{clean(report.patient_id) or '—'}")
    proto = clean(protocol.get("name") or "—")
    if protocol.get("path"):
        proto += f"  ({clean(protocol['path'])})"
    lines.append(f"{'Protocol':<12}{proto}")
    if not report.plans:
        lines.append(f"{'Plans':<12}—")
    labels = [clean(p.label) for p in report.plans]
    lw = max([_width(x) for x in labels] + [0])
    for i, p in enumerate(report.plans):
        fx = f"{p.fractions} fx" if p.fractions is not None else "fractions unknown"
        rx = fmt_value(p.prescription_gy, "Gy")
        rx = "prescription unknown" if rx in ("—", "n/a") else rx
        extra = f"  {clean(p.approval_status)}" if p.approval_status else ""
        if not p.checked:
            extra += "  NOT CHECKED"
        head = "Plans" if i == 0 else ""
        lines.append(f"{head:<12}{_pad(labels[i], lw)}  {fx:>5}  {rx:>9}{extra}")
        if not p.checked and p.note:
            lines.append(" " * 12 + "  " + clean(p.note)[:width - 14])
    lines.append(f"{'Status':<12}" + _paint(report.status, report.status + "!"
                                             if report.status != "ERROR" else "ERROR", color))
    for i, d in enumerate(report.doses):
        head = "Dose files" if i == 0 else ""
        name = clean(d.file).replace("\\", "/").rsplit("/", 1)[-1]
        used = "" if d.used else " (not used)"
        plan = f" of {clean(d.plan)}" if d.plan else ""
        lines.append(f"{head:<12}{name}  {clean(d.summation_type)}: {clean(d.role)}{plan}{used}")
    return lines


_ROLE_TITLES = (("target", "targets"), ("organ", "organs"), ("prv", "PRVs"),
                ("external", "external"), ("ambiguous", "ambiguous"),
                ("target-like", "target-like"), ("unmatched", "unmatched"),
                ("near", "edited copies"), ("helper", "helpers"),
                ("ignored", "ignored by type"))


def _roi_lines(report: Report, width: int) -> list[str]:
    """The ROIS section: how each ROI was interpreted, one line per role (ROIs whose role
    needs the user's attention get their hint)."""
    if not report.rois:
        return []
    lines = ["", f"ROIS ({len(report.rois)}): how each ROI was interpreted (declared type first)"]
    for role, title in _ROLE_TITLES:
        items = [r for r in report.rois if r.role == role]
        if not items:
            continue
        parts = []
        for r in items:
            extra = r.standard if r.standard and r.standard != r.name else ""
            if role in ("ignored", "target-like") or (role == "unmatched" and r.interpreted_type):
                extra = ", ".join(x for x in (extra, r.interpreted_type or "untyped") if x)
            text = f"{r.name} ({extra})" if extra else r.name
            if r.hint and role in ("target-like", "unmatched", "near", "ambiguous"):
                text += f" [{r.hint}]"
            parts.append(text)
        body = textwrap.wrap(clean("; ".join(parts)), width=width - 18,
                             break_on_hyphens=False)
        for j, part in enumerate(body or [""]):
            lines.append(f"  {title if j == 0 else '':<15} {part}")
    return lines


def render_text(report: Report, *, color: bool, width: int | None = None) -> str:
    """The terminal report of ``report`` (ends with the summary line and a newline).

    ``color``: ANSI colours (only for a terminal). ``width``: columns to fit the tables in
    (default 100; at least 60); the text never depends on the terminal otherwise.
    Raises ``ValueError`` when the report is inconsistent (``check_report``).
    """
    check_report(report)
    width = max(_MIN_WIDTH, int(width or DEFAULT_WIDTH))
    lines = _header(report, width, color)
    check_headers = ["Status", "Structure", "Metric", "Value", "Limit", "Source"]
    for category in CATEGORIES:
        rows = [c for c in report.checks if c.category == category]
        lines += ["", f"{_TITLES[category]} ({len(rows)})"]
        if category == "lesions" and report.lesions:
            lines += _table(["Status", "Lesion", "Organ", "Plans", "Fx", "Metric", "Dose",
                             "α/β", "BED", "Required"], _lesion_rows(report), width=width,
                            flex=(3, 1, 5, 2), right=(6, 7, 8, 9),
                            mins={1: 8, 3: 8, 5: 8, 2: 5}, drop=(2, 5), color=color)
            if rows:
                lines.append("")
        if rows:
            lines += _table(check_headers, _check_rows(rows), width=width, flex=(5, 1, 2, 4),
                            right=(3,), mins={5: 12, 1: 12, 2: 10, 4: 6}, color=color)
        elif not (category == "lesions" and report.lesions):
            lines.append("  (none)")
    lines += _roi_lines(report, width)
    for title, items, key in (("WARNINGS", report.warnings, WARN),
                              ("ERRORS", report.errors, "ERROR")):
        lines += ["", f"{title} ({len(items)})"]
        for item in items:
            wrapped = textwrap.wrap(clean(item), width=width - 4, break_on_hyphens=False)
            for j, part in enumerate(wrapped or [""]):
                bullet = _paint("!" if key == WARN else "✗", key, color) if j == 0 else " "
                lines.append(f"  {bullet} {part}")
        if not items:
            lines.append("  (none)")
    summary = summary_line(report)
    if color:
        key = report.status + "!" if report.status != "ERROR" else "ERROR"
        summary = _paint(report.status, key, color) + summary[len(report.status):]
    lines += ["", summary]
    return "\n".join(lines) + "\n"
