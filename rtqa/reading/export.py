"""Load a plan export: classify every file, read the RT objects, link them by UID.

Links: RTDOSE ReferencedRTPlanSequence → RTPLAN; RTPLAN ReferencedStructureSetSequence →
RTSTRUCT; RTSTRUCT → frame of reference and CT series. Dose and structures are combined
only within one FrameOfReferenceUID.

Course dose (what the DVH is computed on), per RTDOSE DoseSummationType:
* PLAN / MULTI_PLAN: as stored.
* FRACTION: one fraction, multiplied by the linked plan's NumberOfFractionsPlanned (or by
  an explicit fraction count given by the user). Without either the dose stays per
  fraction and every result says so.
* BEAM: the beams of one plan are summed (they must share one grid).
* Other types (BRACHY, CONTROL_POINT, RECORD) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rtqa.errors import DicomInputError, RtqaError
from rtqa.reading.ct import CTSeries, assemble_series, read_ct_slice
from rtqa.reading.dose import DoseGrid, read_dose
from rtqa.reading.plan import Plan, read_plan
from rtqa.reading.scan import ScanResult, scan
from rtqa.reading.structures import StructureSet, read_structure_set


@dataclass(frozen=True, eq=False)
class CourseDose:
    """The dose of one whole treatment course (Gy) and where it came from."""

    grid: DoseGrid
    plan: Plan | None
    sources: tuple[Path, ...]
    per_fraction: bool  # True when a FRACTION dose could not be scaled to the course
    note: str

    @property
    def label(self) -> str:
        return self.plan.display if self.plan else self.grid.path.name


@dataclass(frozen=True, eq=False)
class Export:
    scanned: ScanResult
    doses: tuple[DoseGrid, ...]
    plans: tuple[Plan, ...]
    structure_sets: tuple[StructureSet, ...]
    ct_series: tuple[CTSeries, ...]
    courses: tuple[CourseDose, ...]
    warnings: tuple[str, ...]

    @property
    def patient_ids(self) -> tuple[str, ...]:
        ids = {o.patient_id for o in (*self.doses, *self.plans, *self.structure_sets,
                                       *self.ct_series)}
        return tuple(sorted(ids))

    def plan_by_uid(self, uid: str | None) -> Plan | None:
        return next((p for p in self.plans if p.sop_instance_uid == uid), None) if uid else None

    def structure_set_by_uid(self, uid: str | None) -> StructureSet | None:
        return next((s for s in self.structure_sets if s.sop_instance_uid == uid), None) \
            if uid else None

    def courses_in_frame(self, frame_uid: str) -> list[CourseDose]:
        return [c for c in self.courses if c.grid.frame_of_reference_uid == frame_uid]

    def ct_for(self, ss: StructureSet) -> CTSeries | None:
        for ct in self.ct_series:
            if ct.series_instance_uid in ss.referenced_series_uids:
                return ct
        same_frame = [c for c in self.ct_series
                      if c.frame_of_reference_uid == ss.frame_of_reference_uid]
        return same_frame[0] if len(same_frame) == 1 else None


def _same_grid(a: DoseGrid, b: DoseGrid) -> bool:
    return (a.dose.shape == b.dose.shape and np.allclose(a.x, b.x, atol=1e-3)
            and np.allclose(a.y, b.y, atol=1e-3) and np.allclose(a.z, b.z, atol=1e-3))


def _courses(doses: list[DoseGrid], plans: dict[str, Plan], fractions_override: int | None,
             warnings: list[str]) -> list[CourseDose]:
    courses: list[CourseDose] = []
    beams: dict[str, list[DoseGrid]] = {}
    for d in doses:
        plan = plans.get(d.referenced_plan_uid or "")
        st = d.summation_type
        if st in ("PLAN", "MULTI_PLAN"):
            courses.append(CourseDose(d, plan, (d.path,), False,
                                      f"DoseSummationType {st}: dose used as stored"))
        elif st == "FRACTION":
            from_plan = plan.fractions if plan else None
            n = from_plan or fractions_override
            if n:
                src = f"RTPLAN '{plan.display}'" if from_plan else "--fractions"
                courses.append(CourseDose(
                    d.scaled(float(n), f"x {n} fractions"), plan, (d.path,), False,
                    f"DoseSummationType FRACTION: dose of one fraction x {n} fractions "
                    f"({src})"))
            else:
                msg = (f"{d.path.name}: dose is per fraction (DoseSummationType FRACTION) and "
                       "no RTPLAN gives the fraction count: results are per fraction")
                warnings.append(msg)
                courses.append(CourseDose(d, plan, (d.path,), True, msg))
        elif st == "BEAM":
            if plan is None:
                raise DicomInputError("beam dose (DoseSummationType BEAM) without its RTPLAN: "
                                      "cannot sum the plan's beams", d.path)
            beams.setdefault(plan.sop_instance_uid, []).append(d)
        else:
            raise DicomInputError(f"DoseSummationType {st} is not supported", d.path)
    for uid, items in beams.items():
        plan = plans[uid]
        first = items[0]
        for other in items[1:]:
            if not _same_grid(first, other):
                raise DicomInputError("beam doses of one plan are on different grids",
                                      other.path)
        total = first.dose.copy()
        for other in items[1:]:
            total += other.dose
        if plan.beam_numbers and len(items) != len(plan.beam_numbers):
            warnings.append(f"RTPLAN '{plan.display}' has {len(plan.beam_numbers)} beams but "
                            f"{len(items)} beam doses were found: summing those present")
        grid = replace(first, dose=total, summation_type="BEAM",
                       scaling_note=f"sum of {len(items)} beam doses")
        courses.append(CourseDose(grid, plan, tuple(d.path for d in items), False,
                                  f"DoseSummationType BEAM: sum of {len(items)} beam doses"))
    return courses


def load_export(paths: list[str | Path], fractions_override: int | None = None) -> Export:
    """Read everything under ``paths`` (files and folders in any mix)."""
    result = scan(paths)
    seen: dict[str, Path] = {}
    for f in result.files:
        if f.sop_instance_uid and f.kind != "OTHER":
            if f.sop_instance_uid in seen:
                raise DicomInputError(
                    f"has the same SOP Instance UID as {seen[f.sop_instance_uid]}: the same "
                    "object twice (a copy?) would be counted twice", f.path)
            seen[f.sop_instance_uid] = f.path
    doses, plans, sets, ct_slices = [], [], [], []
    warnings: list[str] = list(result.warnings)  # files without a Part 10 header
    for f in result.files:
        if f.kind == "RTDOSE":
            doses.append(read_dose(f.path))
        elif f.kind == "RTPLAN":
            plans.append(read_plan(f.path))
        elif f.kind == "RTSTRUCT":
            sets.append(read_structure_set(f.path))
        elif f.kind == "CT":
            ct_slices.append(read_ct_slice(f.path))
    if not result.files:
        where = ", ".join(str(p) for p in paths)
        raise RtqaError(f"no DICOM files found in {where}")
    plan_map = {p.sop_instance_uid: p for p in plans}
    for p in plans:
        if p.n_fraction_groups > 1:
            warnings.append(f"RTPLAN '{p.display}' has {p.n_fraction_groups} fraction groups; "
                            "the first is used")
    for d in doses:
        if d.referenced_plan_uid and d.referenced_plan_uid not in plan_map and plans:
            warnings.append(f"{d.path.name}: references an RTPLAN that is not in the export")
    courses = _courses(doses, plan_map, fractions_override, warnings)
    return Export(result, tuple(doses), tuple(plans), tuple(sets),
                  tuple(assemble_series(ct_slices)), tuple(courses), tuple(warnings))
