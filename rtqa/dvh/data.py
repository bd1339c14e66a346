"""The DVH of one structure as rtqa computes it, and its conversion to dicompyler-core.

Conventions
-----------
* ``edges_gy``: dose nodes in Gy, ascending, uniform step ``BIN_GY`` (0.01 Gy), starting
  at 0 Gy and reaching at least ``max_gy``.
* ``cum_cc[i]``: volume in cc receiving a dose >= ``edges_gy[i]`` (cumulative DVH).
  ``cum_cc[0] == volume_cc``; non-increasing; 0 at the last node. Between nodes the
  cumulative DVH is linear (the engine deposits each sample's dose distribution exactly
  at the nodes, so linear interpolation is accurate to well under one bin).
* ``volume_cc`` is the volume the DVH describes: the part of the structure inside the
  dose grid. ``outside_cc`` is the part outside the grid (no dose: never counted as 0 Gy).
* ``min_gy``/``max_gy`` are the extreme doses on the structure, sampled on its surface
  (contour vertices on both faces of each slab) and inside it; ``mean_gy`` is the
  volume-weighted mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BIN_GY = 0.01


@dataclass(frozen=True, eq=False)
class DVHData:
    name: str
    edges_gy: np.ndarray
    cum_cc: np.ndarray
    volume_cc: float
    min_gy: float
    max_gy: float
    mean_gy: float
    outside_cc: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_volume_cc(self) -> float:
        """Whole structure volume (in and outside the dose grid), cc."""
        return self.volume_cc + self.outside_cc

    def to_dicompyler(self, rx_dose: float | None = None):
        """A ``dicompylercore.dvh.DVH`` (cumulative, absolute cc, Gy), with ``rx_dose``
        (prescription, Gy) when given.

        Only the result type is used; rtqa's own metrics come from ``rtqa.dvh.metrics``.
        """
        from dicompylercore.dvh import DVH

        counts = np.asarray(self.cum_cc[:-1], dtype=float)
        bins = np.asarray(self.edges_gy, dtype=float)
        return DVH(counts, bins, dvh_type="cumulative", dose_units="Gy",
                   volume_units="cm3", rx_dose=rx_dose, name=self.name)
