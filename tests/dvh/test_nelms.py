"""A few pairs of the Nelms et al. 2015 analytic DVH benchmark (Med Phys 42:4435).

The benchmark data lives outside the project (../shared/validation/nelms2015, see its
README); without it these tests are skipped. The truth is the paper's analytical table
(analytical_points.csv), read by rtqa.validation.nelms.cases; the paper's pass rule is
3 % of the truth for every value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rtqa.validation.nelms import METRICS, cases, evaluate_case

DATA = Path(__file__).resolve().parents[2].parent / "shared/validation/nelms2015"

PAIRS = [
    ("Sphere_20_0", "Linear_SupInf_2mm_Aligned.dcm"),
    ("Cone_10_0", "Linear_AntPost_1mm_Aligned.dcm"),
    ("RtCylinder_30_0", "Linear_AntPost_3mm_Aligned.dcm"),
    ("Sphere_10_X05Z05", "Linear_SupInf_1mm_Aligned.dcm"),    # off-grid placement
    ("Cylinder_20_X10", "Linear_AntPost_2mm_Aligned.dcm"),
    ("RtCone_20_X10Z10", "Linear_SupInf_2mm_Aligned.dcm"),
]

pytestmark = pytest.mark.nelms


@pytest.fixture(scope="module")
def table():
    if not (DATA / "analytical_points.csv").exists():
        pytest.skip(f"Nelms 2015 benchmark data not found at {DATA}")
    return {(name, dose.name): (sfile, dose, truth) for name, sfile, dose, truth in cases(DATA)}


@pytest.mark.parametrize("name,dose_name", PAIRS)
def test_nelms_pair_within_3_percent(table, name, dose_name):
    assert (name, dose_name) in table, "pair missing from analytical_points.csv"
    sfile, dose, truth = table[(name, dose_name)]
    assert sfile.exists() and dose.exists()
    # the truth table is what we think it is: all nine values, doses in Gy
    assert set(truth) == set(METRICS)
    assert 1.0 < truth["Dmean"] < 30.0 and truth["Dmin"] < truth["D95"] < truth["D5"] \
        < truth["Dmax"]
    results = evaluate_case(sfile, dose, truth, name)
    assert [r.metric for r in results] == list(METRICS)
    bad = [f"{r.metric}: rtqa {r.value:.4g} vs truth {r.truth:.4g} "
           f"({100 * r.rel_error:.2f}%)" for r in results if not r.rel_error <= 0.03]
    assert not bad, f"{name} / {dose_name}: " + "; ".join(bad)
