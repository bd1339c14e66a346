"""One dose service per check: a structure's DVH for any dose view, computed once.

Dose views (``rtqa.results.DoseView``), for any subset of the course doses (``plans``,
indices into ``courses``; default all of them):

* ``PHYSICAL``: absorbed dose (Gy). One plan: its own course dose. Several: their
  voxel-wise sum, resampled (trilinear) onto the grid of the first plan named
  (``rtqa.dvh.dosesum.combined``).
* ``EQD2`` / ``BED`` at ``alpha_beta`` (Gy), linear-quadratic model. One plan: the exact
  dose-axis conversion of its physical DVH with its own fraction count
  (``rtqa.dvh.convert.convert_dvh``; EQD2 and BED are monotone in the dose of one plan).
  Several plans, by ``delivery``:

  - ``"sequential"`` (default): the voxel-wise sum of each plan's EQD2/BED, each plan
    with its own fraction count;
  - ``"concurrent"`` (delivered on the same days): the voxel-wise physical sum, then
    EQD2/BED with ``fractions`` (the caller's count, e.g. the plans' common count).

Every DVH is computed with the same geometry conventions: the planning-CT slice positions
``ct_z`` (mm) are passed to ``rtqa.dvh.compute_dvh`` every time. Each (structure, view,
plans, α/β) is computed once per service; an ``RtqaError`` is remembered and raised again.
A course dose that is still per fraction (DoseSummationType FRACTION that the reader could
not scale) is multiplied by its fraction count when that is known.

The computation itself can go through an injected ``cache`` (constructor argument): any
object with ``get(structure, grid, ct_z, compute) -> DVHData`` that returns ``compute()``
or a DVH equal to it, e.g. a memo shared across checks (the fuzzer's ``DvhMemo``).
The engine's own per-grid tables (``rtqa.dvh.tables``) are a separate, internal cache of
grid-derived arrays (not of DVHs), kept while a grid lives.

References
----------
Fowler JF. The linear-quadratic formula and progress in fractionated radiotherapy.
Br J Radiol 1989;62:679-694 (BED = D (1 + d / (α/β)); EQD2 = BED / (1 + 2 / (α/β))).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Protocol, Sequence

import numpy as np

from rtqa.dvh.compute import compute_dvh
from rtqa.dvh.convert import convert_dvh
from rtqa.dvh.data import DVHData
from rtqa.dvh.dosesum import combined, convert
from rtqa.dvh.settings import DEFAULT, Settings
from rtqa.errors import RtqaError
from rtqa.reading.dose import DoseGrid
from rtqa.reading.export import CourseDose
from rtqa.reading.structures import Structure
from rtqa.results import DoseView

__all__ = ["DoseService", "DvhCache", "DELIVERIES"]

#: How several plans add up in EQD2/BED views (see the module docstring).
DELIVERIES = ("sequential", "concurrent")


class DvhCache(Protocol):
    """What ``DoseService(cache=...)`` accepts: ``compute()`` (the DVH of ``structure`` on
    ``grid`` with CT slice positions ``ct_z``), or a stored DVH equal to it."""

    def get(self, structure: Structure, grid: DoseGrid, ct_z: np.ndarray | None,
            compute: Callable[[], DVHData]) -> DVHData: ...


def _view(view) -> DoseView:
    try:
        return DoseView(view)
    except ValueError:
        raise ValueError(f"unknown dose view {view!r}") from None


class DoseService:
    """Course doses of one check and the DVHs of its structures in every dose view.

    Parameters
    ----------
    courses : sequence of CourseDose
        The course doses (Gy) in the structure set's frame of reference, one per plan.
    ct_z : ndarray, optional
        Planning-CT slice positions (mm), passed to every DVH computation.
    fractions : sequence of int or None, optional
        Fraction count of each course (default: its RTPLAN's); None where unknown (EQD2
        and BED of that plan then raise ``RtqaError``).
    cache : DvhCache, optional
        Where DVH computations go through (default: computed directly); not used with
        non-default ``settings`` (a cache keyed by structure and grid would mix them).
    settings : Settings, optional
        DVH engine settings (``rtqa.dvh.settings``), e.g. the end-cap convention.
    """

    def __init__(self, courses: Sequence[CourseDose], ct_z: np.ndarray | None = None,
                 fractions: Sequence[int | None] | None = None,
                 cache: DvhCache | None = None, settings: Settings = DEFAULT):
        if fractions is None:
            fractions = [c.plan.fractions if c.plan else None for c in courses]
        if len(fractions) != len(courses):
            raise ValueError("one fraction count per course")
        self.fractions: tuple[int | None, ...] = tuple(
            int(n) if n else None for n in fractions)
        self.courses: tuple[CourseDose, ...] = tuple(
            replace(c, grid=c.grid.scaled(float(n), f"x {n} fractions (--fractions)"),
                    per_fraction=False, note=c.note + f"; x {n} fractions (--fractions)")
            if c.per_fraction and n else c for c, n in zip(courses, self.fractions))
        self.ct_z = ct_z
        self.settings = settings
        self.cache = cache if settings == DEFAULT else None
        self._grids: dict = {}
        # key -> (structure kept alive so its id is never reused, DVHData or RtqaError)
        self._dvhs: dict = {}

    # -- dose grids ---------------------------------------------------------------------
    def plans_of(self, plans: Sequence[int] | None) -> tuple[int, ...]:
        """The plan indices a view covers (all plans when ``plans`` is None)."""
        if plans is None:
            return tuple(range(len(self.courses)))
        out = tuple(int(i) for i in plans)
        if not out or any(not 0 <= i < len(self.courses) for i in out):
            raise ValueError(f"plans must name courses 0..{len(self.courses) - 1}, got {plans}")
        return out

    def _delivery(self, view, idx, delivery, fractions):
        """The (delivery, fraction count) part of a cache key: only several plans in an
        EQD2/BED view depend on it."""
        if delivery not in DELIVERIES:
            raise ValueError(f"delivery must be one of {DELIVERIES}, got {delivery!r}")
        if view is DoseView.PHYSICAL or len(idx) == 1 or delivery == "sequential":
            return ("sequential", None)
        if not fractions:
            raise RtqaError(f"concurrent {view} of several plans needs a fraction count")
        return ("concurrent", int(fractions))

    def grid(self, view=DoseView.PHYSICAL, plans: Sequence[int] | None = None,
             alpha_beta: float | None = None, delivery: str = "sequential",
             fractions: int | None = None) -> DoseGrid:
        """The dose grid of a view (Gy): one plan's own grid, or a voxel-wise sum."""
        view, idx = _view(view), self.plans_of(plans)
        if view is DoseView.NONE:
            raise ValueError("the dose view 'none' has no dose")
        how = self._delivery(view, idx, delivery, fractions)
        if view is DoseView.PHYSICAL:
            alpha_beta = None
            if len(idx) == 1:
                return self.courses[idx[0]].grid
        key = (view, idx, alpha_beta, how)
        if key not in self._grids:
            if how[0] == "concurrent":
                if alpha_beta is None:
                    raise RtqaError(f"{view} needs an alpha/beta")
                total = self.grid(DoseView.PHYSICAL, idx)
                self._grids[key] = replace(
                    total, dose=convert(total.dose, str(view), how[1], alpha_beta),
                    scaling_note=f"{view} of the {total.scaling_note} in {how[1]} fractions")
            else:
                self._grids[key] = combined(
                    [self.courses[i] for i in idx], str(view), alpha_beta,
                    fractions=[self.fractions[i] for i in idx])
        return self._grids[key]

    # -- DVHs ---------------------------------------------------------------------------
    def dvh(self, structure: Structure, view=DoseView.PHYSICAL,
            plans: Sequence[int] | None = None, alpha_beta: float | None = None,
            delivery: str = "sequential", fractions: int | None = None) -> DVHData:
        """The cumulative DVH of ``structure`` in ``view`` (Gy, cc); see the module.
        ``delivery`` and ``fractions`` matter only for several plans in EQD2/BED."""
        view, idx = _view(view), self.plans_of(plans)
        if view is DoseView.PHYSICAL:
            alpha_beta = None
        elif view is DoseView.NONE:
            raise ValueError("the dose view 'none' has no dose")
        how = self._delivery(view, idx, delivery, fractions)
        key = (id(structure), view, idx, alpha_beta, how)
        if key not in self._dvhs:
            try:
                got = self._compute(structure, view, idx, alpha_beta, how)
            except RtqaError as exc:
                got = exc
            self._dvhs[key] = (structure, got)
        got = self._dvhs[key][1]
        if isinstance(got, RtqaError):
            raise got
        return got

    def _compute(self, structure, view, idx, alpha_beta, how) -> DVHData:
        if view is not DoseView.PHYSICAL and len(idx) == 1:
            n = self.fractions[idx[0]]
            if not n:
                raise RtqaError(f"{view} needs the number of fractions of "
                                f"{self.courses[idx[0]].label}, which is unknown")
            if alpha_beta is None:
                raise RtqaError(f"{view} needs an alpha/beta")
            return convert_dvh(self.dvh(structure, DoseView.PHYSICAL, idx), str(view), n,
                               alpha_beta)
        grid = self.grid(view, idx, alpha_beta, *how)
        if self.cache is None:
            return compute_dvh(structure, grid, ct_z=self.ct_z, settings=self.settings)
        return self.cache.get(structure, grid, self.ct_z,
                              lambda: compute_dvh(structure, grid, ct_z=self.ct_z,
                                                  settings=self.settings))

    def computed(self, view=DoseView.PHYSICAL, plans: Sequence[int] | None = None
                 ) -> list[tuple[Structure, DVHData]]:
        """Every (structure, DVH) of ``view`` computed so far (errors left out), in order."""
        view, idx = _view(view), self.plans_of(plans)
        return [(s, d) for (_, v, i, _, _), (s, d) in self._dvhs.items()
                if v is view and i == idx and isinstance(d, DVHData)]
