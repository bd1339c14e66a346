"""The dose service: DVHs in every dose view against closed forms, caching, injection.

Phantoms: a 20 x 20 x 20 mm box (x 0-20, y -10-10, z -10-10) inside 2 mm dose grids
around the origin, with uniform or linear doses, so every expected value is exact:
LQ model BED = D (1 + d / (α/β)) and EQD2 = BED / (1 + 2 / (α/β)) with d = D / n.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rtqa.dvh import compute_dvh
from rtqa.dvh.service import DoseService
from rtqa.errors import RtqaError
from rtqa.reading.export import CourseDose
from rtqa.reading.plan import Plan
from rtqa.results import DoseView
from tests.dvh import test_structops as so

BOX = so.box("Box", 0, -10, -10, 20, 10, 10)
VOXELS = so.box("Voxels", -1, -11, -10, 21, 11, 10)  # faces between dose nodes
FAR = so.box("Far", 300, 300, 300, 320, 320, 320)  # outside every grid
LO, HI = (-40, -40, -30), (40, 40, 30)


def course(dose_gy=None, fractions=5, label="P1", dose_fn=None, per_fraction=False,
           lo=LO, hi=HI):
    grid = so.uniform_grid(lo, hi, dose_gy if dose_gy is not None else 0.0,
                           dose_fn=dose_fn, uid=f"1.2.3.{len(label)}{fractions}")
    plan = Plan(path=Path(f"RP.{label}.dcm"), sop_instance_uid=f"1.2.9.{label}",
                frame_of_reference_uid=grid.frame_of_reference_uid, patient_id="PHANTOM",
                label=label, name=label, approval_status="APPROVED", fractions=fractions,
                referenced_structure_set_uid=None, prescriptions=(),
                beam_dose_per_fraction_gy=None, beam_numbers=(), n_fraction_groups=1,
                prescription_text="")
    return CourseDose(grid, plan, (grid.path,), per_fraction, "")


def lq_bed(total, n, ab):
    return total * (1 + total / n / ab)


def lq_eqd2(total, n, ab):
    return lq_bed(total, n, ab) / (1 + 2 / ab)


class Counting:
    """An injected cache that computes every time and records the calls."""

    def __init__(self):
        self.calls = []

    def get(self, structure, grid, ct_z, compute):
        self.calls.append((structure.name, grid, ct_z))
        return compute()


# --- dose views against closed forms -------------------------------------------------

@pytest.mark.parametrize("view, f", [(DoseView.EQD2, lq_eqd2), (DoseView.BED, lq_bed)])
def test_single_plan_lq_view_of_a_uniform_dose(view, f):
    service = DoseService([course(12.0, fractions=3)])
    d = service.dvh(BOX, view, alpha_beta=3.0)
    truth = f(12.0, 3, 3.0)          # EQD2 16.8 Gy, BED 28 Gy
    assert truth == pytest.approx(16.8 if view is DoseView.EQD2 else 28.0)
    assert d.min_gy == pytest.approx(truth, abs=1e-9)
    assert d.max_gy == pytest.approx(truth, abs=1e-9)
    # the mean is taken over 0.01 Gy physical bins: within one bin of the truth
    assert d.mean_gy == pytest.approx(truth, abs=0.01 * 2.0)
    assert d.volume_cc == pytest.approx(8.0, rel=1e-9)


def test_two_plans_physical_sum_is_the_analytic_sum():
    # 10 Gy uniform + a linear 8 + 0.05 x Gy: over a box of whole dose voxels
    # (x -1-21 mm) the sum runs linearly from 17.95 to 19.05 Gy, mean 18.5 Gy
    a = course(10.0, label="A")
    b = course(dose_fn=lambda x, y, z: 8.0 + 0.05 * x, label="B")
    service = DoseService([a, b])
    d = service.dvh(VOXELS)
    assert d.mean_gy == pytest.approx(18.5, abs=1e-9)
    assert d.min_gy == pytest.approx(17.95, abs=1e-9)
    assert d.max_gy == pytest.approx(19.05, abs=1e-9)
    # each plan alone is its own grid
    assert service.grid(plans=(0,)) is a.grid and service.grid(plans=(1,)) is b.grid
    assert service.dvh(VOXELS, plans=(1,)).mean_gy == pytest.approx(8.5, abs=1e-9)


def test_two_plans_of_different_fractionation_add_as_bed():
    # 10 Gy in 5 fx + 12 Gy in 3 fx at α/β 10: BED 12 + 16.8 = 28.8 Gy in every voxel,
    # not the BED of 22 Gy in one fraction count
    service = DoseService([course(10.0, fractions=5, label="A"),
                           course(12.0, fractions=3, label="B")])
    d = service.dvh(BOX, DoseView.BED, alpha_beta=10.0)
    truth = lq_bed(10.0, 5, 10.0) + lq_bed(12.0, 3, 10.0)
    assert truth == pytest.approx(28.8)
    for v in (d.min_gy, d.mean_gy, d.max_gy):
        assert v == pytest.approx(truth, abs=1e-9)
    e = service.dvh(BOX, DoseView.EQD2, alpha_beta=10.0)
    assert e.mean_gy == pytest.approx(truth / 1.2, abs=1e-9)


def test_plans_on_different_grids_are_resampled_onto_the_first():
    a = course(10.0, label="A")
    b = course(6.0, label="B", lo=(-41, -39, -31), hi=(41, 41, 31))  # shifted nodes
    service = DoseService([a, b])
    d = service.dvh(BOX)
    assert d.mean_gy == pytest.approx(16.0, abs=1e-9)
    assert service.grid().x is a.grid.x


def test_per_fraction_dose_is_scaled_by_its_fraction_count():
    service = DoseService([course(2.0, fractions=5, per_fraction=True)])
    assert service.dvh(BOX).mean_gy == pytest.approx(10.0, abs=1e-9)
    assert not service.courses[0].per_fraction


def test_unknown_fraction_count_refuses_lq_views():
    service = DoseService([course(10.0)], fractions=[None])
    assert service.dvh(BOX).mean_gy == pytest.approx(10.0, abs=1e-9)
    with pytest.raises(RtqaError, match="number of fractions"):
        service.dvh(BOX, DoseView.EQD2, alpha_beta=3.0)


# --- caching and injection ------------------------------------------------------------

def test_each_view_is_computed_once_and_returns_the_same_object():
    cache = Counting()
    service = DoseService([course(10.0, label="A"), course(12.0, fractions=3, label="B")],
                          cache=cache)
    first = service.dvh(BOX)
    assert service.dvh(BOX) is first
    assert service.dvh(BOX, plans=(0, 1)) is first        # all plans = the default
    bed = service.dvh(BOX, "BED", alpha_beta=10.0)
    assert service.dvh(BOX, DoseView.BED, alpha_beta=10.0) is bed
    assert service.dvh(BOX, DoseView.BED, alpha_beta=3.0) is not bed
    assert [c[0] for c in cache.calls] == ["Box", "Box", "Box"]
    assert service.computed() == [(BOX, first)]


def test_single_plan_lq_view_converts_the_physical_dvh_without_recomputing():
    cache = Counting()
    service = DoseService([course(12.0, fractions=3)], cache=cache)
    service.dvh(BOX, DoseView.EQD2, alpha_beta=3.0)
    service.dvh(BOX, DoseView.BED, alpha_beta=10.0)
    assert len(cache.calls) == 1  # one physical DVH; EQD2/BED by dose-axis conversion


def test_injected_cache_gets_the_ct_slice_positions_every_time():
    ct_z = np.arange(-30.0, 31.0, 2.5)
    cache = Counting()
    a, b = course(10.0, label="A"), course(12.0, fractions=3, label="B")
    service = DoseService([a, b], ct_z, cache=cache)
    service.dvh(BOX, plans=(0,))
    service.dvh(BOX)
    service.dvh(BOX, DoseView.BED, alpha_beta=10.0)
    assert all(z is ct_z for _, _, z in cache.calls)
    assert cache.calls[0][1] is a.grid
    # what the cache returns is what the service gives
    direct = compute_dvh(BOX, a.grid, ct_z=ct_z)
    got = service.dvh(BOX, plans=(0,))
    assert np.array_equal(got.cum_cc, direct.cum_cc) and got.mean_gy == direct.mean_gy


def test_an_injected_cache_answer_is_used():
    stored = compute_dvh(BOX, course(3.0).grid)

    class Stored:
        def get(self, structure, grid, ct_z, compute):
            return stored

    service = DoseService([course(10.0)], cache=Stored())
    assert service.dvh(BOX) is stored


def test_errors_are_remembered():
    cache = Counting()
    service = DoseService([course(10.0)], cache=cache)
    for _ in range(2):
        with pytest.raises(RtqaError):
            service.dvh(FAR)
    assert len(cache.calls) == 1
    assert service.computed() == []


def test_bad_arguments():
    service = DoseService([course(10.0)])
    with pytest.raises(ValueError):
        service.dvh(BOX, plans=(1,))
    with pytest.raises(ValueError):
        service.dvh(BOX, "LQ")
    with pytest.raises(ValueError):
        service.dvh(BOX, DoseView.NONE)
    with pytest.raises(ValueError):
        DoseService([course(10.0)], fractions=[5, 3])
    with pytest.raises(RtqaError, match="alpha/beta"):
        service.dvh(BOX, DoseView.EQD2)
    assert replace(BOX) is not BOX  # a copy is another structure: computed afresh


def test_concurrent_delivery_is_the_lq_dose_of_the_physical_sum():
    # 10 Gy + 12 Gy, both in 5 fractions, α/β 10: concurrent BED of 22 Gy in 5 fx
    # = 31.68 Gy; sequential 12 + 14.88 = 26.88 Gy
    service = DoseService([course(10.0, label="A"), course(12.0, label="B")])
    conc = service.dvh(BOX, DoseView.BED, alpha_beta=10.0, delivery="concurrent",
                       fractions=5)
    seq = service.dvh(BOX, DoseView.BED, alpha_beta=10.0)
    assert conc.mean_gy == pytest.approx(lq_bed(22.0, 5, 10.0), abs=1e-9)  # 31.68
    assert seq.mean_gy == pytest.approx(lq_bed(10.0, 5, 10.0) + lq_bed(12.0, 5, 10.0),
                                        abs=1e-9)
    assert conc is not seq
    assert service.dvh(BOX, DoseView.BED, alpha_beta=10.0, delivery="concurrent",
                       fractions=5) is conc
    # one plan: the delivery does not matter
    one = service.dvh(BOX, DoseView.BED, plans=(0,), alpha_beta=10.0,
                      delivery="concurrent", fractions=5)
    assert one is service.dvh(BOX, DoseView.BED, plans=(0,), alpha_beta=10.0)
    with pytest.raises(RtqaError, match="fraction count"):
        service.dvh(BOX, DoseView.BED, alpha_beta=10.0, delivery="concurrent")
    with pytest.raises(ValueError):
        service.dvh(BOX, DoseView.BED, alpha_beta=10.0, delivery="together")
