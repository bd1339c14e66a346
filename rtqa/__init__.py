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
