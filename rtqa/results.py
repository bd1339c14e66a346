"""The result model of ``rtqa check``: what every check produces and every report reads.

Statuses of a check: PASS, FAIL, WARN (reported, does not fail the plan), NOT EVALUATED
(could not be checked: makes the plan ERROR when the check is mandatory).
Overall status: ERROR when there are errors or a mandatory check is NOT EVALUATED;
otherwise FAIL when a mandatory check fails; otherwise PASS. Exit codes 0/1/2.
Units: Gy, cc, mm, % as named in ``unit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PASS, FAIL, WARN, NOT_EVALUATED = "PASS", "FAIL", "WARN", "NOT EVALUATED"
STATUSES = (PASS, FAIL, WARN, NOT_EVALUATED)
CATEGORIES = ("plan integrity", "lesions", "organs at risk", "protocol")
SCHEMA = "rtqa-report/1"


@dataclass(frozen=True)
class Check:
    """One evaluated row of the report."""

    id: str                      # stable identifier, e.g. "oar.tg101.SpinalCord.D0.035cc"
    category: str                # one of CATEGORIES
    status: str                  # one of STATUSES
    source: str                  # paper + table, protocol, or "DICOM PS3.3 ..."
    structure: str | None = None  # standard name or expression, e.g. "Liver - GTV"
    rois: tuple[str, ...] = ()   # plan ROI names used
    metric: str | None = None    # TG-263 metric text, e.g. "CV15Gy[cc]"
    value: float | None = None
    unit: str | None = None      # "Gy", "cc", "%", "mm", ...
    limit: str | None = None     # e.g. ">= 700"
    note: str = ""               # conversions, reasons for NOT EVALUATED, cannot-be-met...
    priority: str = "mandatory"  # "mandatory" or "optimal" (optimal never fails the plan)


@dataclass(frozen=True)
class LesionResult:
    name: str
    targets: tuple[str, ...]     # ROI names (PTV, CTV, GTV ...)
    plans: tuple[str, ...]       # plan labels contributing dose
    fractions: tuple[int, ...]   # per contributing plan
    metric: str                  # e.g. "D95%[Gy]" on the coverage structure
    dose_gy: float | None        # physical dose of the metric (single plan) else None
    bed_gy: float | None         # BED of the coverage metric (voxel-wise when summed)
    alpha_beta: float
    required_bed_gy: float
    status: str
    organ: str | None = None
    prescribed_bed_gy: float | None = None
    note: str = ""


@dataclass(frozen=True)
class PlanInfo:
    label: str
    sop_instance_uid: str
    fractions: int | None
    prescription_gy: float | None
    approval_status: str = ""
    file: str = ""


@dataclass(frozen=True)
class StructureInfo:
    name: str
    volume_cc: float
    min_gy: float | None
    mean_gy: float | None
    max_gy: float | None
    standard_name: str | None = None
    outside_cc: float = 0.0


@dataclass(frozen=True)
class InputFile:
    path: str
    kind: str
    sop_instance_uid: str
    sha256: str


@dataclass(frozen=True)
class Curve:
    """A cumulative DVH for plotting: dose (Gy) against volume (% of the structure), with
    the constraint points to mark: (dose Gy, volume %, label, status)."""

    name: str
    dose_gy: tuple[float, ...]
    volume_pct: tuple[float, ...]
    volume_cc: float
    marks: tuple[tuple[float, float, str, str], ...] = ()


@dataclass(frozen=True)
class Report:
    status: str
    protocol: dict                # {"name", "path", "source"}
    patient_id: str
    plans: tuple[PlanInfo, ...] = ()
    lesions: tuple[LesionResult, ...] = ()
    checks: tuple[Check, ...] = ()
    structures: tuple[StructureInfo, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    inputs: tuple[InputFile, ...] = ()
    conventions: dict = field(default_factory=dict)  # name -> description
    rtqa_version: str = ""
    created: str = ""             # ISO timestamp (the only non-deterministic field)
    curves: tuple[Curve, ...] = ()  # for the HTML report; not in the JSON


def overall_status(checks, errors=()) -> str:
    if errors or any(c.status == NOT_EVALUATED and c.priority == "mandatory" for c in checks):
        return "ERROR"
    if any(c.status == FAIL and c.priority == "mandatory" for c in checks):
        return "FAIL"
    return "PASS"


EXIT_CODES = {"PASS": 0, "FAIL": 1, "ERROR": 2}
