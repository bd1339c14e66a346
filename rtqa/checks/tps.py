"""Secondary DVH check: rtqa's own DVH of each ROI against the planning system's.

When an RTDOSE carries the planning system's DVHs (``DVHSequence``, read by
``rtqa.reading.tps_dvh``), each ROI gets one row per value: volume (cc), mean, D95%, D2%
and maximum (Gy). rtqa's value is the row's ``value``; the planning system's value and the
tolerance are its ``limit``. Beyond the tolerance the row is WARN (priority optimal:
a disagreement does not fail the plan, it asks a physicist to look) with its likely
cause: the end-cap convention, the dose grid, or volume outside the dose grid.

This is the independent second DVH calculation of a plan review (AAPM TG-275); it says
how far the two calculations agree, not which is right (rtqa's is validated against the
Nelms 2015 analytic truth, ``make validate``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rtqa.dvh.data import DVHData
from rtqa.dvh.geometry import Edges, plane_areas, slabs_for
from rtqa.dvh.metrics import dose_at_volume
from rtqa.errors import RtqaError
from rtqa.reading.export import CourseDose
from rtqa.reading.structures import Structure, StructureSet
from rtqa.reading.tps_dvh import TpsDvh, read_tps_dvhs
from rtqa.results import NOT_EVALUATED, PASS, WARN, Check, DoseView, Reason

CAT = "plan integrity"
SOURCE = ("planning system DVH (RTDOSE DVHSequence, DICOM PS3.3 C.8.8.4) against rtqa's "
          "independent DVH; AAPM TG-275 (Ford et al. Med Phys 2020;47:e236)")
#: Agreement accepted: relative difference, with an absolute floor for values near zero.
REL_TOL = 0.02
ABS_TOL = {"cc": 0.05, "Gy": 0.05}
METRICS = (("volume", "Volume[cc]", "cc"), ("mean", "Mean[Gy]", "Gy"),
           ("D95", "D95%[Gy]", "Gy"), ("D2", "D2%[Gy]", "Gy"), ("max", "Max[Gy]", "Gy"))
#: A structure smaller than this (cc) is "small" for the grid explanation.
SMALL_CC = 10.0


def tps_values(t: TpsDvh) -> dict[str, float | None]:
    """Volume (cc), mean, D95%, D2% and max (Gy) of a planning-system DVH."""
    e, c = t.dose_gy, t.cum
    v0 = float(c[0])
    mean = float(np.sum(0.5 * (c[1:] + c[:-1]) * np.diff(e)) / v0)
    last = int(np.flatnonzero(c > 0)[-1])
    return {"volume": t.volume_cc, "mean": mean,
            "D95": float(dose_at_volume(e, c, 0.95 * v0)),
            "D2": float(dose_at_volume(e, c, 0.02 * v0)),
            "max": float(e[min(last + 1, e.size - 1)])}


def rtqa_values(d: DVHData) -> dict[str, float]:
    return {"volume": d.total_volume_cc, "mean": d.mean_gy,
            "D95": float(dose_at_volume(d.edges_gy, d.cum_cc, 0.95 * d.volume_cc)),
            "D2": float(dose_at_volume(d.edges_gy, d.cum_cc, 0.02 * d.volume_cc)),
            "max": d.max_gy}


def within(ours: float, theirs: float, unit: str, rel: float = REL_TOL,
           floor: bool = True) -> bool:
    tol = max(rel * abs(theirs), ABS_TOL[unit] if floor else 0.0)
    return abs(ours - theirs) <= tol + 1e-12


def other_caps_volume(s: Structure, d: DVHData, end_caps: str) -> tuple[str, float]:
    """rtqa's volume under the other end-cap convention (scaled by the slab volumes)."""
    other = "none" if end_caps == "half" else "half"
    areas = plane_areas(s.planes, Edges.of([p for _, p in s.planes]))
    z = s.z_planes
    this = float(np.nansum(areas * slabs_for(z, 0.0, end_caps=end_caps).thickness))
    alt = float(np.nansum(areas * slabs_for(z, 0.0, end_caps=other).thickness))
    return other, d.total_volume_cc * (alt / this if this > 0 else 1.0)


def _cause(metric: str, s: Structure, d: DVHData, tps_volume: float | None, grid_mm: float,
           end_caps: str) -> str:
    causes = []
    gap = abs(d.total_volume_cc - tps_volume) if tps_volume is not None else 0.0
    if d.outside_cc > 0 and (metric != "volume" or d.outside_cc >= 0.25 * gap):
        causes.append(f"{d.outside_cc:.2f} cc of the ROI lie outside the dose grid (rtqa "
                      "leaves them out; the planning system may count them)")
    if tps_volume is not None and not within(d.total_volume_cc, tps_volume, "cc"):
        other, alt = other_caps_volume(s, d, end_caps)
        vol = d.total_volume_cc
        if within(alt, tps_volume, "cc"):
            causes.append(f"end caps: with end caps '{other}' rtqa's volume would be "
                          f"{alt:.2f} cc, matching the planning system's {tps_volume:.2f} cc "
                          f"(--end-caps {other})")
        else:
            if abs(alt - tps_volume) < abs(vol - tps_volume):
                causes.append(f"end caps '{other}' would explain {abs(vol - alt):.2f} cc of "
                              f"the {abs(vol - tps_volume):.2f} cc difference")
            if vol > tps_volume:
                causes.append("the planning system's DVH covers less volume than the ROI: "
                              "its dose calculation volume may stop short of the ROI, or it "
                              "interprets the contours differently")
            else:
                causes.append("the planning system counts more volume: contour "
                              "interpretation (holes, several contours per plane, "
                              "interpolation between planes, its own voxelisation)")
    if s.z_planes.size <= 3:
        causes.append(f"the ROI spans {s.z_planes.size} contour plane(s): its ends weigh "
                      "heavily")
    if metric != "volume" and (d.total_volume_cc < SMALL_CC or metric in ("max", "D2")):
        causes.append(f"dose grid ({grid_mm:.2f} mm) and dose interpolation: "
                      f"{'a small structure' if d.total_volume_cc < SMALL_CC else 'a point-like value'}"
                      " in a dose gradient")
    return "; ".join(causes) or "unexplained: look at the two DVHs"


def compare(course: CourseDose, ss: StructureSet,
            dvh_for: Callable[[Structure], DVHData], end_caps: str = "half",
            fractions: int | None = None) -> list[Check]:
    """Check rows comparing rtqa with the planning system's DVHs in ``course``'s RTDOSE.

    No rows when the RTDOSE carries no DVHs. A dose built from
    several RTDOSE files (beam doses) is not compared: each file's DVHs describe its own
    part of the dose."""
    if len(course.sources) != 1:
        return []
    items = (list(course.grid.tps_dvhs) if course.grid.tps_dvhs is not None
             else read_tps_dvhs(course.sources[0]))
    if not items:
        return []
    factor = 1.0  # a FRACTION dose scaled to the course: its DVHs are of one fraction
    n = fractions or (course.plan.fractions if course.plan else None)
    if course.grid.summation_type == "FRACTION" and not course.per_fraction and n:
        factor = float(n)
    by_number = {s.roi_number: s for s in ss.structures}
    grid_mm = float(max(course.grid.spacing))
    rows: list[Check] = []
    fx = (n,) if n else ()
    label = course.label
    name_of = course.sources[0].name
    for t in items:
        s = by_number.get(t.roi_number) if t.roi_number is not None else None
        roi = s.name if s is not None else f"ROI {t.roi_number}"
        base = dict(rois=(s.name,) if s is not None else (), plans=(label,), fractions=fx,
                    priority="optimal")
        why = t.problem
        if not why and s is None:
            why = "the structure set has no ROI with this number"
        elif not why and not s.has_volume:
            why = "the ROI has no closed contours (no volume)"
        d = None
        if not why:
            try:
                d = dvh_for(s)
            except RtqaError as exc:
                why = f"rtqa cannot compute its DVH ({exc.reason})"
        if why:
            rows.append(Check(f"tps.{label}.{roi}", CAT, NOT_EVALUATED, SOURCE,
                              structure=roi, metric="TPS DVH",
                              note=f"{name_of}: planning-system DVH of {roi} not compared: "
                                   f"{why}", reason=Reason.INPUT_UNDEFINED, **base))
            continue
        theirs = tps_values(t)
        if factor != 1.0:
            theirs = {k: (v * factor if k != "volume" and v is not None else v)
                      for k, v in theirs.items()}
        ours = rtqa_values(d)
        for key, metric, unit in METRICS:
            cid = f"tps.{label}.{roi}.{key}"
            view = DoseView.NONE if unit == "cc" else DoseView.PHYSICAL
            tv = theirs[key]
            if tv is None:
                rows.append(Check(cid, CAT, NOT_EVALUATED, SOURCE, structure=roi,
                                  metric=metric, value=round(ours[key], 4), unit=unit,
                                  note="the planning system gives relative volumes only",
                                  reason=Reason.INPUT_UNDEFINED, dose_view=view, **base))
                continue
            ok = within(ours[key], tv, unit)
            diff = 100.0 * (ours[key] - tv) / tv if tv else float("inf")
            note = (f"rtqa {ours[key]:.3f} {unit} vs planning system {tv:.3f} {unit} "
                    f"({diff:+.1f}%)")
            if factor != 1.0 and unit == "Gy":
                note += f"; planning-system DVH of one fraction x {factor:g}"
            if not ok:
                note += "; likely cause: " + _cause(key, s, d, theirs["volume"], grid_mm,
                                                    end_caps)
            tol = f"{ABS_TOL[unit]:g} {unit}"
            rows.append(Check(
                cid, CAT, PASS if ok else WARN, SOURCE, structure=roi, metric=metric,
                value=round(ours[key], 4), unit=unit,
                limit=f"TPS {tv:.3f} ± {100 * REL_TOL:g}% (min {tol})", note=note,
                reason=None if ok else Reason.TPS_DISAGREEMENT, dose_view=view, **base))
    return rows
