"""Malformed, inconsistent and hostile input never passes (issue 6).

Every case of the bad-input corpus (tests/corpus.py: the damage, its defined behaviour)
is built from a fresh copy of plans_sample/hcc_pass and checked with ``rtqa check PLAN
--json --html`` (in-process through click's CliRunner, or in a real process where a
timeout, a real stderr or another user matters). Asserted for every case: no traceback,
no "internal error", an exit code of 0/1/2 and never 0 where the case must not pass,
the defined behaviour of the case, and input files byte-identical after the run. Reports
are never written over an input file (last tests).

A case where rtqa does not (yet) behave as defined is marked ``xfail(strict=True)`` with
the bug; fixing the bug turns it into an unexpected pass, which fails until the mark goes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

try:
    import corpus
except ImportError:  # tests collected as a package
    from tests import corpus

from rtqa.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

#: Cases where rtqa does not behave as defined: the bug, where it is, what it does.
BUGS: dict[str, str] = {}


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    exception: str | None      # an exception that escaped the command (in-process runs)
    report: dict | None        # the JSON report, when written
    html: str | None

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def _outputs(out: Path) -> tuple[dict | None, str | None]:
    rj, rh = out / "report.json", out / "report.html"
    report = json.loads(rj.read_text(encoding="utf-8")) if rj.exists() else None
    html = rh.read_text(encoding="utf-8") if rh.exists() else None
    return report, html


def run_in_process(plan: Path, out: Path, html: bool = True) -> Outcome:
    """``rtqa check`` through click's CliRunner."""
    args = ["check", str(plan), "--json", str(out / "report.json")]
    if html:
        args += ["--html", str(out / "report.html")]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, args)
    exc = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = f"{type(result.exception).__name__}: {result.exception}"
    report, html = _outputs(out)
    return Outcome(result.exit_code, result.stdout, result.stderr, exc, report, html)


def run_in_subprocess(plan: Path, out: Path, prefix: list[str] | None = None,
                      timeout: float = 180, html: bool = True) -> Outcome:
    """``rtqa check`` in a real Python process (``prefix``: e.g. a command that runs it
    as another user, whose HOME and matplotlib cache then go to ``out``)."""
    cmd = (prefix or []) + [
        sys.executable, "-c", "import sys; from rtqa.cli import main; "
        "sys.exit(main(prog_name='rtqa'))", "check", str(plan),
        "--json", str(out / "report.json")]
    if html:
        cmd += ["--html", str(out / "report.html")]
    env = {k: v for k, v in os.environ.items() if k != "RTQA_DEBUG"}
    if prefix:
        env.update(HOME=str(out), MPLCONFIGDIR=str(out / ".mpl"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env)
    report, html = _outputs(out)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, None, report, html)


# --- running one corpus case ---------------------------------------------------------------

def _unprivileged_prefix(where: Path) -> list[str] | None:
    """A command prefix that runs a program as user nobody with no capabilities (util-linux
    setpriv), when that works here with this Python and rtqa; else None."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = where / "probe"
    probe.write_text("x")
    probe.chmod(0)
    code = ("import os, sys, rtqa.cli\n"
            "try:\n    open(sys.argv[1]).read()\nexcept PermissionError:\n    sys.exit(0)\n"
            "sys.exit(3)")
    try:
        proc = subprocess.run(prefix + [sys.executable, "-c", code, str(probe)], cwd=ROOT,
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        probe.unlink()
    return prefix if proc.returncode == 0 else None


def _run_case(case: corpus.Case, tmp_path: Path):
    """(plan, outcome, digests before, digests after)."""
    if case.needs_unprivileged and os.geteuid() == 0:
        # root reads a chmod 000 file anyway: run rtqa as an unprivileged user, in a
        # folder that user can reach; skip when that is not possible here.
        work = Path(tempfile.mkdtemp(prefix="rtqa-failclosed-"))
        try:
            work.chmod(0o755)
            prefix = _unprivileged_prefix(work)
            if prefix is None:
                pytest.skip("running as root, where chmod 000 does not block reads, and rtqa "
                            "cannot be run as an unprivileged user here (setpriv)")
            plan = corpus.build_case(case, work / "case")
            (work / "case").chmod(0o755)
            out = work / "out"
            out.mkdir()
            out.chmod(0o777)
            before = corpus.input_digests(plan)
            outcome = run_in_subprocess(plan, out, prefix)
            after = corpus.input_digests(plan)
            return plan, outcome, before, after
        finally:
            corpus.restore_permissions(work)
            shutil.rmtree(work, ignore_errors=True)
    plan = corpus.build_case(case, tmp_path / "case")
    out = tmp_path / "out"
    out.mkdir()
    before = corpus.input_digests(plan)
    try:
        # the HTML report (about a second per full run) where the case is about it or
        # the plan passes; every report path is exercised by the JSON report
        html = bool(case.extra) or case.expect == "same"
        if case.process:
            outcome = run_in_subprocess(plan, out, timeout=180, html=html)
        else:
            outcome = run_in_process(plan, out, html=html)
    finally:
        corpus.restore_permissions(tmp_path / "case")
    after = corpus.input_digests(plan)
    return plan, outcome, before, after


def _has(text: str, words) -> bool:
    low = text.lower()
    return any(w.lower() in low for w in words)


def _one_line_error(case: corpus.Case, o: Outcome) -> None:
    lines = o.error_lines()
    assert len(lines) == 1, f"stderr must be one line, got {len(lines)}:\n{o.stderr}"
    line = lines[0]
    assert line.startswith("rtqa: error: "), line
    if case.file:
        assert case.file in line, f"the message does not name {case.file}: {line}"
    if case.words:
        assert _has(line, case.words), f"the message does not name the problem " \
                                       f"{case.words}: {line}"


def _report_texts(report: dict) -> list[str]:
    texts = list(report.get("warnings", [])) + list(report.get("errors", []))
    texts += [c.get("note", "") for c in report.get("checks", [])]
    texts += [les.get("note", "") for les in report.get("lesions", [])]
    return texts


def _assert_defined(case: corpus.Case, o: Outcome) -> None:
    if case.expect == "refuse":
        assert o.exit_code == 2, f"exit {o.exit_code}, expected 2 (refused)\n{o.stderr}"
        _one_line_error(case, o)
    elif case.expect == "error":
        assert o.exit_code == 2, f"exit {o.exit_code}, expected 2 (ERROR)\n{o.stderr}"
        if o.error_lines():
            _one_line_error(case, o)
        else:
            assert o.report is not None and o.report["status"] == "ERROR", o.report
            ne = [c for c in o.report["checks"]
                  if c["status"] == "NOT EVALUATED" and c["priority"] == "mandatory"]
            assert ne, "ERROR without a mandatory NOT EVALUATED check"
            assert any(_has(c["note"], case.words) for c in ne) or \
                _has(" ".join(o.report["errors"] + o.report["warnings"]), case.words), \
                f"no NOT EVALUATED reason names the problem {case.words}: " \
                f"{[c['note'] for c in ne]}"
    elif case.expect == "not_pass":
        assert o.exit_code in (1, 2), f"exit {o.exit_code}: must not pass"
        if o.exit_code == 2 and o.error_lines():
            _one_line_error(case, o)
    elif case.expect == "warn":
        assert o.exit_code in (0, 1), f"exit {o.exit_code}, expected 0 or 1\n{o.stderr}"
        assert not o.error_lines(), o.stderr
        assert o.report is not None
        texts = _report_texts(o.report)
        assert any(_has(t, case.words) for t in texts), \
            f"the report says nothing about {case.words}"
        assert _has(o.stdout, case.words), f"the terminal report says nothing about " \
                                           f"{case.words}"
    elif case.expect == "same":
        assert o.exit_code == 0, f"exit {o.exit_code}, expected the sample's PASS\n{o.stderr}"
        assert o.report is not None and o.report["status"] == "PASS"
    else:
        raise AssertionError(case.expect)


def _assert_extra(case: corpus.Case, o: Outcome) -> None:
    if "uncovered_cc" in case.extra:
        rep = o.report
        outside = {s["name"]: s["outside_cc"] for s in rep["structures"]
                   if s["outside_cc"] and s["outside_cc"] > 0}
        checked = {r for c in rep["checks"] if c["category"] != "plan integrity"
                   for r in c["rois"]}
        partial = sorted(set(outside) & checked)
        assert partial, "the cropped grid should leave checked structures partly outside"
        cov = {c["id"]: c for c in rep["checks"]}
        for name in partial:
            c = cov.get(f"integrity.coverage.{name}")
            assert c is not None, f"no coverage row for {name}"
            assert c["status"] in ("WARN", "NOT EVALUATED"), c
            assert c["unit"] == "cc" and c["value"] == pytest.approx(outside[name], abs=1e-3)
            assert "cc" in c["note"] and "outside" in c["note"], c["note"]
    if "other_listed" in case.extra:
        kinds = {Path(i["path"]).name: i["kind"] for i in o.report["inputs"]}
        assert kinds.get("RI.portal.dcm") == "OTHER", kinds
    if "escaped" in case.extra:
        html = o.html
        assert html is not None
        assert not re.search(r"<\s*script", html, re.I), "a <script> element in the HTML"
        assert not re.search(r"<\s*img", html, re.I), "an <img> element in the HTML"
        assert "&lt;script&gt;" in html, "the hostile name is not shown escaped"
        assert corpus.HOSTILE_NAME in [s["name"] for s in o.report["structures"]], \
            "the JSON report does not keep the ROI name exactly"


def _params():
    out = []
    for case in corpus.CASES:
        marks = []
        if case.name in BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=BUGS[case.name]))
        out.append(pytest.param(case, id=case.name, marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_corpus_case(case: corpus.Case, tmp_path: Path):
    plan, o, before, after = _run_case(case, tmp_path)
    # never a traceback, never an internal error, a known exit code
    assert o.exception is None, f"an exception escaped rtqa check: {o.exception}"
    for stream in (o.stdout, o.stderr):
        assert "Traceback" not in stream, stream
    assert "internal error" not in o.stderr, o.stderr
    assert o.exit_code in (0, 1, 2), o.exit_code
    # the defined behaviour of this case
    _assert_defined(case, o)
    _assert_extra(case, o)
    # a report that exists is never a PASS where the case must not pass
    if case.expect in ("refuse", "error", "not_pass") and o.report is not None:
        assert o.report["status"] != "PASS"
    # inputs untouched
    assert before == after, "an input file changed"


def test_corpus_is_complete():
    """The corpus holds every kind of damage issue 6 lists."""
    needed = {"truncated_rtdose", "truncated_rtstruct", "truncated_rtplan",
              "truncated_ct_slice", "non_dicom_dcm_extra", "dose_is_secondary_capture",
              "dose_is_rt_image", "missing_pixel_data", "missing_grid_frame_offset_vector",
              "missing_contour_data", "missing_fractions", "frame_of_reference_mismatch",
              "dose_references_absent_plan", "two_rtstructs_for_one_plan",
              "dose_units_relative", "dose_type_error", "dose_grid_scaling_nan",
              "dose_grid_scaling_inf", "dose_grid_scaling_zero", "dose_grid_scaling_negative",
              "dose_grid_scaling_1e6", "oblique_dose", "grid_misses_structure",
              "grid_misses_part", "empty_roi", "duplicate_roi_names", "contour_two_points",
              "self_intersecting_contour", "two_patients", "hostile_roi_name", "empty_folder",
              "unreadable_file", "symlink_loop"}
    assert needed <= set(corpus.BY_NAME), needed - set(corpus.BY_NAME)
    assert set(BUGS) <= set(corpus.BY_NAME)


def test_corpus_damage_is_real(tmp_path):
    """Sanity of the corpus itself: the damaged files differ from the sample, and the
    truncated ones are shorter."""
    for name in ("truncated_rtdose", "dose_grid_scaling_nan", "contour_two_points"):
        plan = corpus.build_case(corpus.BY_NAME[name], tmp_path / name)
        diff = [p.name for p in plan.iterdir()
                if p.read_bytes() != (corpus.SAMPLE / p.name).read_bytes()]
        assert len(diff) == 1, diff
    rd = tmp_path / "truncated_rtdose" / "plan" / corpus.RD
    assert rd.stat().st_size < (corpus.SAMPLE / corpus.RD).stat().st_size


# --- reports are never written over an input file -------------------------------------------

_REFUSED = re.compile(r"refus\w* to (over)?write .*(input|report)|input file.*refus", re.I)


@pytest.mark.parametrize("how", ["same_path", "symlink", "hardlink", "dotdot"])
def test_error_report_never_overwrites_an_input(tmp_path, how):
    """A run whose --json names an input, however the path reaches it, is refused before
    the plan is read (output paths are checked first): nothing is written onto the input,
    and the one error line names the input file that would have been overwritten."""
    plan = corpus.build_case(corpus.BY_NAME["truncated_rtdose"], tmp_path / "case")
    target = plan / corpus.RP
    before = corpus.input_digests(plan)
    out = tmp_path / "out"
    out.mkdir()
    if how == "same_path":
        dest = target
    elif how == "symlink":
        dest = out / "report.json"
        dest.symlink_to(target)
    elif how == "hardlink":
        dest = out / "report.json"
        os.link(target, dest)
    else:
        dest = out / ".." / "case" / "plan" / corpus.RP
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        r = CliRunner().invoke(main, ["check", str(plan), "--json", str(dest)])
    assert r.exit_code == 2
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert corpus.input_digests(plan) == before
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and corpus.RP in lines[0], r.stderr
    assert _REFUSED.search(lines[0]), r.stderr


@pytest.mark.parametrize("option,victim", [("--json", corpus.RP), ("--html", corpus.RS)])
def test_report_never_overwrites_an_input(tmp_path, option, victim):
    """A complete run whose --json/--html names an input (directly, or through a symbolic
    link): exit 2, the input unchanged, the other report still fine."""
    plan = corpus.copy_sample(tmp_path / "plan")
    out = tmp_path / "out"
    out.mkdir()
    before = corpus.input_digests(plan)
    dest = plan / victim if option == "--json" else out / "report.html"
    if option == "--html":
        dest.symlink_to(plan / victim)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        r = CliRunner().invoke(main, ["check", str(plan), option, str(dest), "-q"])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and _REFUSED.search(lines[0]), r.stderr
    assert corpus.input_digests(plan) == before
