"""``make bench-check``: where the CPU time of one ``rtqa check`` goes (issue 16 item 3).

    .venv/bin/python bench/check_cpu.py [--runs 5] [--plan plans_sample/hcc_pass]
                                        [--profile N] [--no-pdf] [--base TREE]

Each run is a fresh ``python -m rtqa check PLAN --json OUT`` (and the same with
``--html``, then with ``--pdf`` when WeasyPrint can be used; ``--no-pdf`` skips it),
timed as the whole process: user + system CPU of the process from ``os.wait4``
(interpreter start, imports, reading, DVHs, checks and reports). The goals of issue 16:
<= 1.0 s CPU for JSON, <= 1.3 s with HTML, <= 1.5 s with PDF, on the bundled passing
sample. Before the runs of each kind and after every round, a plain Python loop
(``make bench-batch-sample``'s reference) is timed in a fresh process: its rate (M loops
per CPU-second) says how fast the machine ran Python at those moments, so that figures
from different machines or loads can be compared.

A second kind of child splits one run into stages, by CPU time of the process
(``time.process_time``), with the same code path as the CLI:

* **start + imports**: interpreter start, then every module a check imports (found by a
  first run in another child: ``sys.modules`` after a check), imported up front so that
  the later stages hold no import time;
* **reading**: ``rtqa.reading.load_export`` (scan, completeness walk, every file parsed,
  dose decoded and scaled, CT headers, structures);
* **DVHs**: every DVH the dose service computes (``compute_dvh``, dose sums and
  conversions);
* **checks**: the rest of ``run_check`` (check families, accounting, input digests);
* **report**: the CLI's output step (JSON, and HTML when asked; terminal text off).

``--profile N``: print the N most expensive functions (cProfile, cumulative) of one
staged run. Medians over ``--runs``. A measurement, not a test: exit 0 unless a child
fails.

Children run with byte-code caching (``PYTHONDONTWRITEBYTECODE`` removed from their
environment), as an installed rtqa runs: pip compiles every module when it installs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _child_modules(plan: str, fmt: str) -> None:
    """Run one check in this process and print the modules it imported (JSON)."""
    before = set(sys.modules)
    _run_cli(plan, fmt)
    print(json.dumps(sorted(set(sys.modules) - before)))


def _run_cli(plan: str, fmt: str) -> int:
    from rtqa.cli import main
    out = Path(tempfile.mkdtemp(prefix="rtqa-check-cpu-"))
    args = ["check", plan, "--json", str(out / "r.json")]
    if fmt != "json":
        args += [f"--{fmt}", str(out / f"r.{fmt}")]
    try:
        main.main(args, standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    for f in out.iterdir():
        f.unlink()
    out.rmdir()
    return code


def _child_stages(plan: str, fmt: str, modules: list[str], profile: int) -> None:
    import importlib
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception:  # noqa: BLE001 - a module a check imported must import
            pass
    t_imports = time.process_time()
    spent = {"reading": 0.0, "dvh": 0.0, "check": 0.0, "report": 0.0}

    def timed(stage, func):
        def wrapper(*a, **k):
            c0 = time.process_time()
            try:
                return func(*a, **k)
            finally:
                spent[stage] += time.process_time() - c0
        return wrapper

    import rtqa.checks.context as context
    import rtqa.checks.pipeline as pipeline
    import rtqa.cli.check as cli_check
    import rtqa.dvh.service as service
    context.load_export = timed("reading", context.load_export)
    for name in ("compute_dvh", "combined", "convert", "convert_dvh"):
        if hasattr(service, name):
            setattr(service, name, timed("dvh", getattr(service, name)))
    pipeline.run_check = timed("check", pipeline.run_check)
    cli_check._emit = timed("report", cli_check._emit)
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    code = _run_cli(plan, fmt)
    if prof is not None:
        prof.disable()
        import pstats
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(profile)
    total = time.process_time()
    print(json.dumps({
        "exit": code, "start+imports": t_imports, "reading": spent["reading"],
        "dvh": spent["dvh"],
        "checks": spent["check"] - spent["reading"] - spent["dvh"],
        "report": spent["report"], "total_in_process": total}))


#: Children run with byte-code caching on (as after ``pip install``, which compiles
#: every module): PYTHONDONTWRITEBYTECODE would make every run compile rtqa again.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _wait(cmd: list[str], tree: str | None = None) -> tuple[float, float, int, str]:
    env = dict(ENV)
    if tree:
        env["PYTHONPATH"] = tree
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd=tree or REPO, text=True, env=env)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), out


STAGES = ["start+imports", "reading", "dvh", "checks", "report"]
FORMATS = ["json", "html", "pdf"]
#: Issue 16's goals, s CPU of the whole process: JSON, JSON + HTML, JSON + PDF.
GOALS = {"json": 1.0, "html": 1.3, "pdf": 1.5}
#: Iterations of the reference loop (about 0.15 s of CPU on a 20 M loops/s machine).
LOOPS = 3_000_000


def _loop_rate(py: str) -> float:
    """Loops per CPU-second of the plain Python loop of ``make bench-batch-sample``'s
    reference, in a fresh process now: how fast this machine runs Python at this moment,
    for comparing figures taken on different machines or loads."""
    code = f"import sys; sys.path.insert(0, {str(REPO / 'bench')!r}); " \
           f"from batch_sample_bench import _burn; print(_burn({LOOPS}))"
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    return LOOPS / float(out.stdout.strip().splitlines()[-1])


def _pdf_available(py: str) -> bool:
    code = "from rtqa.report.pdf import pdf_available; import sys; sys.exit(bool(pdf_available()))"
    return subprocess.run([py, "-c", code], capture_output=True, env=ENV).returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", default=str(REPO / "plans_sample" / "hcc_pass"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--base", metavar="TREE",
                    help="also run another rtqa source tree (e.g. `git archive main` "
                         "unpacked), interleaved with this one, for a before/after")
    ap.add_argument("--child", choices=["modules", "stages"])
    ap.add_argument("--format", choices=FORMATS, default="json")
    ap.add_argument("--no-pdf", action="store_true", help="skip the PDF runs")
    ap.add_argument("--modules", default="")
    args = ap.parse_args(argv)
    if args.child == "modules":
        _child_modules(args.plan, args.format)
        return 0
    if args.child == "stages":
        _child_stages(args.plan, args.format, json.loads(args.modules or "[]"), args.profile)
        return 0
    py = sys.executable
    me = str(Path(__file__).resolve())
    plan = str(Path(args.plan).resolve())
    trees = [("this tree", None)] + ([("base " + args.base, str(Path(args.base).resolve()))]
                                     if args.base else [])
    failed = False
    print(f"rtqa check {plan}: CPU (user + system) of the whole process and by stage, "
          f"median of {args.runs} (interleaved); load {os.getloadavg()[0]:.1f}")
    formats = [f for f in FORMATS if f != "pdf" or not args.no_pdf]
    if "pdf" in formats and not _pdf_available(py):
        print("  --pdf: skipped (WeasyPrint or Pango is not installed: make pdf-tools, "
              "pip install 'rtqa[pdf]')")
        formats.remove("pdf")
    for fmt in formats:
        label = "--json" + ("" if fmt == "json" else f" --{fmt}")
        extra = ["--format", fmt]
        tmp = Path(tempfile.mkdtemp(prefix="rtqa-check-cpu-"))
        cmd = [py, "-m", "rtqa", "check", plan, "--json", str(tmp / "r.json")]
        if fmt != "json":
            cmd += [f"--{fmt}", str(tmp / f"r.{fmt}")]
        loops = [_loop_rate(py)]
        results = {}
        for name, tree in trees:
            _, _, _, mods = _wait([py, me, "--child", "modules", "--plan", plan] + extra, tree)
            results[name] = {"modules": json.loads(mods.strip().splitlines()[-1]),
                             "totals": [], "peaks": [], "stages": []}
        for _ in range(args.runs):
            for name, tree in trees:
                r = results[name]
                cpu, peak, code, _ = _wait(cmd, tree)
                failed |= code not in (0, 1)
                r["totals"].append(cpu)
                r["peaks"].append(peak)
                _, _, code, out = _wait([py, me, "--child", "stages", "--plan", plan,
                                         "--modules", json.dumps(r["modules"])] + extra, tree)
                if code != 0:
                    failed = True
                    continue
                r["stages"].append(json.loads(out.strip().splitlines()[-1]))
            loops.append(_loop_rate(py))
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
        for name, _ in trees:
            r = results[name]
            t = r["totals"]
            print(f"  {label:14s} {name}: whole process {statistics.median(t):.2f} s CPU "
                  f"(min {min(t):.2f}, max {max(t):.2f}); peak RSS {max(r['peaks']):.0f} MB")
            if r["stages"]:
                parts = ", ".join(f"{k} {statistics.median(s[k] for s in r['stages']):.3f}"
                                  f" ({min(s[k] for s in r['stages']):.3f})" for k in STAGES)
                print(f"  {'':14s}   stages, s CPU median (min): {parts}")
        goal = GOALS[fmt]
        best = statistics.median(results["this tree"]["totals"])
        print(f"  {'':14s}   goal <= {goal:.1f} s CPU: {best:.2f} s -> "
              f"{'MET' if best <= goal else 'NOT MET'}; reference loop at the same moments "
              f"{statistics.median(loops) / 1e6:.2f} M loops per CPU-s (min "
              f"{min(loops) / 1e6:.2f}, max {max(loops) / 1e6:.2f})")
        if args.profile:
            subprocess.run([py, me, "--child", "stages", "--plan", plan, "--modules",
                            json.dumps(results["this tree"]["modules"]), "--profile",
                            str(args.profile)] + extra, cwd=REPO, stdout=subprocess.DEVNULL,
                           env=ENV)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
