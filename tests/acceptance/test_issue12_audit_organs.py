"""Independent audit of issue 12 item 5: organs are found, or the plan is not passed.

Each case is hcc_pass (which passes) with organs renamed, combined or added, written in
code and checked with ``rtqa.check``. A name that means a protocol organ must give that
organ's rows the same values as the plainly named plan (same solids, same dose); a name
rtqa cannot place must stop the PASS (NOT EVALUATED, plan ERROR) and be listed as a WARN
row with a ``--map`` hint, until the user maps it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import rtqa
from rtqa.results import NOT_EVALUATED, PASS, WARN, Reason
from rtqa.sample import EllipticCylinder, StructureSpec, sphere

from tests import audit_cases as A
from tests.e2e_cases import rename_roi, retype_roi

pytestmark = pytest.mark.slow

#: The protocol rows of each organ of hcc_pass (their structure expression).
ORGAN_ROWS = {
    "Heart": "Heart", "Stomach": "Stomach", "SpinalCord": "SpinalCord",
    "Lung_L": "Lung_L + Lung_R - GTV", "Lung_R": "Lung_L + Lung_R - GTV",
    "Kidney_L": "Kidney_L + Kidney_R", "Kidney_R": "Kidney_L + Kidney_R",
    "Liver": "Liver - GTV", "Esophagus": "Esophagus", "Duodenum": "Duodenum",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("audit_organs")


@pytest.fixture(scope="module")
def baseline(root):
    report = rtqa.check(A.write(A.hcc_pass(), root / "base", root))
    assert report.status == "PASS"
    return {c.id: c for c in report.checks}


def _run(root, name, case, after=(), **options):
    folder = A.write(case, root / name, root)
    for fn in after:
        fn(folder)
    return rtqa.check(folder, **options)


def _oar(report, structure):
    return [c for c in report.checks if c.structure == structure and c.id.startswith("oar.")]


def _same_values(report, baseline, structure, roi):
    rows = [c for c in _oar(report, structure) if c.priority == "mandatory"]
    assert rows, f"no row for {structure}"
    for c in rows:
        assert c.status == PASS, (c.id, c.status, c.reason)
        assert roi.strip() in {r.strip() for r in c.rois}, (c.id, c.rois)
        b = baseline[c.id]
        assert c.value == pytest.approx(b.value, rel=1e-6, abs=1e-6), c.id


# --- names that mean the organ: recognised, same values --------------------------------------

LATIN1_VARIANTS = [
    ("Stomach", "STOMACH"), ("Stomach", "stomach"), ("Stomach", " Stomach"),
    ("Heart", "HEART"), ("SpinalCord", "Spinal Cord"), ("Esophagus", "Oesophagus"),
    ("Kidney_L", "Kidney L"), ("Liver", "LIVER"),
]


@pytest.mark.parametrize("old, new", LATIN1_VARIANTS)
def test_spelling_variants_are_the_organ(root, baseline, old, new):
    report = _run(root, f"v_{old}_{new.strip()}", A.renamed({old: new}))
    _same_values(report, baseline, ORGAN_ROWS[old], new)
    assert report.status == "PASS", [(c.id, c.status) for c in report.checks
                                     if c.status not in (PASS,) and c.priority == "mandatory"]


@pytest.mark.parametrize("old, new", [
    ("Stomach", "St\u043emach"),       # Cyrillic о
    ("Stomach", "Stomach\u00a0"),      # trailing no-break space
    ("Heart", "\u0397eart"),           # Greek Eta
    ("Duodenum", "Duo\u200bdenum"),    # zero-width space
])
def test_lookalikes_and_stray_whitespace_are_normalised(root, baseline, old, new):
    report = _run(root, f"u_{old}_{len(new)}_{ord(new[-1])}", A.hcc_pass(),
                  after=[lambda f: rename_roi(f, old, new)])
    _same_values(report, baseline, ORGAN_ROWS[old], new)
    assert report.status == "PASS"


def test_lungs_and_kidneys_drawn_as_one_roi_satisfy_the_paired_rows(root, baseline):
    from tests.e2e_cases import Union
    case = A.combined(("Lung_R", "Lung_L"), "Lungs")
    base = A.hcc_pass()
    s = {x.name: x for x in case.structures}
    kid = {x.name: x for x in base.structures}
    structures = tuple(x for x in case.structures if x.name != "Kidney_L")
    structures = tuple(replace(x, name="Kidneys", shape=Union((kid["Kidney_R"].shape,
                                                                kid["Kidney_L"].shape)))
                       if x.name == "Kidney_R" else x for x in structures)
    assert "Lungs" in s
    report = _run(root, "combined", replace(case, structures=structures))
    for expr, roi in [("Lung_L + Lung_R - GTV", "Lungs"), ("Kidney_L + Kidney_R", "Kidneys")]:
        rows = [c for c in _oar(report, expr) if c.priority == "mandatory"]
        assert rows and all(c.status == PASS and roi in c.rois for c in rows), expr
        for c in rows:   # the union of the two solids: the same DVH as the pair
            assert c.value == pytest.approx(baseline[c.id].value, rel=0.01, abs=0.05), c.id
    assert report.status == "PASS"


def test_lungs_total_beside_both_lungs_is_not_counted_twice(root, baseline):
    from tests.e2e_cases import Union
    base = A.hcc_pass()
    s = {x.name: x for x in base.structures}
    total = StructureSpec("Lungs_Total", Union((s["Lung_R"].shape, s["Lung_L"].shape)))
    report = _run(root, "lungs_total", A.with_extra_rois(total))
    rows = [c for c in _oar(report, "Lung_L + Lung_R - GTV") if c.priority == "mandatory"]
    assert rows
    for c in rows:
        assert c.value == pytest.approx(baseline[c.id].value, rel=1e-6, abs=1e-6), c.id
    assert report.status == "PASS"


def test_combined_lungs_with_only_one_side_drawn_is_not_guessed(root):
    """``Lungs`` and ``Lung_L`` but no ``Lung_R``: the pair cannot be assembled from
    Lung_L alone (and Lungs may or may not be both lungs): never a PASS."""
    from tests.e2e_cases import Union
    base = A.hcc_pass()
    s = {x.name: x for x in base.structures}
    lungs = StructureSpec("Lungs", Union((s["Lung_R"].shape, s["Lung_L"].shape)))
    case = replace(base, structures=tuple(x for x in base.structures if x.name != "Lung_R")
                   + (lungs,))
    report = _run(root, "lungs_one_side", case)
    rows = [c for c in _oar(report, "Lung_L + Lung_R - GTV") if c.priority == "mandatory"]
    assert rows
    assert report.status != "PASS"


# --- names rtqa cannot place: visible, NOT EVALUATED until mapped ----------------------------

@pytest.mark.parametrize("old, new", [
    ("Heart", "Herz"), ("Stomach", "STOM"), ("Liver", "Leber"), ("Stomach", "Magen"),
    ("Kidney_L", "Niere_li"), ("Duodenum", "Duod_new"),
])
def test_unplaced_organ_names_stop_the_pass_until_mapped(root, baseline, old, new):
    report = _run(root, f"x_{new}", A.renamed({old: new}))
    assert report.status == "ERROR" and rtqa.exit_code(report) == 2
    expr = ORGAN_ROWS[old]
    rows = _oar(report, expr)
    mandatory = [c for c in rows if c.priority == "mandatory"]
    assert mandatory and all(c.status == NOT_EVALUATED for c in mandatory), \
        [(c.id, c.status) for c in rows]
    assert {c.reason for c in mandatory} <= {Reason.STRUCTURE_UNRECOGNISED,
                                              Reason.STRUCTURE_MISSING}
    assert Reason.STRUCTURE_UNRECOGNISED in {c.reason for c in mandatory}
    warn = [c for c in report.checks if c.status == WARN and new in c.rois
            and c.reason == Reason.STRUCTURE_UNRECOGNISED]
    assert warn, f"{new} is not listed as an unmatched organ-like ROI"
    mapped = rtqa.check(root / f"x_{new}", overrides={old: new})
    _same_values(mapped, baseline, expr, new)
    assert mapped.status == "PASS"


def test_cord_prv_only_does_not_pass_the_cord(root):
    """Only ``Cord_PRV0`` (a planning-risk volume of the cord) is drawn, not the cord: the
    cord's limits cannot be checked on a PRV unless the user says so."""
    report = _run(root, "cord_prv", A.renamed({"SpinalCord": "Cord_PRV0"}))
    rows = [c for c in _oar(report, "SpinalCord") if c.priority == "mandatory"]
    assert rows and all(c.status == NOT_EVALUATED for c in rows), [(c.id, c.status) for c in rows]
    assert report.status == "ERROR"


@pytest.mark.parametrize("typ", ["", "ORGAN", "AVOIDANCE"])
def test_an_organ_like_roi_matching_nothing_is_listed_and_stops_the_pass(root, typ):
    """An extra ROI ``Blob7`` (untyped, ORGAN or AVOIDANCE) that matches no TG-263 name:
    any missing protocol organ may hide in it."""
    blob = StructureSpec("Blob7", sphere((-100.0, 40.0, -20.0), 8.0), "ORGAN")
    after = [] if typ == "ORGAN" else [lambda f: retype_roi(f, "Blob7", typ)]
    report = _run(root, f"blob_{typ or 'none'}", A.with_extra_rois(blob), after=after)
    warn = [c for c in report.checks if c.status == WARN and "Blob7" in c.rois]
    assert warn and warn[0].reason == Reason.STRUCTURE_UNRECOGNISED
    assert report.status != "PASS"
    typed = rtqa.check(root / f"blob_{typ or 'none'}", roi_types={"Blob7": "CONTROL"})
    assert typed.status == "PASS"


def test_two_rois_that_normalise_to_one_name_are_ambiguous(root):
    """``Stomach`` and ``STOMACH`` (two different contours): never guessed."""
    base = A.hcc_pass()
    s = {x.name: x for x in base.structures}
    other = StructureSpec("STOMACH", EllipticCylinder((90.0, -22.0), (20.0, 20.0), -70.0, -30.0))
    report = _run(root, "two_stomachs", A.with_extra_rois(other))
    rows = [c for c in _oar(report, "Stomach") if c.priority == "mandatory"]
    assert rows and all(c.status == NOT_EVALUATED and c.reason == Reason.STRUCTURE_AMBIGUOUS
                        for c in rows)
    assert report.status == "ERROR"
    assert s["Stomach"]
