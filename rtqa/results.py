"""The result model of ``rtqa check``: what every check produces and every report reads.

Statuses of a check: PASS, FAIL, WARN (reported, does not fail the plan), NOT EVALUATED
(could not be checked: makes the plan ERROR when the check is mandatory).
Overall status: ERROR when there are errors or a mandatory check is NOT EVALUATED;
otherwise FAIL when a mandatory check fails; otherwise PASS. Exit codes 0/1/2.
Units: Gy, cc, mm, % as named in ``unit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """Status of one check row. A ``StrEnum``: ``Status.PASS == "PASS"``."""

    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"                    # reported, never fails the plan
    NOT_EVALUATED = "NOT EVALUATED"  # makes the plan ERROR when the row is mandatory


class Category(StrEnum):
    """Report section of a check row."""

    INTEGRITY = "plan integrity"
    LESIONS = "lesions"
    OARS = "organs at risk"
    PROTOCOL = "protocol"


class Priority(StrEnum):
    MANDATORY = "mandatory"
    OPTIMAL = "optimal"              # never fails the plan


class DoseView(StrEnum):
    """Which dose a row's value is on.

    PHYSICAL: absorbed dose (Gy) of the plan(s) named by the row; EQD2 and BED: the
    linear-quadratic equivalent dose in 2 Gy fractions and the biologically effective dose,
    computed voxel by voxel at the row's ``alpha_beta`` (Gy) with each plan's own fraction
    count, then summed. NONE: the row is not a dose (a volume, a count, a length)."""

    PHYSICAL = "physical"
    EQD2 = "EQD2"
    BED = "BED"
    NONE = "none"


class Reason(StrEnum):
    """Machine-readable reason of a NOT EVALUATED (or WARN) row; the ``note`` says it in
    words. New codes may be added; existing ones never change meaning."""

    STRUCTURE_MISSING = "structure_missing"          # protocol organ / target not in plan
    STRUCTURE_UNRECOGNISED = "structure_unrecognised"  # organ-like ROI matched no name
    STRUCTURE_AMBIGUOUS = "structure_ambiguous"      # several ROIs match one name
    STRUCTURE_EMPTY = "structure_empty"              # no closed contours / no volume
    CONTOUR_DAMAGE = "contour_damage"                # gaps, open contours, outside image
    OUTSIDE_DOSE_GRID = "outside_dose_grid"          # the uncovered part could change it
    NO_LIMIT = "no_limit"                            # no limit for this fraction count
    FRACTIONS_UNKNOWN = "fractions_unknown"
    FRACTIONS_INCONSISTENT = "fractions_inconsistent"
    DOSE_MISSING = "dose_missing"
    DOSE_INCONSISTENT = "dose_inconsistent"          # dose vs RTPLAN implausible
    DOSE_DUPLICATE = "dose_duplicate"
    PLANS_UNCONFIRMED = "plans_unconfirmed"          # several plans, course not confirmed
    PRESCRIPTION_UNLINKED = "prescription_unlinked"
    LESION_ORGAN_UNKNOWN = "lesion_organ_unknown"
    METRIC_UNDEFINED = "metric_undefined"            # e.g. D700cc of a 500 cc organ
    INPUT_UNDEFINED = "input_undefined"              # single CT slice, spacing NaN ...
    OTHER = "other"
    MIXED_FRACTIONATION = "mixed_fractionation"      # fraction-specific row, plans differ
    REFERENCE_BROKEN = "reference_broken"            # UID link / frame of reference
    TPS_DISAGREEMENT = "tps_disagreement"            # rtqa's DVH vs the planning system's
    TARGET_TYPE_CONFLICT = "target_type_conflict"    # target-like name, non-target type


PASS, FAIL, WARN, NOT_EVALUATED = Status.PASS, Status.FAIL, Status.WARN, Status.NOT_EVALUATED
STATUSES = tuple(Status)
CATEGORIES = tuple(c.value for c in Category)
SCHEMA = "rtqa-report/2"


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
    priority: str = "mandatory"  # Priority: "mandatory" or "optimal" (never fails the plan)
    dose_view: DoseView = DoseView.NONE  # what ``value`` is: physical, EQD2 or BED dose
    alpha_beta: float | None = None      # Gy, for EQD2 / BED rows
    plans: tuple[str, ...] = ()          # labels of the plan(s) whose dose was evaluated
    fractions: tuple[int, ...] = ()      # fraction count of each of those plans
    reason: Reason | None = None         # machine-readable, when NOT EVALUATED (or WARN)
    derivation: str | None = None        # "derived (LQ) from <source>, <n> fx"; None = sourced


@dataclass(frozen=True)
class Headroom:
    """Dose-scaling headroom of a lesion that falls short of its BED rule (coverage or
    prescription), the whole plan dose scaled by one factor f (``rtqa.checks.headroom``).
    Informative: it never changes a verdict."""

    factor_to_bed_limit: float | None    # f bringing the coverage metric to the BED limit
    factor_prescription_to_bed_limit: float | None  # f bringing the prescription's BED to it
    factor_first_oar_fail: float | None  # smallest f at which a mandatory OAR row fails
    binding_row: str | None = None       # id of that row
    binding_structure: str | None = None
    binding_metric: str | None = None
    binding_dose_view: str | None = None  # DoseView of that row
    rows_not_scaled: tuple[str, ...] = ()  # mandatory OAR rows whose factor is unknown
    note: str = ""


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
    comparator: str = ">="       # of the rule: bed_gy <comparator> required_bed_gy
    headroom: Headroom | None = None  # set when the lesion falls short (issue 12 item 7)


@dataclass(frozen=True)
class TargetPrescription:
    """One target prescription of an RTPLAN (DoseReferenceSequence TARGET item)."""

    roi: str                     # ROI name it is linked to; "" when not linked
    dose_gy: float | None        # TargetPrescriptionDose, whole course
    description: str = ""        # DoseReferenceDescription


@dataclass(frozen=True)
class PlanInfo:
    """One RTPLAN of the export (every one is listed, checked or not)."""

    label: str
    sop_instance_uid: str
    fractions: int | None
    prescription_gy: float | None
    approval_status: str = ""
    file: str = ""
    checked: bool = True         # its dose was evaluated
    note: str = ""               # why it was or was not checked
    name: str = ""               # RTPlanName
    reviewer: str = ""           # ReviewerName (DICOM PN as written)
    review_date: str = ""        # ReviewDate + ReviewTime, ISO "YYYY-MM-DD[THH:MM[:SS]]"
    targets: tuple[TargetPrescription, ...] = ()


@dataclass(frozen=True)
class DoseFileInfo:
    """One RTDOSE of the export and the role rtqa gave it (dose accounting: every dose is
    counted exactly once)."""

    file: str
    sop_instance_uid: str
    summation_type: str          # DoseSummationType as stored
    plan: str                    # label of the plan (or fraction group) it belongs to
    role: str                    # plan dose, beam dose, fraction dose, plan sum, alternative,
    #                              duplicate, conflicting, unusable, other frame
    used: bool                   # part of the evaluated dose
    note: str = ""


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
class RoiInfo:
    """How one ROI of the structure set was interpreted (declared type first).

    ``role``: target, organ, prv, external, helper, ignored (by its declared type),
    target-like (a target name on an ROI typed otherwise), ambiguous, near (an edited
    copy of an organ name) or unmatched. ``standard``: TG-263 name or target class.
    ``hint``: what the user can give to use or settle it (``--map Heart=Herz``)."""

    name: str
    roi_number: int
    interpreted_type: str        # RTROIInterpretedType as declared ("" when absent)
    role: str
    standard: str | None = None
    reason: str = ""
    hint: str = ""


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
    #: per mark, where its limit lies on the same axes (dose Gy, volume %): the objective
    #: the achieved point is measured against; None when the limit has no such point
    objectives: tuple[tuple[float, float] | None, ...] = ()
    #: what ``dose_gy`` holds: physical dose, or EQD2/BED at ``alpha_beta`` (Gy)
    dose_view: DoseView = DoseView.PHYSICAL
    alpha_beta: float | None = None


@dataclass(frozen=True)
class Report:
    status: str
    protocol: dict                # {"name", "path", "source"}
    patient_id: str
    plans: tuple[PlanInfo, ...] = ()
    doses: tuple[DoseFileInfo, ...] = ()
    patient_name: str = ""        # PatientName (DICOM PN as written, "Family^Given")
    lesions: tuple[LesionResult, ...] = ()
    checks: tuple[Check, ...] = ()
    structures: tuple[StructureInfo, ...] = ()
    rois: tuple[RoiInfo, ...] = ()  # how each ROI was classified
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    inputs: tuple[InputFile, ...] = ()
    conventions: dict = field(default_factory=dict)  # name -> description
    rtqa_version: str = ""
    created: str = ""             # ISO timestamp (the only non-deterministic field)
    curves: tuple[Curve, ...] = ()  # DVHs with their constraint marks (plots, JSON)
    #: the physical DVH of every structure with a volume, in the order of ``structures``
    #: (the overview plot; JSON ``overview``)
    overview: tuple[Curve, ...] = ()


def overall_status(checks, errors=()) -> str:
    if errors or any(c.status == NOT_EVALUATED and c.priority == "mandatory" for c in checks):
        return "ERROR"
    if any(c.status == FAIL and c.priority == "mandatory" for c in checks):
        return "FAIL"
    return "PASS"


EXIT_CODES = {"PASS": 0, "FAIL": 1, "ERROR": 2}
