"""RTPLAN → fraction count, prescription and links.

* Fractions: ``FractionGroupSequence[i].NumberOfFractionsPlanned``, per fraction group
  (:class:`FractionGroup`). ``Plan.fractions`` is the count of a plan with one fraction
  group; with several groups each dose is linked to its own group when linking
  (rtqa.reading.export), never the first group's count for all.
* Prescription (Gy, whole course): ``DoseReferenceSequence`` TARGET items with
  ``TargetPrescriptionDose`` (linked to an ROI through ``ReferencedROINumber`` when
  present); otherwise the sum of ``ReferencedBeamSequence.BeamDose`` (Gy per fraction)
  times the fraction count. Free-text prescriptions are reported, never parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rtqa.errors import DicomInputError
from rtqa.reading.common import present, read_dataset, reader, text, whole
from rtqa.reading.prescription import PlanPrescriptions, prescriptions_of
from rtqa.reading.dose import MAX_PLAUSIBLE_DOSE_GY


@dataclass(frozen=True)
class TargetPrescription:
    dose_gy: float  # whole course
    roi_number: int | None
    description: str
    uid: str = ""  # DoseReferenceUID (beams point at it with ReferencedDoseReferenceUID)


@dataclass(frozen=True)
class BeamDose:
    """One ReferencedBeamSequence item of a fraction group."""

    beam_number: int | None
    dose_gy: float | None  # BeamDose: Gy per fraction at the beam dose point
    dose_reference_uid: str = ""  # ReferencedDoseReferenceUID


@dataclass(frozen=True)
class FractionGroup:
    number: int | None
    fractions: int | None
    beams: tuple[BeamDose, ...] = ()

    @property
    def beam_dose_per_fraction_gy(self) -> float | None:
        """Sum of BeamDose (Gy per fraction), None unless every treatment beam has one."""
        doses = [b.dose_gy for b in self.beams]
        return float(sum(doses)) if doses and all(d is not None for d in doses) else None

    def beam_dose_for(self, dose_reference_uid: str) -> float | None:
        """Sum of BeamDose (Gy per fraction) of the beams aimed at one dose reference."""
        doses = [b.dose_gy for b in self.beams if b.dose_reference_uid == dose_reference_uid]
        return float(sum(doses)) if doses and all(d is not None for d in doses) else None


@dataclass(frozen=True)
class Plan:
    path: Path
    sop_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    label: str
    name: str
    approval_status: str
    fractions: int | None
    referenced_structure_set_uid: str | None
    prescriptions: tuple[TargetPrescription, ...]
    beam_dose_per_fraction_gy: float | None  # sum of BeamDose over the first group
    beam_numbers: tuple[int, ...]
    n_fraction_groups: int
    prescription_text: str
    fraction_groups: tuple[FractionGroup, ...] = ()
    #: Set when this Plan stands for one fraction group of a multi-group RTPLAN.
    fraction_group: int | None = None
    patient_name: str = ""   # PatientName (0010,0010) as written (PN, "Family^Given")
    reviewer: str = ""       # ReviewerName (300E,0008), when approved/rejected
    review_date: str = ""    # ReviewDate (300E,0004) YYYYMMDD
    review_time: str = ""    # ReviewTime (300E,0005) HHMMSS
    #: every DoseReferenceSequence item and beam dose point, as
    #: ``rtqa.reading.prescription.read_prescriptions`` reads them (from the same parse)
    dose_references: "PlanPrescriptions | None" = None

    @property
    def display(self) -> str:
        return self.label or self.name or self.sop_instance_uid

    @property
    def prescription_gy(self) -> float | None:
        """The highest target prescription (Gy, whole course), else BeamDose x fractions."""
        if self.prescriptions:
            return max(p.dose_gy for p in self.prescriptions)
        if self.beam_dose_per_fraction_gy is not None and self.fractions:
            return self.beam_dose_per_fraction_gy * self.fractions
        return None


def _dose_or_none(item, keyword: str, path: Path, empty_ok: bool = False) -> float | None:
    """A dose in Gy: None when absent (or empty, with ``empty_ok``); a value that is not a
    finite number >= 0 is refused (dropping it would leave the plan checked against another
    prescription)."""
    raw = present(item, keyword, path, empty_ok)
    if raw is None:
        return None
    try:
        v = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise DicomInputError(f"{keyword} is not a number: {str(raw)[:40]!r}", path) from None
    if not math.isfinite(v) or v < 0 or v > MAX_PLAUSIBLE_DOSE_GY:
        raise DicomInputError(f"{keyword} is {v:g} Gy: not a dose", path)
    return v


def _dose_references(ds) -> PlanPrescriptions | None:
    """The plan's dose references (None when they cannot be read here: the prescription
    check then reads the file and reports it as before)."""
    try:
        return prescriptions_of(ds)
    except Exception:  # noqa: BLE001 - pydicom's conversion errors vary
        return None


@reader("RTPLAN")
def read_plan(path: Path, dataset=None) -> Plan:
    """One RTPLAN. ``dataset``: the file already parsed (by the scan), else it is read."""
    ds = dataset if dataset is not None else read_dataset(path)
    groups = list(ds.get("FractionGroupSequence", []) or [])
    fraction_groups = []
    for g in groups:
        n = whole(g, "NumberOfFractionsPlanned", path, empty_ok=True)  # Type 2
        if n is not None and n < 1:
            raise DicomInputError(f"NumberOfFractionsPlanned is {n}", path)
        beams = tuple(BeamDose(whole(b, "ReferencedBeamNumber", path, empty_ok=True)
                               if "ReferencedBeamNumber" in b else None,
                               _dose_or_none(b, "BeamDose", path, empty_ok=True),  # setup: empty
                               text(b, "ReferencedDoseReferenceUID"))
                      for b in g.get("ReferencedBeamSequence", []) or [])
        number = whole(g, "FractionGroupNumber", path, empty_ok=True) \
            if "FractionGroupNumber" in g else None
        fraction_groups.append(FractionGroup(number, n, beams))
    fractions = fraction_groups[0].fractions if len(fraction_groups) == 1 else None
    beam_dose = fraction_groups[0].beam_dose_per_fraction_gy if len(fraction_groups) == 1 \
        else None
    prescriptions = []
    for ref in ds.get("DoseReferenceSequence", []) or []:
        if text(ref, "DoseReferenceType").upper() != "TARGET":
            continue
        dose = _dose_or_none(ref, "TargetPrescriptionDose", path)
        if dose is None:
            continue
        if dose == 0:
            raise DicomInputError("TargetPrescriptionDose is 0 Gy: no prescription to check "
                                  "the plan against", path)
        roi = whole(ref, "ReferencedROINumber", path)
        kind = text(ref, "DoseReferenceStructureType").upper()
        if roi is None and kind in ("POINT", "VOLUME"):  # Type 1C (PS3.3 C.8.8.10)
            raise DicomInputError(f"a {kind} target prescription of {dose:g} Gy without "
                                  "ReferencedROINumber: which ROI it is for cannot be told",
                                  path)
        prescriptions.append(TargetPrescription(dose, roi, text(ref, "DoseReferenceDescription"),
                                                text(ref, "DoseReferenceUID")))
    rs_uid = None
    for item in ds.get("ReferencedStructureSetSequence", []) or []:
        rs_uid = text(item, "ReferencedSOPInstanceUID") or rs_uid
    beams = tuple(whole(b, "BeamNumber", path) for b in ds.get("BeamSequence", []) or []
                  if "BeamNumber" in b)
    return Plan(
        path=path, sop_instance_uid=text(ds, "SOPInstanceUID"),
        frame_of_reference_uid=text(ds, "FrameOfReferenceUID"),
        patient_id=text(ds, "PatientID"),
        label=text(ds, "RTPlanLabel"), name=text(ds, "RTPlanName"),
        approval_status=text(ds, "ApprovalStatus").upper(),
        fractions=fractions, referenced_structure_set_uid=rs_uid,
        prescriptions=tuple(prescriptions), beam_dose_per_fraction_gy=beam_dose,
        beam_numbers=beams, n_fraction_groups=len(groups),
        prescription_text=text(ds, "PrescriptionDescription"),
        fraction_groups=tuple(fraction_groups),
        patient_name=text(ds, "PatientName"), reviewer=text(ds, "ReviewerName"),
        review_date=text(ds, "ReviewDate"), review_time=text(ds, "ReviewTime"),
        dose_references=_dose_references(ds))
