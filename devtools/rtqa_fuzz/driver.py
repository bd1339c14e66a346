"""A fuzzing session: ``run`` prepares a private copy of the samples, computes the
baseline reports, and runs the cases in this process or on a pool of forked workers,
until done or the time limit. Results are sorted by case index, so the outcome does not
depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

from .common import BASES, DEFAULT_CASES, DEFAULT_TIME_LIMIT, SAMPLES
from .runner import CaseResult, Fuzzer
from .summary import Summary
from .values import drift


# --- process pool plumbing -------------------------------------------------------------

_WORKER: Fuzzer | None = None
_WORKER_ERROR: str | None = None


def _worker_init(workdir: str, seed: int, memo: bool, baselines: dict, verify: bool,
                 judge_all: bool):
    """Pool initialiser. A failure is kept and raised by the first case (an exception
    here would make the pool start replacement workers for ever)."""
    global _WORKER, _WORKER_ERROR
    try:
        _WORKER = Fuzzer(Path(workdir), seed, memo, judge_all)
        _WORKER.set_baselines(baselines)
        if verify:
            _same_baselines(baselines, _WORKER.compute_baselines())
    except Exception as exc:  # noqa: BLE001
        _WORKER_ERROR = f"worker set-up failed: {type(exc).__name__}: {exc}"


def _worker_run(index: int) -> CaseResult:
    if _WORKER_ERROR or _WORKER is None:
        raise RuntimeError(_WORKER_ERROR or "worker not set up")
    return _WORKER.run_case(index)


def prepare(workdir: Path) -> None:
    for b in BASES:
        dst = workdir / "pristine" / b
        shutil.copytree(SAMPLES / b, dst)


def run(cases: int = DEFAULT_CASES, seed: int = 1, time_limit: float = DEFAULT_TIME_LIMIT,
        jobs: int | None = None, memo: bool = True, verify_memo: bool | None = None,
        only: list[int] | None = None, keep: Path | None = None,
        progress=None, judge_all: bool = False) -> Summary:
    """Run the fuzzer; ``only``: just these case indices (reproduction)."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    jobs = jobs or min(os.cpu_count() or 1, 8)
    indices = list(only) if only else list(range(cases))
    summary = Summary(len(indices))
    with tempfile.TemporaryDirectory(prefix="rtqa-fuzz-") as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        if jobs <= 1 or len(indices) < 4 or keep is not None:
            fz = Fuzzer(workdir, seed, memo, judge_all)
            try:
                summary.baselines = fz.compute_baselines()
                fz.set_baselines(summary.baselines)
                if verify_memo and memo:
                    _check_memo(fz)
                for i in indices:
                    if time.perf_counter() > deadline:
                        summary.stopped_by_time = True
                        break
                    summary.results.append(fz.run_case(i, keep))
                    if progress:
                        progress(summary)
            finally:
                if fz.reader_memo is not None:
                    fz.reader_memo.uninstall()
        else:
            plain = Fuzzer(workdir, seed, memo=False)  # the truth: no memo in this process
            baselines = summary.baselines = plain.compute_baselines()
            verify = memo if verify_memo is None else (verify_memo and memo)
            ctx = multiprocessing.get_context("fork")
            pool = ctx.Pool(jobs, _worker_init,
                            (str(workdir), seed, memo, baselines, verify, judge_all))
            try:
                it = pool.imap_unordered(_worker_run, indices, chunksize=1)
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        summary.stopped_by_time = True
                        break
                    try:
                        summary.results.append(it.next(timeout=remaining))
                    except StopIteration:
                        break
                    except multiprocessing.TimeoutError:
                        summary.stopped_by_time = True
                        break
                    if progress:
                        progress(summary)
            finally:
                pool.terminate()
                pool.join()
        _verify_pristine(workdir)
    summary.results.sort(key=lambda r: r.index)
    summary.run = len(summary.results)
    summary.seconds = time.perf_counter() - t0
    return summary


def _check_memo(fz: Fuzzer) -> None:
    with_memo = fz.baseline
    memo, fz.memo = fz.memo, None
    fz.reader_memo.uninstall()
    plain = fz.compute_baselines()
    fz.memo = memo
    fz.reader_memo.install()
    _same_baselines(plain, with_memo)


def _same_baselines(plain: dict, with_memo: dict) -> None:
    for b in BASES:
        if plain[b]["status"] != with_memo[b]["status"] or \
                drift(plain[b]["values"], with_memo[b]["values"]) != (0.0, "", 0, 0):
            raise RuntimeError(f"memoised baseline of {b} differs from the plain one")


def _verify_pristine(workdir: Path) -> None:
    for b in BASES:
        for p in (workdir / "pristine" / b).iterdir():
            if p.read_bytes() != (SAMPLES / b / p.name).read_bytes():
                raise RuntimeError(f"a pristine sample file was modified: {p.name}")
