"""The command line of ``python -m rtqa_fuzz`` (``make fuzz``). Exit 0: no crash, no false
pass; 1: some; 2: the fuzzer itself could not run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from .common import DEFAULT_CASES, DEFAULT_TIME_LIMIT
from .driver import run
from .summary import Summary, format_summary


def main(argv: list[str] | None = None) -> int:
    from . import __doc__ as overview  # the package's docstring (set up by now)
    ap = argparse.ArgumentParser(prog="python -m rtqa_fuzz",
                                 description=overview.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=DEFAULT_CASES,
                    help=f"number of cases (default {DEFAULT_CASES})")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT,
                    help=f"stop after this many seconds (default {DEFAULT_TIME_LIMIT:g})")
    ap.add_argument("--jobs", type=int, default=None,
                    help="worker processes (default: the number of CPUs, at most 8)")
    ap.add_argument("--only", type=int, action="append", metavar="I",
                    help="run only case I (repeatable): reproduce a finding")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="write each case's damaged export to DIR (with --only)")
    ap.add_argument("--no-memo", action="store_true", help="do not memoise file reads and DVHs")
    ap.add_argument("--verify-memo", action="store_true",
                    help="check the memoised baseline against the plain one (always done "
                         "by multi-process runs)")
    ap.add_argument("--results", type=Path, metavar="FILE",
                    help="write every case's result to FILE (JSON lines)")
    ap.add_argument("--judge-all", action="store_true",
                    help="run the oracle on every case (statistics), not only on PASS")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    args = ap.parse_args(argv)
    if args.cases < 1 or args.time_limit <= 0:
        ap.error("--cases and --time-limit must be positive")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    jobs = args.jobs or min(os.cpu_count() or 1, 8)
    show = not args.quiet and sys.stderr.isatty()

    def progress(s: Summary):
        if show:
            sys.stderr.write(f"\r{len(s.results)} cases, {len(s.crashes)} crashes, "
                             f"{len(s.false_passes)} false passes")
            sys.stderr.flush()

    try:
        summary = run(args.cases, args.seed, args.time_limit, jobs, not args.no_memo,
                      args.verify_memo or None, args.only, args.keep, progress,
                      args.judge_all)
    except RuntimeError as exc:
        print(f"rtqa fuzz: cannot run: {exc}", file=sys.stderr)
        return 2
    if show:
        sys.stderr.write("\n")
    if args.results:
        with open(args.results, "w", encoding="utf-8") as fh:
            for r in summary.results:
                fh.write(json.dumps(dataclasses.asdict(r), default=str) + "\n")
    print(format_summary(summary, args.seed, jobs, args.time_limit))
    return 1 if summary.crashes or summary.false_passes else 0
