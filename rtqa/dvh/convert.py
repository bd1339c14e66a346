"""Re-express a single plan's DVH in BED or EQD2 by mapping its dose axis.

For one plan of n fractions each point's BED is a monotone function of its physical dose,
f(D) = D (1 + D / (n a/b)), so the cumulative DVH in BED is exactly the physical one read
at f^-1: V_BED(f(D)) = V(D). The result is re-sampled on 0.01 Gy nodes; the mean is the
volume-weighted mean of f over the DVH (not f of the mean). Several plans with different
fraction counts must be summed voxel-wise instead (rtqa.dvh.dosesum).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rtqa.dvh.data import BIN_GY, DVHData
from rtqa.dvh.radiobiology import bed, eqd2


def _f(kind: str, fractions: int, alpha_beta: float):
    if kind == "BED":
        return lambda d: bed(np.asarray(d, float), fractions, alpha_beta)
    if kind == "EQD2":
        return lambda d: eqd2(np.asarray(d, float), fractions, alpha_beta)
    raise ValueError(f"unknown dose type {kind!r}")


def convert_dvh(dvh: DVHData, kind: str, fractions: int, alpha_beta: float) -> DVHData:
    """``dvh`` with its dose axis in BED or EQD2 (Gy), for a plan of ``fractions``."""
    if kind == "physical":
        return dvh
    f = _f(kind, fractions, alpha_beta)
    mapped = f(dvh.edges_gy)
    top = float(mapped[-1])
    edges = np.arange(int(np.ceil(top / BIN_GY)) + 2) * BIN_GY
    cum = np.interp(edges, mapped, dvh.cum_cc, right=0.0)
    cum[-1] = 0.0
    dv = -np.diff(dvh.cum_cc)
    mids = f(0.5 * (dvh.edges_gy[1:] + dvh.edges_gy[:-1]))
    mean = float(np.dot(dv, mids) / dvh.volume_cc) if dvh.volume_cc > 0 else float("nan")
    return replace(dvh, edges_gy=edges, cum_cc=cum, min_gy=float(f(dvh.min_gy)),
                   max_gy=float(f(dvh.max_gy)), mean_gy=mean)
