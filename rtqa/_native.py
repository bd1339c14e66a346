"""rtqa's optional compiled kernels and their switch.

The hot loops of rtqa are written twice: in numpy (the reference, always installed) and
in C (the ``_c*.c`` files beside the modules that use them, built by ``setup.py`` into
the wheel when a C compiler is there; without one, pip installs the numpy path only).
Both give the same float64 values, bit for bit:

* the C performs the same IEEE 754 operations, in the same order, as the numpy code it
  replaces (numpy's element-wise arithmetic and ``np.bincount``'s sums in index order);
* it is compiled without fused multiply-add contraction and without fast-math
  (``-ffp-contract=off``), so that ``a * b + c`` rounds twice, as in numpy;
* the tests run both paths on the same input and compare every value.

Set ``RTQA_NATIVE=0`` in the environment to run the numpy path only (read at every
kernel call, so a test can run both paths in one process).

Examples
--------
>>> from rtqa._native import load
>>> load("rtqa.no_such_kernel") is None
True
"""

from __future__ import annotations

import importlib
import os

#: The compiled kernel modules setup.py builds (module name: what it computes).
KERNELS = {
    "rtqa.reading._cdecimal": ("ContourData decimal strings to float64; the walks of "
                               "sequence items and of the completeness check"),
    "rtqa.dvh._cbands": "surface crossings of band pieces (dvh.geometry.band_crossings)",
    "rtqa.dvh._cpartial": "DVH elements of boundary voxels by their sub-samples (m > 1)",
    "rtqa.dvh._cdeposit": "DVH accumulator deposit and whole-voxel dose elements",
    "rtqa.dvh._cextremes": "DVH Min/Max at the contour vertices of the surface",
    "rtqa.dvh._ctables": (
        "DVH per-grid voxel mean/sd tables and their windowed gather; per-structure "
        "crossing, parity-row, refinement, partial-voxel and whole-layer helpers"
    ),
}


def enabled() -> bool:
    """False when ``RTQA_NATIVE=0``: rtqa then uses its numpy kernels only."""
    return os.environ.get("RTQA_NATIVE", "1").strip() != "0"


_LOADED: dict[str, object] = {}


def load(name: str):
    """The compiled module ``name``, or None when it was not built (no C compiler at
    install time) or ``RTQA_NATIVE=0``: the caller then runs its numpy code. Callers
    look it up at each call (cheap: the outcome of the import is kept)."""
    if not enabled():
        return None
    try:
        return _LOADED[name]
    except KeyError:
        pass
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = None
    _LOADED[name] = module
    return module


def built() -> dict[str, bool]:
    """Which compiled kernels are installed, by their files, without importing them (nor
    the packages they sit in: ``rtqa --version`` stays light)."""
    from importlib.machinery import EXTENSION_SUFFIXES
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    out = {}
    for name in KERNELS:
        base = root.joinpath(*name.split("."))
        out[name] = any(base.with_name(base.name + sfx).is_file()
                        for sfx in EXTENSION_SUFFIXES)
    return out


def status() -> dict[str, bool]:
    """Which compiled kernels this installation runs (``rtqa --version`` prints it)."""
    return {name: load(name) is not None for name in KERNELS}
