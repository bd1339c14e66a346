"""rtqa: radiotherapy plan QA from DICOM RT exports.

Units throughout: dose in Gy, volume in cc (cm^3), lengths in mm (DICOM patient
coordinates).

The public API (``rtqa.api``), imported lazily so that ``import rtqa`` stays light:

* ``rtqa.check(paths, **options) -> Report``: the QA check of ``rtqa check``;
* ``rtqa.exit_code(report)``: its exit code (0 PASS, 1 FAIL, 2 ERROR);
* ``rtqa.dvh(paths, ...)``: per-structure ``dicompylercore.dvh.DVH`` objects (the
  ``rtqa.dvh`` package is callable: calling it is ``rtqa.api.dvh``);
* the result types ``Report``, ``Check``, ``LesionResult``, ``PlanInfo``, ``Status``,
  ``Category``, ``Priority``, ``DoseView``, ``Reason`` (``rtqa.results``) and ``RtqaError``.

Everything else is implementation and may change.

Threads: the ``rtqa`` command (and the worker processes of ``rtqa batch``) run numpy's
BLAS single-threaded: when none of ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, ``GOTO_NUM_THREADS``, ``BLIS_NUM_THREADS`` and
``VECLIB_MAXIMUM_THREADS`` is set, they set ``OPENBLAS_NUM_THREADS=1``,
``OMP_NUM_THREADS=1`` and ``MKL_NUM_THREADS=1`` before numpy is imported
(:func:`_single_thread_blas`). rtqa does no BLAS-heavy work: OpenBLAS's thread pool
only spins at import (about 0.07 s CPU per process) and sums a dot product in an order
that depends on the number of cores. Set any of them to choose otherwise.

Huge pages: the command and its workers also set ``NUMPY_MADVISE_HUGEPAGE=0`` unless the
user set it (:func:`_command_env`), so numpy does not ask Linux for transparent huge
pages for its large arrays. rtqa touches a dose grid once, in order; huge pages save
it little, but a huge-page fault can stall: the kernel may compact memory, and a virtual
machine's host may have to back 2 MB at once. Measured on a 2-core VM (issue 16,
body_1p25, 147 MB dose grid, 6 cold runs each): reading took 0.04-1.31 s system CPU
with huge pages (4 of 6 runs above 0.7 s) and 0.07-0.11 s without.

``import rtqa`` (the library) leaves the environment alone: the process is the caller's.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "check": ("rtqa.api", "check"),
    "exit_code": ("rtqa.api", "exit_code"),
    "Report": ("rtqa.results", "Report"),
    "Check": ("rtqa.results", "Check"),
    "LesionResult": ("rtqa.results", "LesionResult"),
    "PlanInfo": ("rtqa.results", "PlanInfo"),
    "Status": ("rtqa.results", "Status"),
    "Category": ("rtqa.results", "Category"),
    "Priority": ("rtqa.results", "Priority"),
    "DoseView": ("rtqa.results", "DoseView"),
    "Reason": ("rtqa.results", "Reason"),
    "RtqaError": ("rtqa.errors", "RtqaError"),
}

__all__ = ["__version__", "check", "dvh", "exit_code", *sorted(set(_LAZY) - {"check",
                                                                          "exit_code"})]


#: The thread-count variables of the BLAS libraries numpy may use; when the user set
#: none of them, the rtqa command sets the first three to 1 (see the module docstring).
_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "GOTO_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _single_thread_blas(environ=None) -> dict[str, str]:
    """The variables to add to ``environ`` (default ``os.environ``) for a single-threaded
    BLAS: {} when the user set any of :data:`_BLAS_THREAD_VARS` (their choice stands)."""
    import os
    environ = os.environ if environ is None else environ
    if any(environ.get(k) for k in _BLAS_THREAD_VARS):
        return {}
    return {k: "1" for k in _BLAS_THREAD_VARS[:3]}


def _command_env(environ=None) -> dict[str, str]:
    """The variables the ``rtqa`` command (and each worker of ``rtqa batch``) adds to
    ``environ`` (default ``os.environ``) before numpy is imported: a single-threaded BLAS
    (:func:`_single_thread_blas`) and no transparent huge pages for numpy's arrays
    (``NUMPY_MADVISE_HUGEPAGE=0``), each unless the user set its variables.

    Examples
    --------
    >>> _command_env({}) == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
    ...                      "MKL_NUM_THREADS": "1", "NUMPY_MADVISE_HUGEPAGE": "0"}
    True
    >>> _command_env({"NUMPY_MADVISE_HUGEPAGE": "1", "OMP_NUM_THREADS": "2"})
    {}
    """
    import os
    environ = os.environ if environ is None else environ
    env = _single_thread_blas(environ)
    if not environ.get("NUMPY_MADVISE_HUGEPAGE"):  # empty: no choice (numpy's int() fails)
        env["NUMPY_MADVISE_HUGEPAGE"] = "0"
    return env


def __getattr__(name: str):
    if name == "dvh":  # the subpackage, callable as rtqa.api.dvh
        return importlib.import_module("rtqa.dvh")
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rtqa' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
