"""Structure expressions (``"Liver - GTV"``, ``"Lung_L + Lung_R - GTV"``) evaluated
geometrically, plane by plane, with shapely 2.

On each plane an operand's contours are combined with the even-odd rule (an inner contour
is a hole, as in rtqa's rasteriser); a target-class operand (GTV, CTV, ITV, PTV) is the
union of every structure of that class. Terms are applied left to right: ``+`` union,
``-`` difference. Coordinates in mm (DICOM patient coordinates).

Planes of the result: the union of the operands' plane positions (positions closer than
``PLANE_TOL_MM`` are one plane). On a result plane an operand contributes the contour of
its plane at that position; when the operands are contoured on different plane sets, an
operand contributes the contour of its nearest plane if the position lies within that
plane's slab (half-way to the neighbouring planes; see ``rtqa.dvh.geometry.slabs_for``), and
the result's warnings say so. An operand with no plane there contributes nothing: a
subtrahend removes nothing, an addend adds nothing. Planes where the result is empty are
dropped.

The result is a ``Structure`` whose planes hold rings: each polygon's exterior and each of
its interiors as separate (N, 2) arrays, so that the even-odd rule of ``rtqa.dvh`` and
``rtqa.dvh.geometry`` reads interiors as holes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import shapely
from shapely.geometry import Polygon

from rtqa.errors import RtqaError
from rtqa.dvh.geometry import slabs_for
from rtqa.reading.structures import PLANE_TOL_MM, Structure
from rtqa.constraints.structexpr import StructExpr, parse_structure

__all__ = ["build", "plane_geometry", "rings", "DERIVED_ROI_NUMBER"]

#: ``roi_number`` of a structure built from an expression (not a ROI of the plan).
DERIVED_ROI_NUMBER = -1
_EMPTY = shapely.Polygon()


def _polygons(geom) -> list[Polygon]:
    """The polygons inside any geometry (collections flattened; lines and points dropped)."""
    if geom is None or geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def _polygonal(geom):
    parts = _polygons(geom)
    if not parts:
        return _EMPTY
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def plane_geometry(polys: Sequence[np.ndarray]):
    """One plane's contours ((N, 2) arrays, mm) combined with the even-odd rule into a
    (Multi)Polygon; invalid rings are repaired with ``make_valid`` first."""
    acc = None
    for p in polys:
        if len(p) < 3:
            continue
        g = _polygonal(shapely.make_valid(Polygon(np.asarray(p, dtype=float))))
        acc = g if acc is None else _polygonal(shapely.symmetric_difference(acc, g))
    return _EMPTY if acc is None else acc


def rings(geom) -> tuple[np.ndarray, ...]:
    """Exteriors and interiors of a polygonal geometry as separate (N, 2) arrays (mm),
    without the repeated closing vertex: an even-odd reading gives back ``geom``."""
    out: list[np.ndarray] = []
    for poly in _polygons(geom):
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords, dtype=float)[:-1, :2]
            if len(xy) >= 3:
                out.append(np.ascontiguousarray(xy))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class _Layer:
    """One structure's planes: positions, slab faces (mm) and even-odd geometries."""

    name: str
    z: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    geoms: tuple

    @classmethod
    def of(cls, s: Structure) -> "_Layer":
        z = s.z_planes
        if z.size == 0:
            return cls(s.name, z, z, z, ())
        slabs = slabs_for(z, 0.0)
        return cls(s.name, z, slabs.lo, slabs.hi,
                   tuple(plane_geometry(polys) for _, polys in s.planes))

    def at(self, z: float):
        """(geometry or None, True when taken from a plane at another position)."""
        if self.z.size == 0:
            return None, False
        k = int(np.argmin(np.abs(self.z - z)))  # ties: the lower plane
        if abs(self.z[k] - z) <= PLANE_TOL_MM:
            return self.geoms[k], False
        if self.lo[k] - PLANE_TOL_MM <= z <= self.hi[k] + PLANE_TOL_MM:
            return self.geoms[k], True
        return None, False


def _merge_z(zs: list[np.ndarray]) -> np.ndarray:
    allz = np.sort(np.concatenate(zs)) if zs else np.empty(0)
    if allz.size == 0:
        return allz
    keep = np.concatenate([[True], np.diff(allz) > PLANE_TOL_MM])
    return allz[keep]


def build(expr: str | StructExpr, rois: Mapping[str, Structure],
          targets: Mapping[str, Sequence[Structure]], name: str | None = None) -> Structure:
    """The structure ``expr`` describes, evaluated plane by plane (see the module docstring).

    ``rois``: organ operand name (as written in the expression) -> the plan's Structure;
    ``targets``: target class (GTV, CTV, ITV, PTV) -> the plan's structures of that class
    (a class absent from ``targets`` is empty: subtracting it removes nothing). ``name``:
    the result's name (default: the expression text). Raises ``RtqaError`` when an organ
    operand has no structure in ``rois``. The result may have no planes (empty: e.g. an
    organ entirely inside the subtracted target); ``rtqa.dvh`` refuses such a structure.
    """
    ex = expr if isinstance(expr, StructExpr) else parse_structure(expr)
    terms: list[tuple[int, str, list[_Layer]]] = []
    for term in ex.terms:
        op = term.operand
        if op.is_target_class:
            members = list(targets.get(op.name, ()))
        else:
            if op.name not in rois:
                raise RtqaError(f"structure expression '{ex}': no structure for '{op.name}'")
            members = [rois[op.name]]
        for m in members:
            if not m.has_volume:
                raise RtqaError(f"structure expression '{ex}': ROI '{m.name}' has no closed "
                                "contours (no volume)")
        terms.append((term.sign, op.name, [_Layer.of(s) for s in members]))
    zs = _merge_z([layer.z for _, _, layers in terms for layer in layers])

    planes = []
    borrowed: dict[str, int] = {}
    for z in zs:
        acc = _EMPTY
        for sign, _, layers in terms:
            parts = []
            for layer in layers:
                g, approx = layer.at(float(z))
                if g is None or g.is_empty:
                    continue
                if approx:
                    borrowed[layer.name] = borrowed.get(layer.name, 0) + 1
                parts.append(g)
            if not parts:
                continue
            g = parts[0] if len(parts) == 1 else _polygonal(shapely.union_all(parts))
            acc = _polygonal(shapely.union(acc, g) if sign > 0 else shapely.difference(acc, g))
        polys = rings(acc)
        if polys:
            planes.append((float(z), polys))

    warnings = []
    if borrowed:
        who = ", ".join(f"'{n}' on {k}" for n, k in borrowed.items())
        warnings.append(f"operands of '{ex}' are contoured on different planes: contours "
                        f"taken from the nearest plane within its slab ({who} of "
                        f"{len(zs)} planes)")
    return Structure(roi_number=DERIVED_ROI_NUMBER, name=name or str(ex), interpreted_type="",
                     planes=tuple(planes), points=np.empty((0, 3)), warnings=tuple(warnings))
