"""The DVH engine: structure slabs x dose grid → cumulative DVH with exact metrics.

Units: dose in Gy, coordinates and lengths in mm (patient coordinates), volumes in cc.
Entry point: :func:`compute_dvh`, which returns a ``rtqa.dvh.data.DVHData`` (cumulative
DVH on 0.01 Gy nodes; conventions there).

Method (vectorised numpy, one structure at a time); each step is given in full in the
docstring of the module named:

1. Slabs and cross-sections (rtqa.dvh.geometry): each contour plane is a slab (half-way
   boundaries, half-slice end caps); between two planes of a run the cross-section is
   interpolated (circular arc of the signed distance through neighbouring planes).
2. In-plane sampling (rtqa.dvh.geometry.raster; ``compute``, ``settings``): each dose voxel is
   divided into m x m sub-cells, m chosen per structure from its size; only the voxels a
   contour passes through are classified sub-sample by sub-sample (even-odd rule); each
   plane's sample weights are rescaled to the exact contour area.
3. Columns (``engine``): between two planes a sample is inside over the whole interval,
   or up to the interpolated surface (a "band" piece); end caps extend a run's end planes
   by half a slice; every piece is cut at the dose frames.
4. Elements (``elements``, with the per-grid ``tables``): uniform dose distributions with
   the exact mean and the variance of the dose over whole voxels, over the part of a
   partial voxel in each trilinear cell, and over band pieces.
5. Accumulation (``accumulator``): the elements are deposited exactly onto 0.01 Gy nodes,
   each kept within the structure's [Min, Max].
6. Min, Max, Mean (``extremes``, ``accumulator``): the extremes of the dose at points of
   the structure (nodes inside it, ends of band pieces, contour vertices on slab faces
   and dose frames); Mean is the volume-weighted mean of the element means.

Parts of a structure outside the dose grid get no dose: their volume is reported as
``outside_cc`` and left out of the DVH, never counted as 0 Gy.

Modules:

* ``settings``: ``Settings``, ``DEFAULT`` (accuracy) and the in-plane subdivision m;
* ``interpolation``: ``trilinear``, ``z_extent``: the dose at points;
* ``tables``: per-grid tables (voxel mean and spread of the in-plane dose; z bins);
* ``accumulator``: ``accumulate`` and the streaming accumulator of the cumulative DVH;
* ``elements``: whole-voxel, partial-voxel and band-piece dose elements;
* ``engine``: the column pieces of one structure turned into elements;
* ``extremes``: Min/Max at the structure's surface;
* ``compute``: ``compute_dvh``.

The checks get their DVHs from one ``rtqa.dvh.service.DoseService`` per check (every dose
view, cached once, with an injectable cache such as the fuzzer's ``DvhMemo``). Every name the
former single module ``rtqa/dvh.py`` held, private helpers included, is importable from
``rtqa.dvh``.
"""

from __future__ import annotations

import importlib
import sys

from rtqa.dvh.accumulator import _Accumulator, accumulate
from rtqa.dvh.compute import _half_way, compute_dvh
from rtqa.dvh.elements import (_ROW_TABLE_MAX_M, _ROW_TABLES, CHUNK, _bits, _cell_elements,
                               _quadrant_moments, _row_table, _sample_elements,
                               _trilinear_cells, _voxel_elements)
from rtqa.dvh.engine import _Engine
from rtqa.dvh.extremes import _surface_extremes
from rtqa.dvh.interpolation import (_bilinear_parts, _frame_parts, _in_grid_xy, _z_extent,
                                    trilinear, z_extent)
from rtqa.dvh.settings import DEFAULT, Settings, _subdivision
from rtqa.dvh.tables import _TABLES, _Tables, _tables, _voxel_mean_sd, _ZBins
# names the former module imported, still reachable as rtqa.dvh.<name>
from rtqa.dvh.data import BIN_GY, DVHData
from rtqa.errors import RtqaError
from rtqa.dvh.geometry import (Edges, Raster, Slabs, band_crossings, nonzero, plane_areas, raster,
                           slabs_for)
from rtqa.reading.dose import DoseGrid
from rtqa.reading.structures import Structure


class _CallableModule(type(importlib)):
    """``rtqa.dvh(paths, ...)`` is the public ``rtqa.api.dvh``; the package stays the DVH
    engine (``rtqa.dvh.compute_dvh`` ...)."""

    def __call__(self, paths, **options):
        from rtqa.api import dvh
        return dvh(paths, **options)


sys.modules[__name__].__class__ = _CallableModule
