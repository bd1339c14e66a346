"""Structure expressions evaluated geometrically (rtqa.dvh.structops), against analytic volumes.

Contours are regular polygons / rectangles on planes 2 mm apart. Each test checks
(1) the plane areas exactly against the polygon formula (n/2 r^2 sin(2 pi/n) for a
regular n-gon of circumradius r), (2) the volume (sum of area x slab thickness) against
the solid's analytic volume, and (3) the volume the DVH engine computes on a uniform
dose grid (cross-sections interpolated between planes) against the analytic volume.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rtqa.dvh import compute_dvh
from rtqa.errors import RtqaError
from rtqa.dvh.geometry import plane_areas
from rtqa.reading.dose import DoseGrid
from rtqa.reading.structures import Structure
from rtqa.dvh.structops import DERIVED_ROI_NUMBER, build, plane_geometry, rings

N = 256            # vertices per circle
DZ = 2.0           # plane spacing, mm
FRAME = "1.2.826.0.1.3680043.8.498.777"


# --- phantom helpers (also used by test_oar) -------------------------------------------

def ngon_area(r: float, n: int = N) -> float:
    """Area (mm^2) of a regular n-gon of circumradius r."""
    return 0.5 * n * r * r * math.sin(2 * math.pi / n)


def circle(cx: float, cy: float, r: float, n: int = N) -> np.ndarray:
    t = 2 * np.pi * np.arange(n) / n
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def planes_z(z0: float, z1: float, dz: float = DZ) -> np.ndarray:
    """Plane positions whose slabs (dz thick) exactly fill [z0, z1]."""
    n = int(round((z1 - z0) / dz))
    return z0 + dz * (np.arange(n) + 0.5)


def structure(name: str, planes, kind: str = "ORGAN") -> Structure:
    planes = tuple((float(z), tuple(p)) for z, p in planes if p)
    return Structure(roi_number=abs(hash(name)) % 1000, name=name, interpreted_type=kind,
                     planes=planes, points=np.empty((0, 3)))


def sphere(name: str, center, r: float, kind: str = "ORGAN", dz: float = DZ) -> Structure:
    cx, cy, cz = center
    zs = planes_z(cz - r, cz + r, dz)
    return structure(name, [(z, [circle(cx, cy, math.sqrt(r * r - (z - cz) ** 2))])
                            for z in zs], kind)


def box(name: str, x0, y0, z0, x1, y1, z1, kind: str = "ORGAN") -> Structure:
    return structure(name, [(z, [rect(x0, y0, x1, y1)]) for z in planes_z(z0, z1)], kind)


def slab_volume_cc(s: Structure) -> float:
    """Sum of even-odd plane areas x plane spacing (cc), for evenly spaced planes."""
    return float(np.sum(plane_areas(s.planes))) * DZ / 1000.0


def sphere_slab_cc(r: float, n: int = N, dz: float = DZ) -> float:
    """Slab-convention volume (cc) of the n-gon sphere contours ``sphere`` writes."""
    zs = planes_z(-r, r, dz)
    return sum(ngon_area(math.sqrt(r * r - z * z), n) for z in zs) * dz / 1000.0


def ball_cc(r: float) -> float:
    return 4.0 / 3.0 * math.pi * r ** 3 / 1000.0


def uniform_grid(lo, hi, dose_gy: float = 10.0, step: float = 2.0,
                 dose_fn=None, uid: str = "1.2.3.4", frame: str = FRAME) -> DoseGrid:
    """A dose grid with nodes from lo to hi (mm) every ``step`` mm; uniform dose unless
    ``dose_fn(x, y, z)`` (Gy) is given."""
    x, y, z = (np.arange(a, b + step / 2, step) for a, b in zip(lo, hi))
    if dose_fn is None:
        dose = np.full((z.size, y.size, x.size), float(dose_gy))
    else:
        zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
        dose = np.asarray(dose_fn(xx, yy, zz), dtype=float)
    return DoseGrid(path=Path(f"RD.{uid}.dcm"), sop_instance_uid=uid,
                    frame_of_reference_uid=frame, patient_id="PHANTOM", x=x, y=y, z=z,
                    dose=dose, summation_type="PLAN", dose_type="PHYSICAL",
                    referenced_plan_uid=None, referenced_beam_numbers=())


GRID = uniform_grid((-80, -80, -50), (80, 80, 50))


def dvh_cc(s: Structure) -> float:
    return compute_dvh(s, GRID).volume_cc


# --- tests -----------------------------------------------------------------------------

def test_box_minus_sphere():
    b = box("Box", -30, -30, -30, 30, 30, 30)
    s = sphere("Ball", (0, 0, 0), 20)
    out = build("Box - Ball", {"Box": b, "Ball": s}, {})
    assert out.name == "Box - Ball" and out.roi_number == DERIVED_ROI_NUMBER
    assert out.warnings == ()
    # plane by plane: square minus n-gon (a hole: exterior + interior ring)
    for z, polys in out.planes:
        rz2 = 400.0 - z * z
        expect = 3600.0 - (ngon_area(math.sqrt(rz2)) if rz2 > 0 else 0.0)
        assert float(plane_areas(((z, polys),))[0]) == pytest.approx(expect, rel=1e-9)
        assert len(polys) == (2 if rz2 > 0 else 1)
    truth = 216.0 - ball_cc(20)
    assert slab_volume_cc(out) == pytest.approx(216.0 - sphere_slab_cc(20), rel=1e-9)
    assert slab_volume_cc(out) == pytest.approx(truth, rel=2e-3)
    assert dvh_cc(out) == pytest.approx(truth, rel=5e-3)


def test_two_disjoint_spheres_union():
    a = sphere("A", (-40, 0, 0), 15)
    b = sphere("B", (40, 10, 5), 10)
    out = build("A + B", {"A": a, "B": b}, {})
    truth = ball_cc(15) + ball_cc(10)
    assert slab_volume_cc(out) == pytest.approx(sphere_slab_cc(15) + sphere_slab_cc(10),
                                                rel=1e-9)
    assert slab_volume_cc(out) == pytest.approx(truth, rel=5e-3)
    assert dvh_cc(out) == pytest.approx(truth, rel=1e-2)
    # the union has the planes of both (aligned: no borrowing, no warning)
    assert len(out.planes) == len({round(z, 3) for z, _ in a.planes + b.planes})
    assert out.warnings == ()


def test_shell_is_sphere_minus_concentric_sphere():
    outer = sphere("Outer", (0, 0, 0), 30)
    inner = sphere("Inner", (0, 0, 0), 20)
    out = build("Outer - Inner", {"Outer": outer, "Inner": inner}, {})
    truth = ball_cc(30) - ball_cc(20)
    assert slab_volume_cc(out) == pytest.approx(sphere_slab_cc(30) - sphere_slab_cc(20),
                                                rel=1e-9)
    assert slab_volume_cc(out) == pytest.approx(truth, rel=3e-3)
    assert dvh_cc(out) == pytest.approx(truth, rel=1e-2)


def test_union_of_overlapping_boxes():
    a = box("A", 0, 0, -20, 40, 40, 20)
    b = box("B", 20, 20, -10, 60, 60, 30)
    out = build("A + B", {"A": a, "B": b}, {})
    # z in [-20,-10): A only; [-10, 20): A u B (2800 mm^2); [20, 30): B only
    truth = (1600 * 10 + 2800 * 30 + 1600 * 10) / 1000.0
    assert slab_volume_cc(out) == pytest.approx(truth, rel=1e-9)
    assert dvh_cc(out) == pytest.approx(truth, rel=5e-3)
    for z, polys in out.planes:
        assert len(polys) == 1  # one outline (L-shape or square), no holes


def test_left_to_right_with_an_island_in_a_hole():
    # (Box - Outer) + Inner: a box with a spherical cavity holding a smaller ball
    b = box("Box", -40, -40, -40, 40, 40, 40)
    outer = sphere("Outer", (0, 0, 0), 30)
    inner = sphere("Inner", (0, 0, 0), 14)  # planes -13..13: on the box's planes
    out = build("Box - Outer + Inner", {"Box": b, "Outer": outer, "Inner": inner}, {})
    assert out.warnings == ()
    truth = 512.0 - ball_cc(30) + ball_cc(14)
    assert slab_volume_cc(out) == pytest.approx(
        512.0 - sphere_slab_cc(30) + sphere_slab_cc(14), rel=1e-9)
    assert dvh_cc(out) == pytest.approx(truth, rel=5e-3)
    # order matters: Box + Inner - Outer has no island
    other = build("Box + Inner - Outer", {"Box": b, "Outer": outer, "Inner": inner}, {})
    assert slab_volume_cc(other) == pytest.approx(512.0 - sphere_slab_cc(30), rel=1e-9)


def test_target_class_is_the_union_of_its_structures():
    liver = sphere("Liver", (0, 0, 0), 40)
    gtv_in = sphere("GTV_Liver", (10, 5, 0), 10, kind="GTV")
    gtv_out = sphere("GTV_Lung", (70, 0, 0), 8, kind="GTV")   # outside the liver
    out = build("Liver - GTV", {"Liver": liver}, {"GTV": [gtv_in, gtv_out]},
                name="normal liver")
    assert out.name == "normal liver"
    truth = ball_cc(40) - ball_cc(10)
    assert slab_volume_cc(out) == pytest.approx(sphere_slab_cc(40) - sphere_slab_cc(10),
                                                rel=1e-9)
    assert dvh_cc(out) == pytest.approx(truth, rel=5e-3)
    # no structure of the class: nothing subtracted
    same = build("Liver - GTV", {"Liver": liver}, {})
    assert slab_volume_cc(same) == pytest.approx(sphere_slab_cc(40), rel=1e-9)


def test_subtrahend_partly_outside_removes_only_the_overlap():
    cyl = structure("Cyl", [(z, [circle(0, 0, 30)]) for z in planes_z(-20, 20)])
    ball = sphere("Ball", (0, 0, 20), 10)   # half above the cylinder's top
    out = build("Cyl - Ball", {"Cyl": cyl, "Ball": ball}, {})
    cyl_cc = ngon_area(30) * 40 / 1000.0
    # the lower half of the ball is inside: remove its slab volume (planes below z=20)
    half = sum(ngon_area(math.sqrt(100 - (z - 20) ** 2)) for z in planes_z(10, 20)) * DZ / 1000
    assert slab_volume_cc(out) == pytest.approx(cyl_cc - half, rel=1e-9)
    assert max(z for z, _ in out.planes) < 20  # planes of the ball above the cylinder: empty


def test_different_plane_sets_are_warned_and_use_the_nearest_plane():
    a = box("A", 0, 0, 0, 20, 20, 20)                       # planes 1, 3, ..., 19
    b = structure("B", [(z, [rect(10, 0, 30, 20)]) for z in np.arange(2.0, 20.0, 2.0)])
    out = build("A + B", {"A": a, "B": b}, {})
    assert out.warnings and "different planes" in out.warnings[0]
    # every plane carries the union of both rectangles (each within the other's slab)
    inner = [polys for z, polys in out.planes if 2.0 <= z <= 18.0]
    assert all(float(plane_areas(((0.0, p),))[0]) == pytest.approx(600.0) for p in inner)


def test_empty_result_and_missing_operand():
    a = sphere("A", (0, 0, 0), 10)
    empty = build("A - A2", {"A": a, "A2": a}, {})
    assert not empty.has_volume
    with pytest.raises(RtqaError, match="no structure for 'Cord'"):
        build("A - Cord", {"A": a}, {})


def test_plane_geometry_even_odd_and_rings_round_trip():
    outer, hole = circle(0, 0, 20), circle(0, 0, 10)
    g = plane_geometry([outer, hole])
    assert g.area == pytest.approx(ngon_area(20) - ngon_area(10), rel=1e-12)
    back = rings(g)
    assert len(back) == 2
    assert float(plane_areas(((0.0, back),))[0]) == pytest.approx(g.area, rel=1e-12)
    # a bow-tie (self-intersecting) contour is repaired, not dropped
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=float)
    assert plane_geometry([bow]).area == pytest.approx(50.0)
