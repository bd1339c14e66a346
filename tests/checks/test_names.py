"""ROI name matching to TG-263 standard names (rtqa.checks.names, constraints/names.toml)."""

import pytest

from rtqa.errors import ConstraintFileError, RtqaError
from rtqa.checks.names import (classify, fold, is_helper, load_aliases, match_rois, standard_name,
                        target_class)


@pytest.mark.parametrize("roi, std", [
    # left/right spellings
    ("Lung L", "Lung_L"), ("L Lung", "Lung_L"), ("Lt Lung", "Lung_L"), ("Left Lung", "Lung_L"),
    ("Lung_Lt", "Lung_L"), ("LLung", "Lung_L"), ("Lung_L", "Lung_L"), ("LUNG_LEFT", "Lung_L"),
    ("Lung (L)", "Lung_L"), ("lung-l", "Lung_L"), ("Lung.L", "Lung_L"),
    ("Lung R", "Lung_R"), ("R Lung", "Lung_R"), ("Rt Lung", "Lung_R"), ("Right Lung", "Lung_R"),
    ("RLung", "Lung_R"), ("Lung_Rt", "Lung_R"),
    ("Lt Kidney", "Kidney_L"), ("Kidney_R", "Kidney_R"), ("R Kidney", "Kidney_R"),
    ("Kidney Left", "Kidney_L"), ("LKidney", "Kidney_L"),
    ("BrachialPlex_L", "BrachialPlex_L"), ("Brachial Plexus R", "BrachialPlex_R"),
    ("Lt Brachial Plexus", "BrachialPlex_L"),
    ("Femoral Head Lt", "Femur_Head_L"), ("Femur_Head_R", "Femur_Head_R"),
    ("Optic Nerve L", "OpticNrv_L"), ("OPTIC_NERVE_R", "OpticNrv_R"),
    ("Cochlea_L", "Cochlea_L"),
    # synonyms
    ("Cord", "SpinalCord"), ("Spinal Cord", "SpinalCord"), ("SC", "SpinalCord"),
    ("SPINAL_CORD", "SpinalCord"), ("spinalcord", "SpinalCord"),
    ("Oesophagus", "Esophagus"), ("Esoph", "Esophagus"), ("ESOPHAGUS", "Esophagus"),
    ("Body", "External"), ("BODY", "External"), ("Outline", "External"),
    ("External", "External"),
    ("Liver", "Liver"), ("LIVER", "Liver"), ("liver", "Liver"),
    ("Bowel", "Bowel_Small"), ("SmallBowel", "Bowel_Small"), ("Small Bowel", "Bowel_Small"),
    ("Bowel_Small", "Bowel_Small"), ("Bowel Bag", "Spc_Bowel"),
    ("Brain Stem", "Brainstem"), ("BrainStem", "Brainstem"),
    ("Cauda Equina", "CaudaEquina"), ("Great Vessels", "GreatVes"), ("PBT", "Bronchus"),
    ("Chiasm", "OpticChiasm"), ("Heart", "Heart"), ("Stomach", "Stomach"),
    ("Duodenum", "Duodenum"), ("Ribs", "Rib"), ("Chest Wall", "Chestwall"),
    ("Lungs", "Lungs"), ("Total Lung", "Lungs"),
])
def test_real_world_spellings(roi, std):
    assert standard_name(roi) == std
    assert match_rois([roi]).standard_to_roi == {std: roi}


def test_skin_is_the_skin_structure_not_the_body():
    assert standard_name("Skin") == "Skin"
    m = match_rois(["Skin", "BODY"])
    assert m.standard_to_roi == {"Skin": "Skin", "External": "BODY"}


def test_roi_typed_external_is_the_external_whatever_its_name():
    m = match_rois(["Skin", "Liver"], roi_types={"Skin": "EXTERNAL", "Liver": "ORGAN"})
    assert m.standard_to_roi == {"External": "Skin", "Liver": "Liver"}


@pytest.mark.parametrize("roi, std", [
    ("SpinalCord_PRV05", "SpinalCord_PRV05"), ("Cord PRV 5mm", "SpinalCord_PRV05"),
    ("Cord_PRV5", "SpinalCord_PRV05"), ("CordPRV", "SpinalCord_PRV"),
    ("PRV_Cord", "SpinalCord_PRV"), ("Cord_5mm_PRV", "SpinalCord_PRV05"),
    ("SpinalCord PRV 0.5cm", "SpinalCord_PRV05"), ("Brainstem_PRV3", "Brainstem_PRV03"),
    ("Brainstem_PRV03", "Brainstem_PRV03"), ("Lung_L_PRV10", "Lung_L_PRV10"),
])
def test_prv_never_matches_the_organ(roi, std):
    assert standard_name(roi) == std
    m = match_rois(["SpinalCord", "Brainstem", "Lung_L", roi])
    assert m.standard_to_roi[std] == roi
    assert m.ambiguous == {}


def test_cord_and_its_prv_together():
    m = match_rois(["SpinalCord", "SpinalCord_PRV05"])
    assert m.standard_to_roi == {"SpinalCord": "SpinalCord",
                                 "SpinalCord_PRV05": "SpinalCord_PRV05"}


@pytest.mark.parametrize("roi", [
    "zPTV_opt", "z_ring", "zRing", "zLiver", "z1", "z PTV", "Z_ring", "ZPTV", "zOpt",
    "opt PTV", "Opt_PTV", "PTV_opt", "OPT_Liver", "optPTV", "OptPTV", "_tmp", "_Cord",
    "Ring_5mm", "PTV_Ring", "PTVring", "RING", "Avoid_Liver", "avoidance", "PTV-GTV",
    "PTV1+PTV2", "GTV_PTV_gap",
])
def test_helpers_are_excluded(roi):
    assert is_helper(roi)
    assert classify(roi) == ("helper", None)
    m = match_rois([roi])
    assert m.helpers == (roi,) and m.standard_to_roi == {} and m.targets == {}


@pytest.mark.parametrize("roi", [
    "Zygoma", "ZYGOMA", "zygoma", "Optic Chiasm", "OPTIC_TRACT", "OpticNerve", "Liver",
    "PTV", "GTVp", "Stomach", "Spring",
])
def test_organ_like_names_are_not_helpers(roi):
    if roi == "Spring":  # contains "ring": a helper by the documented rule
        assert is_helper(roi)
        return
    assert not is_helper(roi)


def test_helper_rule_does_not_hide_known_organs():
    # an all-caps optic nerve must not be taken for an "opt" helper
    assert classify("OPTIC NERVE L") == ("organ", "OpticNrv_L")
    assert classify("Zygoma") == ("unmatched", None)


@pytest.mark.parametrize("roi, cls", [
    ("GTV", "GTV"), ("GTVp", "GTV"), ("GTVn1", "GTV"), ("GTV_Liver", "GTV"), ("gtv", "GTV"),
    ("CTV", "CTV"), ("CTV_5mm", "CTV"), ("ITV", "ITV"), ("ITV_Lung", "ITV"),
    ("PTV", "PTV"), ("PTV1", "PTV"), ("PTV_High", "PTV"), ("PTV 60", "PTV"), ("PTVp", "PTV"),
])
def test_targets_are_recognised_by_class(roi, cls):
    assert target_class(roi) == cls
    assert classify(roi) == ("target", cls)


def test_targets_grouped_by_class():
    m = match_rois(["GTVp", "GTV_Liver", "PTV1", "PTV_High", "Liver"])
    assert m.targets == {"GTV": ("GTVp", "GTV_Liver"), "PTV": ("PTV1", "PTV_High")}
    assert m.standard_to_roi == {"Liver": "Liver"}


def test_organ_minus_target_names_are_not_the_organ():
    m = match_rois(["Liver", "Liver-GTV", "Lungs-GTV"])
    assert m.standard_to_roi == {"Liver": "Liver"}
    # organ minus target: a derived helper, never the organ and never a target
    assert m.helpers == ("Liver-GTV", "Lungs-GTV") and m.targets == {}


@pytest.mark.parametrize("rois, std", [
    (["Cord", "SpinalCord"], "SpinalCord"),
    (["Liver", "LIVER_old"], "Liver"),
    (["Liver", "LIVER"], "Liver"),
    (["Liver", "Liver_1"], "Liver"),
    (["Liver", "Liver v2"], "Liver"),
    (["Lung_L", "L Lung"], "Lung_L"),
    (["Esophagus", "Esophagus_copy"], "Esophagus"),
    (["Liver", "Liver"], "Liver"),
])
def test_ambiguity_is_reported_never_guessed(rois, std):
    m = match_rois(rois)
    assert std not in m.standard_to_roi
    assert sorted(m.ambiguous[std]) == sorted(rois)


def test_near_match_alone_is_not_used():
    m = match_rois(["LIVER_old"])
    assert m.standard_to_roi == {} and m.unmatched == ("LIVER_old",)
    assert classify("LIVER_old") == ("near", "Liver")


def test_expansion_without_prv_label_is_not_the_organ():
    m = match_rois(["SpinalCord", "SpinalCord_05", "Cord+5mm"])
    assert m.standard_to_roi == {"SpinalCord": "SpinalCord"}
    assert m.unmatched == ("SpinalCord_05",)
    assert m.helpers == ("Cord+5mm",)  # an expansion: a derived helper


def test_override_wins_and_resolves_ambiguity():
    m = match_rois(["Cord", "SpinalCord", "CORD_1"], {"SpinalCord": "CORD_1"})
    assert m.standard_to_roi == {"SpinalCord": "CORD_1"}
    assert m.ambiguous == {} and m.overridden == {"SpinalCord"}
    assert set(m.unmatched) == {"Cord", "SpinalCord"}


def test_override_claims_the_roi_for_one_standard_only():
    m = match_rois(["Skin", "Liver"], {"External": "Skin"})
    assert m.standard_to_roi == {"External": "Skin", "Liver": "Liver"}
    assert "Skin" not in m.standard_to_roi


def test_override_key_is_case_insensitive_and_accepts_prv():
    m = match_rois(["CORD_1", "cordexp"], {"spinalcord": "CORD_1",
                                             "SpinalCord_PRV05": "cordexp"})
    assert m.standard_to_roi == {"SpinalCord": "CORD_1", "SpinalCord_PRV05": "cordexp"}


def test_override_can_take_a_helper():
    m = match_rois(["zCord"], {"SpinalCord": "zCord"})
    assert m.standard_to_roi == {"SpinalCord": "zCord"} and m.helpers == ()


@pytest.mark.parametrize("overrides, words", [
    ({"Spinalkord": "Cord"}, "not a TG-263 standard name"),
    ({"Cord": "Cord"}, "did you mean SpinalCord"),
    ({"SpinalCord": "CORD_9"}, "no ROI named 'CORD_9'"),
    ({"GTV": "Cord"}, "target class"),
    ({"SpinalCord": "Cord", "Brainstem": "Cord"}, "already mapped"),
])
def test_bad_overrides_are_errors(overrides, words):
    with pytest.raises(RtqaError, match=words):
        match_rois(["Cord", "Liver"], overrides)


def test_override_of_a_duplicated_roi_name_is_an_error():
    with pytest.raises(RtqaError, match="2 ROIs named"):
        match_rois(["Cord", "Cord"], {"SpinalCord": "Cord"})


def test_a_realistic_structure_set():
    rois = ["BODY", "Liver", "GTV_Liver", "PTV_Liver", "zPTV_opt", "z_ring", "Cord",
            "Cord PRV 5mm", "Stomach", "Duodenum", "Lt Kidney", "Rt Kidney", "Bowel",
            "Couch Surface", "Dose 50%", "Esophagus"]
    m = match_rois(rois)
    assert m.standard_to_roi == {
        "External": "BODY", "Liver": "Liver", "SpinalCord": "Cord",
        "SpinalCord_PRV05": "Cord PRV 5mm", "Stomach": "Stomach", "Duodenum": "Duodenum",
        "Kidney_L": "Lt Kidney", "Kidney_R": "Rt Kidney", "Bowel_Small": "Bowel",
        "Esophagus": "Esophagus"}
    assert m.targets == {"GTV": ("GTV_Liver",), "PTV": ("PTV_Liver",)}
    assert m.helpers == ("zPTV_opt", "z_ring")
    assert m.unmatched == ("Couch Surface", "Dose 50%")
    assert m.roi_to_standard["Cord"] == "SpinalCord"
    assert m.roi("Liver") == "Liver" and m.roi("Heart") is None


def test_fold():
    assert fold("Spinal_Cord-1.a (x)") == "spinalcord1ax"


def test_alias_table_rejects_an_alias_shared_by_two_standards(tmp_path):
    bad = tmp_path / "names.toml"
    bad.write_text('[organs]\nSpinalCord = ["Cord"]\nCordish = ["CORD"]\n')
    with pytest.raises(ConstraintFileError) as info:
        load_aliases(bad)
    msg = str(info.value)
    assert str(bad) in msg and "line 3" in msg and "already belongs to SpinalCord" in msg


def test_alias_table_rejects_unknown_tables(tmp_path):
    bad = tmp_path / "names.toml"
    bad.write_text('[organ]\nLiver = []\n')
    with pytest.raises(ConstraintFileError, match="unknown table"):
        load_aliases(bad)


def test_alias_table_from_constraints_dir_env(tmp_path, monkeypatch):
    (tmp_path / "names.toml").write_text('[organs]\nLeber = ["Hepar"]\n')
    monkeypatch.setenv("RTQA_CONSTRAINTS_DIR", str(tmp_path))
    assert standard_name("hepar") == "Leber"
    assert standard_name("Liver") is None
