"""``make bench-batch``: throughput and worker memory of ``rtqa batch``.

    .venv/bin/python bench/batch_bench.py [--plans 200] [--out bench/out/batch_bench]
                                          [--max-tasks-per-child 1] [--regenerate]

Steps:

1. Generate ``--plans`` sample plans with ``rtqa.sample`` (in parallel) into
   ``OUT/exports`` (git-ignored ``bench/out/`` by default; reused by later runs while
   ``OUT/manifest.json`` matches the plan count, this generator, rtqa and pydicom), in
   two halves ``part1/`` and ``part2/`` with the same mix:
   * sizes (CT 48-64 pixels square, 83 slices of 3 mm; contours every 4 mm):
     tiny  60 % - 3 ROIs + 2 lesions, 6 mm dose grid,
     small 30 % - 6 ROIs + 3 lesions, 5 mm grid, medium 10 % - 11 ROIs + 3 lesions, 4 mm;
   * verdicts: each patient has an hcc_pass and an hcc_fail variant (each with its own
     structure set); about 8 % are broken (RTDOSE cut in half, RTSTRUCT or RTDOSE missing,
     or a corrupt ``.dcm`` alone in a folder);
   * layouts: one folder per plan, CT and RT objects in separate nested folders, or both
     plans of a patient in one folder.
2. ``rtqa batch`` (``rtqa.batch.run_batch``, default options, empty output folder, no
   resume) with 1 worker on ``part1/``, 2 workers on all plans, and 1 worker on
   ``part1/`` again: the two 1-worker runs bracket the 2-worker run so that a change in
   other load on the machine shows; the faster of them counts (the conservative ratio).
3. Print plans per minute, the scaling ratio (throughput 2 / throughput 1) next to the
   scaling of a pure-Python CPU loop in 1 and 2 processes measured just before and after
   (what the machine can give at that moment: about x2 when idle), how busy the
   workers were (their CPU time / (wall x workers): well below 100 % means other load
   or overhead), per-plan CPU time, and the peak RSS of the worker processes against
   the number of plans checked (completion order, 5 groups) with the orchestrating
   process's RSS at the end of each group; and, for each class of identical plans
   (size and verdict), the median peak RSS in the first and the second half of the
   run: equal means no growth.

Peak RSS of a worker is its VmHWM (Linux; ru_maxrss elsewhere) reported with each plan's
result; with the default ``max_tasks_per_child=1`` every plan gets a fresh worker
process forked from a preloaded server, so the figure is the memory one plan needs
(shared library pages included). ``--max-tasks-per-child 0`` keeps workers for the whole
run instead (to see whether a long-lived worker grows).

Results also go to ``OUT/batch_bench.json``. Exit status 0 when every run completes with
the expected statuses (each generated plan's verdict is known), 1 otherwise.
Figures depend on the machine and on other load: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out" / "batch_bench"

SIZES = {  # name: (organs kept, lesions, dose grid mm, CT pixels)
    "tiny": (("External", "Liver", "SpinalCord"), ("Liver", "T10"), 6.0, 48),
    "small": (("External", "Liver", "SpinalCord", "Lung_R", "Lung_L", "Heart"),
              ("Liver", "Lung", "T10"), 5.0, 48),
    "medium": (None, ("Liver", "Lung", "T10"), 4.0, 64),
}
SIZE_CYCLE = ["tiny"] * 6 + ["small"] * 3 + ["medium"]           # 60 / 30 / 10 %
# broken: plans i with i % 24 in (9, 22) (about 8 %), kinds in turn
BROKEN_KINDS = ("truncated_dose", "no_rtstruct", "no_dose", "corrupt_file")
LAYOUTS = ("flat", "split", "shared")


def plan_spec(i: int) -> dict:
    """What plan ``i`` is: size, verdict, layout, breakage (deterministic). Patient
    ``i // 2`` has two plans (one hcc_pass, one hcc_fail variant, each with its own
    structure set); patients alternate between part1 and part2, and consecutive pairs
    of patients share size and layout, so both halves get the same mix."""
    j = i // 2
    broken = BROKEN_KINDS[(i // 24) % len(BROKEN_KINDS)] if i % 24 in (9, 22) else None
    verdict = "pass" if i % 2 == 0 else "fail"
    return {"i": i, "size": SIZE_CYCLE[(j // 2) % len(SIZE_CYCLE)], "verdict": verdict,
            "layout": LAYOUTS[(j // 2) % len(LAYOUTS)], "broken": broken,
            "patient": f"BENCH-{j:04d}", "part": "part1" if j % 2 == 0 else "part2",
            "expected": "ERROR" if broken else verdict.upper()}


def _case(spec: dict):
    from rtqa.sample import hcc_fail, hcc_pass
    organs, lesions, grid, pixels = SIZES[spec["size"]]
    case = (hcc_pass if spec["verdict"] == "pass" else hcc_fail)()
    plans = tuple(replace(p, label=f"P{spec['i']:04d}_{spec['verdict']}",
                          grid=replace(p.grid, spacing_mm=(grid,) * 3),
                          targets=tuple(t for t in p.targets if t.lesion in lesions))
                  for p in case.plans)
    structures = case.structures if organs is None else tuple(
        s for s in case.structures if s.name in organs)
    name = f"bench{spec['i']:04d}"
    return replace(case, name=name, seed=name, patient_id=spec["patient"],
                   ct=replace(case.ct, rows=pixels, columns=pixels), plans=plans,
                   contour_spacing_mm=4.0, min_contour_points=12, structures=structures,
                   lesions=tuple(les for les in case.lesions if les.name in lesions))


def generate_one(args: tuple[dict, str]) -> dict:
    spec, root = args
    from rtqa.sample import write_case
    root = Path(root) / spec["part"]
    i = spec["i"]
    if spec["broken"] == "corrupt_file":
        d = root / "incoming" / f"job{i:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "RD.corrupt.dcm").write_bytes(os.urandom(4096))
        return spec
    tmp = root / ".tmp" / f"{i:04d}"
    r = write_case(_case(spec), tmp)
    rt = [r["rtstruct"]] + [x for p in r["plans"] for x in [p["rtplan"], *p["rtdose"]] if x]
    if spec["layout"] == "flat":
        dests = [(f, root / spec["patient"] / f"plan{i:04d}") for f in r["ct"] + rt]
    elif spec["layout"] == "split":
        base = root / "site" / "2025" / spec["patient"] / f"study{i:04d}"
        dests = [(f, base / "CT" / "series1") for f in r["ct"]] + [(f, base / "RT") for f in rt]
    else:   # two plans of one patient in one folder: file names made unique
        dests = [(f, root / "shared" / spec["patient"]) for f in r["ct"] + rt]
    for f, d in dests:
        d.mkdir(parents=True, exist_ok=True)
        target = d / (f"{i:04d}_{Path(f).name}" if spec["layout"] == "shared" else Path(f).name)
        shutil.move(f, target)
        if spec["broken"] == "truncated_dose" and Path(f).name.startswith("RD."):
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
        elif spec["broken"] == "no_rtstruct" and Path(f).name.startswith("RS."):
            target.unlink()
        elif spec["broken"] == "no_dose" and Path(f).name.startswith("RD."):
            target.unlink()
    shutil.rmtree(tmp, ignore_errors=True)
    return spec


def generate(n: int, root: Path) -> list[dict]:
    from rtqa.batch import _mp_context
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    specs = [plan_spec(i) for i in range(n)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=_mp_context()) as ex:
        list(ex.map(generate_one, [(s, str(root)) for s in specs], chunksize=4))
    for part in ("part1", "part2"):
        shutil.rmtree(root / part / ".tmp", ignore_errors=True)
    return specs


def _burn(n: int) -> float:
    t = time.process_time()
    x = 0
    for i in range(n):
        x += i * i
    return time.process_time() - t


def reference_scaling(n: int = 2_000_000) -> float:
    """Speed-up of 2 processes over 1 on a pure-Python CPU loop, now, on this machine:
    about 2 on an idle 2-core machine; what the batch scaling can be compared with."""
    from rtqa.batch import _mp_context
    walls = {1: [], 2: []}
    with ProcessPoolExecutor(max_workers=1, mp_context=_mp_context()) as one, \
            ProcessPoolExecutor(max_workers=2, mp_context=_mp_context()) as two:
        list(one.map(_burn, [1000]))                 # start the processes
        list(two.map(_burn, [1000] * 2))
        for _ in range(3):                           # interleaved, best of 3
            for p, ex in ((1, one), (2, two)):
                t = time.perf_counter()
                list(ex.map(_burn, [n] * 4))
                walls[p].append(time.perf_counter() - t)
    return min(walls[1]) / min(walls[2])


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run(root: Path, out: Path, workers: int, mtpc: int | None) -> dict:
    from rtqa.batch import BatchOptions, run_batch
    if out.exists():
        shutil.rmtree(out)
    parent_rss: list[tuple[int, float]] = []

    def progress(event: str, info: dict) -> None:
        if event == "plan":
            parent_rss.append((info["done"], _rss_mb()))
            if sys.stderr.isatty():
                print(f"\r  {workers} worker(s): {info['done']}/{info['total']} plans",
                      end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    res = run_batch(root, BatchOptions(out=str(out), workers=workers,
                                       max_tasks_per_child=mtpc), progress=progress)
    wall = time.perf_counter() - t0
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"  {workers} worker(s): {len(res.rows)} plans in {wall:.0f} s", flush=True)
    return {"workers": workers, "plans": len(res.rows), "wall_s": wall,
            "plans_per_min": 60.0 * len(res.rows) / wall, "counts": res.summary["counts"],
            "exit_code": res.exit_code, "rows": res.rows, "stats": res.stats,
            "parent_rss": parent_rss}


def _unexpected(result: dict, specs: list[dict], part: str | None) -> list[str]:
    """Patients whose plan statuses differ from the generated verdicts (a corrupt file
    alone in its folder is an ERROR entry of its own, without a patient)."""
    mine = [s for s in specs if part is None or s["part"] == part]
    want: dict[str, list[str]] = {}
    for s in mine:
        if s["broken"] != "corrupt_file":
            want.setdefault(s["patient"], []).append(s["expected"])
    got: dict[str, list[str]] = {}
    for r in result["rows"]:
        got.setdefault(r["patient_id"], []).append(r["status"])
    bad = [f"{pid}: expected {sorted(w)}, got {sorted(got.get(pid, []))}"
           for pid, w in sorted(want.items()) if sorted(w) != sorted(got.get(pid, []))]
    n_corrupt = sum(s["broken"] == "corrupt_file" for s in mine)
    if sorted(got.get("", [])) != ["ERROR"] * n_corrupt:
        bad.append(f"corrupt files: expected {n_corrupt} ERROR entries, got {got.get('', [])}")
    return bad


def memory_table(result: dict, specs: list[dict], groups: int = 5):
    """Worker peak RSS by completion order (groups), and its trend per plan size."""
    size_of = {f"P{s['i']:04d}_{s['verdict']}": s["size"] for s in specs}
    label_of = {r["key"]: r["label"] for r in result["rows"]}
    stats = [s for s in result["stats"] if s.get("peak_rss_kb")]
    n = len(stats)
    parent = dict(result["parent_rss"])
    rows = []
    for g in range(groups):
        lo, hi = g * n // groups, (g + 1) * n // groups
        chunk = stats[lo:hi]
        if not chunk:
            continue
        peaks = [s["peak_rss_kb"] / 1024 for s in chunk]
        rows.append({"plans": f"{lo + 1}-{hi}", "median_mb": statistics.median(peaks),
                     "max_mb": max(peaks), "processes": len({s["pid"] for s in chunk}),
                     "parent_mb": parent.get(hi, float("nan"))})
    # growth: within each class of identical plans (size and verdict, checked in full:
    # an ERROR at reading stops early), the median peak of the first half of the run
    # against that of the second half
    trends = {}
    for size in SIZES:
        for verdict in ("pass", "fail"):
            ys = [s["peak_rss_kb"] / 1024 for s in stats
                  if size_of.get(label_of.get(s["key"], "")) == size
                  and label_of.get(s["key"], "").endswith(verdict)
                  and s.get("status") in ("PASS", "FAIL")]
            if len(ys) >= 4:
                h = len(ys) // 2
                first, second = statistics.median(ys[:h]), statistics.median(ys[h:])
                trends[f"{size}/{verdict}"] = {"plans": len(ys), "first_half_mb": first,
                                               "second_half_mb": second,
                                               "change_mb": second - first}
    return rows, trends


SPEC_VERSION = 2   # bump when plan_spec/_case change (cached exports are regenerated)


def _manifest(n: int) -> dict:
    import pydicom

    import rtqa
    return {"plans": n, "spec": SPEC_VERSION, "rtqa": rtqa.__version__,
            "pydicom": pydicom.__version__}


def _line(r: dict) -> str:
    c = r["counts"]
    cpu = sum(s.get("cpu_s") or 0 for s in r["stats"])
    busy = cpu / (r["wall_s"] * r["workers"]) if r["wall_s"] else float("nan")
    return (f"  {r['label']:<22} {r['workers']:>7}  {r['plans']:>5}  {r['wall_s']:>7.1f}  "
            f"{r['plans_per_min']:>9.1f}  {100 * busy:>5.0f} %  "
            f"{c['PASS']:>4} {c['FAIL']:>4} {c['ERROR']:>5}  {r['exit_code']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plans", type=int, default=200, help="plans to generate (default 200)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-tasks-per-child", type=int, default=1,
                    help="plans per worker process before it is replaced (0: never)")
    ap.add_argument("--regenerate", action="store_true",
                    help="write the sample plans again even if OUT/exports is up to date")
    args = ap.parse_args(argv)
    if args.plans < 8:
        ap.error("--plans must be at least 8")
    mtpc = args.max_tasks_per_child or None
    out: Path = args.out
    exports = out / "exports"
    manifest = out / "manifest.json"
    t0 = time.perf_counter()
    try:
        reuse = not args.regenerate and exports.is_dir() and \
            json.loads(manifest.read_text()) == _manifest(args.plans)
    except (OSError, ValueError):
        reuse = False
    if reuse:
        specs = [plan_spec(i) for i in range(args.plans)]
        print(f"Reusing the {args.plans} sample plans in {exports} (--regenerate to rewrite)")
    else:
        print(f"Generating {args.plans} sample plans in {exports} ...", flush=True)
        manifest.unlink(missing_ok=True)
        specs = generate(args.plans, exports)
        manifest.write_text(json.dumps(_manifest(args.plans)))
    gen_s = time.perf_counter() - t0
    sizes = {k: sum(s["size"] == k and s["broken"] != "corrupt_file" for s in specs)
             for k in SIZES}
    broken = sum(bool(s["broken"]) for s in specs)
    size_mb = sum(f.stat().st_size for f in exports.rglob("*") if f.is_file()) / 1e6
    print(f"  {args.plans} plans ({sizes['tiny']} tiny, {sizes['small']} small, "
          f"{sizes['medium']} medium; {broken} broken), {size_mb:.0f} MB"
          + ("" if reuse else f", generated in {gen_s:.0f} s"))

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ref_before = reference_scaling()
    # 1 worker on half the plans, 2 workers on all of them, 1 worker on the half again:
    # the 1-worker runs bracket the 2-worker run, so a change in other load on the
    # machine is seen; the faster 1-worker run counts (the conservative ratio)
    half = exports / "part1"
    one_a = dict(run(half, out / "out-part1-1w-a", 1, mtpc), label="part1 (before)")
    full = dict(run(exports, out / "out-all-2w", 2, mtpc), label="all plans")
    one_b = dict(run(half, out / "out-part1-1w-b", 1, mtpc), label="part1 (after)")
    runs = [one_a, one_b]
    best = {1: max(runs, key=lambda r: r["plans_per_min"]), 2: full}
    problems = [p for r in runs for p in _unexpected(r, specs, "part1")]
    problems += _unexpected(full, specs, None)
    ref_after = reference_scaling()
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    ratio = best[2]["plans_per_min"] / best[1]["plans_per_min"]
    print()
    print(f"rtqa batch throughput (max_tasks_per_child={mtpc}, {os.cpu_count()} CPUs; "
          "busy = worker CPU time / (wall x workers))")
    print(f"  {'run':<22} {'workers':>7}  {'plans':>5}  {'wall s':>7}  {'plans/min':>9}  "
          f"{'busy':>7}  {'PASS':>4} {'FAIL':>4} {'ERROR':>5}  exit")
    for r in (one_a, full, one_b):
        print(_line(r))
    print(f"  throughput: 1 worker {best[1]['plans_per_min']:.1f} plans/min (faster run), "
          f"2 workers {best[2]['plans_per_min']:.1f} plans/min")
    print(f"  scaling 1 -> 2 workers: x{ratio:.2f} (ideal x2.00; a pure-Python CPU loop "
          f"in 1 and 2 processes scales x{ref_before:.2f} before and x{ref_after:.2f} after "
          "on this machine)")
    secs = [s["seconds"] for s in full["stats"]]
    cpus = [s["cpu_s"] for s in full["stats"] if s.get("cpu_s") is not None]
    if secs and cpus:
        print(f"  per plan in a worker: median {statistics.median(secs):.2f} s wall, "
              f"{statistics.median(cpus):.2f} s CPU; mean CPU {statistics.fmean(cpus):.2f} s "
              f"= {60 / statistics.fmean(cpus):.1f} plans/min per busy core")

    table, trends = memory_table(full, specs)
    print()
    print("Peak RSS per worker process vs plans checked (all plans, 2 workers, completion "
          "order)")
    print(f"  {'plans':>9}  {'median MB':>9}  {'max MB':>7}  {'processes':>9}  "
          f"{'orchestrator MB':>15}")
    for row in table:
        print(f"  {row['plans']:>9}  {row['median_mb']:>9.1f}  {row['max_mb']:>7.1f}  "
              f"{row['processes']:>9}  {row['parent_mb']:>15.1f}")
    grows = False
    print("  Same plans early and late in the run (median peak RSS, first -> second half):")
    for cls, t in trends.items():
        g = t["change_mb"] > max(5.0, 0.03 * t["first_half_mb"])
        grows |= g
        print(f"  {cls:>12} ({t['plans']:>3} plans): {t['first_half_mb']:6.1f} -> "
              f"{t['second_half_mb']:6.1f} MB ({t['change_mb']:+.1f}: "
              f"{'GROWS' if g else 'no growth'})")
    print(f"  machine load average: {load_before:.1f} before, {load_after:.1f} after "
          f"({os.cpu_count()} CPUs)")
    if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1) + 1:
        print("  WARNING: other load on this machine: throughput and scaling are "
              "understated (see 'busy'); the per-plan CPU time is not affected")
    if problems:
        print()
        print("Unexpected statuses:")
        for p in problems[:20]:
            print("  " + p)

    def strip(r):
        return {k: v for k, v in r.items() if k not in ("rows", "parent_rss")}

    result = {"plans": args.plans, "generate_s": None if reuse else gen_s,
              "size_mb": size_mb, "max_tasks_per_child": mtpc, "cpus": os.cpu_count(),
              "runs": [strip(r) for r in (one_a, full, one_b)],
              "plans_per_min": {"1": best[1]["plans_per_min"], "2": best[2]["plans_per_min"]},
              "scaling": ratio, "reference_scaling": [ref_before, ref_after],
              "memory": table, "memory_trend_by_class": trends,
              "memory_grows": grows, "load_average": [load_before, load_after],
              "unexpected": problems}
    (out / "batch_bench.json").write_text(json.dumps(result, indent=1))
    print(f"\nTotal {time.perf_counter() - t0:.0f} s; details in {out / 'batch_bench.json'}")
    return 1 if problems or any(r["exit_code"] != 2 for r in (one_a, full, one_b)) else 0


if __name__ == "__main__":
    sys.exit(main())
