"""Accuracy settings of the DVH engine, and the in-plane subdivision they choose.

Units: lengths in mm; ``volume_mm3`` and ``area_sum`` (mm^2) internally, the volume
thresholds ``small_cc``/``large_cc`` in cc (1 cc = 1000 mm^3).

Each dose voxel (centred on a dose node) is divided into m x m sub-cells (m odd, so the
centre sub-sample is the node), m chosen per structure (:func:`_subdivision`) so that the
sample spacing is at most 1/120 (small targets) to 1/40 (large organs) of the structure's
size (cube root of its volume); ``max_samples`` and ``max_subdivision`` bound m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Settings:
    """Accuracy settings. The defaults are rtqa's accurate defaults."""

    #: sample spacing <= structure size (cube root of volume) / this, for structures up
    #: to ``small_cc``; falls (log-linearly in volume) to ``samples_per_size_large`` at
    #: ``large_cc`` and above: SBRT targets are sampled finely, large organs as a TPS does.
    samples_per_size: float = 120.0
    samples_per_size_large: float = 40.0
    small_cc: float = 50.0
    large_cc: float = 500.0
    #: finest in-plane subdivision of a dose voxel (odd)
    max_subdivision: int = 15
    #: bound on the number of in-plane samples of one structure (memory)
    max_samples: int = 6_000_000
    #: interpolate the cross-section between contour planes (False: pure slabs)
    interpolate: bool = True
    #: end caps beyond a run's outermost contour planes: "half" (half a contour spacing,
    #: the Nelms analytic truth) or "none" (see ``rtqa.dvh.geometry.END_CAPS``)
    end_caps: str = "half"


DEFAULT = Settings()


def _subdivision(volume_mm3: float, dx: float, dy: float, area_sum: float,
                 s: Settings) -> int:
    size = max(volume_mm3, 1e-9) ** (1.0 / 3.0)
    cc = volume_mm3 / 1000.0
    f = np.clip(np.log(max(cc, 1e-9) / s.small_cc) / np.log(s.large_cc / s.small_cc), 0, 1)
    target = size / (s.samples_per_size + f * (s.samples_per_size_large - s.samples_per_size))
    m = max(1, math.ceil(max(dx, dy) / max(target, 1e-6)))
    # memory bound: samples ~ sum of plane areas / (sx*sy)
    while m > 1 and area_sum * m * m / (dx * dy) > s.max_samples:
        m -= 1
    m = min(m, s.max_subdivision)
    return m if m % 2 else m + 1 if m + 1 <= s.max_subdivision else m - 1
