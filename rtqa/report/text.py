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

import re
import textwrap
import unicodedata

from rtqa.report.formatting import (
    Folded, check_metric, clean, fmt_approval, fmt_exact, fmt_person, fmt_targets, fmt_limit, fmt_number, fmt_value, fold_passes,
    reason_rows, short_source,
)
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

def _table(headers, rows, *, width, flex, right=(), mins=None, drop=(), color=False,
           cut: set | None = None):
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

    if cut is not None:  # tell the caller which columns are narrower than their text
        cut.update(i for i in cols if widths[i] < natural[i])

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
                 if _width(cells[i]) > widths[i] and full.get(i, cells[i]) is not None]
        extra += [f"{headers[i]}: {full.get(i, cells[i])}" for i in dropped]
        for detail in extra + list(details):
            out.extend(textwrap.wrap(detail, width=max(20, width - len(indent)),
                                     initial_indent=indent, subsequent_indent=indent + "  ",
                                     break_on_hyphens=False) or [indent])
    return out


def _repeated_notes(checks) -> dict[str, int]:
    """Notes carried by at least two rows of a section, numbered in order of appearance:
    printed once under the table, referenced as [n] after the row's source."""
    seen: dict[str, int] = {}
    for c in checks:
        if c.note:
            seen[c.note] = seen.get(c.note, 0) + 1
    numbered: dict[str, int] = {}
    for c in checks:
        if c.note and seen[c.note] > 1 and c.note not in numbered:
            numbered[c.note] = len(numbered) + 1
    return numbered


def _check_rows(checks: list[Check], notes: dict[str, int] | None = None,
                sources: dict[str, str] | None = None, shown=frozenset()):
    """Table rows; with ``sources`` (narrow terminals) the Source column holds a letter
    explained under the table instead of the short source."""
    notes = notes or {}

    def src(c):
        return sources[short_source(c.source)] if sources is not None else short_source(c.source)
    rows = []
    for c in fold_passes(checks):
        if isinstance(c, Folded):
            first = c.first
            cells = [first.status, f"{len(c.checks)} structures", check_metric(first),
                     fmt_value(first.value, first.unit), fmt_limit(first.limit, first.unit),
                     src(first)]
            details = ["each of: " + ", ".join(c.structures)]
            rows.append((cells + [""], first.status, details, {}))
            continue
        details = []
        if c.priority != "mandatory":
            details.append(f"{clean(c.priority)}: does not fail the plan")
        rois = tuple(c.rois)
        if rois and rois != (c.structure,):
            details.append("ROIs: " + ", ".join(clean(r) for r in rois))
        ref = ""
        if c.status == NOT_EVALUATED and c.note:
            details.append("reason: see WHY above")  # the note is the reason, printed there
        elif c.note and c.note in shown:
            pass  # the same words are in the lesion table above
        elif c.note and c.note in notes:
            ref = f"[{notes[c.note]}]"
        elif c.note:
            details.append(clean(c.note))
        cells = [c.status, clean(c.structure) if c.structure else "—",
                 check_metric(c), fmt_value(c.value, c.unit),
                 fmt_limit(c.limit, c.unit), src(c), ref]
        if sources is not None:  # narrow: one reference column
            cells[5:] = [" ".join(x for x in cells[5:] if x), ""]
        # a cut source is not repeated: its full text is in the JSON and HTML reports
        rows.append((cells, c.status, details, {5: None}))
    return rows


def _source_letters(checks) -> dict[str, str]:
    letters: dict[str, str] = {}
    for c in checks:
        key = short_source(c.source)
        if key not in letters:
            n = len(letters)
            letters[key] = chr(ord("a") + n % 26) + ("" if n < 26 else str(n // 26))
    return letters


def _note_lines(notes: dict[str, int], width: int, sources=None) -> list[str]:
    out = []
    for text, letter in (sources or {}).items():
        out += textwrap.wrap(text, width=max(20, width - 2), initial_indent=f"{letter}: ",
                             subsequent_indent="    ", break_on_hyphens=False)
    for note, k in notes.items():
        out += textwrap.wrap(clean(note), width=max(20, width - 2), initial_indent=f"[{k}] ",
                             subsequent_indent="    ", break_on_hyphens=False)
    return out


def _reason_lines(report: Report, width: int, color: bool) -> list[str]:
    """The rows the verdict rests on, directly under it."""
    rows = reason_rows(report.checks)
    n = counts(report)
    title = f"WHY {report.status}" if report.status != "PASS" else "TO REVIEW"
    parts = [f"{n['failed']} failed"]
    if n["optimal_not_met"]:
        parts.append(f"{n['optimal_not_met']} optimal not met")
    parts.append(f"{n['not_evaluated']} not evaluated")
    head = [f"{title}: " + ", ".join(parts)]
    failed_lesions = [les for les in report.lesions if les.status == FAIL]
    if not rows and not failed_lesions:
        return head + ["  every check passed or is informational (details below)"]
    table = []
    for r in rows:
        c = r.check
        cells = [c.status, clean(c.structure) if c.structure else "—", r.metric,
                 fmt_value(c.value, c.unit), fmt_limit(c.limit, c.unit)]
        table.append((cells, c.status, [r.reason], {}))
    return head + _table(["Status", "Structure", "Metric", "Value", "Limit"], table,
                         width=width, flex=(1, 2), right=(3,), mins={1: 10, 2: 24},
                         color=color)


def _exact_gy(x) -> str:
    s = fmt_exact(x)
    return s if s in ("—", "n/a") else s + " Gy"


def _headroom_text(h) -> str:
    """One line: the dose-scaling headroom of a lesion that falls short."""
    def f(x):
        return "n/a" if x is None else f"x{x:.3f}"
    text = f"Headroom (whole dose x f): to BED limit {f(h.factor_to_bed_limit)}"
    if h.factor_prescription_to_bed_limit is not None:
        text += f" (prescription {f(h.factor_prescription_to_bed_limit)})"
    if h.factor_first_oar_fail is None:
        text += "; no organ row binds"
    else:
        text += (f"; first organ row fails at {f(h.factor_first_oar_fail)}: "
                 f"{clean(h.binding_structure or '')} {clean(h.binding_metric or '')} "
                 f"({h.binding_dose_view}; {clean(h.binding_row or '')})")
    if h.rows_not_scaled:
        text += f"; {len(h.rows_not_scaled)} organ row(s) not scaled"
    return text


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
        if les.headroom is not None:
            details.append(_headroom_text(les.headroom))
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
    lines.append(f"{'Patient':<12}{fmt_person(report.patient_name) or 'name not given'}"
                 f"  (ID {clean(report.patient_id) or '—'})")
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
        more = []
        if p.name and p.name != p.label:
            more.append(f"name {clean(p.name)}")
        if p.targets:
            more.append("targets " + fmt_targets(p))
        if p.reviewer or p.review_date:
            more.append(fmt_approval(p))
        for text in more:  # a number stays with its unit ("30 Gy")
            text = re.sub(r"(\d) (Gy|cc|mm|fx)\b", "\\1\xa0\\2", text)
            lines += [x.replace("\xa0", " ") for x in textwrap.wrap(
                text, width=max(20, width - 14), initial_indent=" " * 14,
                subsequent_indent=" " * 16, break_on_hyphens=False)]
    for i, d in enumerate(report.doses):
        head = "Dose files" if i == 0 else ""
        name = clean(d.file).replace("\\", "/").rsplit("/", 1)[-1]
        used = "" if d.used else " (not used)"
        plan = f" of {clean(d.plan)}" if d.plan else ""
        lines.append(f"{head:<12}{name}  {clean(d.summation_type)}: {clean(d.role)}{plan}{used}")
    # the verdict last, so that the reasons follow it directly
    lines.append(f"{'Status':<12}" + _paint(report.status, report.status + "!"
                                             if report.status != "ERROR" else "ERROR", color))
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
    lines += [""] + _reason_lines(report, width, color)
    lines += ["", "DETAILS"]
    check_headers = ["Status", "Structure", "Metric", "Value", "Limit", "Source", ""]
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
            notes = _repeated_notes([c for c in rows if c.status != NOT_EVALUATED])
            shown = frozenset(les.note for les in report.lesions if les.note)
            cut: set[int] = set()
            kw = dict(width=width, flex=(5, 1, 2, 4), right=(3,),
                      mins={5: 12, 1: 12, 2: 22, 4: 9}, color=color)
            table = _table(check_headers, _check_rows(rows, notes, None, shown), cut=cut, **kw)
            sources = None
            if 5 in cut:  # sources would be cut: a letter each, explained under the table
                sources = _source_letters(rows)
                table = _table(check_headers[:5] + ["Src", ""],
                               _check_rows(rows, notes, sources, shown), **kw)
            lines += table
            lines += _note_lines(notes, width, sources)
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
    parts = [summary]
    if _width(summary) > width and width < DEFAULT_WIDTH:  # narrow terminal: wrapped
        parts = textwrap.wrap(summary, width=width, break_on_hyphens=False)
    if color:
        key = report.status + "!" if report.status != "ERROR" else "ERROR"
        parts[0] = _paint(report.status, key, color) + parts[0][len(report.status):]
    lines = [line for raw in lines for line in _fold(raw, width)]
    return "\n".join(lines + [""] + parts) + "\n"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _fold(line: str, width: int) -> list[str]:
    """``line`` as it is when it fits ``width`` cells, else wrapped under its own indent
    (the safety net that keeps every line within the width, e.g. a long protocol path)."""
    plain = _ANSI.sub("", line)
    if _width(plain) <= width:
        return [line]
    indent = " " * (len(plain) - len(plain.lstrip(" ")))
    label = re.match(r"^\S[^ ]*(?: [^ ]+)? +(?=\S)", plain)  # "Protocol    ..." header
    more = " " * 12 if label and label.end() == 12 else indent + "  "
    parts = textwrap.wrap(plain.strip(), width=width, initial_indent=indent,
                          subsequent_indent=more, break_on_hyphens=False,
                          break_long_words=True)
    return parts or [line]
