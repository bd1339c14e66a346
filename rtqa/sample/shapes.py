"""Analytic solids for synthetic anatomy: point tests, signed distances, planar sections.

Conventions
-----------
* Coordinates are DICOM patient coordinates in mm (head-first supine: +x patient left,
  +y posterior, +z superior). Points are numpy arrays of shape ``(..., 3)``.
* ``contains(p)`` is a boolean array of shape ``p.shape[:-1]`` (closed solid: the surface
  counts as inside).
* ``signed_distance(p)`` is negative inside, zero on the surface, positive outside (mm). It
  is exact for spheres, boxes and circular cylinders and a smooth first-order estimate for
  ellipsoids and elliptic cylinders (exact on the surface and along the axes).
* ``sections(z, spacing_mm, min_points)`` returns the closed planar contours of the solid
  on the plane ``z`` as ``(N, 2)`` arrays of (x, y) vertices in mm, first vertex not
  repeated, about ``spacing_mm`` apart (never fewer than ``min_points``). Each polygon has
  exactly the area of the analytic cross-section: rectangle vertices lie on the surface;
  ellipse vertices lie on the ellipse scaled about its centre by 1 + O(1/N^2) (a 16-gon:
  +1.3 % of the radius, 100 vertices: +0.03 %), so contour volumes match ``volume_cc``
  up to the slab discretisation. Outer contours run counter-clockwise in (x, y), holes
  clockwise; a hole is a contour lying inside another one on the same plane (DICOM
  even-odd rule).
* ``volume_cc`` is the exact analytic volume in cc (cm^3).

All shapes are small frozen dataclasses; ``expanded(margin_mm)`` returns a grown copy
(exact uniform margin for spheres; for other shapes the semi-axes / half-sizes grow by the
margin, which is the uniform margin only along the axes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

Vec3 = tuple[float, float, float]
Vec2 = tuple[float, float]

__all__ = [
    "Shape",
    "Ellipsoid",
    "EllipticCylinder",
    "Box",
    "Ring",
    "sphere",
    "cylinder",
    "sample_inside",
]


@runtime_checkable
class Shape(Protocol):
    """What every analytic solid offers (see the module docstring for conventions)."""

    @property
    def centre(self) -> Vec3: ...

    def contains(self, p: np.ndarray) -> np.ndarray: ...

    def signed_distance(self, p: np.ndarray) -> np.ndarray: ...

    def sections(self, z: float, spacing_mm: float = 1.0, min_points: int = 32) -> list[np.ndarray]: ...

    def bounds(self) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    def volume_cc(self) -> float: ...

    def expanded(self, margin_mm: float) -> Shape: ...


# ---------------------------------------------------------------------------------------
# Planar helpers
# ---------------------------------------------------------------------------------------

_DENSE = 2048  # samples of the dense ellipse used for arc-length parametrisation


def ellipse_loop(cx: float, cy: float, a: float, b: float, spacing_mm: float = 1.0,
                 min_points: int = 32, area_preserving: bool = True) -> np.ndarray:
    """Vertices of the ellipse ((x-cx)/a)^2 + ((y-cy)/b)^2 = 1, counter-clockwise.

    Vertices are evenly spaced in arc length, ``ceil(perimeter / spacing_mm)`` of them (at
    least ``min_points``); the first is at angle 0 (+x). With ``area_preserving`` (default)
    the polygon is scaled about the centre so that its area is exactly pi*a*b (vertices
    then lie just outside the ellipse, by a relative 1 + O(1/N^2)); otherwise the vertices
    lie on the ellipse. Returns an ``(N, 2)`` array in mm.
    """
    t = np.linspace(0.0, 2.0 * np.pi, _DENSE + 1)
    dx = -a * np.sin(t)
    dy = b * np.cos(t)
    speed = np.hypot(dx, dy)
    # cumulative arc length by the trapezoid rule
    s = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(t))])
    n = max(int(min_points), int(math.ceil(s[-1] / float(spacing_mm))))
    target = np.arange(n) * (s[-1] / n)
    tt = np.interp(target, s, t)
    dx, dy = a * np.cos(tt), b * np.sin(tt)
    if area_preserving:
        area = 0.5 * float(np.dot(dx, np.roll(dy, -1)) - np.dot(np.roll(dx, -1), dy))
        k = math.sqrt(math.pi * a * b / area)
        dx, dy = k * dx, k * dy
    return np.column_stack([cx + dx, cy + dy])


def rectangle_loop(x0: float, x1: float, y0: float, y1: float, spacing_mm: float = 1.0,
                   min_points: int = 32) -> np.ndarray:
    """Vertices of the axis-aligned rectangle [x0, x1] x [y0, y1], counter-clockwise.

    Corners are vertices; each edge is divided evenly so that neighbours are at most
    ``spacing_mm`` apart, with at least ``min_points`` vertices in all.
    """
    w, h = x1 - x0, y1 - y0
    per_edge_min = max(1, int(math.ceil(min_points / 4)))
    nx = max(per_edge_min, int(math.ceil(w / spacing_mm)))
    ny = max(per_edge_min, int(math.ceil(h / spacing_mm)))
    fx = np.arange(nx) / nx
    fy = np.arange(ny) / ny
    bottom = np.column_stack([x0 + w * fx, np.full(nx, y0)])
    right = np.column_stack([np.full(ny, x1), y0 + h * fy])
    top = np.column_stack([x1 - w * fx, np.full(nx, y1)])
    left = np.column_stack([np.full(ny, x0), y1 - h * fy])
    return np.concatenate([bottom, right, top, left])


def polygon_area(loop: np.ndarray) -> float:
    """Signed area (mm^2) of a closed polygon given as ``(N, 2)``; > 0 counter-clockwise."""
    x, y = loop[:, 0], loop[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _ellipse_signed_distance(qx: np.ndarray, qy: np.ndarray, a: float, b: float) -> np.ndarray:
    """First-order signed distance (mm) to the ellipse (x/a)^2 + (y/b)^2 = 1 centred at 0."""
    if a == b:
        return np.hypot(qx, qy) - a
    rho = np.sqrt((qx / a) ** 2 + (qy / b) ** 2)
    g = np.hypot(qx / a**2, qy / b**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (rho - 1.0) * rho / g
    return np.where(g > 1e-12, d, -min(a, b))


# ---------------------------------------------------------------------------------------
# Solids
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid: centre (mm) and semi-axes (a_x, a_y, a_z) in mm."""

    centre: Vec3
    semi_axes: Vec3

    def __post_init__(self) -> None:
        if min(self.semi_axes) <= 0:
            raise ValueError(f"Ellipsoid semi-axes must be > 0 mm, got {self.semi_axes}")

    def _q(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, dtype=float) - np.asarray(self.centre)) / np.asarray(self.semi_axes)

    def contains(self, p: np.ndarray) -> np.ndarray:
        q = self._q(p)
        return np.einsum("...i,...i->...", q, q) <= 1.0

    def signed_distance(self, p: np.ndarray) -> np.ndarray:
        d = np.asarray(p, dtype=float) - np.asarray(self.centre)
        a = np.asarray(self.semi_axes, dtype=float)
        if np.all(a == a[0]):
            return np.linalg.norm(d, axis=-1) - a[0]
        rho = np.sqrt(np.einsum("...i,...i->...", d / a, d / a))
        g = np.linalg.norm(d / a**2, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (rho - 1.0) * rho / g
        return np.where(g > 1e-12, out, -a.min())

    def sections(self, z: float, spacing_mm: float = 1.0, min_points: int = 32) -> list[np.ndarray]:
        cx, cy, cz = self.centre
        ax, ay, az = self.semi_axes
        s2 = 1.0 - ((z - cz) / az) ** 2
        if s2 <= 0.0:
            return []
        s = math.sqrt(s2)
        if min(ax, ay) * s < 0.05:  # degenerate tip: no meaningful contour
            return []
        return [ellipse_loop(cx, cy, ax * s, ay * s, spacing_mm, min_points)]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, a = np.asarray(self.centre, float), np.asarray(self.semi_axes, float)
        return c - a, c + a

    @property
    def volume_cc(self) -> float:
        ax, ay, az = self.semi_axes
        return 4.0 / 3.0 * math.pi * ax * ay * az / 1000.0

    def expanded(self, margin_mm: float) -> Ellipsoid:
        return Ellipsoid(self.centre, tuple(float(v + margin_mm) for v in self.semi_axes))  # type: ignore[arg-type]

    @property
    def is_sphere(self) -> bool:
        return len(set(self.semi_axes)) == 1


def sphere(centre: Vec3, radius_mm: float) -> Ellipsoid:
    """A sphere as an :class:`Ellipsoid` with equal semi-axes (mm)."""
    r = float(radius_mm)
    return Ellipsoid(tuple(float(c) for c in centre), (r, r, r))  # type: ignore[arg-type]


@dataclass(frozen=True)
class EllipticCylinder:
    """Cylinder along z: elliptic cross-section centred at ``centre_xy`` with semi-axes
    ``semi_axes_xy`` (mm), from ``z_min`` to ``z_max`` (mm, both faces included)."""

    centre_xy: Vec2
    semi_axes_xy: Vec2
    z_min: float
    z_max: float

    def __post_init__(self) -> None:
        if min(self.semi_axes_xy) <= 0 or self.z_max <= self.z_min:
            raise ValueError("EllipticCylinder needs semi-axes > 0 and z_max > z_min")

    @property
    def centre(self) -> Vec3:
        return (self.centre_xy[0], self.centre_xy[1], 0.5 * (self.z_min + self.z_max))

    def contains(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        qx = (p[..., 0] - self.centre_xy[0]) / self.semi_axes_xy[0]
        qy = (p[..., 1] - self.centre_xy[1]) / self.semi_axes_xy[1]
        z = p[..., 2]
        return (qx * qx + qy * qy <= 1.0) & (z >= self.z_min) & (z <= self.z_max)

    def signed_distance(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        dr = _ellipse_signed_distance(p[..., 0] - self.centre_xy[0], p[..., 1] - self.centre_xy[1],
                                      *self.semi_axes_xy)
        dz = np.abs(p[..., 2] - 0.5 * (self.z_min + self.z_max)) - 0.5 * (self.z_max - self.z_min)
        outside = np.hypot(np.maximum(dr, 0.0), np.maximum(dz, 0.0))
        return outside + np.minimum(np.maximum(dr, dz), 0.0)

    def sections(self, z: float, spacing_mm: float = 1.0, min_points: int = 32) -> list[np.ndarray]:
        if not (self.z_min <= z <= self.z_max):
            return []
        return [ellipse_loop(*self.centre_xy, *self.semi_axes_xy, spacing_mm, min_points)]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        (cx, cy), (a, b) = self.centre_xy, self.semi_axes_xy
        return np.array([cx - a, cy - b, self.z_min]), np.array([cx + a, cy + b, self.z_max])

    @property
    def volume_cc(self) -> float:
        a, b = self.semi_axes_xy
        return math.pi * a * b * (self.z_max - self.z_min) / 1000.0

    def expanded(self, margin_mm: float) -> EllipticCylinder:
        m = float(margin_mm)
        a, b = self.semi_axes_xy
        return EllipticCylinder(self.centre_xy, (a + m, b + m), self.z_min - m, self.z_max + m)


def cylinder(centre_xy: Vec2, radius_mm: float, z_min: float, z_max: float) -> EllipticCylinder:
    """A circular cylinder along z (mm)."""
    r = float(radius_mm)
    return EllipticCylinder(tuple(map(float, centre_xy)), (r, r), float(z_min), float(z_max))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Box:
    """Axis-aligned box: ``centre`` and full edge lengths ``size`` = (sx, sy, sz) in mm."""

    centre: Vec3
    size: Vec3

    def __post_init__(self) -> None:
        if min(self.size) <= 0:
            raise ValueError(f"Box size must be > 0 mm, got {self.size}")

    def contains(self, p: np.ndarray) -> np.ndarray:
        q = np.abs(np.asarray(p, dtype=float) - np.asarray(self.centre)) - 0.5 * np.asarray(self.size)
        return np.all(q <= 0.0, axis=-1)

    def signed_distance(self, p: np.ndarray) -> np.ndarray:
        q = np.abs(np.asarray(p, dtype=float) - np.asarray(self.centre)) - 0.5 * np.asarray(self.size)
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        return outside + np.minimum(q.max(axis=-1), 0.0)

    def sections(self, z: float, spacing_mm: float = 1.0, min_points: int = 32) -> list[np.ndarray]:
        lo, hi = self.bounds()
        if not (lo[2] <= z <= hi[2]):
            return []
        return [rectangle_loop(lo[0], hi[0], lo[1], hi[1], spacing_mm, min_points)]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, h = np.asarray(self.centre, float), 0.5 * np.asarray(self.size, float)
        return c - h, c + h

    @property
    def volume_cc(self) -> float:
        sx, sy, sz = self.size
        return sx * sy * sz / 1000.0

    def expanded(self, margin_mm: float) -> Box:
        return Box(self.centre, tuple(float(s + 2 * margin_mm) for s in self.size))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Ring:
    """Hollow solid: ``outer`` minus ``inner``. ``inner`` must lie inside ``outer``.

    On planes that cut both, the sections are the outer contour plus the inner contour as
    a hole (clockwise); on planes that cut only the outer solid, just the outer contour.
    """

    outer: Shape
    inner: Shape

    @property
    def centre(self) -> Vec3:
        return self.outer.centre

    def contains(self, p: np.ndarray) -> np.ndarray:
        return self.outer.contains(p) & ~self.inner.contains(p)

    def signed_distance(self, p: np.ndarray) -> np.ndarray:
        return np.maximum(self.outer.signed_distance(p), -self.inner.signed_distance(p))

    def sections(self, z: float, spacing_mm: float = 1.0, min_points: int = 32) -> list[np.ndarray]:
        outer = self.outer.sections(z, spacing_mm, min_points)
        if not outer:
            return []
        holes = [h[::-1].copy() for h in self.inner.sections(z, spacing_mm, min_points)]
        return outer + holes

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.outer.bounds()

    @property
    def volume_cc(self) -> float:
        return self.outer.volume_cc - self.inner.volume_cc

    def expanded(self, margin_mm: float) -> Ring:
        return Ring(self.outer.expanded(margin_mm), self.inner.expanded(-margin_mm))


# ---------------------------------------------------------------------------------------
# Sampling (independent truth for tests)
# ---------------------------------------------------------------------------------------


def sample_inside(shape: Shape, spacing_mm: float = 1.0) -> tuple[np.ndarray, float]:
    """Points of a regular grid (cell centres, pitch ``spacing_mm``) that lie inside ``shape``.

    Returns ``(points, cc_per_point)``: an ``(N, 3)`` array in mm and the volume each point
    stands for in cc. ``N * cc_per_point`` estimates ``shape.volume_cc``. The grid is
    anchored at the lower bound of the shape's bounding box, so results are deterministic.
    """
    lo, hi = shape.bounds()
    h = float(spacing_mm)
    axes = [lo[i] + h * (np.arange(int(math.ceil((hi[i] - lo[i]) / h))) + 0.5) for i in range(3)]
    out = []
    # one z plane at a time keeps memory bounded for body-sized shapes
    xx, yy = np.meshgrid(axes[0], axes[1], indexing="xy")
    xy = np.column_stack([xx.ravel(), yy.ravel()])
    for z in axes[2]:
        pts = np.column_stack([xy, np.full(len(xy), z)])
        out.append(pts[shape.contains(pts)])
    pts = np.concatenate(out) if out else np.empty((0, 3))
    return pts, h**3 / 1000.0
