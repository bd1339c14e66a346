"""Linear-quadratic (LQ) model: BED and EQD2.

Units: every dose is in Gy (total physical dose over the course unless a name says
"per fraction"); ``alpha_beta`` (α/β) is in Gy; ``fractions`` is a whole number.

Formulas (n fractions of d Gy, total dose D = n·d)::

    BED  = n·d·(1 + d/(α/β)) = D·(1 + D/(n·α/β))
    EQD2 = BED / (1 + 2/(α/β))            (equivalent dose in 2 Gy fractions)

``alpha_beta`` is always an explicit argument; there is no default, because the choice
must be visible in every report. Usual conventions (documentation only): tumour 10 Gy,
late-responding normal tissue 3 Gy, spinal cord 2 Gy. The LQ model is questioned at the
high doses per fraction of SBRT: report which α/β was used.

Voxel-wise (``bed_grid``/``eqd2_grid``): each voxel's total physical dose D of an
n-fraction plan becomes D·(1 + D/(n·α/β)). BED is monotone in D, so the BED of D95% is
the D95% of the BED distribution. Plans with different fractionation add as BED (or
EQD2) voxel by voxel, never as physical Gy.

Invalid input (fractions not a positive integer, a dose that is negative or not finite,
α/β not finite and > 0) raises ``ValueError`` with a message saying which and why.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = [
    "bed", "eqd2", "bed_to_eqd2", "bed_grid", "eqd2_grid",
    "total_dose_for_bed", "fractions_needed",
]

# Relative tolerance of fractions_needed's ">= target", so that an exact worked value
# (e.g. 10 Gy x 3 fx -> BED10 60 Gy) is not pushed up one fraction by float rounding.
_REL_TOL = 1e-9


def _check_fractions(fractions) -> int:
    if isinstance(fractions, bool) or not isinstance(fractions, Integral):
        raise ValueError(f"fractions must be a positive integer, got {fractions!r}")
    if fractions < 1:
        raise ValueError(f"fractions must be a positive integer (>= 1), got {fractions}")
    return int(fractions)


def _check_alpha_beta(alpha_beta) -> float:
    if isinstance(alpha_beta, bool) or not isinstance(alpha_beta, Real):
        raise ValueError(f"alpha_beta (α/β, Gy) must be a number, got {alpha_beta!r}")
    ab = float(alpha_beta)
    if not math.isfinite(ab) or ab <= 0:
        raise ValueError(f"alpha_beta (α/β, Gy) must be finite and > 0, got {alpha_beta!r}")
    return ab


def _check_dose(dose, what: str) -> np.ndarray:
    try:
        arr = np.asarray(dose, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in Gy, got {dose!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be finite (Gy), got a NaN or infinite value")
    if np.any(arr < 0):
        raise ValueError(f"{what} must be >= 0 Gy, got {float(arr.min()):g} Gy")
    return arr


def _out(arr: np.ndarray):
    """Python float for scalar input, ndarray otherwise."""
    return float(arr) if arr.ndim == 0 else arr


def bed(total_dose_gy, fractions: int, alpha_beta: float):
    """Biologically effective dose, Gy: ``D·(1 + D/(n·α/β))``.

    ``total_dose_gy``: total physical dose D in Gy (scalar or array, each >= 0);
    ``fractions``: n; ``alpha_beta``: α/β in Gy. Example: ``bed(60, 4, 10) == 150.0``.
    """
    n = _check_fractions(fractions)
    ab = _check_alpha_beta(alpha_beta)
    d = _check_dose(total_dose_gy, "total dose")
    return _out(d * (1.0 + d / (n * ab)))


def bed_to_eqd2(bed_gy, alpha_beta: float):
    """EQD2 in Gy from a BED in Gy: ``BED / (1 + 2/(α/β))``."""
    ab = _check_alpha_beta(alpha_beta)
    b = _check_dose(bed_gy, "BED")
    return _out(b / (1.0 + 2.0 / ab))


def eqd2(total_dose_gy, fractions: int, alpha_beta: float):
    """Equivalent dose in 2 Gy fractions, Gy: ``BED / (1 + 2/(α/β))``.

    Example: ``eqd2(40, 5, 3) == 88.0`` (BED3 = 146.67 Gy).
    """
    return bed_to_eqd2(bed(total_dose_gy, fractions, alpha_beta), alpha_beta)


def bed_grid(dose: np.ndarray, fractions: int, alpha_beta: float) -> np.ndarray:
    """Voxel-wise BED (Gy) of a total-physical-dose grid (Gy) from an n-fraction plan.

    Returns a new float array of the same shape: each voxel D → D·(1 + D/(n·α/β)).
    """
    return np.asarray(bed(np.asarray(dose), fractions, alpha_beta), dtype=float)


def eqd2_grid(dose: np.ndarray, fractions: int, alpha_beta: float) -> np.ndarray:
    """Voxel-wise EQD2 (Gy) of a total-physical-dose grid (Gy) from an n-fraction plan."""
    return np.asarray(eqd2(np.asarray(dose), fractions, alpha_beta), dtype=float)


def total_dose_for_bed(target_bed, fractions: int, alpha_beta: float):
    """Total physical dose D (Gy) that gives ``target_bed`` (Gy) in n fractions.

    Positive root of D²/(n·α/β) + D - BED = 0, written without cancellation as
    ``D = 2·BED / (1 + sqrt(1 + 4·BED/(n·α/β)))``. Inverse of ``bed``.
    """
    n = _check_fractions(fractions)
    ab = _check_alpha_beta(alpha_beta)
    b = _check_dose(target_bed, "target BED")
    return _out(2.0 * b / (1.0 + np.sqrt(1.0 + 4.0 * b / (n * ab))))


def fractions_needed(dose_per_fraction: float, target_bed: float, alpha_beta: float) -> int:
    """Smallest whole n >= 1 with ``n·d·(1 + d/(α/β)) >= target_bed``.

    ``dose_per_fraction`` d in Gy (> 0), ``target_bed`` in Gy (>= 0), α/β in Gy.
    The comparison allows a relative rounding tolerance of 1e-9.
    """
    ab = _check_alpha_beta(alpha_beta)
    d = float(_check_dose(dose_per_fraction, "dose per fraction"))
    target = float(_check_dose(target_bed, "target BED"))
    if d <= 0:
        raise ValueError("dose per fraction must be > 0 Gy to reach a BED")
    per_fraction = d * (1.0 + d / ab)
    ratio = target / per_fraction
    if not math.isfinite(ratio):
        raise ValueError(f"target BED {target} Gy is out of reach at {d} Gy per fraction")
    return max(1, math.ceil(ratio * (1.0 - _REL_TOL)))
