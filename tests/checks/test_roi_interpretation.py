"""How ROIs are interpreted (issue 14 item 2, issue 13 mis-typed targets, issue 12 items 5
and 8): declared type first, look-alike names, unmatched organ-like ROIs and the protocol
organs they may hide, combined paired organs, the organ of a lesion by containment, the
PTV margin when there is no CTV.

Geometry is built in memory from the generator's analytic solids (planar sections on 3 mm
planes), so every expected value follows from the solids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtqa.checks.bed import oligoprogression_checks
from rtqa.checks.integrity import ptv_margin
from rtqa.checks.lesions import UNKNOWN_ORGAN, discover_lesions, mistyped_target_checks
from rtqa.checks.names import (classify_roi, fold, hidden_in, match_rois, normalise,
                               roi_infos, suggest, unmatched_checks)
from rtqa.checks.oar import _resolve
from rtqa.constraints import load_protocol
from rtqa.constraints.structexpr import parse_structure
from rtqa.errors import RtqaError
from rtqa.reading.structures import Structure, StructureSet
from rtqa.results import FAIL, NOT_EVALUATED, PASS, WARN, Reason
from rtqa.sample import Ellipsoid, Ring, sphere

PLANES = np.arange(-150.0, 150.0 + 1e-9, 3.0)
RULE = load_protocol("oligo-hcc").oligoprogression


def roi(number: int, name: str, shape, typ: str = "ORGAN") -> Structure:
    planes = () if shape is None else tuple(
        (float(z), tuple(shape.sections(float(z), 1.0, 32))) for z in PLANES
        if shape.sections(float(z), 1.0, 32))
    points = np.array([[0.0, 0.0, 0.0]]) if shape is None else np.empty((0, 3))
    return Structure(number, name, typ, planes, points)


def structure_set(*specs) -> StructureSet:
    structures = tuple(roi(k + 1, *s) for k, s in enumerate(specs))
    return StructureSet(Path("RS.mem.dcm"), "1.2.3", "1.2.3.4", "P", "mem", (), structures)


def match(ss: StructureSet, overrides=None):
    return match_rois([s.name for s in ss.structures], overrides,
                      roi_types={s.name: s.interpreted_type for s in ss.structures})


# --- names: look-alikes and whitespace ---------------------------------------------------

@pytest.mark.parametrize("name, std", [
    ("Liv\u0435r", "Liver"),                 # Cyrillic е
    ("\u0421ord", "SpinalCord"),             # Cyrillic С
    ("St\u043emach", "Stomach"),             # Cyrillic о
    ("\uff28\uff45\uff41\uff52\uff54", "Heart"),  # full-width letters
    ("Spinal\u00a0Cord", "SpinalCord"),      # NBSP
    ("He\u200bart", "Heart"),                # zero-width space
    ("  Liver \t", "Liver"),                 # stray whitespace
    ("Lung\u00a0\u00a0L", "Lung_L"),
])
def test_lookalike_names_are_normalised(name, std):
    c = classify_roi(name, "ORGAN")
    assert (c.kind, c.standard) == ("organ", std)
    assert match_rois([name], roi_types={name: "ORGAN"}).standard_to_roi == {std: name}


def test_lookalike_is_said_and_plain_names_are_not_annotated():
    assert "U+0435 CYRILLIC SMALL LETTER IE" in classify_roi("Liv\u0435r", "ORGAN").reason
    assert "normalised" not in classify_roi("Liver", "ORGAN").reason


def test_a_name_in_another_script_is_not_forced_into_latin():
    # Печень (Russian "liver") has letters without Latin look-alikes: no match, no guess
    assert classify_roi("Печень", "ORGAN").kind == "unmatched"
    assert normalise("A\u200b B\u00a0 C") == "A B C"
    assert fold("\uff2c\uff49\uff56\uff45\uff52") == "liver"


# --- declared type first -----------------------------------------------------------------

@pytest.mark.parametrize("name, typ, kind, std", [
    # RayStation export: rings typed ORGAN, an isocenter named like a PTV
    ("PTV1_WALL", "ORGAN", "helper", None),
    ("PTV5_WALL", "ORGAN", "helper", None),
    ("ptv4", "ISOCENTER", "ignored", None),
    ("ISOCENTER PTV 3", "ISOCENTER", "ignored", None),
    ("Low Dose Region", "CONTROL", "ignored", None),
    ("BRAIN - PTV", "ORGAN", "helper", None),
    ("ptv 4 AND 5", "ORGAN", "target-like", "PTV"),
    ("PTV_1", "PTV", "target", "PTV"),
    # the brief's helpers, whatever their prefix and type
    ("PTV_ring", "PTV", "helper", None), ("zPTV", "PTV", "helper", None),
    ("PTV-opt", "PTV", "helper", None), ("PTV_shell", "PTV", "helper", None),
    ("PTV+5mm", "PTV", "helper", None), ("PTV_wall", "", "helper", None),
    ("PRV_Cord", "ORGAN", "prv", "SpinalCord_PRV"),
    # never targets by type, whatever the name
    ("PTV_x", "MARKER", "ignored", None), ("PTV_x", "REGISTRATION", "ignored", None),
    ("PTV_x", "SUPPORT", "ignored", None), ("PTV_x", "FIXATION", "ignored", None),
    ("PTV_x", "BOLUS", "ignored", None),
    ("PTV_x", "CONTROL", "target-like", "PTV"), ("PTV_x", "DOSE_REGION", "target-like", "PTV"),
    ("PTV_x", "CAVITY", "target-like", "PTV"), ("PTV_x", "AVOIDANCE", "target-like", "PTV"),
    ("T10_PTV", "ORGAN", "target-like", "PTV"),
    # a name suggests a target only untyped or with a target type
    ("T10_PTV", "", "target", "PTV"), ("T10_PTV", "PTV", "target", "PTV"),
    ("GTV_Liver", "GTV", "target", "GTV"), ("Tumour", "GTV", "target", "GTV"),
    ("PTV_far", "GTV", "target", "PTV"),
    # organ names stay organs; walls of organs are organs or unmatched, not helpers
    ("Liver", "GTV", "organ", "Liver"), ("Bladder Wall", "ORGAN", "organ", "Bladder_Wall"),
    ("Rectum_Wall", "ORGAN", "unmatched", None),
    ("Skin", "EXTERNAL", "external", "External"),
])
def test_declared_type_first(name, typ, kind, std):
    c = classify_roi(name, typ)
    assert (c.kind, c.standard) == (kind, std), c.reason


def test_match_keeps_roles_apart():
    m = match_rois(["PTV_1", "PTV1_WALL", "ptv4", "T10_PTV", "Liver", "Herz"],
                   roi_types={"PTV_1": "PTV", "PTV1_WALL": "ORGAN", "ptv4": "ISOCENTER",
                              "T10_PTV": "ORGAN", "Liver": "ORGAN", "Herz": "ORGAN"})
    assert m.targets == {"PTV": ("PTV_1",)}
    assert m.helpers == ("PTV1_WALL",)
    assert m.target_like == ("T10_PTV",)
    assert m.standard_to_roi == {"Liver": "Liver"}
    # a foreign synonym is suggested, never matched
    assert m.organ_like_unmatched == ("Herz",)
    assert m.suggestions["Herz"] == (("Heart", "a synonym in names.toml [synonyms]"),)


# --- unmatched organ-like ROIs and hidden protocol organs ----------------------------------

@pytest.mark.parametrize("name, first", [
    ("Herz", "Heart"), ("Coeur", "Heart"), ("Leber", "Liver"), ("Niere links", "Kidney_L"),
    ("Poumon droit", "Lung_R"), ("STOM", "Stomach"), ("Cord_PRV0", "SpinalCord"),
    ("LIVER_old", "Liver"), ("Esophagous", "Esophagus"), ("OPTIC STRUCTURES", "OpticChiasm"),
    ("Vertebra_T10", "bone"),
])
def test_suggestions(name, first):
    assert suggest(name)[0][0] == first


def test_no_suggestion_for_an_unknown_word():
    assert suggest("Hippocampus_L") == ()


def test_hidden_in_relates_missing_organs_to_unmatched_rois():
    m = match_rois(["Herz", "STOM", "Cord_PRV0", "Liver", "Lungs", "zHelper", "T10_PTV",
                    "Dose 50%"],
                   roi_types={"T10_PTV": "ORGAN", "Dose 50%": "DOSE_REGION",
                              "Cord_PRV0": "ORGAN"})
    assert [r for r, _ in hidden_in("Heart", m)] == ["Herz"]
    assert [r for r, _ in hidden_in("Stomach", m)] == ["STOM"]
    (cord,) = hidden_in("SpinalCord", m)
    assert cord == ("Cord_PRV0", "a PRV of SpinalCord, not SpinalCord itself")
    # the combined Lungs may hold Lung_L, but a one-sided row cannot use it
    assert [r for r, _ in hidden_in("Lung_L", m)] == ["Lungs"]
    # suggestions point elsewhere; helpers, target-like and DOSE_REGION ROIs hide nothing
    assert hidden_in("Duodenum", m) == ()


def test_an_unrecognisable_organ_like_roi_may_be_any_organ():
    m = match_rois(["Liver", "Hippocampus_L", "Couch"],
                   roi_types={"Hippocampus_L": "ORGAN", "Couch": "SUPPORT"})
    assert hidden_in("Duodenum", m) == (
        ("Hippocampus_L", "matches no TG-263 name: it may be any organ"),)
    # declared CONTROL (by the user): no longer organ-like
    m = match_rois(["Liver", "Hippocampus_L"], roi_types={"Hippocampus_L": "CONTROL"})
    assert hidden_in("Duodenum", m) == ()


def test_unmatched_rows_and_roi_infos():
    ss = structure_set(("Herz", sphere((0, 0, 0), 30)), ("Liver", sphere((0, 0, 90), 30)),
                       ("PTV1_WALL", Ring(sphere((0, 0, -90), 20), sphere((0, 0, -90), 15))),
                       ("ptv4", None, "ISOCENTER"))
    m = match(ss)
    (row,) = unmatched_checks(m)
    assert (row.id, row.status, row.reason) == ("names.unmatched.Herz", WARN,
                                                Reason.STRUCTURE_UNRECOGNISED)
    assert "--map Heart='Herz'" in row.note
    infos = {r.name: r for r in roi_infos(ss.structures, m)}
    assert {n: r.role for n, r in infos.items()} == {
        "Herz": "unmatched", "Liver": "organ", "PTV1_WALL": "helper", "ptv4": "ignored"}
    assert infos["Herz"].hint == "--map Heart='Herz'"
    assert infos["ptv4"].interpreted_type == "ISOCENTER" and infos["ptv4"].roi_number == 4


def test_combined_lungs_satisfy_the_paired_expression():
    ss = structure_set(("Lungs", sphere((0, 0, 0), 30)), ("GTV_1", sphere((0, 0, 0), 5), "GTV"))
    m = match(ss)
    by_name = {s.name: [s] for s in ss.structures}
    res = _resolve(parse_structure("Lung_L + Lung_R - GTV"), m, by_name)
    assert res.missing == () and res.rois == ("Lungs", "GTV_1")
    assert "taken as the combined ROI 'Lungs'" in res.notes[0]
    # one side present, the other only combined: never guessed
    ss = structure_set(("Lungs", sphere((0, 0, 0), 30)), ("Lung_L", sphere((20, 0, 0), 8)))
    res = _resolve(parse_structure("Lung_L + Lung_R"), match(ss),
                   {s.name: [s] for s in ss.structures})
    assert res.missing == ("Lung_R",)


# --- lesions: rings, isocenters, mis-typed targets -----------------------------------------

def raystation_like():
    return structure_set(
        ("PTV_1", sphere((-40, 0, 0), 10), "PTV"), ("GTV_1", sphere((-40, 0, 0), 8), "GTV"),
        ("PTV_2", sphere((40, 0, 0), 10), "PTV"), ("GTV_2", sphere((40, 0, 0), 8), "GTV"),
        ("PTV1_WALL", Ring(sphere((-40, 0, 0), 16), sphere((-40, 0, 0), 11))),
        ("PTV2_WALL", Ring(sphere((40, 0, 0), 16), sphere((40, 0, 0), 11))),
        ("ptv 1 AND 2", None), ("ptv4", None, "ISOCENTER"))


def test_rings_and_isocenters_are_never_lesions():
    ss = raystation_like()
    # 'ptv 1 AND 2' typed ORGAN: drawn as the union of the two PTVs
    structures = list(ss.structures)
    union = roi(7, "ptv 1 AND 2", None)
    both = tuple(sorted(structures[0].planes + structures[2].planes, key=lambda p: p[0]))
    merged: dict[float, list] = {}
    for z, polys in both:
        merged.setdefault(z, []).extend(polys)
    structures[6] = Structure(7, union.name, "ORGAN",
                              tuple((z, tuple(p)) for z, p in merged.items()),
                              np.empty((0, 3)))
    ss = StructureSet(ss.path, "1.2.3", "1.2.3.4", "P", "mem", (), tuple(structures))
    m = match(ss)
    lesions = discover_lesions(ss, m)
    assert [les.roi_names for les in lesions] == [("PTV_1", "GTV_1"), ("PTV_2", "GTV_2")]
    from rtqa.checks.lesions import empty_targets
    assert empty_targets(ss, m) == []          # ptv4 (ISOCENTER) is no target
    (row,) = mistyped_target_checks(ss, m, lesions, "test")
    assert (row.id, row.status, row.reason) == ("lesion.mistyped_target.ptv 1 AND 2", WARN,
                                                Reason.TARGET_TYPE_CONFLICT)
    assert row.value == pytest.approx(100.0, abs=0.5)


def test_mistyped_ptv_around_a_gtv_is_not_evaluated_until_the_user_says():
    ss = structure_set(("GTV_T10", sphere((0, 45, 10), 11), "GTV"),
                       ("T10_PTV", sphere((0, 45, 10), 14), "ORGAN"))
    m = match(ss)
    lesions = discover_lesions(ss, m)
    assert [les.roi_names for les in lesions] == [("GTV_T10",)]
    (row,) = mistyped_target_checks(ss, m, lesions, "test")
    assert (row.status, row.priority, row.reason) == (NOT_EVALUATED, "mandatory",
                                                      Reason.TARGET_TYPE_CONFLICT)
    # GTV r 11 inside PTV r 14: (11/14)^3 = 48.5 % of it lies inside the known targets
    assert row.value == pytest.approx(100 * (11 / 14) ** 3, abs=2.0)
    assert "--roi-type 'T10_PTV'=PTV" in row.note
    # the user states the type: a target (one lesion, PTV first) ...
    from rtqa.checks.names import retype
    ss2 = retype(ss, {"T10_PTV": "PTV"})
    m2 = match(ss2)
    assert [les.roi_names for les in discover_lesions(ss2, m2)] == [("T10_PTV", "GTV_T10")]
    assert mistyped_target_checks(ss2, m2, discover_lesions(ss2, m2), "test") == []
    # ... or confirms ORGAN: a visible WARN, no longer blocking
    (row,) = mistyped_target_checks(ss, m, lesions, "test", {"T10_PTV": "ORGAN"})
    assert row.status == WARN
    with pytest.raises(RtqaError, match="no ROI named"):
        retype(ss, {"T10 PTV": "PTV"})
    with pytest.raises(RtqaError, match="not an RTROIInterpretedType"):
        retype(ss, {"T10_PTV": "TARGET"})


# --- the organ of a lesion -----------------------------------------------------------------

LIVER = Ellipsoid((-58, -26, -56), (92, 64, 58))
LUNG = Ellipsoid((92, 12, 60), (62, 80, 68))
KIDNEY = Ellipsoid((74, 68, -62), (30, 24, 46))
# a node r 6 mm whose surface lies 11 mm in front of the liver (liver front at y = -90)
NODE_CENTRE = (-58.0, -90.0 - 11.0 - 6.0, -56.0)


def node_case():
    return structure_set(
        ("Liver", LIVER), ("Lung_L", LUNG), ("Kidney_L", KIDNEY),
        ("GTV_Liver", sphere((-78, -40, -48), 10), "GTV"),
        ("GTV_Lung", sphere((92, 25, 80), 8), "GTV"),
        ("GTV_Kid", sphere((74, 68, -62), 8), "GTV"),
        ("GTV_LN", sphere(NODE_CENTRE, 6), "GTV"), ("PTV_LN", sphere(NODE_CENTRE, 9), "PTV"))


def test_node_outside_the_liver_has_no_organ_and_the_count_is_not_evaluated():
    ss = node_case()
    lesions = {les.name: les for les in discover_lesions(ss, match(ss))}
    assert lesions["LN"].organ == UNKNOWN_ORGAN and lesions["LN"].organ_roi is None
    assert "nearest Liver, about 11 mm" in lesions["LN"].organ_note
    assert [lesions[k].organ for k in ("Liver", "Lung", "Kid")] == ["Liver", "Lung", "Kidney"]
    n, o = oligoprogression_checks(list(lesions.values()), RULE)
    assert (n.status, n.value) == (PASS, 4.0)
    assert (o.status, o.value, o.reason) == (NOT_EVALUATED, 3.0, Reason.LESION_ORGAN_UNKNOWN)
    assert "--lesion-organ PTV_LN=<organ>" in o.note


def test_lesion_organ_named_by_the_user_counts():
    ss = node_case()
    lesions = discover_lesions(ss, match(ss), {"PTV_LN": "LymphNode"})
    ln = next(les for les in lesions if les.name == "LN")
    assert ln.organ == "LymphNode" and "--lesion-organ" in ln.organ_note
    n, o = oligoprogression_checks(lesions, RULE)
    assert (o.status, o.value, o.reason) == (FAIL, 4.0, None)  # 4 organs > 3
    with pytest.raises(RtqaError, match="--lesion-organ PTV_X=Bone: no lesion"):
        discover_lesions(ss, match(ss), {"PTV_X": "Bone"})


def test_a_lesion_mostly_outside_an_organ_is_not_placed_by_nearness():
    # GTV r 8 centred 4 mm in front of the liver surface: a spherical cap of it (about
    # 15 %) lies in the liver, touching it; nearness never places it there
    ss = structure_set(("Liver", LIVER), ("GTV_edge", sphere((-58, -94, -56), 8), "GTV"))
    (les,) = discover_lesions(ss, match(ss))
    assert les.organ == UNKNOWN_ORGAN
    share = float(les.organ_note.split("% inside Liver")[0].rsplit(" ", 1)[1])
    assert 8 <= share <= 22
    # centred 2 mm inside: most of it (about 2/3) in the liver
    ss = structure_set(("Liver", LIVER), ("GTV_edge", sphere((-58, -88, -56), 8), "GTV"))
    (les,) = discover_lesions(ss, match(ss))
    assert les.organ == "Liver" and les.organ_note.endswith("% of the lesion core inside Liver")
    ss = structure_set(("Liver", LIVER), ("GTV_in", sphere((-58, -70, -56), 8), "GTV"))
    (les,) = discover_lesions(ss, match(ss))
    assert (les.organ, les.organ_note) == ("Liver", "100% of the lesion core inside Liver")


# --- PTV margin without a CTV --------------------------------------------------------------

@pytest.mark.parametrize("r_ptv, status", [(10.5, FAIL), (11.5, FAIL), (12.0, PASS), (14.0, PASS)])
def test_ptv_margin_from_the_gtv(r_ptv, status):
    gtv = roi(1, "GTV", sphere((0, 0, 0), 10.0), "GTV")
    ptv = roi(2, "PTV", sphere((0, 0, 0), r_ptv), "PTV")
    c = ptv_margin(gtv, ptv, 2.0, 5.0, "protocol", inner_is_gtv=True)
    assert c.status == status
    # the 5th percentile of the vertex-to-surface distance: the margin itself
    assert c.value == pytest.approx(r_ptv - 10.0, abs=0.15)
    assert c.limit == ">= 2" and c.unit == "mm"
    assert "upper bound (5 mm) cannot" in c.note


def test_ptv_margin_around_the_ctv_keeps_both_bounds():
    ctv = roi(1, "CTV", sphere((0, 0, 0), 10.0), "CTV")
    c = ptv_margin(ctv, roi(2, "PTV", sphere((0, 0, 0), 14.0), "PTV"), 2, 5, "p")
    assert (c.status, c.limit) == (PASS, "2-5") and c.value == pytest.approx(4.0, abs=0.2)
    c = ptv_margin(ctv, roi(2, "PTV", sphere((0, 0, 0), 17.0), "PTV"), 2, 5, "p")
    assert c.status == FAIL and c.value == pytest.approx(7.0, abs=0.3)
    # a CTV poking out of the PTV has margin 0 there
    c = ptv_margin(ctv, roi(2, "PTV", sphere((4, 0, 0), 12.0), "PTV"), 2, 5, "p")
    assert c.status == FAIL and "margin 0.0-" in c.note


def test_ptv_margin_from_every_gtv_of_the_lesion():
    # two GTVs in one PTV: the second reaches (nearly) to the PTV's surface
    ptv = roi(3, "PTV", Ellipsoid((0, 0, 0), (40, 20, 20)), "PTV")
    g1 = roi(1, "GTV_a", sphere((-15, 0, 0), 8.0), "GTV")
    g2 = roi(2, "GTV_b", sphere((26, 0, 0), 12.0), "GTV")
    alone = ptv_margin(g1, ptv, 2, 5, "p", inner_is_gtv=True)
    both = ptv_margin([g1, g2], ptv, 2, 5, "p", inner_is_gtv=True)
    assert alone.status == PASS
    assert both.status == FAIL and both.rois == ("GTV_a", "GTV_b", "PTV")
    assert both.value < 1.5


def test_an_edited_copy_is_settled_by_the_users_map():
    m = match_rois(["Liver", "Liver_old"])
    assert [c.id for c in unmatched_checks(m)] == []          # ambiguous, not unmatched
    m = match_rois(["Liver", "Liver_old"], {"Liver": "Liver"})
    assert unmatched_checks(m) == []                          # the user chose 'Liver'
    m = match_rois(["Liver_old"])
    (row,) = unmatched_checks(m)
    assert "--map Liver='Liver_old'" in row.note
    assert [r for r, _ in hidden_in("Liver", m)] == ["Liver_old"]
