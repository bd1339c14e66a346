"""Integrity of the shipped constraint library and of ``rtqa constraints list``."""

import tomllib

import pytest
from click.testing import CliRunner

from rtqa.cli import main
from rtqa.constraints import STATUSES, load_constraint_file, load_protocol
from rtqa.dvh.metrics import parse_metric
from rtqa.checks.names import load_aliases
from rtqa.paths import constraints_dir, protocols_dir
from rtqa.constraints.structexpr import parse_structure

LIB = constraints_dir()
SET_FILES = sorted(p for p in LIB.glob("*.toml") if p.name != "names.toml")
PROTOCOL_FILES = sorted((LIB / "protocols").glob("*.toml"))


def raw_rows(path):
    return tomllib.loads(path.read_text(encoding="utf-8")).get("constraint", [])


def all_rows():
    for path in SET_FILES + PROTOCOL_FILES:
        for k, raw in enumerate(raw_rows(path), start=1):
            yield f"{path.name} #{k}", raw


def test_library_is_not_empty():
    names = {p.name for p in SET_FILES}
    assert {"quantec.toml", "tg101.toml", "hytec.toml", "normal_liver.toml"} <= names
    assert "oligo-hcc.toml" in {p.name for p in PROTOCOL_FILES}


def test_every_shipped_row_has_source_and_status_and_only_v_is_enabled():
    """The library's traceability rule: fails on any row that breaks it."""
    problems = []
    count = 0
    for where, raw in all_rows():
        count += 1
        if not isinstance(raw.get("source"), str) or not raw["source"].strip():
            problems.append(f"{where}: no source")
        if raw.get("status") not in STATUSES:
            problems.append(f"{where}: status {raw.get('status')!r}")
        if raw.get("enabled", raw.get("status") == "V") and raw.get("status") != "V":
            problems.append(f"{where}: enabled with status {raw.get('status')!r}")
    assert count > 150
    assert problems == []


@pytest.mark.parametrize("path", SET_FILES, ids=lambda p: p.name)
def test_every_set_loads_and_agrees_with_the_raw_rule(path):
    s = load_constraint_file(path)
    assert s.constraints and s.source
    for c in s.constraints:
        assert c.source and c.status in STATUSES
        assert not c.enabled or c.status == "V", c.ref
        assert c.line and c.file == path


def test_every_metric_form_in_the_library_parses():
    metrics = {raw["metric"] for _, raw in all_rows()}
    for text in sorted(metrics):
        assert str(parse_metric(text)) == text
    for form in ("D0.035cc[Gy]", "D5cc[Gy]", "DC700cc[Gy]", "CV15Gy[cc]", "V20Gy[%]",
                 "V15Gy[cc]", "Mean[Gy]", "D100%[Gy]", "D1cc[Gy]"):
        assert form in metrics


def test_every_structure_operand_is_a_known_standard_name():
    table = load_aliases()
    unknown = set()
    for where, raw in all_rows():
        for op in parse_structure(raw["structure"]).operands:
            if not op.is_target_class and table.canonical(op.name) != op.name:
                unknown.add(f"{where}: {op.name}")
    assert unknown == set()


@pytest.fixture(scope="module")
def trial():
    return load_protocol("oligo-hcc")


def test_trial_protocol_contents(trial):
    assert trial.name == "oligo-hcc"
    assert "NCT06261047" in trial.source and "KROG 20-04" in trial.source
    assert [s.path.name for s in trial.sets] == ["quantec.toml", "tg101.toml", "hytec.toml",
                                                 "normal_liver.toml", "rtog_sabr_4fx.toml"]
    les = trial.lesions
    assert (str(les.bed_limit), les.alpha_beta, les.coverage_metric,
            les.coverage_structures) == (">= 60", 10.0, "D95%[Gy]", ("PTV", "GTV"))
    assert les.bed_limit.holds(60.0) and not les.bed_limit.holds(59.5)
    assert (trial.oligoprogression.max_lesions, trial.oligoprogression.max_organs) == (5, 3)
    assert (trial.planning_ct.max_slice_spacing_mm, trial.planning_ct.max_pixel_size_mm) == (
        3.0, 1.0)
    assert (trial.ptv_margin.min_mm, trial.ptv_margin.max_mm) == (2.0, 5.0)
    for setting in (les, trial.oligoprogression, trial.planning_ct, trial.ptv_margin):
        assert "NCT06261047" in setting.source


def test_trial_has_no_liver_metastasis_rows(trial):
    liver = [c for c in trial.constraints if c.structure == "Liver - GTV" and
             c.metric == "Mean[Gy]"]
    assert sorted(str(c.limit) for c in liver) == ["< 13", "< 18", "< 28"]


def applied(trial, n, structure):
    return {e.constraint.label for e in trial.select(n) if e.applied and e.structure == structure}


def test_normal_liver_rule(trial):
    rule = [c for c in trial.constraints if c.metric == "CV15Gy[cc]"]
    assert len(rule) == 1
    c = rule[0]
    # the trial: liver constraints "should at least meet" the rule, no fraction restriction
    assert (c.structure, str(c.limit), c.fractions, c.status, c.enabled, c.dose_type) == (
        "Liver - GTV", ">= 700", None, "V", True, "physical")
    assert not c.conventional
    assert "spared" in c.note.lower() or "Spared" in c.note
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 10, 30):
        assert "CV15Gy[cc] >= 700" in applied(trial, n, "Liver - GTV")
        rule = [e for e in trial.select(n) if e.applied and e.constraint is c][0]
        assert rule.dose_type == "physical" and not rule.derived
    assert "DC700cc[Gy] < 9.1" in applied(trial, 1, "Liver - GTV")


def test_trial_cord_limits_per_fraction_count(trial):
    assert applied(trial, 1, "SpinalCord") == {
        "D0.035cc[Gy] < 50", "D0.035cc[Gy] < 13", "D0.35cc[Gy] < 10", "D0.035cc[Gy] < 14",
        "D1.2cc[Gy] < 7", "D0.035cc[Gy] < 12.4"}
    assert applied(trial, 4, "SpinalCord") == {"D0.035cc[Gy] < 50", "D0.035cc[Gy] < 23",
                                              "D0.35cc[Gy] < 20.33", "D1.2cc[Gy] < 13.32"}
    assert applied(trial, 5, "SpinalCord") == {
        "D0.035cc[Gy] < 50", "D0.35cc[Gy] < 23", "D0.035cc[Gy] < 30", "D1.2cc[Gy] < 14.5",
        "D0.035cc[Gy] < 25.3"}
    cord = [e for e in trial.select(5) if e.structure == "SpinalCord" and e.applied
            and e.constraint.conventional][0]
    assert (cord.dose_type, cord.alpha_beta) == ("EQD2", 2.0)


def test_trial_four_fractions_gaps_are_filled_by_derivation(trial):
    sel = trial.select(4)
    assert not [e for e in sel if e.kind == "none"]
    derived = {e.structure for e in sel if e.applied and e.derived}
    assert {"Duodenum", "GreatVes", "Trachea + Bronchus", "Rib", "Skin", "Colon",
            "Stomach"} <= derived
    # HyTEC has a 4 fx cord point maximum: sourced, not derived
    cord = [e for e in sel if e.structure == "SpinalCord" and e.applied
            and e.constraint.metric == "D0.035cc[Gy]" and not e.constraint.conventional]
    assert [(e.constraint.limit.value, e.derived) for e in cord] == [(23.0, False)]


def test_v2_and_u_rows_are_listed_but_not_applied(trial):
    sel = trial.select(5)
    off = [e for e in sel if e.kind == "disabled"]
    assert off and all(not e.applied for e in off)
    assert any(e.constraint.structure == "Liver - GTV" and e.constraint.status == "U"
               for e in off)


# --- CLI -------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, ["constraints", "list", *args])


def test_cli_five_fractions_shows_trial_rows():
    res = run("--fractions", "5")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "Protocol oligo-hcc" in out
    assert "CV15Gy[cc] >= 700" in out and "normal_liver.toml" in out
    assert "D0.35cc[Gy] < 23" in out and "D0.035cc[Gy] < 30" in out
    assert "D1.2cc[Gy] < 14.5" in out and "D0.035cc[Gy] < 25.3" in out
    assert "Benedict et al. Med Phys 2010" in out and "Sahgal et al." in out
    assert "EQD2 α/β=2" in out and "EQD2 α/β=3" in out
    assert "QUANTEC conventional limit evaluated on EQD2 (α/β = 3 Gy" in out
    assert "[OFF]" not in out
    assert "BED (α/β=10 Gy) of D95%[Gy] on PTV else GTV >= 60 Gy" in out


def test_cli_grouped_by_structure():
    out = run("-n", "5").output.splitlines()
    i = out.index("Liver - GTV")
    block = out[i + 1:out.index("", i)]
    assert all(line.startswith("  ") for line in block)
    assert any("CV15Gy[cc] >= 700" in line and "mandatory V" in line for line in block)


def test_cli_four_fractions_shows_derived_rows():
    out = run("--fractions", "4").output
    i = out.index("\nDuodenum\n")
    block = out[i:out.index("\n\n", i + 1)]
    assert "[LQ] D5cc[Gy] < 16.6" in block
    assert "derived (LQ) from Benedict et al. Med Phys 2010;37(8):4078, Table III, 5 fx" in block
    assert "NO CONSTRAINT" not in out


def test_cli_without_derivation_says_no_constraint(tmp_path):
    text = (protocols_dir() / "oligo-hcc.toml").read_text()
    text = text.replace("derive_lq = true", "derive_lq = false")
    (tmp_path / "p.toml").write_text(text)
    for name in ("quantec.toml", "tg101.toml", "hytec.toml", "normal_liver.toml"):
        (tmp_path / name).write_text((constraints_dir() / name).read_text())
    out = run("--fractions", "4", "--protocol", str(tmp_path / "p.toml")).output
    i = out.index("\nDuodenum\n")
    assert "NO CONSTRAINT: no constraint for 4 fractions" in out[i:i + 100]
    assert "NOT EVALUATED" in out[i:i + 200]


def test_cli_all_marks_disabled_rows():
    out = run("--fractions", "5", "--all").output
    assert "[OFF] DC700cc[Gy] < 21" in out and "disabled: status U" in out


def test_cli_without_fractions_lists_fraction_specs():
    res = run()
    assert res.exit_code == 0
    assert "conventional" in res.output and "1 fx" in res.output and "any" in res.output
    assert "[OFF]" not in res.output
    assert "[OFF]" in run("--all").output


def test_cli_dose_per_fraction_switches_conversion():
    out = run("--fractions", "30", "--dose-per-fraction", "2").output
    assert "conventionally fractionated" in out and "EQD2 α/β" not in out
    out = run("--fractions", "30", "--dose-per-fraction", "3").output
    assert "EQD2 α/β=3" in out


def test_cli_protocol_path(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[protocol]\nname = "tiny"\ninclude = ["hytec.toml"]\n')
    res = run("--protocol", str(p), "--fractions", "3")
    assert res.exit_code == 0, res.output
    assert "Protocol tiny" in res.output and "D0.035cc[Gy] < 20.3" in res.output
    assert "lesions: not defined" in res.output


@pytest.mark.parametrize("args, words", [
    (["--fractions", "0"], "--fractions must be a whole number >= 1"),
    (["--fractions", "x"], "--fractions must be a whole number >= 1"),
    (["--protocol", "nope"], "no protocol named 'nope'"),
    (["--dose-per-fraction", "2"], "needs --fractions"),
    (["-n", "5", "--dose-per-fraction", "-1"], "--dose-per-fraction must be a number > 0"),
    (["--bogus"], "No such option"),
])
def test_cli_errors_one_line_exit_2(args, words):
    res = run(*args)
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0]


def test_cli_bad_protocol_file_is_one_line_naming_file_and_line(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[protocol]\nname = "bad"\n\n[[constraint]]\nstructure = "Heart"\n'
                 'metric = "V25[%]"\nlimit = "< 10"\n')
    res = run("--protocol", str(p))
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0
    assert f"{p}: line 4: [[constraint]] #1 (Heart): invalid DVH metric" in res.output


def test_cli_help_teaches_the_format():
    for args in (["constraints", "--help"], ["constraints", "list", "--help"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0
        for words in ("[[constraint]]", 'structure = "Liver - GTV"', 'limit = ">= 700"',
                      'fractions = "3-5"', "status", "conventional", "alpha_beta"):
            assert words in res.output
