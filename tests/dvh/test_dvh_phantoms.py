"""DVH engine against analytic truth on DICOM phantoms written by tests/phantoms.py.

Truth is computed here in closed form, never with rtqa:

* sphere of radius r: V = 4/3 pi r^3; the part beyond a plane at distance r - h from the
  centre is a spherical cap, V(h) = pi h^2 (3r - h) / 3;
* box: the coordinate along a gradient axis is uniformly distributed over the box;
* annulus of radii R > r and height H: the part with x - cx >= s has volume
  H (seg(R, s) - seg(r, s)), seg(rho, s) = rho^2 acos(s/rho) - s sqrt(rho^2 - s^2);
* in a linear dose D = D0 + g (u - u_c) every dose metric is D0 + g x (a distance), and
  trilinear interpolation reproduces a linear field exactly, so the only error left is
  the engine's geometry.

The engine's convention (rtqa.dvh.geometry): arc-interpolated cross-sections between contour
planes and half-slice end caps beyond the end planes. Spheres are contoured on planes
symmetric about their centre, so the volume's centroid is the centre and the mean dose
in a linear field is exactly the centre dose.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from rtqa.dvh import compute_dvh, trilinear
from rtqa.errors import RtqaError
from rtqa.dvh.metrics import evaluate, parse_metric, volume_at_least

try:
    import phantoms as ph
except ImportError:  # tests collected as a package
    from tests import phantoms as ph

from rtqa.reading import load_export

AXES = {"x": 0, "y": 1, "z": 2}
D0 = 30.0  # Gy at the structure's centre in every gradient field


# ---------------------------------------------------------------------------------------
# Analytic truth
# ---------------------------------------------------------------------------------------

def sphere_volume(r):
    return 4.0 / 3.0 * math.pi * r ** 3


def cap_volume(r, h):
    """Volume of the part of a sphere of radius r beyond a plane at depth h (0..2r)."""
    h = min(max(h, 0.0), 2 * r)
    return math.pi * h * h * (3 * r - h) / 3.0


def sphere_zone_volume(r, z1, z2):
    """Volume of the sphere (centre 0) between planes z1 < z2 (|z| <= r)."""
    return math.pi * ((r * r * z2 - z2 ** 3 / 3) - (r * r * z1 - z1 ** 3 / 3))


def capped_sphere_volume(r, planes_rel, t):
    """Volume of the solid the engine is meant to model: the true sphere between the end
    planes plus the end contours extruded by t/2 (planes relative to the centre)."""
    z1, z2 = float(min(planes_rel)), float(max(planes_rel))
    return (sphere_zone_volume(r, z1, z2)
            + math.pi * (r * r - z1 * z1) * t / 2 + math.pi * (r * r - z2 * z2) * t / 2)


def sphere_depth_hottest(r, frac):
    """Depth h of the hottest cap holding ``frac`` of the sphere volume."""
    target = frac * sphere_volume(r)
    return brentq(lambda h: cap_volume(r, h) - target, 0.0, 2 * r, xtol=1e-12)


def sphere_d(r, g, pct):
    """D<pct>% (Gy) of a sphere in D = D0 + g (u - u_c), g > 0: the dose at the bottom of
    the hottest cap holding pct % of the volume."""
    return D0 + g * (r - sphere_depth_hottest(r, pct / 100.0))


def seg(rho, s):
    """Area of the part of a disc of radius rho with coordinate >= s."""
    if s >= rho:
        return 0.0
    if s <= -rho:
        return math.pi * rho * rho
    return rho * rho * math.acos(s / rho) - s * math.sqrt(rho * rho - s * s)


def ring_d_inplane(r_out, r_in, g, pct):
    total = math.pi * (r_out ** 2 - r_in ** 2)
    s = brentq(lambda s: seg(r_out, s) - seg(r_in, s) - pct / 100.0 * total,
               -r_out, r_out, xtol=1e-12)
    return D0 + g * s


# ---------------------------------------------------------------------------------------
# Phantom helpers
# ---------------------------------------------------------------------------------------

def field(axis: str | None, g: float, center):
    """D = D0 + g (u - c_u) along ``axis`` (None: uniform D0)."""
    if axis is None:
        return lambda x, y, z: np.full_like(x, D0)
    a = AXES[axis]
    cu = float(center[a])
    return lambda x, y, z: D0 + g * ((x, y, z)[a] - cu)


def hfs_grid(center, half, spacing=(2.5, 2.5, 3.0), phase=(0.3, -0.7, 0.4)):
    """Head-first-supine grid covering center +/- half (mm) in every axis, with nodes
    not aligned with the centre. Returns write_dose keyword arguments."""
    dx, dy, dz = spacing
    lo = [center[i] - half - spacing[i] + phase[i] for i in range(3)]
    n = [int(math.ceil(2 * (half + spacing[i]) / spacing[i])) + 1 for i in range(3)]
    return dict(ipp=lo, cols=n[0], rows=n[1], pixel_spacing=(dy, dx),
                offsets=ph.regular_offsets(n[2], dz))


def load_one(tmp, rois, dose_kwargs, func, **load_kw):
    """Write RS + RD into ``tmp``; return (export, structures by name, grid)."""
    study = ph.Study()
    ph.write_struct(tmp / "RS.dcm", rois, study=study)
    ph.write_dose(tmp / "RD.dcm", func, study=study, **dose_kwargs)
    ex = load_export([tmp], **load_kw)
    assert len(ex.courses) == 1 and len(ex.structure_sets) == 1
    return ex, {s.name: s for s in ex.structure_sets[0].structures}, ex.courses[0].grid


def metric(text, dvh):
    return evaluate(parse_metric(text), dvh)


def rel(a, b):
    return abs(a - b) / abs(b)


def assert_mean(dvh, g, truth=D0):
    """Mean within 1 % and within a quarter millimetre of geometry (g Gy/mm) + 0.01 Gy.

    (The engine samples each plane on a lattice tied to the dose grid; where a flat wall
    falls between lattice points the sampled centroid moves by up to half a sample
    spacing, ~0.1 mm here.)"""
    m = metric("Mean[Gy]", dvh)
    assert rel(m, truth) < 0.01
    assert abs(m - truth) <= 0.01 + 0.25 * g, (m, truth)


# ---------------------------------------------------------------------------------------
# Sphere r = 15 mm
# ---------------------------------------------------------------------------------------

R = 15.0
T = 2.0
SPHERE_C = (4.3, -7.1, 12.4)
SPHERE_PLANES_REL = T * np.arange(-7, 8)  # -14 .. 14: end caps reach +/- 15 = r
FIELDS = [("x", 1.0), ("x", 0.2), ("y", 1.0), ("z", 1.0), ("z", 0.2), (None, 0.0)]


@pytest.fixture(scope="module")
def sphere_cases(tmp_path_factory):
    out = {}
    planes = SPHERE_C[2] + SPHERE_PLANES_REL
    rois = [ph.Roi(1, "Sphere", ph.sphere_contours(SPHERE_C, R, planes), "PTV")]
    for axis, g in FIELDS:
        tmp = tmp_path_factory.mktemp(f"sphere_{axis}_{g}")
        _, s, grid = load_one(tmp, rois, hfs_grid(SPHERE_C, R + 5), field(axis, g, SPHERE_C))
        out[(axis, g)] = compute_dvh(s["Sphere"], grid)
    return out


@pytest.mark.parametrize("axis,g", FIELDS)
def test_sphere_volume(sphere_cases, axis, g):
    dvh = sphere_cases[(axis, g)]
    assert dvh.outside_cc == pytest.approx(0.0, abs=1e-9)
    assert dvh.volume_cc == pytest.approx(dvh.total_volume_cc)
    assert rel(dvh.total_volume_cc, sphere_volume(R) / 1000) < 0.01
    # tighter: the solid of the stated convention (true sphere + half-slice end caps)
    assert rel(dvh.total_volume_cc, capped_sphere_volume(R, SPHERE_PLANES_REL, T) / 1000) \
        < 0.003


@pytest.mark.parametrize("axis,g", FIELDS)
def test_sphere_mean_min_max(sphere_cases, axis, g):
    dvh = sphere_cases[(axis, g)]
    # Mean of a linear field over a centrally symmetric solid = dose at the centre.
    assert_mean(dvh, g)
    # In-plane: the extremes lie on the equator (a plane at the centre, vertices at
    # angle 0 and pi). Axial: at the end-cap faces, +/- (14 + 1) mm = r.
    assert rel(metric("Max[Gy]", dvh), D0 + g * R) < 0.01
    assert rel(metric("Min[Gy]", dvh), D0 - g * R) < 0.01


@pytest.mark.parametrize("axis,g", FIELDS)
@pytest.mark.parametrize("pct", [50, 95, 5])
def test_sphere_d_metrics(sphere_cases, axis, g, pct):
    dvh = sphere_cases[(axis, g)]
    truth = sphere_d(R, g, pct) if axis else D0
    assert rel(metric(f"D{pct}%[Gy]", dvh), truth) < 0.01


def test_sphere_truth_is_not_trivial():
    """Guard the truth itself: D95/D5 of a 1 Gy/mm field lie far from the centre dose."""
    assert sphere_d(R, 1.0, 95) < D0 - 8 and sphere_d(R, 1.0, 5) > D0 + 8
    assert sphere_d(R, 1.0, 50) == pytest.approx(D0, abs=1e-9)
    # V(h) at h = r is half the sphere; at 2r the whole
    assert cap_volume(R, R) == pytest.approx(sphere_volume(R) / 2)
    assert cap_volume(R, 2 * R) == pytest.approx(sphere_volume(R))


# ---------------------------------------------------------------------------------------
# Small sphere: r = 5 mm (0.524 cc) on a 2.5 mm and a 3 mm dose grid
# ---------------------------------------------------------------------------------------

R_SMALL = 5.0
SMALL_PLANES_REL = np.arange(-4.0, 5.0, 1.0)  # 1 mm contours; end caps reach +/- 4.5


@pytest.mark.parametrize("voxel", [2.5, 3.0])
@pytest.mark.parametrize("axis,g", [("x", 1.0), ("z", 1.0), ("y", 0.2)])
def test_small_sphere(tmp_path, voxel, axis, g):
    c = (-12.2, 20.6, -3.3)
    rois = [ph.Roi(1, "GTV", ph.sphere_contours(c, R_SMALL, c[2] + SMALL_PLANES_REL), "GTV")]
    _, s, grid = load_one(tmp_path, rois, hfs_grid(c, 12, (voxel, voxel, voxel)),
                          field(axis, g, c))
    dvh = compute_dvh(s["GTV"], grid)
    assert sphere_volume(R_SMALL) / 1000 < 1.0
    assert rel(dvh.total_volume_cc, sphere_volume(R_SMALL) / 1000) < 0.01
    assert rel(dvh.total_volume_cc,
               capped_sphere_volume(R_SMALL, SMALL_PLANES_REL, 1.0) / 1000) < 0.005
    for pct in (95, 5, 50):
        assert rel(metric(f"D{pct}%[Gy]", dvh), sphere_d(R_SMALL, g, pct)) < 0.01, pct
    assert_mean(dvh, g)
    extent = R_SMALL if axis != "z" else 4.5  # axial: end-cap faces at +/- 4.5 mm
    assert rel(metric("Max[Gy]", dvh), D0 + g * extent) < 0.01
    assert rel(metric("Min[Gy]", dvh), D0 - g * extent) < 0.01


# ---------------------------------------------------------------------------------------
# Box 40 x 30 x 20 mm (height includes the end caps), contours every 2 mm
# ---------------------------------------------------------------------------------------

BOX = (40.0, 30.0, 20.0)
BOX_C = (-6.5, 3.25, -20.0)


@pytest.fixture(scope="module")
def box_cases(tmp_path_factory):
    out = {}
    rois = [ph.Roi(1, "Box", ph.box_contours(BOX_C, BOX, 2.0), "ORGAN")]
    for axis, g in FIELDS:
        tmp = tmp_path_factory.mktemp(f"box_{axis}_{g}")
        _, s, grid = load_one(tmp, rois, hfs_grid(BOX_C, 26), field(axis, g, BOX_C))
        out[(axis, g)] = compute_dvh(s["Box"], grid)
    return out


@pytest.mark.parametrize("axis,g", FIELDS)
def test_box(box_cases, axis, g):
    dvh = box_cases[(axis, g)]
    assert rel(dvh.total_volume_cc, BOX[0] * BOX[1] * BOX[2] / 1000) < 0.005
    half = BOX[AXES[axis]] / 2 if axis else 0.0
    # u uniform on [-half, half]: the hottest p % lies above half - 2 half p / 100
    for pct in (98, 95, 50, 5, 2):
        truth = D0 + g * (half - 2 * half * pct / 100)
        assert rel(metric(f"D{pct}%[Gy]", dvh), truth) < 0.01, pct
    assert_mean(dvh, g)
    assert rel(metric("Max[Gy]", dvh), D0 + g * half) < 0.005
    assert rel(metric("Min[Gy]", dvh), D0 - g * half) < 0.005
    # V at a dose in the gradient: the slab above it
    if axis:
        d = D0 + g * half / 2
        want = BOX[0] * BOX[1] * BOX[2] / 4 / 1000
        assert rel(metric(f"V{d:.2f}Gy[cc]", dvh), want) < 0.01


# ---------------------------------------------------------------------------------------
# Ring (annulus): outer r 20, inner r 10 (a hole), height 20 mm
# ---------------------------------------------------------------------------------------

RING_C = (5.0, -3.0, 2.0)
R_OUT, R_IN, RING_H = 20.0, 10.0, 20.0


@pytest.mark.parametrize("axis,g", [("x", 1.0), ("x", 0.2), ("z", 1.0), (None, 0.0)])
def test_ring(tmp_path, axis, g):
    rois = [ph.Roi(3, "Ring", ph.ring_contours(RING_C, R_OUT, R_IN, RING_H, 2.0), "ORGAN")]
    _, s, grid = load_one(tmp_path, rois, hfs_grid(RING_C, 25), field(axis, g, RING_C))
    dvh = compute_dvh(s["Ring"], grid)
    truth_cc = math.pi * (R_OUT ** 2 - R_IN ** 2) * RING_H / 1000
    assert rel(dvh.total_volume_cc, truth_cc) < 0.01
    assert_mean(dvh, g)
    for pct in (95, 50, 5):
        if axis == "x":
            truth = ring_d_inplane(R_OUT, R_IN, g, pct)
        elif axis == "z":
            truth = D0 + g * (RING_H / 2 - RING_H * pct / 100)
        else:
            truth = D0
        assert rel(metric(f"D{pct}%[Gy]", dvh), truth) < 0.01, pct
    if axis == "x":
        # the hole holds no volume: no dose between D0 - g r_in and D0 + g r_in is
        # missing, but the median dose band is thinner than for a full disc
        assert rel(metric("Max[Gy]", dvh), D0 + g * R_OUT) < 0.01
        v_mid = metric(f"V{D0 - g * 2:.2f}Gy[cc]", dvh) - metric(f"V{D0 + g * 2:.2f}Gy[cc]", dvh)
        want = (seg(R_OUT, -2) - seg(R_OUT, 2) - (seg(R_IN, -2) - seg(R_IN, 2))) * RING_H / 1000
        assert rel(v_mid, want) < 0.02


# ---------------------------------------------------------------------------------------
# Anisotropic PixelSpacing: [row 2.0, column 3.0], gradient along x and along y
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", ["x", "y"])
def test_anisotropic_pixel_spacing(tmp_path, axis):
    c = (9.0, -14.0, 6.0)
    g = 0.5  # a swapped spacing would move the mean by g * 0.5 * 49 mm (x) or more
    planes = c[2] + SPHERE_PLANES_REL
    rois = [ph.Roi(1, "Sphere", ph.sphere_contours(c, R, planes))]
    # columns (x) every 3 mm, rows (y) every 2 mm; grid origin far from the sphere centre
    kw = dict(ipp=(-40.0, -45.0, -20.0), cols=24, rows=31, pixel_spacing=(2.0, 3.0),
              offsets=ph.regular_offsets(16, 3.0))
    _, s, grid = load_one(tmp_path, rois, kw, field(axis, g, c))
    assert np.allclose(np.diff(grid.x), 3.0) and grid.x.size == 24
    assert np.allclose(np.diff(grid.y), 2.0) and grid.y.size == 31
    assert grid.x[0] == pytest.approx(-40.0) and grid.y[0] == pytest.approx(-45.0)
    dvh = compute_dvh(s["Sphere"], grid)
    assert rel(dvh.total_volume_cc, sphere_volume(R) / 1000) < 0.01
    assert_mean(dvh, g)
    assert rel(metric("Max[Gy]", dvh), D0 + g * R) < 0.01
    assert rel(metric("Min[Gy]", dvh), D0 - g * R) < 0.01
    for pct in (95, 5):
        assert rel(metric(f"D{pct}%[Gy]", dvh), sphere_d(R, g, pct)) < 0.01


# ---------------------------------------------------------------------------------------
# GridFrameOffsetVector: relative / absolute, increasing / decreasing, uneven
# ---------------------------------------------------------------------------------------

GF_C = (0.0, 0.0, 10.0)
_REG = [k * 2.5 for k in range(17)]  # relative, ascending: z from -10 to 30
_UNEVEN_Z = np.array([-10.0, -7.0, -5.5, -2.0, 0.0, 1.0, 4.5, 6.0, 9.5, 10.0, 13.0, 14.0,
                      17.5, 20.0, 22.0, 26.0, 27.0, 30.0])

GFOV_VARIANTS = {
    # name: (IPP z, relative offsets along the normal (+z for HFS), gfov mode)
    "relative_ascending": (-10.0, _REG, "relative"),
    "absolute_ascending": (-10.0, _REG, "absolute"),
    "relative_descending": (30.0, [-o for o in _REG], "relative"),
    "absolute_descending": (30.0, [-o for o in _REG], "absolute"),
    "relative_uneven": (-10.0, list(_UNEVEN_Z + 10.0), "relative"),
    "absolute_uneven_descending": (30.0, list(_UNEVEN_Z[::-1] - 30.0), "absolute"),
}


@pytest.fixture(scope="module")
def gfov_cases(tmp_path_factory):
    planes = GF_C[2] + SPHERE_PLANES_REL
    rois = [ph.Roi(1, "Sphere", ph.sphere_contours(GF_C, R, planes))]
    out = {}
    for name, (z0, offs, mode) in GFOV_VARIANTS.items():
        tmp = tmp_path_factory.mktemp(name)
        kw = dict(ipp=(-21.0, -20.5, z0), cols=22, rows=21, pixel_spacing=(2.0, 2.0),
                  offsets=offs, gfov=mode)
        _, s, grid = load_one(tmp, rois, kw, field("z", 1.0, GF_C))
        out[name] = (grid, compute_dvh(s["Sphere"], grid))
    return out


@pytest.mark.parametrize("name", list(GFOV_VARIANTS))
def test_gfov_frame_positions(gfov_cases, name):
    grid, _ = gfov_cases[name]
    z0, offs, _ = GFOV_VARIANTS[name]
    assert np.allclose(grid.z, np.sort(z0 + np.asarray(offs)), atol=1e-6)
    # every frame holds the dose of its own z (linear in z: 30 + (z - 10))
    assert np.allclose(grid.dose[:, 3, 4], D0 + (grid.z - GF_C[2]), atol=2e-3)


@pytest.mark.parametrize("name", list(GFOV_VARIANTS))
def test_gfov_same_dvh(gfov_cases, name):
    _, ref = gfov_cases["relative_ascending"]
    _, dvh = gfov_cases[name]
    assert rel(dvh.total_volume_cc, ref.total_volume_cc) < 0.005
    for m in ("Mean[Gy]", "Max[Gy]", "Min[Gy]", "D95%[Gy]", "D5%[Gy]", "D50%[Gy]"):
        assert rel(metric(m, dvh), metric(m, ref)) < 0.005, m
    # and both against the truth
    assert rel(metric("D95%[Gy]", dvh), sphere_d(R, 1.0, 95)) < 0.01
    assert rel(metric("D5%[Gy]", dvh), sphere_d(R, 1.0, 5)) < 0.01
    assert_mean(dvh, 1.0)


# ---------------------------------------------------------------------------------------
# Partial coverage: what lies outside the grid is reported, never counted as 0 Gy
# ---------------------------------------------------------------------------------------

UNIFORM = 10.0


def _uniform(x, y, z):
    return np.full_like(x, UNIFORM)


def _check_partial(dvh, covered_cc, outside_cc):
    assert rel(dvh.outside_cc, outside_cc) < 0.02
    assert rel(dvh.volume_cc, covered_cc) < 0.02
    assert rel(dvh.total_volume_cc, covered_cc + outside_cc) < 0.01
    assert any("outside" in w and "dose grid" in w for w in dvh.warnings), dvh.warnings
    # no 0 Gy contribution: the whole DVH volume receives ~10 Gy
    assert dvh.cum_cc[0] == pytest.approx(dvh.volume_cc, rel=1e-9)
    assert volume_at_least(dvh.edges_gy, dvh.cum_cc, 0.99 * UNIFORM) == \
        pytest.approx(dvh.volume_cc, rel=1e-6)
    assert rel(dvh.min_gy, UNIFORM) < 0.01
    assert rel(dvh.mean_gy, UNIFORM) < 0.001
    assert rel(metric("D99%[Gy]", dvh), UNIFORM) < 0.01
    assert rel(metric("DC5%[Gy]", dvh), UNIFORM) < 0.01


def test_partial_coverage_box_in_z(tmp_path):
    # box z from -10 to 10; dose frames at -15 .. -1 (2 mm): the grid ends at z = 0
    rois = [ph.Roi(1, "Box", ph.box_contours((0.0, 0.0, 0.0), BOX, 2.0))]
    kw = dict(ipp=(-30.0, -25.0, -15.0), cols=31, rows=26, pixel_spacing=(2.0, 2.0),
              offsets=ph.regular_offsets(8, 2.0))
    _, s, grid = load_one(tmp_path, rois, kw, _uniform)
    assert grid.z[-1] == pytest.approx(-1.0)
    dvh = compute_dvh(s["Box"], grid)
    half = BOX[0] * BOX[1] * BOX[2] / 2 / 1000
    _check_partial(dvh, half, half)


def test_partial_coverage_sphere_in_x(tmp_path):
    # sphere centre x = 0; last dose column at x = 4 (2 mm): the grid ends at x = 5
    c = (0.0, 0.0, 0.0)
    rois = [ph.Roi(1, "Sphere", ph.sphere_contours(c, R, SPHERE_PLANES_REL))]
    kw = dict(ipp=(-24.0, -20.0, -20.0), cols=15, rows=21, pixel_spacing=(2.0, 2.0),
              offsets=ph.regular_offsets(21, 2.0))
    _, s, grid = load_one(tmp_path, rois, kw, _uniform)
    assert grid.x[-1] == pytest.approx(4.0)
    dvh = compute_dvh(s["Sphere"], grid)
    outside = cap_volume(R, R - 5.0) / 1000
    _check_partial(dvh, sphere_volume(R) / 1000 - outside, outside)


def test_structure_entirely_outside_grid_raises(tmp_path):
    rois = [ph.Roi(1, "Far", ph.sphere_contours((100.0, 0.0, 0.0), 5.0,
                                                np.arange(-4.0, 5.0, 1.0)))]
    kw = dict(ipp=(-20.0, -20.0, -20.0), cols=21, rows=21, pixel_spacing=(2.0, 2.0),
              offsets=ph.regular_offsets(21, 2.0))
    _, s, grid = load_one(tmp_path, rois, kw, _uniform)
    with pytest.raises(RtqaError, match="outside"):
        compute_dvh(s["Far"], grid)


# ---------------------------------------------------------------------------------------
# dicompyler-core result type
# ---------------------------------------------------------------------------------------

def test_to_dicompyler(sphere_cases):
    from dicompylercore.dvh import DVH

    dvh = sphere_cases[("x", 1.0)]
    d = dvh.to_dicompyler()
    assert isinstance(d, DVH)
    assert d.volume == pytest.approx(dvh.total_volume_cc, rel=1e-6)
    assert rel(d.volume, sphere_volume(R) / 1000) < 0.01
    # dicompyler reports the upper edge of the last non-empty 0.01 Gy bin
    assert abs(d.max - dvh.max_gy) <= 0.011
    assert rel(d.max, D0 + R) < 0.01


def test_trilinear_reproduces_linear_field(sphere_cases, tmp_path):
    """The premise of the truth: the reader + interpolation reproduce a linear field."""
    c = SPHERE_C
    rois = [ph.Roi(1, "S", ph.sphere_contours(c, 5.0, c[2] + np.arange(-4.0, 5.0, 1.0)))]
    _, _, grid = load_one(tmp_path, rois, hfs_grid(c, 12), lambda x, y, z:
                          D0 + 0.5 * (x - c[0]) - 0.3 * (y - c[1]) + 0.2 * (z - c[2]))
    rng = np.random.default_rng(1)
    p = np.asarray(c) + rng.uniform(-10, 10, size=(200, 3))
    d, inside = trilinear(grid, p[:, 0], p[:, 1], p[:, 2])
    assert inside.all()
    want = D0 + 0.5 * (p[:, 0] - c[0]) - 0.3 * (p[:, 1] - c[1]) + 0.2 * (p[:, 2] - c[2])
    assert np.allclose(d, want, atol=2e-3)


def test_32_bit_dose_matches_16_bit(tmp_path):
    c = (-12.2, 20.6, -3.3)
    rois = [ph.Roi(1, "GTV", ph.sphere_contours(c, R_SMALL, c[2] + SMALL_PLANES_REL))]
    out = {}
    for bits in (16, 32):
        kw = {**hfs_grid(c, 12, (2.5, 2.5, 2.5)), "bits": bits}
        _, s, grid = load_one(tmp_path / str(bits), rois, kw, field("x", 1.0, c))
        out[bits] = compute_dvh(s["GTV"], grid)
    for bits, dvh in out.items():
        for pct in (95, 5):
            assert rel(metric(f"D{pct}%[Gy]", dvh), sphere_d(R_SMALL, 1.0, pct)) < 0.01
        assert rel(metric("Max[Gy]", dvh), D0 + R_SMALL) < 0.01
    assert metric("D95%[Gy]", out[32]) == pytest.approx(metric("D95%[Gy]", out[16]), abs=0.01)
