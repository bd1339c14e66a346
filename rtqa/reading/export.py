"""Load a plan export: classify every file, read the RT objects, link them by UID.

Links: RTDOSE ReferencedRTPlanSequence → RTPLAN; RTPLAN ReferencedStructureSetSequence →
RTSTRUCT; RTSTRUCT → frame of reference and CT series. Dose and structures are combined
only within one FrameOfReferenceUID.

Dose accounting: every RTDOSE is given a role (:class:`DoseFileRole`) and each dose is
counted exactly once.
* Doses are grouped by the RTPLAN they reference and, for a plan with several fraction
  groups, by the one fraction group they reference (ReferencedFractionGroupSequence); each
  group becomes its own course with its own NumberOfFractionsPlanned (label "<plan> FG<n>").
  A dose of a multi-group plan not linked to exactly one group is unusable (ERROR): the
  first group's count is never taken for all.
* Exactly one representation per plan (or group) is used, in this order of preference:
  PLAN as stored; the sum of its BEAM doses (a beam dosed twice is an ERROR); FRACTION x
  the group's NumberOfFractionsPlanned (or --fractions; without either the dose stays per
  fraction and every result says so). Any other representation is compared with the used
  one on the same grid: within ``REPRESENTATION_TOLERANCE`` it is reported as an unused
  alternative; otherwise (or when it cannot be compared) it is an ERROR. Two doses of the
  same kind for one plan are an ERROR (duplicates when within ``DUPLICATE_TOLERANCE``).
* MULTI_PLAN (a plan sum) is used only as what it is: not used when any of its plans has
  its own dose; used as the dose of its plan when it names exactly one; an ERROR when it
  sums several plans without their own doses (it cannot be split into fraction counts).
* Used doses of different plans (or without a plan) that are near-identical grids are
  duplicates (ERROR naming both files): the copy is not used.
* Other types (BRACHY, CONTROL_POINT, RECORD) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
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
    #: The role given to every RTDOSE (in ``doses`` order): see rtqa.reading.export.
    dose_roles: tuple["DoseFileRole", ...] = ()
    #: Doses that could not be counted exactly once (each an ERROR in the report).
    accounting_problems: tuple["AccountingProblem", ...] = ()

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


#: Two doses on one grid whose largest voxel difference is at most this fraction of the
#: larger maximum are the same dose (a re-export, a copy under a new UID).
DUPLICATE_TOLERANCE = 0.01
#: Two representations of one plan (PLAN and the sum of its BEAMs, FRACTION x n) agree when
#: their largest voxel difference is at most this fraction of the larger maximum.
REPRESENTATION_TOLERANCE = 0.03


class DoseRole(StrEnum):
    """What rtqa made of one RTDOSE file (``DoseFileRole.role``)."""

    PLAN = "plan dose"              # used: the whole plan (or fraction group) as stored
    BEAMS = "beam dose"             # used: summed with the plan's other beam doses
    FRACTION = "fraction dose"      # used: one fraction x the group's fraction count
    PLAN_SUM = "plan sum"           # used: a MULTI_PLAN dose standing for its one plan
    ALTERNATIVE = "alternative"     # not used: another representation, agrees with the used
    DUPLICATE = "duplicate"         # not used: same dose as another file (ERROR)
    CONFLICTING = "conflicting"     # not used: another representation that disagrees (ERROR)
    UNUSABLE = "unusable"           # not used: cannot be attributed to one plan/group (ERROR)


@dataclass(frozen=True)
class DoseFileRole:
    """The role given to one RTDOSE file, and why."""

    path: Path
    sop_instance_uid: str
    summation_type: str
    plan_uid: str | None
    plan_label: str
    fraction_group: int | None
    role: DoseRole
    used: bool
    note: str


@dataclass(frozen=True)
class AccountingProblem:
    """A dose that could not be counted exactly once: always an ERROR in the report.
    ``reason`` is a :class:`rtqa.results.Reason` value."""

    reason: str
    message: str
    files: tuple[Path, ...]
    plan_uids: tuple[str, ...] = ()


def _difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(largest voxel difference Gy, as a fraction of the larger maximum)."""
    top = max(float(np.max(a)), float(np.max(b)), 1e-9)
    diff = float(np.max(np.abs(a - b)))
    return diff, diff / top


class _Accounting:
    def __init__(self, plans: dict[str, Plan], fractions_override: int | None,
                 warnings: list[str]):
        self.plans = plans
        self.override = fractions_override
        self.warnings = warnings
        self.courses: list[CourseDose] = []
        self.roles: dict[Path, DoseFileRole] = {}
        self.problems: list[AccountingProblem] = []

    def role(self, d: DoseGrid, plan: Plan | None, group: int | None, role: DoseRole,
             used: bool, note: str) -> None:
        self.roles[d.path] = DoseFileRole(
            d.path, d.sop_instance_uid, d.summation_type,
            plan.sop_instance_uid if plan else d.referenced_plan_uid,
            plan.display if plan else "", group, role, used, note)

    def problem(self, reason: str, message: str, files, plans=()) -> None:
        self.problems.append(AccountingProblem(reason, message, tuple(files),
                                               tuple(p.sop_instance_uid for p in plans)))

    # --- one plan ---------------------------------------------------------------------
    def group_plan(self, plan: Plan, number: int | None) -> Plan:
        """The Plan standing for one fraction group (its own count, BeamDose and label);
        the plan itself when it has one group."""
        if len(plan.fraction_groups) <= 1:
            return plan
        g = next(g for g in plan.fraction_groups if g.number == number)
        # the group's share of each prescription: BeamDose of the beams aimed at it x the
        # group's fraction count (a whole-course TargetPrescriptionDose spans all groups)
        shares = []
        for rx in plan.prescriptions:
            bd = g.beam_dose_for(rx.uid) if rx.uid else None
            if bd is not None and g.fractions:
                shares.append(replace(rx, dose_gy=bd * g.fractions))
        return replace(plan, label=f"{plan.display} FG{number}", fractions=g.fractions,
                       beam_dose_per_fraction_gy=g.beam_dose_per_fraction_gy,
                       prescriptions=tuple(shares), fraction_group=number,
                       fraction_groups=(g,))

    def account_plan(self, plan: Plan, doses: list[DoseGrid]) -> None:
        numbers = [g.number for g in plan.fraction_groups]
        by_group: dict[int | None, list[DoseGrid]] = {}
        if len(numbers) <= 1:
            by_group[None] = doses
        else:
            counts = ", ".join(f"FG{g.number}: {g.fractions} fx" for g in plan.fraction_groups)
            for d in doses:
                refs = [n for n in d.referenced_fraction_groups if n in numbers]
                if len(refs) == 1:
                    by_group.setdefault(refs[0], []).append(d)
                    continue
                msg = (f"{d.path.name}: RTPLAN '{plan.display}' has {len(numbers)} fraction "
                       f"groups ({counts}) and this {d.summation_type} dose is not linked to "
                       "exactly one of them (ReferencedFractionGroupSequence): each group's "
                       "dose needs its own fraction count, so it cannot be converted")
                self.role(d, plan, None, DoseRole.UNUSABLE, False, msg)
                self.problem("fractions_inconsistent", msg, [d.path], [plan])
        for number, items in by_group.items():
            self.account_group(self.group_plan(plan, number), number, items)

    def account_group(self, plan: Plan, group: int | None, doses: list[DoseGrid]) -> None:
        kinds: dict[str, list[DoseGrid]] = {}
        for d in doses:
            kinds.setdefault(d.summation_type, []).append(d)
        reps: list[tuple[str, CourseDose, list[DoseGrid]]] = []
        for d in kinds.get("PLAN", []):
            reps.append(("PLAN", CourseDose(d, plan, (d.path,), False,
                                            "DoseSummationType PLAN: dose used as stored"), [d]))
        if kinds.get("BEAM"):
            beam = self.beam_sum(plan, kinds["BEAM"])
            if beam is not None:
                reps.append(("BEAM", beam, kinds["BEAM"]))
        for d in kinds.get("FRACTION", []):
            reps.append(("FRACTION", self.fraction_course(d, plan), [d]))
        if not reps:
            return
        chosen_kind, chosen, files = reps[0]
        used_role = {"PLAN": DoseRole.PLAN, "BEAM": DoseRole.BEAMS,
                     "FRACTION": DoseRole.FRACTION}[chosen_kind]
        for d in files:
            self.role(d, plan, group, used_role, True, chosen.note)
        self.courses.append(chosen)
        for kind, other, ofiles in reps[1:]:
            names = ", ".join(f.path.name for f in ofiles)
            what = "the sum of its BEAM doses" if kind == "BEAM" else f"{kind} dose {names}"
            used_what = ("the sum of its BEAM doses" if chosen_kind == "BEAM"
                         else f"{chosen_kind} dose {chosen.grid.path.name}")
            if other.per_fraction or chosen.per_fraction or not _same_grid(chosen.grid,
                                                                           other.grid):
                msg = (f"RTPLAN '{plan.display}': {what} and {used_what} are two "
                       "representations of one dose that cannot be compared (different grids "
                       "or unknown fraction count): which one to use cannot be told")
                role, ok = DoseRole.CONFLICTING, False
            else:
                diff, rel = _difference(chosen.grid.dose, other.grid.dose)
                ok = rel <= REPRESENTATION_TOLERANCE
                same = kind == chosen_kind
                if same and rel <= DUPLICATE_TOLERANCE:
                    msg = (f"RTPLAN '{plan.display}': {what} duplicates {used_what} (largest "
                           f"voxel difference {diff:.3g} Gy, {100 * rel:.2f}%): the same dose "
                           "twice under different UIDs; remove one")
                    role, ok = DoseRole.DUPLICATE, False
                elif same:
                    msg = (f"RTPLAN '{plan.display}' has two different {kind} doses "
                           f"({used_what} and {names}, differing by up to {diff:.3g} Gy): "
                           "which one is the plan's dose cannot be told")
                    role, ok = DoseRole.CONFLICTING, False
                elif ok:
                    msg = (f"RTPLAN '{plan.display}': {what} not used (one dose "
                           f"representation per plan: {used_what} is used); they agree within "
                           f"{diff:.3g} Gy ({100 * rel:.2f}% <= "
                           f"{100 * REPRESENTATION_TOLERANCE:g}%)")
                    role = DoseRole.ALTERNATIVE
                else:
                    msg = (f"RTPLAN '{plan.display}': {what} and {used_what} disagree by up to "
                           f"{diff:.3g} Gy ({100 * rel:.1f}% > "
                           f"{100 * REPRESENTATION_TOLERANCE:g}%): which is the plan's dose "
                           "cannot be told")
                    role = DoseRole.CONFLICTING
            for d in ofiles:
                self.role(d, plan, group, role, False, msg)
            if not ok:
                reason = "dose_duplicate" if role == DoseRole.DUPLICATE else "dose_inconsistent"
                self.problem(reason, msg, [chosen.grid.path, *[f.path for f in ofiles]],
                             [plan])

    def fraction_course(self, d: DoseGrid, plan: Plan | None) -> CourseDose:
        from_plan = plan.fractions if plan else None
        n = from_plan or self.override
        if n:
            src = f"RTPLAN '{plan.display}'" if from_plan else "--fractions"
            return CourseDose(d.scaled(float(n), f"x {n} fractions"), plan, (d.path,), False,
                              f"DoseSummationType FRACTION: dose of one fraction x {n} "
                              f"fractions ({src})")
        msg = (f"{d.path.name}: dose is per fraction (DoseSummationType FRACTION) and "
               "no RTPLAN gives the fraction count: results are per fraction")
        self.warnings.append(msg)
        return CourseDose(d, plan, (d.path,), True, msg)

    def beam_sum(self, plan: Plan, items: list[DoseGrid]) -> CourseDose | None:
        first = items[0]
        for other in items[1:]:
            if not _same_grid(first, other):
                raise DicomInputError("beam doses of one plan are on different grids",
                                      other.path)
        seen: dict[int, DoseGrid] = {}
        for d in items:
            for b in d.referenced_beam_numbers:
                if b in seen:
                    msg = (f"RTPLAN '{plan.display}': {seen[b].path.name} and {d.path.name} "
                           f"are both the dose of beam {b}: the beam would be counted twice")
                    for x in items:
                        self.role(x, plan, plan.fraction_group, DoseRole.CONFLICTING, False,
                                  msg)
                    self.problem("dose_duplicate", msg, [seen[b].path, d.path], [plan])
                    return None
                seen[b] = d
        total = first.dose.copy()
        for other in items[1:]:
            total += other.dose
        if plan.beam_numbers and len(items) != len(plan.beam_numbers):
            self.warnings.append(
                f"RTPLAN '{plan.display}' has {len(plan.beam_numbers)} beams but "
                f"{len(items)} beam doses were found: summing those present")
        grid = replace(first, dose=total, summation_type="BEAM",
                       scaling_note=f"sum of {len(items)} beam doses")
        return CourseDose(grid, plan, tuple(d.path for d in items), False,
                          f"DoseSummationType BEAM: sum of {len(items)} beam doses")

    # --- doses without a plan in the export -------------------------------------------
    def account_unlinked(self, d: DoseGrid) -> None:
        st = d.summation_type
        if st == "BEAM":
            raise DicomInputError("beam dose (DoseSummationType BEAM) without its RTPLAN: "
                                  "cannot sum the plan's beams", d.path)
        if st == "FRACTION":
            course = self.fraction_course(d, None)
            role = DoseRole.FRACTION
        else:
            course = CourseDose(d, None, (d.path,), False,
                                f"DoseSummationType {st}: dose used as stored (no RTPLAN)")
            role = DoseRole.PLAN if st == "PLAN" else DoseRole.PLAN_SUM
        self.courses.append(course)
        self.role(d, None, None, role, True, course.note)

    def account_multi(self, d: DoseGrid, has_own: set[str]) -> None:
        refs = [u for u in d.referenced_plan_uids if u in self.plans]
        labels = ", ".join(f"'{self.plans[u].display}'" for u in refs) or "no plan in the export"
        own = [u for u in refs if u in has_own]
        if own:
            msg = (f"{d.path.name}: MULTI_PLAN dose (a sum over plans: {labels}) not used: "
                   "each plan's own dose is used, and a plan sum is never added to them")
            self.role(d, self.plans[own[0]], None, DoseRole.ALTERNATIVE, False, msg)
            return
        if len(d.referenced_plan_uids) <= 1 and len(refs) <= 1:
            plan = self.plans.get(refs[0]) if refs else None
            if plan is not None and len(plan.fraction_groups) > 1:
                msg = (f"{d.path.name}: MULTI_PLAN dose of RTPLAN '{plan.display}', which has "
                       f"{len(plan.fraction_groups)} fraction groups: cannot be split per group")
                self.role(d, plan, None, DoseRole.UNUSABLE, False, msg)
                self.problem("fractions_inconsistent", msg, [d.path], [plan])
                return
            note = (f"DoseSummationType MULTI_PLAN naming one plan ({labels}): used as that "
                    "plan's dose")
            self.courses.append(CourseDose(d, plan, (d.path,), False, note))
            self.role(d, plan, None, DoseRole.PLAN_SUM, True, note)
            return
        msg = (f"{d.path.name}: MULTI_PLAN dose, a sum over {len(d.referenced_plan_uids)} "
               f"plans ({labels}) without their own doses: a plan sum cannot be split into "
               "its plans' fraction counts; export each plan's dose")
        self.role(d, None, None, DoseRole.UNUSABLE, False, msg)
        self.problem("dose_inconsistent", msg, [d.path])

    def duplicates_across(self) -> None:
        """Two used course doses (of different plans, or unlinked) that are the same dose."""
        keep: list[CourseDose] = []
        for c in self.courses:
            twin = None
            if not c.per_fraction:
                for k in keep:
                    if not k.per_fraction and _same_grid(k.grid, c.grid):
                        diff, rel = _difference(k.grid.dose, c.grid.dose)
                        if rel <= DUPLICATE_TOLERANCE:
                            twin = (k, diff, rel)
                            break
            if twin is None:
                keep.append(c)
                continue
            k, diff, rel = twin
            a = ", ".join(p.name for p in k.sources)
            b = ", ".join(p.name for p in c.sources)
            msg = (f"{b} ({c.label}) is the same dose as {a} ({k.label}): largest voxel "
                   f"difference {diff:.3g} Gy ({100 * rel:.2f}%): a dose exported twice "
                   "under different UIDs would be counted twice; remove the copy")
            for path in c.sources:
                old = self.roles[path]
                self.roles[path] = replace(old, role=DoseRole.DUPLICATE, used=False, note=msg)
            self.problem("dose_duplicate", msg, [*k.sources, *c.sources],
                         [x for x in (k.plan, c.plan) if x is not None])
        self.courses = keep


def _courses(doses: list[DoseGrid], plans: dict[str, Plan], fractions_override: int | None,
             warnings: list[str]) -> _Accounting:
    acc = _Accounting(plans, fractions_override, warnings)
    per_plan: dict[str, list[DoseGrid]] = {}
    multi = []
    for d in doses:
        st = d.summation_type
        if st not in ("PLAN", "BEAM", "FRACTION", "MULTI_PLAN"):
            raise DicomInputError(f"DoseSummationType {st} is not supported", d.path)
        if st == "MULTI_PLAN":
            multi.append(d)
        elif d.referenced_plan_uid in plans:
            per_plan.setdefault(d.referenced_plan_uid, []).append(d)
        else:
            acc.account_unlinked(d)
    for uid, items in per_plan.items():
        acc.account_plan(plans[uid], items)
    has_own = {c.plan.sop_instance_uid for c in acc.courses if c.plan is not None}
    has_own |= {r.plan_uid for r in acc.roles.values() if r.plan_uid}
    for d in multi:
        acc.account_multi(d, has_own)
    acc.duplicates_across()
    return acc


def load_export(paths: list[str | Path], fractions_override: int | None = None) -> Export:
    """Read everything under ``paths`` (files and folders in any mix).

    Each file is read and parsed once: the scan classifies it, walks it for completeness
    and parses its data set up to the PixelData from the same bytes (and takes their
    SHA-256); the readers below take that data set (the dose reads its native pixel
    data from the file frame by frame, checking the digest)."""
    datasets: dict = {}
    result = scan(paths, datasets=datasets)
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
        ds = datasets.pop(f.path, None)  # the reader's; not kept once read
        if f.kind == "RTDOSE":
            doses.append(read_dose(f.path, dataset=ds, pixel_data=f.pixel_data,
                                   sha256=f.sha256))
        elif f.kind == "RTPLAN":
            plans.append(read_plan(f.path, dataset=ds))
        elif f.kind == "RTSTRUCT":
            sets.append(read_structure_set(f.path, dataset=ds))
        elif f.kind == "CT":
            ct_slices.append(read_ct_slice(f.path, dataset=ds))
    if not result.files:
        where = ", ".join(str(p) for p in paths)
        raise RtqaError(f"no DICOM files found in {where}")
    plan_map = {p.sop_instance_uid: p for p in plans}
    for d in doses:
        if d.referenced_plan_uid and d.referenced_plan_uid not in plan_map and plans:
            warnings.append(f"{d.path.name}: references an RTPLAN that is not in the export")
    acc = _courses(doses, plan_map, fractions_override, warnings)
    return Export(result, tuple(doses), tuple(plans), tuple(sets),
                  tuple(assemble_series(ct_slices)), tuple(acc.courses), tuple(warnings),
                  tuple(acc.roles[d.path] for d in doses), tuple(acc.problems))
