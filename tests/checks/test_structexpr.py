"""Structure expressions: parsing into (sign, operand) terms, canonical text, errors."""

import pytest

from rtqa.constraints.structexpr import Operand, StructExprError, Term, parse_structure


def signs_and_names(text):
    return [(t.sign, t.operand.name) for t in parse_structure(text).terms]


def test_single_name():
    e = parse_structure("SpinalCord")
    assert e.terms == (Term(1, Operand("SpinalCord")),)
    assert e.is_single and str(e) == "SpinalCord"
    assert e.organs == ("SpinalCord",) and e.target_classes == ()


def test_subtraction_of_target_class():
    e = parse_structure("Liver - GTV")
    assert signs_and_names("Liver - GTV") == [(1, "Liver"), (-1, "GTV")]
    assert e.operands[1].is_target_class and not e.operands[0].is_target_class
    assert e.organs == ("Liver",) and e.target_classes == ("GTV",)


def test_union_then_subtraction_left_to_right():
    assert signs_and_names("Lung_L + Lung_R - GTV") == [(1, "Lung_L"), (1, "Lung_R"),
                                                        (-1, "GTV")]
    e = parse_structure("Lung_L + Lung_R - GTV")
    assert e.positive_organs == ("Lung_L", "Lung_R")


@pytest.mark.parametrize("text, canonical", [
    ("Kidney_L+Kidney_R", "Kidney_L + Kidney_R"),
    ("Liver-GTV", "Liver - GTV"),
    ("  Liver   -   gtv ", "Liver - GTV"),
    ("Lung_L+Lung_R-ptv", "Lung_L + Lung_R - PTV"),
    ("SpinalCord_PRV05", "SpinalCord_PRV05"),
])
def test_canonical_text(text, canonical):
    assert str(parse_structure(text)) == canonical
    assert parse_structure(str(parse_structure(text))) == parse_structure(text)


@pytest.mark.parametrize("cls", ["GTV", "CTV", "ITV", "PTV", "itv"])
def test_every_target_class(cls):
    op = parse_structure(f"Liver - {cls}").operands[1]
    assert op.is_target_class and op.name == cls.upper()


def test_organ_names_keep_their_case_and_gtvp_is_not_a_class():
    e = parse_structure("Liver - GTVp")
    assert e.operands[1].name == "GTVp" and not e.operands[1].is_target_class


def test_quoted_names_may_contain_spaces_and_dashes():
    e = parse_structure("'Spinal Cord' - \"PTV-high\"")
    assert [o.name for o in e.operands] == ["Spinal Cord", "PTV-high"]
    assert all(o.quoted for o in e.operands)
    assert not e.operands[1].is_target_class
    assert str(e) == "'Spinal Cord' - 'PTV-high'"
    assert parse_structure(str(e)) == e


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("   ", "empty"),
    ("Liver -", "dangling operator"),
    ("Liver + ", "dangling operator"),
    ("- Liver", "starts with an operator"),
    ("+Liver", "starts with an operator"),
    ("Liver + - GTV", "empty operand"),
    ("Liver -- GTV", "empty operand"),
    ("Liver GTV", "missing '+' or '-'"),
    ("Spinal Cord", "missing '+' or '-'"),
    ("Liver * GTV", "unexpected character '*'"),
    ("Liver & GTV", "unexpected character '&'"),
    ("(Liver - GTV)", "unexpected character '('"),
    ("'Liver - GTV", "unclosed quote"),
    ("'' - GTV", "empty quoted name"),
    ("Liver 'x'", "missing '+' or '-'"),
])
def test_errors_are_clear(text, words):
    with pytest.raises(StructExprError) as info:
        parse_structure(text)
    assert words in str(info.value)


def test_error_gives_position():
    with pytest.raises(StructExprError, match=r"at character 7"):
        parse_structure("Liver * GTV")


def test_non_text_is_rejected():
    with pytest.raises(StructExprError):
        parse_structure(["Liver"])
