"""Running one case: generate its damage, write it into the case folder, run rtqa
in-process, judge the outcome.

``Fuzzer.generate(i)`` is a pure function of (seed, i): the random stream is
``random.Random(f"rtqa-fuzz:{seed}:{i}")``. ``run_case`` runs ``rtqa.checks.pipeline.run_check``
(and, on a sample of cases, the report renderers and the CLI) on the damaged folder,
consults the oracle on a PASS (or always with ``always_judge``) and classifies the
outcome: crash, false_pass, ok, warned, inert, immaterial or silent_drift. The case
folder is a set of hard links to the pristine sample; damaged files replace their link
for the duration of the case.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .common import BASES, CLI_EVERY, HTML_EVERY, _kind_of_bytes
from .content import read_content
from .memo import DvhMemo, ReaderMemo
from .mutators import Mutator
from .oracle import Verdict, judge
from .values import checked_rois, drift, mentions, report_values


@dataclass
class CaseResult:
    index: int
    base: str
    mutations: list[tuple[str, str, str]]
    verdict: str                 # the oracle's category
    reasons: list[str]
    outcome: str                 # refused | ERROR | FAIL | PASS | crash
    category: str  # crash | false_pass | ok | warned | inert | immaterial | silent_drift
    message: str = ""
    drift: float = 0.0
    drift_key: str = ""
    rows_missing: int = 0
    rows_added: int = 0
    seconds: float = 0.0
    leaked_warnings: list[str] = field(default_factory=list)
    multiline_message: bool = False
    tolerated_mentioned: dict = field(default_factory=dict)
    site: str = ""               # crash: exception type and innermost rtqa function


class Fuzzer:
    """Builds cases, runs them, classifies the outcome. One per process."""

    def __init__(self, workdir: Path, seed: int, memo: bool = True,
                 always_judge: bool = False):
        self.workdir, self.seed, self.always_judge = workdir, seed, always_judge
        from pydicom import config as pdconfig
        self.pydicom_modes = (pdconfig.settings.reading_validation_mode,
                              pdconfig.settings.writing_validation_mode)
        self.pristine_dirs = {b: workdir / "pristine" / b for b in BASES}
        self.memo = DvhMemo() if memo else None  # injected into every run_check
        self.reader_memo = ReaderMemo().install() if memo else None
        self.bases = {}
        for b in BASES:
            d = self.pristine_dirs[b]
            files = {p.name: p.read_bytes() for p in sorted(d.iterdir())}
            kinds = {n: _kind_of_bytes(data) for n, data in files.items()}
            contents = {n: read_content(data, kinds[n]) for n, data in files.items()}
            bad = [n for n, c in contents.items() if c.unreadable]
            if bad:
                raise RuntimeError(f"oracle cannot read the pristine sample {b}: {bad}")
            self.bases[b] = {"files": files, "kinds": kinds, "contents": contents,
                             "mutator": Mutator(files, kinds)}
        self.baseline: dict[str, dict] = {}
        self.case_dirs: dict[str, Path] = {}

    def options(self):
        """The check options of every run: the DVH memo injected when memoising."""
        from rtqa.checks.pipeline import CheckOptions
        return CheckOptions(dvh_cache=self.memo)

    # -- baselines --------------------------------------------------------------------
    def compute_baselines(self) -> dict[str, dict]:
        from rtqa.checks.pipeline import run_check
        out = {}
        for b in BASES:
            rep = run_check([str(self.case_dir(b))], self.options())
            out[b] = {"status": rep.status, "values": report_values(rep),
                      "checked": sorted(checked_rois(rep))}
        return out

    def set_baselines(self, baselines: dict[str, dict]):
        self.baseline = baselines

    # -- the case folder ---------------------------------------------------------------
    def case_dir(self, base: str) -> Path:
        if base not in self.case_dirs:
            d = self.workdir / f"w{os.getpid()}" / base
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            for n in self.bases[base]["files"]:
                os.link(self.pristine_dirs[base] / n, d / n)
            self.case_dirs[base] = d
        return self.case_dirs[base]

    def _apply(self, base: str, current: dict[str, bytes | None]) -> None:
        for p, _, data in self._unlink_damaged(base, current):
            if data is not None:
                p.write_bytes(data)

    def _restore(self, base: str, current: dict[str, bytes | None]) -> None:
        pristine = self.bases[base]["files"]
        for p, n, _ in self._unlink_damaged(base, current):
            if n in pristine:
                os.link(self.pristine_dirs[base] / n, p)

    def _unlink_damaged(self, base: str, current: dict[str, bytes | None]):
        """(path, name, data) of each file of ``current`` that is not the pristine file
        (damaged, added or removed), after removing it from the case folder."""
        d = self.case_dir(base)
        pristine = self.bases[base]["files"]
        for n, data in current.items():
            if n in pristine and data is pristine[n]:
                continue
            p = d / n
            if p.exists() or p.is_symlink():
                p.unlink()
            yield p, n, data

    # -- one case ----------------------------------------------------------------------
    def generate(self, index: int):
        rng = random.Random(f"rtqa-fuzz:{self.seed}:{index}")
        base = BASES[rng.randrange(len(BASES))]
        info = self.bases[base]
        current: dict[str, bytes | None] = dict(info["files"])
        n_mut = rng.choices([1, 2, 3], [85, 11, 4])[0]
        muts = [info["mutator"].mutate(rng, current) for _ in range(n_mut)]
        return base, current, muts

    def oracle(self, base: str, current: dict[str, bytes | None]) -> Verdict:
        info = self.bases[base]
        contents = {n: (None if data is None else
                        info["contents"][n] if data is info["files"].get(n) else
                        read_content(data, info["kinds"].get(n) or
                                     info["kinds"][n.replace(".copy.dcm", ".dcm")]))
                    for n, data in current.items()}
        return judge(contents, info["contents"], set(self.baseline[base]["checked"]))

    def run_case(self, index: int, keep: Path | None = None) -> CaseResult:
        """Generate, apply and run case ``index``. The oracle is consulted when the verdict
        is PASS (the only verdict it can turn into a failure) or when ``always_judge``."""
        t0 = time.perf_counter()
        base, current, muts = self.generate(index)
        self._apply(base, current)
        try:
            res = self._run(index, base, muts)
            if res.outcome == "PASS" or self.always_judge or keep is not None:
                verdict = self.oracle(base, current)
                res.verdict = verdict.category
                res.reasons = list(verdict.reasons or verdict.tolerated_rois)
                if res.category != "crash":
                    res.category = self._classify(res, verdict, self.baseline[base])
            if keep is not None:
                self._keep(keep, index, base, muts, res)
        finally:
            self._restore(base, current)
        res.seconds = time.perf_counter() - t0
        return res

    def _run(self, index, base, muts) -> CaseResult:
        from rtqa.errors import RtqaError
        from rtqa.checks.pipeline import run_check
        bl = self.baseline[base]
        res = CaseResult(index, base, [(m.file, m.op, m.detail) for m in muts],
                         "not judged", [], "", "ok")
        folder = str(self.case_dir(base))
        from pydicom import config as pdconfig
        if (pdconfig.settings.reading_validation_mode,
                pdconfig.settings.writing_validation_mode) != self.pydicom_modes:
            raise RuntimeError("pydicom settings changed under rtqa")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                report = run_check([folder], self.options())
            except RtqaError as exc:
                report = None
                msg = str(exc)
                res.outcome, res.message = "refused", msg
                res.multiline_message = "\n" in msg.strip()
                if not msg.strip():
                    res.outcome, res.category = "crash", "crash"
                    res.message = "RtqaError with an empty message"
                    return res
            except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
                res.outcome = res.category = "crash"
                res.site = crash_site(exc)
                res.message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
                return res
        res.leaked_warnings = [
            ("[pydicom] " if "pydicom" in str(w.filename).replace("\\", "/") else "")
            + f"{w.category.__name__}: {w.message}"[:200] for w in caught]
        if report is not None:
            res.outcome = report.status
            res.drift, res.drift_key, res.rows_missing, res.rows_added = drift(
                bl["values"], report_values(report))
            res.tolerated_mentioned = {r: mentions(report, r) for r in bl["checked"]}
            problem = self._render(report, index, folder)
            if problem:
                res.outcome = res.category = "crash"
                res.message = problem
                return res
        elif index % CLI_EVERY == 0:
            problem = self._cli(folder, None)
            if problem:
                res.outcome = res.category = "crash"
                res.message = problem
                return res
        return res

    def _render(self, report, index: int, folder: str) -> str | None:
        from rtqa.report.json_report import dumps
        from rtqa.report.text import render_text
        from rtqa.results import EXIT_CODES
        try:
            render_text(report, color=False, width=None)
            json.loads(dumps(report))
            if index % HTML_EVERY == 0:
                from rtqa.report.html import render_html
                render_html(report)
        except Exception as exc:  # noqa: BLE001
            return f"report rendering: {type(exc).__name__}: {exc}\n" \
                   f"{traceback.format_exc(limit=6)}"
        if index % CLI_EVERY == 0:
            return self._cli(folder, EXIT_CODES[report.status])
        return None

    def _cli(self, folder: str, expected: int | None) -> str | None:
        from click.testing import CliRunner
        from rtqa.cli import main
        r = CliRunner().invoke(main, ["check", folder, "-q"])
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            return f"CLI: {type(r.exception).__name__}: {r.exception}"
        if r.exit_code not in (0, 1, 2):
            return f"CLI exit code {r.exit_code}"
        if "Traceback" in r.output:
            return "CLI printed a traceback"
        if expected is not None and r.exit_code != expected:
            return f"CLI exit code {r.exit_code}, verdict says {expected}"
        if expected is None and r.exit_code != 2:
            return f"CLI exit code {r.exit_code} on an input run_check refused"
        return None

    def _classify(self, res: CaseResult, verdict: Verdict, bl: dict) -> str:
        moved = res.drift > 0 or res.rows_missing or res.rows_added
        if res.outcome != "PASS":
            return "ok"
        if bl["status"] != "PASS":
            res.reasons.insert(0, f"PASS on {res.base}, whose verdict is {bl['status']}")
            return "false_pass"
        if verdict.category in ("unreadable", "invalid"):
            return "false_pass"
        if verdict.category == "tolerated":
            silent = [r for r in verdict.tolerated_rois
                      if not res.tolerated_mentioned.get(r, False)]
            if silent:
                res.reasons = [f"contour damage of checked ROI(s) {silent} dropped without "
                               "a word in the report"]
                return "false_pass"
            return "warned"
        if verdict.category == "inert":
            if moved:
                res.reasons = ["nothing QA-relevant changed, yet the report's numbers or "
                               f"rows did (worst: {res.drift_key} {res.drift:.3g}, rows -"
                               f"{res.rows_missing}/+{res.rows_added})"]
                return "false_pass"
            return "inert"
        return "silent_drift" if moved else "immaterial"

    def _keep(self, keep: Path, index, base, muts, res: CaseResult):
        dst = keep / f"case-{index:06d}-{base}"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(self.case_dir(base), dst)
        (dst.parent / f"case-{index:06d}.txt").write_text(
            "\n".join([f"seed {self.seed} case {index} base {base}"]
                      + [f"{m.file}: {m.op}: {m.detail}" for m in muts]
                      + [f"oracle: {res.verdict}"] + list(res.reasons)
                      + [f"rtqa: {res.outcome} ({res.category}) {res.message}"]) + "\n")


def crash_site(exc: BaseException) -> str:
    """'ExceptionType at rtqa/module.py:function' for the innermost frame inside rtqa (not
    the fuzzer)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/rtqa/" in f.filename.replace("\\", "/")
              and not _in_fuzzer(f.filename)]
    if not frames:
        return type(exc).__name__
    f = frames[-1]
    rel = f.filename.replace("\\", "/").split("/rtqa/", 1)[1]
    return f"{type(exc).__name__} at rtqa/{rel}:{f.name} (line {f.lineno})"


def _in_fuzzer(filename: str) -> bool:
    """Is this source file part of the fuzzer (this package, or the former module)?"""
    path = filename.replace("\\", "/")
    return "/rtqa/fuzz/" in path or path.endswith("fuzz.py")
