"""Constraint model, TOML loading/validation and selection by fraction count."""

import math
import textwrap

import pytest

from rtqa.constraints import (Constraint, Limit, load_constraint_file, load_protocol,
                              parse_fractions, resolve_protocol, select)
from rtqa.errors import ConstraintFileError
from rtqa.paths import constraints_dir

GOOD_ROW = """
[[constraint]]
structure = "SpinalCord"
metric = "D0.035cc[Gy]"
limit = "< 30"
source = "test"
status = "V"
"""


def write(tmp_path, body, name="set.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip("\n"))
    return path


def headers(path):
    """1-based line numbers of the [[constraint]] headers of a file."""
    return [i + 1 for i, line in enumerate(path.read_text().splitlines())
            if line == "[[constraint]]"]


def row(structure="SpinalCord", metric="D0.035cc[Gy]", limit="< 30", **kw):
    kw.setdefault("status", "V")
    kw.setdefault("enabled", kw["status"] == "V")
    return Constraint(structure=structure, metric=metric, limit=Limit.parse(limit),
                      set_name=kw.pop("set_name", "TEST"), **kw)


# --- Limit -----------------------------------------------------------------------------

@pytest.mark.parametrize("limit, value, ok", [
    ("< 30", 29.999, True), ("< 30", 30.0, False), ("< 30", 30.001, False),
    ("<= 30", 29.999, True), ("<= 30", 30.0, True), ("<= 30", 30.001, False),
    ("> 5", 4.999, False), ("> 5", 5.0, False), ("> 5", 5.001, True),
    (">= 700", 699.999, False), (">= 700", 700.0, True), (">= 700", 700.001, True),
    ("< 0.5", 0.0, True), (">= 0", 0.0, True),
])
def test_limit_comparators_and_boundaries(limit, value, ok):
    assert Limit.parse(limit).holds(value) is ok


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("limit", ["< 30", "<= 30", "> 5", ">= 700"])
def test_limit_never_passes_nan_or_infinite(limit, bad):
    assert Limit.parse(limit).holds(bad) is False


@pytest.mark.parametrize("text, comparator, value", [
    ("< 30", "<", 30.0), ("<=20", "<=", 20.0), (" >= 700 ", ">=", 700.0), ("> 5", ">", 5.0),
    ("≤ 12.4", "<=", 12.4), ("≥ 0.5", ">=", 0.5),
])
def test_limit_parse(text, comparator, value):
    lim = Limit.parse(text)
    assert (lim.comparator, lim.value) == (comparator, value)
    assert Limit.parse(str(lim)) == lim


@pytest.mark.parametrize("text, words", [
    ("= 30", "expected one of"), ("== 30", "expected one of"), ("=< 30", "expected one of"),
    ("30", "expected one of"), ("< -1", "expected one of"), ("<", "expected one of"),
    ("< 30 Gy", "write the number only"), ("< 30%", "write the number only"),
    (30, "needs a comparator"), (True, "needs a comparator"), (None, "must be text"),
])
def test_limit_parse_errors(text, words):
    with pytest.raises(ValueError, match=words):
        Limit.parse(text)


def test_limit_model_validates():
    with pytest.raises(ValueError):
        Limit("=", 3.0)
    with pytest.raises(ValueError):
        Limit("<", math.nan)


# --- fractions spec -----------------------------------------------------------------------

@pytest.mark.parametrize("spec, counts, text", [
    ([3], {3}, "3"), ([1, 3], {1, 3}, "1, 3"), ([5, 1, 3], {1, 3, 5}, "1, 3, 5"),
    ("3-5", {3, 4, 5}, "3-5"), (" 3 - 5 ", {3, 4, 5}, "3-5"), ("4", {4}, "4"), (3, {3}, "3"),
])
def test_parse_fractions(spec, counts, text):
    assert parse_fractions(spec) == (frozenset(counts), text)


@pytest.mark.parametrize("spec", [[], [0], [-1], [1.5], [True], [3, 3], "5-3", "0-2", "3-",
                                  "three", "3..5", 0, True, 2.0, {"a": 1}])
def test_parse_fractions_errors(spec):
    with pytest.raises(Exception, match="invalid fractions"):
        parse_fractions(spec)


# --- loading ---------------------------------------------------------------------------

def test_load_good_file(tmp_path):
    path = write(tmp_path, """
        name = "Mine"
        description = "test set"
        source = "somewhere"

        [[constraint]]
        structure = "Kidney_L+Kidney_R"
        metric = "Mean[Gy]"
        limit = "< 15"
        fractionation = "conventional"
        priority = "optimal"
        source = "Marks 2010, Table 1"
        status = "V"
        note = "  bilateral  "

        [[constraint]]
        structure = "Liver - GTV"
        metric = "CV15Gy[cc]"
        limit = ">= 700"
        fractions = "3-5"
        source = "Pan 2010"
        status = "V2"
        """)
    s = load_constraint_file(path)
    assert (s.name, s.description, s.source, s.path) == ("Mine", "test set", "somewhere", path)
    a, b = s.constraints
    assert a.structure == "Kidney_L + Kidney_R" and a.conventional and a.fractions is None
    assert a.priority == "optimal" and a.enabled and a.note == "bilateral"
    assert (a.file, a.line, a.set_name, a.ref) == (path, 5, "Mine", "set.toml:5")
    assert b.fractions == frozenset({3, 4, 5}) and b.fraction_label == "3-5 fx"
    assert b.status == "V2" and not b.enabled and b.line == 15
    assert b.label == "CV15Gy[cc] >= 700" and b.dose_type == "physical"


@pytest.mark.parametrize("status, enabled, expected", [
    ('"V"', None, True), ('"V2"', None, False), ('"U"', None, False), (None, None, False),
    ('"V"', "false", False), ('"V2"', "true", True),
])
def test_enabled_defaults_to_status_v_only(tmp_path, status, enabled, expected):
    lines = ['name = "x"', "[[constraint]]", 'structure = "Heart"', 'metric = "V25Gy[%]"',
             'limit = "< 10"']
    if status:
        lines.append(f"status = {status}")
    if enabled:
        lines.append(f"enabled = {enabled}")
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert load_constraint_file(path).constraints[0].enabled is expected


def test_eqd2_row_with_alpha_beta(tmp_path):
    path = write(tmp_path, """
        name = "x"
        [[constraint]]
        structure = "ThecalSac"
        metric = "D0.035cc[Gy]"
        limit = "<= 25"
        dose_type = "eqd2"
        alpha_beta = 2
        """)
    c = load_constraint_file(path).constraints[0]
    assert (c.dose_type, c.alpha_beta) == ("EQD2", 2.0)


def test_metric_is_stored_canonically(tmp_path):
    body = GOOD_ROW.replace('"D0.035cc[Gy]"', '" D0.0350cc[Gy] "')
    path = write(tmp_path, 'name = "x"\n' + body)
    assert load_constraint_file(path).constraints[0].metric == "D0.035cc[Gy]"


# The offending [[constraint]] table is the second one.
BAD_ROWS = [
    ('metirc = "Mean[Gy]"', "unknown key 'metirc'"),
    ('metric = "D95[Gy]"', "invalid DVH metric 'D95[Gy]'"),
    ('metric = "D5cc[cc]"', "invalid DVH metric"),
    ('metric = "V20[%]"', "invalid DVH metric"),
    ('metric = "mean[Gy]"', "invalid DVH metric"),
    ('limit = "= 30"', "invalid limit '= 30'"),
    ('limit = "< 30 Gy"', "write the number only"),
    ("limit = 30", "needs a comparator"),
    ('fractions = "5-3"', "invalid fractions '5-3'"),
    ("fractions = [0]", "invalid fractions"),
    ('fractions = "3 to 5"', "invalid fractions"),
    ('dose_type = "EQD2"', "needs alpha_beta"),
    ('dose_type = "BED"', "needs alpha_beta"),
    ('dose_type = "biological"', "dose_type must be one of"),
    ("alpha_beta = 3", "alpha_beta only applies"),
    ('fractionation = "hypo"', "fractionation must be"),
    ('fractionation = "conventional"\nfractions = [3]', "remove 'fractions'"),
    ('fractionation = "conventional"\ndose_type = "EQD2"\nalpha_beta = 3', "remove 'dose_type'"),
    ('priority = "high"', "priority must be one of"),
    ('status = "v"', "status must be one of"),
    ('enabled = "yes"', "'enabled' must be true or false"),
    ('structure = "Liver -"', "dangling operator"),
    ('structure = "Liver * GTV"', "unexpected character"),
    ('note = 3', "'note' must be text"),
    ('source = ""', "'source' must be non-empty text"),
    ("alpha_beta = -2\ndose_type = \"EQD2\"", "'alpha_beta' must be > 0"),
]


@pytest.mark.parametrize("extra, words", BAD_ROWS)
def test_bad_rows_name_file_and_line(tmp_path, extra, words):
    second = GOOD_ROW
    key = extra.split("=")[0].strip()
    if key in ("metric", "limit", "structure", "source", "status"):
        second = "\n".join(line for line in second.splitlines() if not line.startswith(key))
    path = write(tmp_path, 'name = "x"\n' + GOOD_ROW + second + "\n" + extra + "\n")
    line = headers(path)[1]
    assert line > 5
    with pytest.raises(ConstraintFileError) as info:
        load_constraint_file(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line {line}: [[constraint]] #2")
    assert words in msg
    assert info.value.path == str(path)


@pytest.mark.parametrize("missing", ["structure", "metric", "limit"])
def test_missing_required_key(tmp_path, missing):
    body = "\n".join(line for line in GOOD_ROW.splitlines() if not line.startswith(missing))
    path = write(tmp_path, 'name = "x"\n' + body)
    line = headers(path)[0]
    with pytest.raises(ConstraintFileError,
                       match=rf"line {line}: .*missing required key '{missing}'"):
        load_constraint_file(path)


def test_error_names_the_line_of_the_key(tmp_path):
    path = write(tmp_path, 'name = "x"\n' + GOOD_ROW.replace('"< 30"', '"=30"'))
    line = headers(path)[0]
    assert path.read_text().splitlines()[line + 2].startswith("limit")
    with pytest.raises(ConstraintFileError, match=rf"line {line}: .*\(key on line {line + 3}\)"):
        load_constraint_file(path)


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, 'name = "x"\n\n[[constraint]]\nstructure = "Heart\nmetric = 1\n')
    with pytest.raises(ConstraintFileError) as info:
        load_constraint_file(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 4, column") and "TOML syntax error" in msg


def test_file_level_errors(tmp_path):
    with pytest.raises(ConstraintFileError, match="file not found"):
        load_constraint_file(tmp_path / "nope.toml")
    with pytest.raises(ConstraintFileError, match="missing required key 'name'"):
        load_constraint_file(write(tmp_path, GOOD_ROW))
    with pytest.raises(ConstraintFileError, match=r"line 2: unknown key 'sauce'"):
        load_constraint_file(write(tmp_path, 'name = "x"\nsauce = "y"\n'))
    with pytest.raises(ConstraintFileError, match="protocol file"):
        load_constraint_file(write(tmp_path, '[protocol]\nname = "p"\n'))
    with pytest.raises(ConstraintFileError, match=r"\[\[constraint\]\] tables"):
        load_constraint_file(write(tmp_path, 'name = "x"\nconstraint = 3\n'))
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"name = \"\xff\"\n")
    with pytest.raises(ConstraintFileError, match="not UTF-8"):
        load_constraint_file(bad)


def test_inline_constraint_array_still_names_the_row(tmp_path):
    path = write(tmp_path, 'name = "x"\nconstraint = [{structure = "Heart", metric = "x", '
                           'limit = "< 1"}]\n')
    with pytest.raises(ConstraintFileError, match=r"\[\[constraint\]\] #1 \(Heart\): invalid"):
        load_constraint_file(path)


# --- selection -------------------------------------------------------------------------

@pytest.fixture
def rows():
    return [
        row("SpinalCord", "D0.035cc[Gy]", "< 50", conventional=True),
        row("SpinalCord", "D0.035cc[Gy]", "< 13", fractions=frozenset({1})),
        row("SpinalCord", "D0.35cc[Gy]", "< 18", fractions=frozenset({3})),
        row("SpinalCord", "D0.35cc[Gy]", "< 23", fractions=frozenset({5})),
        row("Liver - GTV", "CV15Gy[cc]", ">= 700", fractions=frozenset({3, 4, 5})),
        row("Liver - GTV", "DC700cc[Gy]", "< 9.1", fractions=frozenset({1})),
        row("Liver - GTV", "DC700cc[Gy]", "< 19.2", fractions=frozenset({3}), status="U"),
        row("Duodenum", "D5cc[Gy]", "< 18", fractions=frozenset({5})),
        row("Duodenum", "D5cc[Gy]", "< 16.5", fractions=frozenset({3})),
        row("Femur_Head_L", "D10cc[Gy]", "< 30", fractions=frozenset({5}), status="V2"),
        row("Heart", "V25Gy[%]", "< 10", conventional=True),
        row("Kidney_L + Kidney_R", "Mean[Gy]", "< 15", conventional=True, alpha_beta=2.5),
        row("Brainstem", "D1cc[Gy]", "<= 59", conventional=True),
        row("SpinalCord_PRV05", "D0.035cc[Gy]", "< 52", conventional=True),
    ]


def entries(selection, structure):
    return [(e.kind, e.constraint.label if e.constraint else e.reason)
            for e in selection if e.structure == structure]


def test_selection_one_fraction(rows):
    sel = select(rows, 1, derive=False)
    assert entries(sel, "SpinalCord") == [("apply", "D0.035cc[Gy] < 50"),
                                          ("apply", "D0.035cc[Gy] < 13")]
    assert entries(sel, "Liver - GTV") == [("apply", "DC700cc[Gy] < 9.1")]
    assert entries(sel, "Duodenum") == [("none", "no constraint for 1 fraction")]


def test_selection_three_fractions(rows):
    sel = select(rows, 3, derive=False)
    assert entries(sel, "Liver - GTV") == [
        ("apply", "CV15Gy[cc] >= 700"), ("disabled", "DC700cc[Gy] < 19.2")]
    assert entries(sel, "Duodenum") == [("apply", "D5cc[Gy] < 16.5")]
    disabled = [e for e in sel if e.kind == "disabled"][0]
    assert not disabled.applied and "status U" in disabled.reason


def test_selection_four_fractions_reports_missing_constraints(rows):
    sel = select(rows, 4, derive=False)
    assert entries(sel, "Duodenum") == [("none", "no constraint for 4 fractions")]
    assert entries(sel, "Liver - GTV") == [("apply", "CV15Gy[cc] >= 700")]
    assert entries(sel, "SpinalCord") == [("apply", "D0.035cc[Gy] < 50")]
    assert entries(sel, "Femur_Head_L") == [("none", "no constraint for 4 fractions")]


def test_selection_five_fractions_lists_disabled_rows(rows):
    sel = select(rows, 5, derive=False)
    assert entries(sel, "Femur_Head_L") == [
        ("none", "no constraint for 5 fractions (1 disabled row)"),
        ("disabled", "D10cc[Gy] < 30")]
    assert entries(sel, "SpinalCord")[-1] == ("apply", "D0.35cc[Gy] < 23")
    assert entries(sel, "Duodenum") == [("apply", "D5cc[Gy] < 18")]


def test_selection_thirty_fractions_conventional_on_physical_dose(rows):
    sel = select(rows, 30, derive=False)
    assert entries(sel, "Liver - GTV") == [("none", "no constraint for 30 fractions")]
    heart = [e for e in sel if e.structure == "Heart"][0]
    assert heart.applied and heart.dose_type == "physical" and heart.alpha_beta is None
    assert "physical dose" in heart.conversion_note


def test_structures_keep_first_appearance_order(rows):
    order = list(dict.fromkeys(e.structure for e in select(rows, 5)))
    assert order == ["SpinalCord", "Liver - GTV", "Duodenum", "Femur_Head_L", "Heart",
                     "Kidney_L + Kidney_R", "Brainstem", "SpinalCord_PRV05"]


def by_structure(selection, structure):
    return [e for e in selection if e.structure == structure and e.applied
            and e.constraint.conventional][0]


@pytest.mark.parametrize("structure, ab, why", [
    ("SpinalCord", 2.0, "CNS"), ("SpinalCord_PRV05", 2.0, "CNS"), ("Brainstem", 2.0, "CNS"),
    ("Heart", 3.0, "late-responding tissue"), ("Kidney_L + Kidney_R", 2.5, "row setting"),
])
def test_eqd2_conversion_and_alpha_beta_choice(rows, structure, ab, why):
    e = by_structure(select(rows, 5, derive=False), structure)
    assert (e.dose_type, e.alpha_beta) == ("EQD2", ab)
    assert e.conversion_note == (f"TEST conventional limit evaluated on EQD2 (α/β = {ab:g} Gy, "
                                 f"{why}), voxel-wise, 5 fractions")


def test_global_alpha_beta_overrides_defaults_not_rows(rows):
    sel = select(rows, 5, alpha_beta=4, derive=False)
    assert by_structure(sel, "SpinalCord").alpha_beta == 4.0
    assert "global setting" in by_structure(sel, "Heart").conversion_note
    assert by_structure(sel, "Kidney_L + Kidney_R").alpha_beta == 2.5


def test_quantec_note_wording():
    r = row("Lung_L + Lung_R - GTV", "V20Gy[%]", "<= 30", conventional=True, set_name="QUANTEC")
    e = select([r], 5)[0]
    assert e.conversion_note.startswith(
        "QUANTEC conventional limit evaluated on EQD2 (α/β = 3 Gy")
    assert "voxel-wise" in e.conversion_note


@pytest.mark.parametrize("n, dpf, eqd2", [
    (5, None, True), (10, None, True), (15, None, True), (24, None, True), (25, None, False),
    (30, None, False), (30, 2.0, False), (30, 1.8, False), (30, 2.2, True), (10, 5.0, True),
    (5, 2.0, False),
])
def test_when_conventional_rows_are_converted(n, dpf, eqd2):
    e = select([row("Heart", "V25Gy[%]", "< 10", conventional=True)], n,
               dose_per_fraction_gy=dpf)[0]
    assert (e.dose_type == "EQD2") is eqd2


def test_explicit_eqd2_row_keeps_its_alpha_beta():
    r = row("ThecalSac", "D0.035cc[Gy]", "<= 25", dose_type="EQD2", alpha_beta=2.0)
    e = select([r], 3, alpha_beta=10)[0]
    assert (e.dose_type, e.alpha_beta) == ("EQD2", 2.0)
    assert "row setting" in e.conversion_note


def test_disabled_v_row_reason():
    e = select([row(status="V", enabled=False)], 3)
    assert [x.kind for x in e] == ["none", "disabled"]
    assert e[1].reason == "disabled in its file (enabled = false)"


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "5"])
def test_select_rejects_bad_fraction_counts(rows, bad):
    with pytest.raises(ValueError):
        select(rows, bad)


def test_select_rejects_bad_alpha_beta_and_dose_per_fraction(rows):
    with pytest.raises(ValueError):
        select(rows, 5, alpha_beta=0)
    with pytest.raises(ValueError):
        select(rows, 5, dose_per_fraction_gy=-2)


def test_constraint_canonicalises_structure():
    c = row("Kidney_L+Kidney_R", "Mean[Gy]", "< 15")
    assert c.structure == "Kidney_L + Kidney_R" and c.expr.organs == ("Kidney_L", "Kidney_R")


# --- protocols -------------------------------------------------------------------------

PROTOCOL = """
[protocol]
name = "mine"
source = "institution"
include = ["a.toml"]

[lesions]
bed_limit = ">= 60"
alpha_beta = 10
coverage_metric = "D95%[Gy]"
coverage_structures = ["PTV", "GTV"]
source = "s"

[[constraint]]
structure = "Heart"
metric = "Mean[Gy]"
limit = "< 5"
status = "V"
"""


def test_protocol_includes_resolve_in_own_folder_first(tmp_path):
    write(tmp_path, 'name = "local A"\n' + GOOD_ROW, "a.toml")
    p = load_protocol(write(tmp_path, PROTOCOL, "mine.toml"))
    assert [s.name for s in p.sets] == ["local A", "mine"]
    assert [c.structure for c in p.constraints] == ["SpinalCord", "Heart"]
    assert p.constraints[1].set_name == "mine" and p.constraints[1].line == 13
    assert p.lesions.bed_limit.holds(60.0) and not p.lesions.bed_limit.holds(59.99)
    assert p.oligoprogression is None and p.planning_ct is None and p.ptv_margin is None


def test_protocol_includes_fall_back_to_constraints_dir(tmp_path):
    path = write(tmp_path, PROTOCOL.replace('"a.toml"', '"hytec.toml"'), "mine.toml")
    p = load_protocol(path)
    assert p.sets[0].path == constraints_dir() / "hytec.toml"


@pytest.mark.parametrize("change, words", [
    (('"a.toml"', '"missing.toml"'), "line 4: include 'missing.toml' not found"),
    (('"a.toml"', '"a.toml", "a.toml"'), "included twice"),
    (('bed_limit = ">= 60"', 'bed_limit = "60"'), "line 7: [lesions]: bed_limit: invalid"),
    (('alpha_beta = 10', 'alpha_beta = 0'), "line 8: [lesions]: 'alpha_beta' must be > 0"),
    (('"D95%[Gy]"', '"V95%[%]"'), "coverage_metric must be a dose in Gy"),
    (('"D95%[Gy]"', '"D95[Gy]"'), "invalid DVH metric"),
    (('["PTV", "GTV"]', '["PTV", "Liver"]'), "coverage_structures must be"),
    (('source = "s"', 'sauce = "s"'), "unknown key 'sauce'"),
    (('name = "mine"', 'nom = "mine"'), "[protocol]: unknown key 'nom'"),
    (('[lesions]', '[lesion]'), "unknown key 'lesion'"),
    (('limit = "< 5"', 'limit = "5"'), "line 13: [[constraint]] #1 (Heart): invalid limit"),
])
def test_protocol_errors(tmp_path, change, words):
    write(tmp_path, 'name = "local A"\n' + GOOD_ROW, "a.toml")
    path = write(tmp_path, PROTOCOL.replace(*change), "mine.toml")
    with pytest.raises(ConstraintFileError) as info:
        load_protocol(path)
    assert str(info.value).startswith(str(path)) and words in str(info.value)


def test_protocol_settings_sections(tmp_path):
    write(tmp_path, 'name = "local A"\n' + GOOD_ROW, "a.toml")
    path = write(tmp_path, PROTOCOL + textwrap.dedent("""
        [oligoprogression]
        max_lesions = 5
        max_organs = 3
        source = "o"

        [planning_ct]
        max_slice_spacing_mm = 3
        max_pixel_size_mm = 1.0
        source = "c"

        [ptv_margin]
        min_mm = 2
        max_mm = 5
        source = "m"
        note = "inclusive"
        """), "mine.toml")
    p = load_protocol(path)
    assert (p.oligoprogression.max_lesions, p.oligoprogression.max_organs) == (5, 3)
    assert (p.planning_ct.max_slice_spacing_mm, p.planning_ct.max_pixel_size_mm) == (3.0, 1.0)
    assert (p.ptv_margin.min_mm, p.ptv_margin.max_mm, p.ptv_margin.note) == (2.0, 5.0,
                                                                             "inclusive")
    bad = path.read_text().replace("max_lesions = 5", "max_lesions = 5.5")
    path.write_text(bad)
    with pytest.raises(ConstraintFileError, match=r"\[oligoprogression\]: 'max_lesions' must "
                                                  "be a whole number"):
        load_protocol(path)
    path.write_text(bad.replace("max_lesions = 5.5", "max_lesions = 5").replace(
        "min_mm = 2", "min_mm = 6"))
    with pytest.raises(ConstraintFileError, match="min_mm .* is larger than max_mm"):
        load_protocol(path)
    path.write_text(bad.replace("max_lesions = 5.5", "max_lesions = 5").replace(
        'source = "c"\n', ""))
    with pytest.raises(ConstraintFileError, match=r"\[planning_ct\]: missing required key "
                                                  "'source'"):
        load_protocol(path)


def test_protocol_needs_protocol_table(tmp_path):
    with pytest.raises(ConstraintFileError, match=r"no \[protocol\] table"):
        load_protocol(write(tmp_path, 'name = "x"\n' + GOOD_ROW))


def test_resolve_protocol_by_name_and_path(tmp_path):
    assert resolve_protocol("oligo-hcc") == constraints_dir() / "protocols" / "oligo-hcc.toml"
    assert resolve_protocol(tmp_path / "x.toml") == tmp_path / "x.toml"
    assert resolve_protocol("dir/x.toml").name == "x.toml"
    with pytest.raises(ConstraintFileError, match="no protocol named 'nope'.*oligo-hcc"):
        resolve_protocol("nope")
    with pytest.raises(ConstraintFileError, match="file not found"):
        load_protocol(tmp_path / "absent.toml")


def test_constraints_dir_env_override(tmp_path, monkeypatch):
    (tmp_path / "protocols").mkdir()
    write(tmp_path, 'name = "env set"\n' + GOOD_ROW, "env.toml")
    write(tmp_path / "protocols", '[protocol]\nname = "envp"\ninclude = ["env.toml"]\n',
          "envp.toml")
    monkeypatch.setenv("RTQA_CONSTRAINTS_DIR", str(tmp_path))
    assert constraints_dir() == tmp_path
    p = load_protocol("envp")
    assert p.sets[0].name == "env set" and p.lesions is None
    monkeypatch.setenv("RTQA_CONSTRAINTS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConstraintFileError, match="RTQA_CONSTRAINTS_DIR"):
        constraints_dir()
