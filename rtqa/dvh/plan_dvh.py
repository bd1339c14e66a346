"""Pair every structure with the course dose(s) of its frame of reference.

Dose and structures are combined only when they share a FrameOfReferenceUID. A structure
set with no dose in its frame of reference is an error that names both files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtqa.errors import RtqaError
from rtqa.reading.export import CourseDose, Export
from rtqa.reading.structures import Structure, StructureSet


@dataclass(frozen=True, eq=False)
class Pairing:
    structure_set: StructureSet
    structure: Structure
    course: CourseDose
    ct_z: np.ndarray | None


def pairings(export: Export) -> list[Pairing]:
    """Every structure with volume x every course dose in its frame of reference."""
    if not export.structure_sets:
        raise RtqaError("no RTSTRUCT found: nothing to compute a DVH for")
    if not export.courses:
        raise RtqaError("no RTDOSE found: there is no dose to compute a DVH from")
    out: list[Pairing] = []
    for ss in export.structure_sets:
        courses = export.courses_in_frame(ss.frame_of_reference_uid)
        if not courses:
            others = ", ".join(sorted({c.grid.path.name for c in export.courses}))
            raise RtqaError(
                f"no RTDOSE in its frame of reference {ss.frame_of_reference_uid or '(none)'}"
                f" (RTDOSE present in another frame of reference: {others})", ss.path)
        ct = export.ct_for(ss)
        for s in ss.structures:
            if s.has_volume:
                for c in courses:
                    out.append(Pairing(ss, s, c, ct.z if ct is not None else None))
    return out
