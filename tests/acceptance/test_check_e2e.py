"""End-to-end acceptance tests of ``rtqa check`` (issue 5).

Each test writes a synthetic DICOM RT export (``tests/e2e_cases.py``: hcc_pass with ONE
thing changed), runs the real command line (``rtqa.cli.main`` through click's CliRunner;
one test through a subprocess) and asserts the exit code, the JSON ``status`` and the
specific check (id, structure, metric, value) that fails or cannot be evaluated, while
every other mandatory check passes.

Exit codes: 0 PASS, 1 FAIL, 2 ERROR (an input error, or a mandatory check NOT EVALUATED).
Fail closed: never exit 0 when something required could not be evaluated.

Runtime: every export is written once (module-scoped fixtures) and every command line is
run once (``_Runs`` cache): about 16 full evaluations of the HCC phantom, ~1.5 min.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import e2e_cases as cases
from rtqa.cli import main
from rtqa.report.json_report import schema_path
from rtqa.sample import write_case

pytestmark = pytest.mark.slow

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json.loads(schema_path().read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

RD, RS, RP = "RD.SBRT_5fx.dcm", "RS.hcc_pass.dcm", "RP.SBRT_5fx.dcm"
CV15 = "oar.normal_liver.Liver-GTV.CV15Gy"
LIVER_MEAN = "oar.quantec.Liver-GTV.Mean"          # conventional, on EQD2: informative at 5 fx
LIVER_MEAN_SBRT = "oar.lq.quantec.Liver-GTV.Mean"  # SBRT 6 fx row derived (LQ) for 5 fx
# (TG-101's DC700cc, derived (LQ) for 5 fx, is replaced by the 700 cc rule: not evaluated)
ESO_MAX = "oar.tg101.Esophagus.D0.035cc"


# --- running the command line -------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    json_path: Path | None = None

    @property
    def doc(self) -> dict:
        """The JSON report: the file given to --json, else stdout (--json -)."""
        text = self.json_path.read_text(encoding="utf-8") if self.json_path else self.stdout
        return json.loads(text)


def rtqa_check(*args) -> Run:
    """``rtqa check ARGS`` in-process; never a traceback, never an uncaught exception."""
    argv = ["check", *(str(a) for a in args)]
    res = CliRunner().invoke(main, argv, env={"RTQA_DEBUG": None})
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"rtqa {' '.join(argv)} raised {res.exception!r}") \
            from res.exception
    assert "Traceback" not in res.output, res.output
    json_path = None
    if "--json" in argv:
        target = argv[argv.index("--json") + 1]
        json_path = None if target == "-" else Path(target)
    return Run(res.exit_code, res.stdout, res.stderr, json_path)


class _Runs:
    """Each distinct command line is run once per module."""

    def __init__(self):
        self._done: dict[tuple[str, ...], Run] = {}

    def __call__(self, *args) -> Run:
        key = tuple(str(a) for a in args)
        if key not in self._done:
            self._done[key] = rtqa_check(*args)
        return self._done[key]


# --- report helpers -------------------------------------------------------------------------


def checks_by_id(doc: dict) -> dict[str, dict]:
    ids = [c["id"] for c in doc["checks"]]
    assert len(ids) == len(set(ids)), f"check ids repeat: {ids}"
    return {c["id"]: c for c in doc["checks"]}


def mandatory_not_passing(doc: dict) -> dict[str, str]:
    """id -> status of every mandatory check that is not PASS."""
    return {c["id"]: c["status"] for c in doc["checks"]
            if c["priority"] == "mandatory" and c["status"] != "PASS"}


def lesion_status(doc: dict) -> dict[str, str]:
    return {les["name"]: les["status"] for les in doc["lesions"]}


def assert_valid(doc: dict) -> None:
    errors = sorted(VALIDATOR.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def one_error_line(run: Run) -> str:
    """The single ``rtqa: error: ...`` line on stderr, without its prefix."""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("rtqa: error: "), lines[0]
    return lines[0][len("rtqa: error: "):]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_summary(doc: dict) -> str:
    """The terminal summary line, rebuilt from the JSON report."""
    checks = doc["checks"]
    failed = sum(c["status"] == "FAIL" and c["priority"] == "mandatory" for c in checks)
    optimal = sum(c["status"] == "FAIL" and c["priority"] != "mandatory" for c in checks)
    ne = sum(c["status"] == "NOT EVALUATED" for c in checks)
    passed = sum(c["status"] == "PASS" for c in checks)
    warnings = sum(c["status"] == "WARN" for c in checks) + len(doc["warnings"])
    parts = [f"{failed} failed"] + ([f"{optimal} optimal not met"] if optimal else [])
    parts += [f"{ne} not evaluated", f"{passed} passed",
              f"{warnings} warning" + ("" if warnings == 1 else "s")]
    return f"{doc['status']} — {', '.join(parts)} (protocol {doc['protocol']['name']})"


# --- fixtures -------------------------------------------------------------------------------

BUILDERS = {
    "pass": cases.passing,
    "underdosed": cases.lesion_underdosed,
    "liver700": cases.normal_liver_spread,
    "liver_mean": cases.liver_mean_hot,
    "esophagus": cases.esophagus_hot_spot,
    "no_liver": cases.without_liver,
    "ambiguous": cases.ambiguous_liver,
    "grid_miss": cases.grid_misses_lung_lesion,
    "relative": cases.relative_dose,
    "alternatives": cases.alternative_plans,
}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """``export(name)``: the folder of a written case (each written once), or of a
    file-level variant of hcc_pass."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name in made:
            return made[name]
        out = tmp_path_factory.mktemp(f"export_{name}", numbered=True)
        if name in BUILDERS:
            write_case(BUILDERS[name](), out)
        else:
            src = get("pass")
            dst = out / "plan"
            if name == "no_rtdose":
                cases.copy_without(src, dst, "RD.")
            elif name == "no_rtstruct":
                cases.copy_without(src, dst, "RS.")
            elif name == "no_rtplan":
                cases.copy_without(src, dst, "RP.")
            elif name == "other_frame":
                cases.move_structure_set_to_other_frame(src, dst)
            elif name == "two_patients":
                shutil.copytree(src, dst)
                write_case(cases.other_patient(), dst / "other_patient")
            elif name == "html_refuse":
                shutil.copytree(src, dst)
            else:
                raise KeyError(name)
            out = dst
        made[name] = out
        return out

    return get


@pytest.fixture(scope="module")
def runs() -> _Runs:
    return _Runs()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def pass_run(export, runs, reports) -> Run:
    """hcc_pass with the terminal report, --json FILE and --html FILE."""
    return runs(export("pass"), "--json", reports / "pass.json", "--html", reports / "pass.html")


@pytest.fixture(scope="module")
def pass_quiet_run(export, runs, reports) -> Run:
    """A second run on hcc_pass: --quiet, JSON to a file."""
    return runs(export("pass"), "--quiet", "--json", reports / "pass-again.json")


# --- the passing plan -----------------------------------------------------------------------


def test_pass_exit_0_and_every_mandatory_check_passes(pass_run):
    assert pass_run.code == 0, pass_run.stderr
    doc = pass_run.doc
    assert doc["status"] == "PASS"
    assert doc["errors"] == [] and doc["warnings"] == []
    assert doc["patient_id"] == "RTQA-HCC-001"
    assert doc["protocol"]["name"] == "oligo-hcc"
    assert [(p["label"], p["fractions"], p["approval_status"]) for p in doc["plans"]] \
        == [("SBRT_5fx", 5, "APPROVED")]
    by_id = checks_by_id(doc)
    assert mandatory_not_passing(doc) == {}
    # every part of the protocol was evaluated, not skipped
    for cid in ("integrity.links", "integrity.frame_of_reference", "integrity.ct.slice_spacing",
                "integrity.ct.pixel_size", "integrity.approval.SBRT_5fx",
                "integrity.prescription.SBRT_5fx.PTV_Liver.max",
                "lesion.T10.prescribed_bed", "integrity.coverage.PTV_Lung",
                "lesion.Liver.bed", "lesion.Lung.bed", "lesion.T10.bed",
                "protocol.oligoprogression.lesions", "protocol.oligoprogression.organs",
                "protocol.ptv_margin.PTV_Liver", CV15, LIVER_MEAN_SBRT, ESO_MAX,
                "oar.tg101.SpinalCord.D0.035cc", "oar.quantec.Lung_L+Lung_R-GTV.Mean"):
        assert by_id[cid]["status"] == "PASS", (cid, by_id[cid])
        assert by_id[cid]["priority"] == "mandatory"
        assert by_id[cid]["source"], cid
    # the only row not evaluated is the optimal summary of organs the plan does not have
    # the only rows not passing are optimal: the summary of organs the plan does not
    # have, and PTV_Lung's prescription coverage (V100%Rx 90.5 % < 95 %; D95% 99.6 % of
    # Rx: the sample's dose is exactly Rx on the PTV surface, and the 3 mm dose grid
    # reads its edge low), shown as "optimal not met"
    assert {c["id"] for c in doc["checks"] if c["status"] != "PASS"} == {
        "oar.absent", "integrity.prescription.SBRT_5fx.PTV_Lung.coverage"}
    assert by_id["oar.absent"]["priority"] == "optimal"
    lung = by_id["integrity.prescription.SBRT_5fx.PTV_Lung.coverage"]
    assert (lung["status"], lung["priority"]) == ("FAIL", "optimal")
    assert 88.0 < lung["value"] < 95.0


@pytest.mark.parametrize("lesion, ptv", [("Liver", "PTV_Liver"), ("Lung", "PTV_Lung"),
                                         ("T10", "PTV_T10")])
def test_pass_lesion_bed_matches_the_analytic_truth(pass_run, lesion, ptv):
    doc = pass_run.doc
    (les,) = [x for x in doc["lesions"] if x["name"] == lesion]
    assert les["status"] == "PASS"
    assert les["metric"] == "D95%[Gy]" and ptv in les["targets"]
    assert les["alpha_beta"] == 10 and les["required_bed_gy"] == 60
    assert les["plans"] == ["SBRT_5fx"] and les["fractions"] == [5]
    truth = cases.PASS_BED_TRUTH[lesion]
    assert les["bed_gy"] == pytest.approx(truth, rel=0.025)
    # BED10 = D (1 + D / (5 * 10)) of the reported physical D95%
    d = les["dose_gy"]
    assert les["bed_gy"] == pytest.approx(d * (1 + d / 50.0), rel=1e-6)
    row = checks_by_id(doc)[f"lesion.{lesion}.bed"]
    assert row["structure"] == ptv and row["status"] == "PASS"
    assert row["value"] == pytest.approx(les["bed_gy"])


def test_pass_normal_liver_volume_matches_the_truth(pass_run):
    row = checks_by_id(pass_run.doc)[CV15]
    assert row["structure"] == "Liver - GTV" and row["metric"] == "CV15Gy[cc]"
    assert row["limit"] == ">= 700" and row["unit"] == "cc"
    assert row["value"] == pytest.approx(1203.0, rel=0.03)  # plans_sample/README.md
    assert "Pan" in row["source"]


def test_pass_json_validates_against_the_schema(pass_run):
    doc = pass_run.doc
    assert_valid(doc)
    assert doc["schema"] == "rtqa-report/2"
    kinds = sorted({i["kind"] for i in doc["inputs"]})
    assert kinds == ["CT", "RTDOSE", "RTPLAN", "RTSTRUCT"]
    assert len(doc["inputs"]) == 83 + 3


def test_pass_is_deterministic_apart_from_created(pass_run, pass_quiet_run):
    first, second = pass_run.doc, pass_quiet_run.doc
    assert pass_quiet_run.code == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", first["created"])
    first.pop("created"), second.pop("created")
    assert first == second
    assert list(first) == list(second)


def test_terminal_report_ends_with_the_summary_line(pass_run):
    lines = pass_run.stdout.rstrip("\n").splitlines()
    assert lines[-1] == expected_summary(pass_run.doc)
    # 1 optimal not met: PTV_Lung's prescription coverage (see the test above)
    assert lines[-1].startswith("PASS — 0 failed, 1 optimal not met, 1 not evaluated, ")
    assert pass_run.stderr == ""


def test_quiet_prints_nothing_on_stdout(pass_quiet_run):
    assert pass_quiet_run.code == 0
    assert pass_quiet_run.stdout == ""
    assert pass_quiet_run.doc["status"] == "PASS"  # the JSON file is still written


def test_html_report_contains_the_verdict(pass_run, reports):
    html = (reports / "pass.html").read_text(encoding="utf-8")
    assert re.search(r'<section class="verdict pass"', html)
    assert '<div class="verdict-status">PASS</div>' in html
    assert "All mandatory checks pass." in html
    assert "RTQA-HCC-001" in html


def test_html_onto_an_input_file_is_refused_and_the_input_is_unchanged(export, runs, reports):
    plan = export("html_refuse")
    target = plan / RS
    before = {p.name: sha256(p) for p in plan.iterdir()}
    run = runs(plan, "--html", target, "--json", reports / "refused.json")
    assert run.code == 2
    message = one_error_line(run)
    assert "cannot write the report" in message and RS in message
    assert {p.name: sha256(p) for p in plan.iterdir()} == before  # unchanged, no temp file


def test_refused_html_leaves_no_json_saying_pass(export, runs, reports):
    plan = export("html_refuse")
    run = runs(plan, "--html", plan / RS, "--json", reports / "refused.json")
    assert run.code == 2
    path = reports / "refused.json"
    assert not path.exists() or json.loads(path.read_text())["status"] == "ERROR"


def test_input_error_leaves_no_stale_html_report(export, runs, reports, pass_run):
    stale = reports / "stale.html"
    shutil.copyfile(reports / "pass.html", stale)  # an earlier run's PASS report
    run = runs(export("no_rtdose"), "--json", reports / "stale.json", "--html", stale)
    assert run.code == 2
    assert run.doc["status"] == "ERROR"
    html = stale.read_text(encoding="utf-8") if stale.exists() else ""
    assert '<div class="verdict-status">PASS</div>' not in html


# --- one kind of failure each ---------------------------------------------------------------

# name -> (failing check id, structure, metric, limit, analytic truth, tolerance, lesions)
FAILURES = {
    "underdosed": ("lesion.Lung.bed", "PTV_Lung", "BED10 of D95%[Gy]", ">= 60", 48.5, 1.5,
                   {"Liver": "PASS", "Lung": "FAIL", "T10": "PASS"}),
    "liver700": (CV15, "Liver - GTV", "CV15Gy[cc]", ">= 700", 606.0, 45.0, None),
    # physical mean of normal liver, analytic truth 17.95 Gy (rtqa.sample.phantom.sample_dose);
    # QUANTEC's 18 Gy/6 fx SBRT row derived (LQ, α/β 3) for 5 fx: < 16.91 Gy
    "liver_mean": (LIVER_MEAN_SBRT, "Liver - GTV", "Mean[Gy]", "< 16.91", 17.95, 0.3, None),
    "esophagus": (ESO_MAX, "Esophagus", "D0.035cc[Gy]", "< 35", 46.2, 2.0, None),
}


@pytest.fixture(scope="module")
def failure_run(export, runs, reports):
    def get(name: str) -> Run:
        extra = ("--html", reports / "esophagus.html") if name == "esophagus" else ()
        return runs(export(name), "--json", "-", *extra)
    return get


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_one_failure_fails_only_its_check(failure_run, name):
    cid, structure, metric, limit, truth, tol, lesions = FAILURES[name]
    run = failure_run(name)
    assert run.code == 1, run.stderr
    doc = run.doc
    assert_valid(doc)
    assert doc["status"] == "FAIL" and doc["errors"] == []
    # the underdosed lung is also prescribed 30 Gy in 5 fx (BED10 48 Gy < 60 Gy): its
    # prescribed-BED row fails with it (issue 12 item 6)
    also = {"lesion.Lung.prescribed_bed": "FAIL"} if name == "underdosed" else {}
    assert mandatory_not_passing(doc) == {cid: "FAIL", **also}
    row = checks_by_id(doc)[cid]
    assert (row["structure"], row["metric"], row["limit"]) == (structure, metric, limit)
    assert row["value"] == pytest.approx(truth, abs=tol)
    assert lesion_status(doc) == (lesions or {"Liver": "PASS", "Lung": "PASS", "T10": "PASS"})


def test_underdosed_lesion_reports_its_bed(failure_run):
    (les,) = [x for x in failure_run("underdosed").doc["lesions"] if x["name"] == "Lung"]
    assert les["bed_gy"] < 60 and les["prescribed_bed_gy"] == pytest.approx(48.0)
    assert les["dose_gy"] == pytest.approx(30.0, abs=0.5)


def test_normal_liver_rule_and_mean_are_told_apart(failure_run):
    spread = checks_by_id(failure_run("liver700").doc)
    assert spread[CV15]["status"] == "FAIL" and spread[LIVER_MEAN]["status"] == "PASS"
    assert spread[LIVER_MEAN]["value"] == pytest.approx(23.3, abs=2.0)  # EQD2, truth
    hot = checks_by_id(failure_run("liver_mean").doc)
    assert hot[LIVER_MEAN]["status"] == "FAIL" and hot[CV15]["status"] == "PASS"
    # the conventional EQD2 row fails too but only informs: the SBRT row applies at 5 fx
    assert hot[LIVER_MEAN]["priority"] == "optimal" and "informative only" in hot[LIVER_MEAN]["note"]
    assert hot[LIVER_MEAN_SBRT]["status"] == "FAIL" and hot[LIVER_MEAN_SBRT]["derivation"]
    assert hot[CV15]["value"] == pytest.approx(933.0, abs=45.0)
    assert "EQD2" in hot[LIVER_MEAN]["note"]


def test_html_of_a_failing_plan_shows_fail(failure_run, reports):
    assert failure_run("esophagus").code == 1
    html = (reports / "esophagus.html").read_text(encoding="utf-8")
    assert '<div class="verdict-status">FAIL</div>' in html
    assert "Esophagus" in html


# --- input errors: exit 2, one line, an ERROR report -----------------------------------------

# name -> (extra arguments, words the one-line message must contain)
INPUT_ERRORS = {
    "no_rtdose": ((), ["no RTDOSE", RS]),
    "no_rtstruct": ((), ["no RTSTRUCT"]),
    "no_rtplan": ((), ["no RTPLAN", "--fractions", RD]),
    "relative": ((), ["DoseUnits is RELATIVE", RD]),
    "two_patients": ((), ["several patients", "RTQA-HCC-001", "RTQA-HCC-002"]),
    "other_frame": ((), ["frame of reference", RS]),
}


def test_dose_grid_missing_a_lesion_gives_an_error_report(export, runs, reports):
    """A lesion entirely outside the dose grid: the report is complete, that lesion is NOT
    EVALUATED with the reason, and the plan is ERROR (exit 2) — never PASS."""
    run = runs(export("grid_miss"), "--json", reports / "grid_miss.json")
    assert run.code == 2
    doc = run.doc
    assert_valid(doc)
    assert doc["status"] == "ERROR"
    lung = next(c for c in doc["checks"] if c["id"] == "lesion.Lung.bed")
    assert lung["status"] == "NOT EVALUATED"
    assert "outside" in lung["note"] and "dose grid" in lung["note"]
    assert lesion_status(doc)["Lung"] == "NOT EVALUATED"
    assert lesion_status(doc)["Liver"] == "PASS"


@pytest.mark.parametrize("name", sorted(INPUT_ERRORS))
def test_input_error_exit_2_one_line_and_error_report(export, runs, reports, name):
    extra, words = INPUT_ERRORS[name]
    run = runs(export(name), *extra, "--json", reports / f"{name}.json")
    assert run.code == 2
    message = one_error_line(run)
    for w in words:
        assert w in message, (w, message)
    doc = run.doc
    assert_valid(doc)
    assert doc["status"] == "ERROR"
    assert doc["errors"] == [message]
    assert doc["checks"] == [] and doc["lesions"] == []
    assert run.stdout.strip() == ""  # no half report on stdout


def test_input_error_through_the_installed_command(export):
    """Same as above in a real process: exit code, JSON on stdout, one line on stderr."""
    exe = Path(sys.executable).with_name("rtqa")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                           "from rtqa.cli import main; main()"]
    env = {k: v for k, v in os.environ.items() if k != "RTQA_DEBUG"}
    proc = subprocess.run(cmd + ["check", str(export("no_rtdose")), "--json", "-"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("rtqa: error: ") and "no RTDOSE" in line
    doc = json.loads(proc.stdout)
    assert_valid(doc)
    assert doc["status"] == "ERROR" and doc["errors"] == [line[len("rtqa: error: "):]]


def test_no_rtplan_with_fractions_evaluates(export, runs, pass_run):
    """--fractions 5 replaces the missing RTPLAN's fraction count (issue 3: no plan, no
    guess, unless --fractions N): the plan is evaluated (lesion BEDs as with the RTPLAN,
    every organ row passes). The RTPLAN the RTDOSE references is missing: the links check
    says so as a WARN (the fraction count was given explicitly); ApprovalStatus unknown: WARN."""
    run = runs(export("no_rtplan"), "--fractions", "5", "--json", "-")
    doc = run.doc
    assert_valid(doc)
    # without the RTPLAN the prescription is unknown: each lesion's prescribed-BED10 row
    # (mandatory, issue 12 item 6) is NOT EVALUATED with its reason, so the plan is
    # ERROR, never PASS; everything else is evaluated as before
    assert run.code == 2 and doc["status"] == "ERROR" and doc["errors"] == []
    assert mandatory_not_passing(doc) == {
        "integrity.links": "WARN", f"integrity.approval.{RD}": "WARN",
        **{f"lesion.{n}.prescribed_bed": "NOT EVALUATED" for n in ("Liver", "Lung", "T10")}}
    for n in ("Liver", "Lung", "T10"):
        row = checks_by_id(doc)[f"lesion.{n}.prescribed_bed"]
        assert row["reason"] == "prescription_unlinked" and "no RTPLAN" in row["note"]
    assert "references an RTPLAN that is not in the export" \
        in checks_by_id(doc)["integrity.links"]["note"]
    assert [p["fractions"] for p in doc["plans"]] == [5]
    with_plan = {x["name"]: x["bed_gy"] for x in pass_run.doc["lesions"]}
    for les in doc["lesions"]:
        assert les["status"] == "PASS" and les["fractions"] == [5]
        assert les["bed_gy"] == pytest.approx(with_plan[les["name"]], rel=1e-6)
        assert "--fractions 5" in les["note"]
    def oar_rows(d):
        return {c["id"]: c["status"] for c in d["checks"]
                if c["category"] == "organs at risk" and c["priority"] == "mandatory"}
    assert oar_rows(doc) == oar_rows(pass_run.doc)  # the same rows, all PASS
    assert set(oar_rows(doc).values()) == {"PASS"} and CV15 in oar_rows(doc)


def test_fractions_contradicting_the_rtplan_cannot_pass_a_failing_plan(export, runs):
    """PTV_Lung 30 Gy / 5 fx (BED10 48 Gy) with --fractions 2 would read BED10 75 Gy: the
    contradiction is refused, never evaluated with the wrong fraction count."""
    run = runs(export("underdosed"), "--fractions", "2", "--json", "-")
    assert run.code == 2 and run.doc["status"] == "ERROR"
    assert "contradicts RTPLAN" in one_error_line(run)


# --- a mandatory check that cannot be evaluated: ERROR -----------------------------------------


def test_missing_liver_makes_the_normal_liver_rule_not_evaluated(export, runs):
    run = runs(export("no_liver"), "--json", "-")
    assert run.code == 2 and run.stderr == ""
    doc = run.doc
    assert_valid(doc)
    assert doc["status"] == "ERROR" and doc["errors"] == []
    assert mandatory_not_passing(doc) == {CV15: "NOT EVALUATED"}
    row = checks_by_id(doc)[CV15]
    assert "no structure matching 'Liver'" in row["note"]
    assert set(lesion_status(doc).values()) == {"PASS"}


def test_ambiguous_liver_is_error_until_mapped(export, runs):
    run = runs(export("ambiguous"), "--json", "-")
    assert run.code == 2
    doc = run.doc
    assert_valid(doc)
    assert doc["status"] == "ERROR"
    liver_rows = (CV15, LIVER_MEAN, LIVER_MEAN_SBRT)
    assert mandatory_not_passing(doc) == {cid: "NOT EVALUATED" for cid in liver_rows}
    for cid in liver_rows:
        note = checks_by_id(doc)[cid]["note"]
        assert "'Liver' is ambiguous" in note and "'Liver_old'" in note and "--map" in note

    mapped = runs(export("ambiguous"), "--map", "Liver=Liver", "--json", "-")
    assert mapped.code == 0, mapped.stderr
    doc = mapped.doc
    assert doc["status"] == "PASS" and mandatory_not_passing(doc) == {}
    for cid in liver_rows:
        row = checks_by_id(doc)[cid]
        assert row["status"] == "PASS"
        assert "Liver" in row["rois"] and "Liver_old" not in row["rois"]
    assert "Liver = Liver" in doc["conventions"]["names"]


# --- protocols and extra constraint files --------------------------------------------------------

EXTRA_TOML = """\
name = "Local extra limits"
source = "e2e test: local institutional limits"

[[constraint]]
structure = "Heart"
metric = "Mean[Gy]"
limit = "< 0.5"
source = "e2e local limit: heart mean"
status = "V"

[[constraint]]
structure = "Stomach"
metric = "D0.035cc[Gy]"
limit = "< 20"
source = "e2e local limit: stomach max"
status = "V"
"""

MINIMAL_PROTOCOL = """\
[protocol]
name = "e2e-minimal"
source = "e2e test: a protocol with one row"

[[constraint]]
structure = "SpinalCord"
metric = "D0.035cc[Gy]"
limit = "< 20"
source = "e2e minimal protocol: cord max"
status = "V"
"""


def test_extra_constraints_add_rows_with_their_source(export, runs, reports):
    extra = reports / "extra.toml"
    extra.write_text(EXTRA_TOML, encoding="utf-8")
    run = runs(export("pass"), "--constraints", extra, "--json", "-")
    assert run.code == 1, run.stderr  # the heart mean of ~1 Gy breaks the local < 0.5 Gy
    doc = run.doc
    assert_valid(doc)
    assert doc["status"] == "FAIL"
    added = [c for c in doc["checks"] if c["source"].startswith("e2e local limit")]
    assert {(c["id"], c["structure"], c["metric"], c["limit"], c["status"], c["source"])
            for c in added} == {
        ("oar.extra.Heart.Mean", "Heart", "Mean[Gy]", "< 0.5", "FAIL",
         "e2e local limit: heart mean (status V; extra.toml:4)"),
        ("oar.extra.Stomach.D0.035cc", "Stomach", "D0.035cc[Gy]", "< 20", "PASS",
         "e2e local limit: stomach max (status V; extra.toml:11)")}  # traced to file:line
    assert mandatory_not_passing(doc) == {"oar.extra.Heart.Mean": "FAIL"}
    heart = checks_by_id(doc)["oar.extra.Heart.Mean"]
    assert heart["value"] == pytest.approx(0.98, abs=0.15)  # analytic heart mean (physical)
    # the protocol's own rows are all still there
    assert sum(c["id"].startswith("oar.tg101.") for c in doc["checks"]) >= 10


def test_protocol_file_replaces_the_default(export, runs, reports):
    path = reports / "minimal-protocol.toml"
    path.write_text(MINIMAL_PROTOCOL, encoding="utf-8")
    run = runs(export("pass"), "--protocol", path, "--json", "-")
    assert run.code == 0, run.stderr
    doc = run.doc
    assert_valid(doc)
    assert doc["status"] == "PASS"
    assert doc["protocol"]["name"] == "e2e-minimal"
    assert Path(doc["protocol"]["path"]).resolve() == path.resolve()
    oar = [c for c in doc["checks"] if c["category"] == "organs at risk"]
    assert [(c["structure"], c["metric"], c["limit"], c["status"], c["source"]) for c in oar] \
        == [("SpinalCord", "D0.035cc[Gy]", "< 20", "PASS",
             "e2e minimal protocol: cord max (status V; minimal-protocol.toml:5)")]
    # nothing of oligo-hcc: no lesion BED rule, no trial rules, no planning-CT rule
    assert doc["lesions"] == []
    assert not [c["id"] for c in doc["checks"]
                if c["category"] in ("lesions", "protocol") or c["id"].startswith("integrity.ct")]


def test_alternative_plans_are_not_summed_without_confirmation(export, runs):
    """Two plans that each cover every lesion alone (a re-plan next to the original):
    summing them would pass the lesions on twice the dose. Without --sum-plans every
    lesion is NOT EVALUATED (ERROR, exit 2) naming both plans; with it the lesions are
    evaluated on the BED sum (and the doubled organ doses fail)."""
    run = runs(export("alternatives"), "--json", "-")
    assert run.code == 2, run.stderr
    lesion_rows = [c for c in run.doc["checks"] if c["id"].endswith(".bed")]
    assert len(lesion_rows) == 3
    for c in lesion_rows:
        assert c["status"] == "NOT EVALUATED", c
        assert "alternative plans" in c["note"] and "'SBRT_5fx_v2'" in c["note"], c["note"]
    confirmed = runs(export("alternatives"), "--sum-plans", "--json", "-")
    assert confirmed.code == 1, confirmed.stderr
    rows = {c["id"]: c for c in confirmed.doc["checks"] if c["id"].endswith(".bed")}
    single = {c["id"]: c for c in runs(export("pass"), "--json", "-").doc["checks"]
              if c["id"].endswith(".bed")}
    assert rows.keys() == single.keys()
    for cid, c in rows.items():
        assert c["status"] == "PASS" and c["value"] > 1.5 * single[cid]["value"], (c, single[cid])
