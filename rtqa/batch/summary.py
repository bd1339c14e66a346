"""Reporting of ``rtqa batch``: one summary row per plan, ``summary.json``, ``summary.csv``
and ``index.html``.

Output (``OUT``): ``plans/<patient>_<plan label>_<key>.json|html`` (``key``: 12 hex digits
of a SHA-256 of the PatientID and the anchors' UIDs, so names are unique and stable);
``summary.json`` (schema ``rtqa-batch/1``: settings, run, counts, exit code, one row per
plan in discovery order, unassigned objects); ``summary.csv`` (one line per plan; cells
that would start a spreadsheet formula are prefixed with ``'``); ``index.html`` (self-
contained, no scripts: ERROR, then FAIL, then PASS plans with reasons and links).

Conventions: a row is made from the plan's JSON report only (:func:`make_row`), so a
fresh, a resumed and a Dask result give the same row; a row's ``errors`` are the
report's errors verbatim (the reason of an ERROR, e.g. a worker crash); paths in rows
are relative to ROOT.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re

from rtqa import __version__
from rtqa.batch.model import PLANS_DIR, SUMMARY_SCHEMA, Discovery, PlanUnit, _relpath

__all__ = ["CSV_COLUMNS", "copies_summary", "counts_of", "index_html", "make_row", "summary_csv",
           "summary_doc"]

def make_row(unit: PlanUnit, doc: dict, *, root: str, fingerprint: str, html: bool,
             resumed: bool, note: str = "") -> dict:
    """The summary row of one plan, from its JSON report (the same for a fresh, a resumed
    and a Dask result)."""
    checks = doc.get("checks") or []
    mandatory = [c for c in checks if c.get("priority") == "mandatory"]
    notes = list(unit.notes) + ([note] if note else [])
    return {
        "key": unit.key,
        "name": unit.name,
        "patient_id": unit.patient_id,
        "label": unit.label,
        "plans": list(unit.plan_labels),
        "plan_uids": list(unit.plan_uids),
        "rtstruct_uids": list(unit.rtstruct_uids),
        "frame_of_reference_uid": unit.frame_uid,
        "folders": list(unit.folders),
        "status": doc.get("status", "ERROR"),
        "failing_checks": [c["id"] for c in mandatory if c.get("status") == "FAIL"],
        "failures": [_failure(c) for c in mandatory if c.get("status") == "FAIL"],
        "not_evaluated": [c["id"] for c in mandatory if c.get("status") == "NOT EVALUATED"],
        "errors": list(doc.get("errors") or []),
        "warnings": len(doc.get("warnings") or []),
        "notes": notes,
        "json": f"{PLANS_DIR}/{unit.name}.json",
        "html": f"{PLANS_DIR}/{unit.name}.html" if html else None,
        "inputs": _inputs_digest(doc.get("inputs") or [], root),
        "settings": fingerprint,
        "report_created": doc.get("created", ""),
        "resumed": resumed,
    }


def _failure(c: dict) -> dict:
    """A failing row for the index: structure, labelled metric (dose view and α/β),
    value with its unit, limit."""
    from rtqa.report.formatting import fmt_limit, fmt_value, metric_label
    return {"id": c.get("id", ""), "structure": c.get("structure") or "",
            "metric": metric_label(c.get("metric"), c.get("dose_view"), c.get("alpha_beta")),
            "value": fmt_value(c.get("value"), c.get("unit")),
            "limit": fmt_limit(c.get("limit"), c.get("unit"))}


_COPY = re.compile(r"^identical copies of one (?P<kind>\S+) \((?P<names>.*)\): (?P<used>.+) used$")


def _folder(rel: str) -> str:
    head, _, _ = rel.replace("\\", "/").rpartition("/")
    return (head or ".") + "/"


def copies_summary(notes) -> tuple[list[str], list[str]]:
    """(summary lines, other notes): the discovery's one note per identical copy (one per
    CT slice of a copied folder) summarised as one line per set of folders, e.g. "86
    objects (83 CT, 1 RTDOSE, 1 RTPLAN, 1 RTSTRUCT) also in a_copy/ as identical copies;
    the files in a/ were used". Display only: the notes are kept in summary.json."""
    groups: dict[tuple[str, tuple[str, ...]], dict[str, int]] = {}
    other = []
    for note in notes:
        m = _COPY.match(str(note))
        if not m:
            other.append(note)
            continue
        used = _folder(m["used"])
        extra = tuple(sorted({_folder(n.strip()) for n in m["names"].split(", ")
                              if n.strip() != m["used"]}))
        kinds = groups.setdefault((used, extra), {})
        kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
    lines = []
    for (used, extra), kinds in groups.items():
        n = sum(kinds.values())
        what = ", ".join(f"{k} {kind}" for kind, k in sorted(kinds.items()))
        lines.append(f"{n} object{'s' if n != 1 else ''} ({what}) also in "
                     f"{', '.join(extra) or used} as identical copies; the files in {used} "
                     "were used")
    return lines, other


def _inputs_digest(inputs: list[dict], root: str) -> dict:
    """The plan's input files in one line: how many, and a SHA-256 over the sorted
    "relative path NUL sha256" lines (the per-file list is in the plan's JSON report)."""
    lines = sorted(f"{_relpath(i['path'], root)}\x00{i['sha256']}" for i in inputs)
    return {"files": len(lines),
            "sha256": hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
            if lines else None}


def _reason(row: dict) -> str:
    if row["errors"]:
        return "; ".join(row["errors"])
    if row["not_evaluated"]:
        return "not evaluated: " + ", ".join(row["not_evaluated"])
    if row["failing_checks"]:
        return "failed: " + ", ".join(row["failing_checks"])
    return ""


def counts_of(rows: list[dict]) -> dict:
    out = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "ERROR")}
    out["total"] = len(rows)
    out["resumed"] = sum(bool(r.get("resumed")) for r in rows)
    return out


CSV_COLUMNS = ("patient_id", "label", "status", "failing_checks", "not_evaluated", "reason",
               "warnings", "folders", "html", "json", "key")


def _csv_cell(value) -> str:
    if isinstance(value, (list, tuple)):
        value = "; ".join(map(str, value))
    text = "" if value is None else str(value)
    # spreadsheet formula injection (OWASP): a cell must not start a formula
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


def summary_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([_csv_cell(_reason(r) if c == "reason" else r.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def _index_environment():
    """The index page's jinja2 environment, made once per process (the summary is
    rewritten as plans complete), with the compiled-template cache."""
    from rtqa.report.jinja_env import template_environment
    from rtqa.report.text import clean
    env = template_environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["clean"] = clean
    return env


def index_html(summary: dict) -> str:
    env = _index_environment()
    sections = []
    for status, title in (("ERROR", "Could not be evaluated (ERROR)"),
                          ("FAIL", "Failed (FAIL)"), ("PASS", "Passed (PASS)")):
        rows = []
        for r in summary["plans"]:
            if r["status"] != status:
                continue
            copies, other = copies_summary(r.get("notes") or [])
            rows.append(dict(r, reason=_reason(r), copies=copies, other_notes=other,
                             failures=r.get("failures") or []))
        if rows:
            sections.append({"status": status, "title": title, "rows": rows})
    return env.get_template("batch_index.html.j2").render(s=summary, sections=sections)


def summary_doc(disc: Discovery, ordered: list[dict], *, settings, per_plan: bool,
                timeout: float | None, fingerprint: str, started: str, finished: str,
                seconds: float, executor: str, complete: bool, code: int,
                created: str) -> dict:
    """The ``summary.json`` document (schema ``rtqa-batch/1``); ``ordered``: the rows in
    discovery order; ``timeout``: the time limit per plan in seconds (None: none), in
    ``settings.timeout_s`` (not part of the fingerprint: it decides whether a plan is
    checked to the end, not its result)."""
    done = {r["key"] for r in ordered}
    return {
        "schema": SUMMARY_SCHEMA,
        "rtqa_version": __version__,
        "created": created,
        "root": disc.root,
        "complete": complete,
        "settings": {"protocol": settings.protocol,
                     "constraints": list(settings.constraints),
                     "maps": {k: v for k, v in settings.overrides},
                     **settings.check_args(),
                     "per_plan": per_plan, "timeout_s": timeout,
                     "fingerprint": fingerprint},
        "run": {"started": started, "finished": finished, "seconds": round(seconds, 1),
                "executor": executor,
                "checked": sum(not r["resumed"] for r in ordered)},
        "counts": counts_of(ordered),
        "exit_code": code,
        "files": {"looked_at": disc.n_files, "dicom": disc.n_dicom},
        "plans": ordered,
        "not_checked": [u.key for u in disc.units if u.key not in done],
        "unassigned": disc.unassigned,
    }
