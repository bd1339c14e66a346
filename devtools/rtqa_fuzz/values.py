"""What the oracle compares in rtqa's report: its dose- and contour-derived numbers and
their drift from the baseline, the ROIs its checks use, and whether it names a damaged
contour."""

from __future__ import annotations

import math

from .common import ABS_TOL, REL_TOL


def report_values(report) -> dict[str, float]:
    """Dose- and contour-derived numbers of a report, by a stable key (plan labels, which
    only name a plan, are replaced by its position)."""
    out: dict[str, float] = {}
    for les in report.lesions:
        for attr in ("dose_gy", "bed_gy"):
            v = getattr(les, attr)
            out[f"lesion:{les.name}:{attr}"] = float("nan") if v is None else float(v)
    labels = sorted({p.label for p in report.plans if p.label}, key=len, reverse=True)
    for c in report.checks:
        if c.id == "oar.absent":
            continue
        cid = c.id
        for i, label in enumerate(labels):
            cid = cid.replace(f".{label}.", f".<plan{i}>.")
            if cid.endswith(f".{label}"):
                cid = cid[:-len(label)] + f"<plan{i}>"
        out[f"check:{cid}"] = float("nan") if c.value is None else float(c.value)
    for s in report.structures:
        for attr in ("volume_cc", "min_gy", "mean_gy", "max_gy", "outside_cc"):
            v = getattr(s, attr)
            out[f"structure:{s.name}:{attr}"] = float("nan") if v is None else float(v)
    return out


def drift(base: dict[str, float], now: dict[str, float]) -> tuple[float, str, int, int]:
    """(largest excess over tolerance as a relative change, its key, rows missing, rows
    added). A change within REL_TOL x |baseline| + ABS_TOL counts as 0."""
    worst, key = 0.0, ""
    for k in base.keys() & now.keys():
        a, b = base[k], now[k]
        if math.isnan(a) and math.isnan(b):
            continue
        if math.isnan(a) != math.isnan(b):
            return math.inf, k, 0, 0
        if abs(b - a) > REL_TOL * abs(a) + ABS_TOL:
            rel = abs(b - a) / max(abs(a), 1e-9)
            if rel > worst:
                worst, key = rel, k
    rows = {k.rsplit(":", 1)[0] if k.startswith(("lesion", "structure")) else k for k in base}
    rows_now = {k.rsplit(":", 1)[0] if k.startswith(("lesion", "structure")) else k
                for k in now}
    return worst, key, len(rows - rows_now), len(rows_now - rows)


def checked_rois(report) -> set[str]:
    return {r for c in report.checks for r in c.rois}


def mentions(report, roi: str) -> bool:
    """Does the report say something about the contours of ``roi``?"""
    if any(roi in w and "contour" in w.lower() for w in report.warnings):
        return True
    if any((roi in c.rois or roi in c.note) and "contour" in c.note.lower()
           for c in report.checks):
        return True
    return any((roi in les.targets or roi in les.note) and "contour" in les.note.lower()
               for les in report.lesions)
