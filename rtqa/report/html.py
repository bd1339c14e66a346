"""The HTML report of ``rtqa check``: one self-contained file to review, print and sign.

``render_html(report)`` returns the page: inline CSS and inline SVG only (no scripts, no
network: a Content-Security-Policy forbids both), A4 print layout (15 mm margins, rows,
plots and the sign-off block kept whole). Sections: header (patient ID, plans with
fractions and prescription, protocol, date, rtqa version); the verdict with counts;
errors and warnings; lesion BED table; organs at risk; plan integrity; protocol; DVH
plots; structures; provenance (input files with SOP Instance UID and SHA-256, protocol,
conventions, α/β values used); sign-off (dosimetrist, physicist, radiation oncologist).

Escaping: the template is rendered by jinja2 with ``autoescape=True``; every string from
the input files (patient ID, plan labels, ROI names) is also stripped of control and
format characters (shown as ``\\x1b``-style escapes, see ``rtqa.report.text.clean``).
Plot text is escaped like the rest (no mathtext: a ``$`` in an ROI name shows as typed).

DVH plots (``rtqa.report.svgplot``, SVG written directly, no matplotlib): one overview
of the physical DVHs of all structures next to the structure table (its legend), and one
small plot per ``Report.curves`` entry (cumulative DVH, volume % against dose Gy) with
each constraint of ``Curve.marks`` numbered and drawn on the curve of its own dose view,
its limit as the objective; failing points are red crosses with red labels, and the list
under each plot gives every mark's number, status, label and values.

The compiled template is kept in the user's cache folder (``~/.cache/rtqa/jinja2``, see
``rtqa.report.jinja_env``), so that a report after the first one does not compile it
again (about 0.08 s CPU); without a writable cache folder it is compiled every time.
"""

from __future__ import annotations

import functools
import math

import jinja2

from rtqa.report.jinja_env import template_environment
from rtqa.report.json_report import check_report, created_of, version_of
from rtqa.report.formatting import (
    Folded, check_metric, clean, fmt_approval, fmt_exact, fmt_person, fmt_targets, provenance, fmt_limit, fmt_number, fmt_value, fold_passes,
    reason_rows, short_source, view_label,
)
from rtqa.report.svgplot import (STATUS_COLORS, dvh_plot, dvh_svg, overview_styles,
                                 overview_svg)
from rtqa.report.text import counts, summary_line
from rtqa.results import CATEGORIES, FAIL, NOT_EVALUATED, PASS, WARN, Report

__all__ = ["render_html", "dvh_svg", "alpha_beta_used", "STATUS_COLORS"]

_STATUS_CLASS = {PASS: "pass", FAIL: "fail", WARN: "warn", NOT_EVALUATED: "ne",
                 "ERROR": "error"}


# --- view model --------------------------------------------------------------------

def alpha_beta_used(report: Report) -> list[tuple[str, list[str]]]:
    """α/β values (Gy) the report used and what for, from the ``alpha_beta`` and
    ``dose_view`` fields of the lesions and the check rows (never from note text).
    Sorted by value."""
    uses: dict[float, list[str]] = {}

    def add(value, what):
        if value is None or not math.isfinite(float(value)):
            return
        lst = uses.setdefault(float(value), [])
        if what not in lst:
            lst.append(what)

    for les in report.lesions:
        add(les.alpha_beta, f"BED of lesion {clean(les.name)}")
    for c in report.checks:
        if c.alpha_beta is None or str(c.dose_view) not in ("EQD2", "BED"):
            continue
        what = " ".join(clean(x) for x in (c.structure, c.metric) if x) or clean(c.id)
        add(c.alpha_beta, f"{what} on {c.dose_view}")
    return [(fmt_exact(v) + " Gy", whats) for v, whats in sorted(uses.items())]


def _view_words(c) -> str:
    """The dose view of a row in words: "physical", "EQD2, α/β 3 Gy", "" (not a dose)."""
    view = str(c.dose_view)
    if view in ("EQD2", "BED"):
        ab = "?" if c.alpha_beta is None else fmt_exact(c.alpha_beta)
        return f"{view}, α/β {ab} Gy"
    return "physical" if view == "physical" else ""


def _check_view(c):
    if isinstance(c, Folded):
        first = c.first
        view = _check_view(first)
        view.update(structure=f"{len(c.checks)} structures", id=clean(first.id),
                    rois="each of: " + ", ".join(c.structures), folded=len(c.checks))
        return view
    rois = tuple(c.rois)
    return {
        "folded": 0, "view": _view_words(c),
        "status": c.status, "cls": _STATUS_CLASS[c.status], "id": clean(c.id),
        "structure": clean(c.structure) if c.structure else "—",
        "rois": ", ".join(clean(r) for r in rois) if rois and rois != (c.structure,) else "",
        "metric": check_metric(c),
        "value": fmt_value(c.value, c.unit), "limit": fmt_limit(c.limit, c.unit),
        "source": clean(c.source), "short_source": short_source(c.source),
        "note": clean(c.note),
        "optimal": c.priority != "mandatory",
    }


def _running_head(report: Report) -> str:
    """Patient and plan for the top of every printed page (CSS @page margin box)."""
    who = fmt_person(report.patient_name)
    pid = clean(report.patient_id) or "—"
    patient = f"{who} (ID {pid})" if who else f"Patient ID {pid}"
    plans = ", ".join(clean(p.label) for p in report.plans) or "no plan"
    return f"{patient} · plan {plans} · rtqa {report.status}"


def _verdict_text(report: Report, n: dict) -> str:
    if report.status == "PASS":
        return "All mandatory checks pass."
    if report.status == "FAIL":
        k = n["failed"]
        lesions_failed = sum(les.status == FAIL for les in report.lesions)
        text = f"{k} mandatory check{'s' if k != 1 else ''} failed"
        if lesions_failed:
            text += f"; {lesions_failed} lesion{'s' if lesions_failed != 1 else ''} below the required BED"
        return text + "."
    parts = []
    if n["errors"]:
        parts.append(f"{n['errors']} error{'s' if n['errors'] != 1 else ''}")
    if n["mandatory_not_evaluated"]:
        k = n["mandatory_not_evaluated"]
        parts.append(f"{k} mandatory check{'s' if k != 1 else ''} not evaluated")
    return "The plan could not be fully checked" + (": " + ", ".join(parts) if parts else "") + "."


def _view(report: Report) -> dict:
    n = counts(report)
    lesion_notes = {les.note for les in report.lesions if les.note}
    by_cat, notes_by_cat = {}, {}
    for cat in CATEGORIES:
        rows = [_check_view(c) for c in fold_passes(
            [c for c in report.checks if c.category == cat])]
        counted: dict[str, int] = {}
        for v in rows:
            if v["note"]:
                counted[v["note"]] = counted.get(v["note"], 0) + 1
        numbered: dict[str, int] = {}
        for v in rows:
            note = v["note"]
            v["ref"] = ""
            if cat == "lesions" and note in lesion_notes:
                v["note"], v["ref"] = "", "note as in the lesion table"
            elif note and counted[note] > 1:
                numbered.setdefault(note, len(numbered) + 1)
                v["note"], v["ref"] = "", f"note {numbered[note]}"
        by_cat[cat] = rows
        notes_by_cat[cat] = [(k, note) for note, k in numbered.items()]
    grouped: dict[str, list[str]] = {}
    for c in report.checks:
        full = grouped.setdefault(short_source(c.source), [])
        if clean(c.source) not in full:
            full.append(clean(c.source))
    sources = sorted(grouped.items())
    reasons = [dict(_check_view(r.check), reason=r.reason, binds=r.binds, group=r.group)
               for r in reason_rows(report.checks)]
    protocol = report.protocol or {}
    return {
        "status": report.status, "status_cls": _STATUS_CLASS[report.status],
        "verdict_text": _verdict_text(report, n), "summary": summary_line(report),
        "counts": n, "patient_id": clean(report.patient_id) or "—",
        "patient_name": fmt_person(report.patient_name) or "—",
        "running": _running_head(report),
        "created": clean(created_of(report)), "version": clean(version_of(report)),
        "protocol": {"name": clean(protocol.get("name") or "—"),
                     "path": clean(protocol.get("path") or "—"),
                     "source": clean(protocol.get("source") or "—"),
                     "extra": [(clean(k), clean(v)) for k, v in protocol.items()
                               if k not in ("name", "path", "source")]},
        "plans": [{"label": clean(p.label), "uid": clean(p.sop_instance_uid),
                   "fractions": "—" if p.fractions is None else str(p.fractions),
                   "prescription": fmt_value(p.prescription_gy, "Gy"),
                   "approval": clean(p.approval_status) or "—", "file": clean(p.file),
                   "name": clean(p.name) or "—", "approval_full": fmt_approval(p),
                   "targets": fmt_targets(p) or "—"}
                  for p in report.plans],
        "lesions": [{"status": les.status, "cls": _STATUS_CLASS[les.status],
                     "name": clean(les.name), "organ": clean(les.organ) if les.organ else "—",
                     "targets": ", ".join(clean(t) for t in les.targets) or "—",
                     "plans": ", ".join(clean(p) for p in les.plans) or "—",
                     "fractions": " + ".join(str(k) for k in les.fractions) or "—",
                     "metric": clean(les.metric), "dose": fmt_value(les.dose_gy, "Gy"),
                     "alpha_beta": fmt_exact(les.alpha_beta),
                     "bed": fmt_value(les.bed_gy, "Gy"),
                     "required": fmt_exact(les.required_bed_gy),
                     "prescribed": fmt_value(les.prescribed_bed_gy, "Gy"),
                     "note": clean(les.note)} for les in report.lesions],
        "checks": by_cat, "reasons": reasons, "notes": notes_by_cat, "sources": sources,
        "overview": _overview(report),
        "structures": [{"name": clean(s.name),
                        "standard": clean(s.standard_name) if s.standard_name else "—",
                        "volume": fmt_number(s.volume_cc), "min": fmt_number(s.min_gy),
                        "mean": fmt_number(s.mean_gy), "max": fmt_number(s.max_gy),
                        "outside": fmt_number(s.outside_cc),
                        "outside_warn": bool(s.outside_cc) and s.outside_cc != 0}
                       for s in report.structures],
        "warnings": [clean(w) for w in report.warnings],
        "errors": [clean(e) for e in report.errors],
        "doses": [{"file": clean(d.file), "summation": clean(d.summation_type),
                   "plan": clean(d.plan) or "—", "role": clean(d.role),
                   "used": "yes" if d.used else "no", "note": clean(d.note)}
                  for d in report.doses],
        "inputs": [{"path": line.path, "kind": line.kind, "uid": line.uid or "—",
                    "sha256": line.sha256, "count": line.count}
                   for line in provenance(report.inputs)],
        "n_inputs": len(report.inputs),
        "conventions": [(clean(k), clean(v) if isinstance(v, str) else clean(repr(v)))
                        for k, v in (report.conventions or {}).items()],
        "alpha_beta": alpha_beta_used(report),
        "plots": [_plot(c, i) for i, c in enumerate(report.curves)],
        "signoff": ["Dosimetrist", "Medical physicist", "Radiation oncologist"],
    }


def _plot(c, i: int) -> dict:
    svg, labelled = dvh_plot(c, i)
    marks = [{"label": clean(m[2]), "status": m[3], "n": k, "on_plot": k in labelled,
              "cls": _STATUS_CLASS.get(m[3], "ne"),
              "dose": fmt_number(m[0]), "volume": fmt_number(m[1])}
             for k, m in enumerate(c.marks, 1)]
    return {"name": clean(c.name), "svg": svg, "marks": marks,
            "failing": any(m[3] == FAIL for m in c.marks),
            "off_plot": sum(not m["on_plot"] for m in marks)}


_KINDS = {"target": "target", "target-like": "target", "organ": "organ", "prv": "organ",
          "unmatched": "organ", "ambiguous": "organ"}


def _overview(report: Report) -> dict:
    """The overview plot of all structures' physical DVHs and, per row of the structure
    table, its curve's number and line style (the table is the plot's legend)."""
    roles = {r.name: r.role for r in report.rois}
    curves = list(report.overview)
    kinds = [_KINDS.get(roles.get(c.name, ""), "other") for c in curves]
    styles = overview_styles(kinds)
    queue: dict[str, list[int]] = {}
    for i, c in enumerate(curves):
        queue.setdefault(c.name, []).append(i)
    rows = []
    for s in report.structures:
        idx = queue.get(s.name, [])
        if idx:
            i = idx.pop(0)
            st = styles[i]
            rows.append({"n": i + 1, "kind": kinds[i], "color": st["color"],
                         "dash": st["dash"], "width": st["width"], "square": st["square"]})
        else:
            rows.append(None)
    return {"svg": overview_svg(curves, kinds) if curves else "", "rows": rows,
            "n_targets": kinds.count("target"), "n_organs": kinds.count("organ"),
            "n_other": kinds.count("other")}


#: The options of the report's jinja2 environment.
_ENV_OPTIONS = {"autoescape": True, "trim_blocks": True, "lstrip_blocks": True,
                "keep_trailing_newline": True}


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return template_environment(**_ENV_OPTIONS)


def render_html(report: Report, *, pdf: bool = False) -> str:
    """The self-contained HTML report of ``report`` (UTF-8 text).

    ``pdf=True``: the page ``rtqa.report.pdf`` prints, without the parts the print CSS
    hides, and with PDF-only CSS and markup that print the same content with less work
    for WeasyPrint (issue 16): fixed tables with print-only column widths, a table and a
    float for the header and the verdict instead of grids and a flex box, the check rows
    without note rows in one ``<tbody>``, bold cells by class. The HTML report
    (``pdf=False``, also when a browser prints it) has none of these.
    Raises ``ValueError`` when the report is inconsistent (``check_report``).
    """
    check_report(report)
    template = _environment().get_template("report.html.j2")
    return template.render(r=_view(report), status_colors=STATUS_COLORS, pdf=pdf)
