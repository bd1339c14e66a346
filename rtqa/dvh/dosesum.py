"""Combine course doses of several plans voxel-wise, physically or as BED/EQD2.

Plans with different fraction counts add as BED (or EQD2) voxel by voxel, each plan
converted with its own fraction count, never as physical Gy with one count. Every dose is
resampled (trilinear) onto the grid of the first course; a point outside a plan's grid
receives no dose from that plan (a TPS plan sum does the same).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rtqa.dvh import trilinear
from rtqa.errors import RtqaError
from rtqa.dvh.radiobiology import bed_grid, eqd2_grid
from rtqa.reading.dose import DoseGrid
from rtqa.reading.export import CourseDose

KINDS = ("physical", "BED", "EQD2")


def resample(grid: DoseGrid, onto: DoseGrid) -> np.ndarray:
    """``grid``'s dose (Gy) at the nodes of ``onto``; 0 outside ``grid``."""
    same = (grid.dose.shape == onto.dose.shape and np.allclose(grid.x, onto.x)
            and np.allclose(grid.y, onto.y) and np.allclose(grid.z, onto.z))
    if same:
        return grid.dose
    zz, yy, xx = np.meshgrid(onto.z, onto.y, onto.x, indexing="ij")
    d, inside = trilinear(grid, xx.ravel(), yy.ravel(), zz.ravel())
    return np.where(inside, d, 0.0).reshape(onto.dose.shape)


def convert(dose: np.ndarray, kind: str, fractions: int | None, alpha_beta: float | None):
    if kind == "physical":
        return dose
    if not fractions:
        raise RtqaError(f"{kind} needs the number of fractions, which is unknown")
    if alpha_beta is None:
        raise RtqaError(f"{kind} needs an alpha/beta")
    return (bed_grid if kind == "BED" else eqd2_grid)(dose, fractions, alpha_beta)


def course_fractions(course: CourseDose, override: int | None = None) -> int | None:
    return override or (course.plan.fractions if course.plan else None)


def combined(courses: list[CourseDose], kind: str = "physical",
             alpha_beta: float | None = None, fractions_override: int | None = None,
             fractions=None) -> DoseGrid:
    """One DoseGrid holding the voxel-wise sum of ``courses`` in Gy, BED or EQD2.

    ``fractions``: the fraction count of each course (default: ``fractions_override`` or
    its RTPLAN's)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if not courses:
        raise RtqaError("no dose to combine")
    onto = courses[0].grid
    total = np.zeros_like(onto.dose)
    if fractions is None:
        fractions = [course_fractions(c, fractions_override) for c in courses]
    for c, n in zip(courses, fractions, strict=True):
        if c.per_fraction and kind != "physical":
            raise RtqaError(f"{c.label}: dose is per fraction and the fraction count is "
                            "unknown: cannot convert to " + kind, c.grid.path)
        total += convert(resample(c.grid, onto), kind, n, alpha_beta)
    labels = " + ".join(c.label for c in courses)
    return replace(onto, dose=total, scaling_note=f"voxel-wise {kind} sum of {labels}")
