"""The results of a session (``Summary``) and the text printed at the end of a run:
counts by outcome, oracle verdict, PASS category, mutation and file, crash sites and
false-pass kinds, then every crash and false pass (at most 25 of each) with the command
that reproduces it."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from .common import BASES
from .runner import CaseResult


@dataclass
class Summary:
    requested: int
    run: int = 0
    seconds: float = 0.0
    stopped_by_time: bool = False
    results: list[CaseResult] = field(default_factory=list)
    baselines: dict = field(default_factory=dict)

    @property
    def crashes(self) -> list[CaseResult]:
        return [r for r in self.results if r.category == "crash"]

    @property
    def false_passes(self) -> list[CaseResult]:
        return [r for r in self.results if r.category == "false_pass"]

    def counter(self, attr: str) -> Counter:
        return Counter(getattr(r, attr) for r in self.results)


def _reason_key(r: CaseResult) -> str:
    """A short, case-independent description of why a PASS was false."""
    text = r.reasons[0] if r.reasons else r.verdict
    text = re.sub(r"^[^:]*\.dcm: ", "", text)
    text = re.sub(r"'[^']*'|\[[^]]*\]|\d+(\.\d+)?", "_", text)
    return f"{r.verdict}: {text}"[:110]


def _mutations(r: CaseResult) -> str:
    return "; ".join(f"{f}: {op}: {d}" for f, op, d in r.mutations)


def format_summary(s: Summary, seed: int, jobs: int, time_limit: float) -> str:
    lines = [f"rtqa fuzz: seed {seed}, {s.requested} cases requested, {jobs} job(s), "
             f"time limit {time_limit:g} s",
             f"cases run:     {s.run}" + (" (stopped at the time limit)" if s.stopped_by_time
                                          else "") +
             f" in {s.seconds:.1f} s ({s.run / max(s.seconds, 1e-9):.1f} cases/s)",
             f"crashes:       {len(s.crashes)}",
             f"false passes:  {len(s.false_passes)}"]
    out = s.counter("outcome")
    lines.append("outcomes:      " + ", ".join(
        f"{k} {out[k]}" for k in ("refused", "ERROR", "FAIL", "PASS", "crash") if out[k]))
    for b in BASES:
        sub = Counter(r.outcome for r in s.results if r.base == b)
        lines.append(f"  {b:9s}    " + ", ".join(f"{k} {v}" for k, v in sorted(sub.items())))
    cat = s.counter("category")
    lines.append("PASS verdicts: " + ", ".join(
        f"{k} {cat[k]}" for k in ("inert", "immaterial", "warned", "silent_drift",
                                  "false_pass") if cat[k])
        + "   (inert: nothing QA-relevant damaged; immaterial: numbers within 0.5%;"
        " warned: tolerated damage named in the report; silent_drift: valid DICOM with a"
        " plausible different value, see rtqa/fuzz/__init__.py)")
    judged = Counter(r.verdict for r in s.results if r.verdict != "not judged")
    lines.append("oracle:        " + (", ".join(f"{k} {v}" for k, v in judged.most_common())
                                      or "-") + "   (cases judged: PASS verdicts, or all "
                 "with --judge-all)")
    fewer = [r for r in s.results if r.outcome == "PASS" and r.rows_missing]
    lines.append(f"PASS with fewer rows than the baseline (a check, lesion or structure gone): "
                 f"{len(fewer)}")
    ops = Counter(op for r in s.results for _, op, _ in r.mutations)
    lines.append("mutations:     " + ", ".join(f"{k} {v}" for k, v in ops.most_common()))
    kinds = Counter(f.split(".")[0] for r in s.results for f, _, _ in r.mutations)
    lines.append("files:         " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    multi = [r for r in s.results if r.multiline_message]
    other = [w for r in s.results for w in r.leaked_warnings
             if not w.startswith("[pydicom]")]
    n_pyd = sum(1 for r in s.results for w in r.leaked_warnings if w.startswith("[pydicom]"))
    lines.append(f"messages:      {len(multi)} multi-line RtqaError message(s); Python "
                 f"warnings during run_check: {n_pyd} from pydicom (the CLI hides them), "
                 f"{len(other)} other (printed on stderr by the CLI)")
    if other:
        lines.append("  e.g. " + other[0])
    sites = Counter(r.site or r.message.splitlines()[0][:120] for r in s.crashes)
    if sites:
        lines.append("crash sites:")
        lines += [f"  {n:4d} x {site}" for site, n in sites.most_common()]
    reasons = Counter(_reason_key(r) for r in s.false_passes)
    if reasons:
        lines.append("false-pass kinds:")
        lines += [f"  {n:4d} x {k}" for k, n in reasons.most_common()]
    for title, items in (("CRASH", s.crashes), ("FALSE PASS", s.false_passes)):
        for r in items[:25]:
            lines.append(f"{title} case {r.index} ({r.base}): " + _mutations(r))
            lines.append(f"    oracle {r.verdict}: " + "; ".join(r.reasons)[:600])
            if r.message:
                lines.append("    " + r.message.strip().replace("\n", "\n    ")[:1500])
            lines.append(f"    reproduce: python -m rtqa_fuzz --seed {seed} --only {r.index} "
                         "--keep /tmp/rtqa-fuzz-case")
    drifts = [r for r in s.results if r.category == "silent_drift"]
    for r in drifts[:5]:
        lines.append(f"silent drift case {r.index} ({r.base}): " + _mutations(r)
                     + f" -> {r.drift_key} moved {r.drift:.3g}, "
                     f"rows -{r.rows_missing}/+{r.rows_added}")
    return "\n".join(lines)
