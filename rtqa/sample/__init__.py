"""Synthetic, standards-conformant DICOM RT exports with analytic truth.

Build a :class:`CaseSpec` (structures from analytic solids, lesions, plans, CT geometry),
write it with :func:`write_case`, and compare what a reader computes with the generator's
own truth: :func:`plan_dose` (analytic dose in Gy at any points), :func:`sample_dose`
(doses at points filling a structure, for DVH metrics), the solids' ``contains`` /
``volume_cc`` and :func:`sample_inside` (points inside a solid).

Named cases: :func:`hcc_pass`, :func:`hcc_fail`, :func:`body_bench` (see
:mod:`rtqa.sample.cases`). Units: mm, Gy, cc. DICOM PixelSpacing is [row spacing (y),
column spacing (x)]; ImagePositionPatient is the centre of the first voxel.
"""

from rtqa.sample.cases import CASES, body_bench, get_case, hcc_fail, hcc_pass
from rtqa.sample.phantom import (
    BeamInfo,
    CaseSpec,
    CTSpec,
    DoseCloud,
    DoseGridSpec,
    LesionSpec,
    PlanSpec,
    StructureSpec,
    TargetDose,
    Tissue,
    all_structures,
    beam_dose,
    cloud_dose,
    contoured_shape,
    ct_hu,
    lesion,
    plan,
    plan_beams,
    plan_dose,
    profile,
    roi_numbers,
    sample_dose,
    structure,
    target_dose,
    validate_case,
)
from rtqa.sample.shapes import Box, Ellipsoid, EllipticCylinder, Ring, Shape, cylinder, sample_inside, sphere
from rtqa.sample.writer import SOP_CLASS, file_names, make_uid, write_case

__all__ = [
    "CASES", "body_bench", "get_case", "hcc_fail", "hcc_pass",
    "BeamInfo", "CaseSpec", "CTSpec", "DoseCloud", "DoseGridSpec", "LesionSpec", "PlanSpec",
    "StructureSpec", "TargetDose", "Tissue",
    "all_structures", "beam_dose", "cloud_dose", "contoured_shape", "ct_hu", "lesion", "plan",
    "plan_beams", "plan_dose", "profile", "roi_numbers", "sample_dose", "structure", "target_dose",
    "validate_case",
    "Box", "Ellipsoid", "EllipticCylinder", "Ring", "Shape", "cylinder", "sample_inside", "sphere",
    "SOP_CLASS", "file_names", "make_uid", "write_case",
]
