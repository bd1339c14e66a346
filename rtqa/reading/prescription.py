"""What an RTPLAN says a prescription is for (DICOM PS3.3 C.8.8.10 and C.8.8.13).

``DoseReferenceSequence`` items: DoseReferenceNumber, DoseReferenceStructureType (POINT
and VOLUME: an ROI, through ReferencedROINumber; COORDINATES: a point given by
DoseReferencePointCoordinates; SITE: a treatment site, no geometry),
DoseReferenceDescription (free text), DoseReferenceType (TARGET or ORGAN_AT_RISK) and
TargetPrescriptionDose (Gy). The first fraction group's ReferencedBeamSequence gives
BeamDose (Gy per fraction) and BeamDoseSpecificationPoint (mm) per beam.

The RTPLAN was read and checked by ``rtqa.reading.plan`` first; values read here that
cannot be converted are left out (None), never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rtqa.reading.common import read_dataset, text


@dataclass(frozen=True)
class DoseReference:
    number: int | None
    structure_type: str          # POINT, VOLUME, COORDINATES, SITE or ''
    description: str
    reference_type: str          # TARGET, ORGAN_AT_RISK
    prescription_gy: float | None  # TargetPrescriptionDose, whole course
    roi_number: int | None
    point_mm: tuple[float, float, float] | None  # DoseReferencePointCoordinates


@dataclass(frozen=True)
class BeamPoint:
    beam_number: int | None
    dose_gy: float | None        # BeamDose, Gy per fraction
    point_mm: tuple[float, float, float] | None  # BeamDoseSpecificationPoint


@dataclass(frozen=True)
class PlanPrescriptions:
    references: tuple[DoseReference, ...]
    beams: tuple[BeamPoint, ...]


def _num(item, keyword: str) -> float | None:
    try:
        v = float(item.get(keyword))
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(item, keyword: str) -> int | None:
    v = _num(item, keyword)
    return int(v) if v is not None and v == int(v) else None


def _point(item, keyword: str) -> tuple[float, float, float] | None:
    raw = item.get(keyword)
    try:
        vals = tuple(float(v) for v in raw)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == 3 and all(math.isfinite(v) for v in vals) else None


def read_prescriptions(path: Path) -> PlanPrescriptions:
    """The dose references and beam dose points of the RTPLAN at ``path`` (the plan
    readers keep them: ``rtqa.reading.plan.Plan.dose_references``)."""
    return prescriptions_of(read_dataset(path, stop_before_pixels=True))


def prescriptions_of(ds) -> PlanPrescriptions:
    """:func:`read_prescriptions` of an RTPLAN data set already parsed."""
    refs = tuple(
        DoseReference(_int(r, "DoseReferenceNumber"),
                      text(r, "DoseReferenceStructureType").upper(),
                      text(r, "DoseReferenceDescription"),
                      text(r, "DoseReferenceType").upper(),
                      _num(r, "TargetPrescriptionDose"), _int(r, "ReferencedROINumber"),
                      _point(r, "DoseReferencePointCoordinates"))
        for r in ds.get("DoseReferenceSequence", []) or [])
    beams: tuple[BeamPoint, ...] = ()
    groups = ds.get("FractionGroupSequence", []) or []
    if groups:
        beams = tuple(BeamPoint(_int(b, "ReferencedBeamNumber"), _num(b, "BeamDose"),
                                _point(b, "BeamDoseSpecificationPoint"))
                      for b in groups[0].get("ReferencedBeamSequence", []) or [])
    return PlanPrescriptions(refs, beams)
