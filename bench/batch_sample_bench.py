"""``make bench-batch-sample``: ``rtqa batch`` plans per CPU-minute on the bundled sample,
with HTML reports, with 1 and 2 workers, next to a plain CPU-loop reference measured at
the same moments (issue 16 item 5: >= 60 plans per CPU-minute).

    .venv/bin/python bench/batch_sample_bench.py [--copies 12] [--rounds 1]
                                                 [--out bench/out/batch_sample]

Steps:

1. ``--copies`` copies of each bundled sample (``plans_sample/hcc_pass`` and
   ``hcc_fail``) in ``OUT/exports/<case>_<i>/``, each with its own PatientID and every
   instance, series, study and frame-of-reference UID replaced consistently (SOP class
   and transfer syntax UIDs kept), so that every copy is its own patient and plan; the
   files are otherwise the sample's, byte for byte in their values (reused while
   ``OUT/manifest.json`` matches).
2. Each round: the CPU-loop reference (a pure-Python loop, in 1 process and then in 2
   at once), ``rtqa batch`` with 1 worker, the reference again, ``rtqa batch`` with 2
   workers, the reference again. Every ``rtqa batch`` writes JSON and HTML reports into
   an empty folder (default options).
3. CPU time of a batch is user + system of *every* process it ran (the command, its
   fork server and every worker): the measuring process is a child subreaper
   (``PR_SET_CHILD_SUBREAPER``, Linux), so the fork server, once orphaned, is reaped
   here with its workers' times. Printed per run: wall time, CPU time, plans per
   CPU-minute (plans / CPU minutes), plans per wall-minute; and the reference's loop
   rate per CPU-second in 1 and 2 processes and its wall scaling (what the machine
   gave at that moment: a 2-worker batch cannot scale better than the loop did).

It is a measurement, not a test: exit 0 unless a batch gives an unexpected exit code or
plan count. Results also go to ``OUT/batch_sample_bench.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out" / "batch_sample"
CASES = ("hcc_pass", "hcc_fail")
#: Children run with byte-code caching on, as an installed rtqa does.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _copy_case(args: tuple[str, int, str]) -> None:
    import pydicom
    from pydicom.uid import generate_uid
    case, i, dest = args
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    salt = f"rtqa-batch-bench-{case}-{i}"

    def renew(ds) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value:
                    renew(item)
            elif elem.VR == "UI" and elem.value and elem.tag not in (0x00020010,):
                vals = elem.value if elem.VM > 1 else [elem.value]
                new = [v if str(v).startswith("1.2.840.10008.") or not str(v)
                       else generate_uid(entropy_srcs=[salt, str(v)]) for v in vals]
                elem.value = new if elem.VM > 1 else new[0]

    for src in sorted((REPO / "plans_sample" / case).glob("*.dcm")):
        ds = pydicom.dcmread(src)
        renew(ds)
        renew(ds.file_meta)
        ds.PatientID = f"BENCH-{case}-{i:03d}"
        ds.save_as(out / src.name, enforce_file_format=True)


def generate(root: Path, copies: int) -> int:
    manifest = {"copies": copies, "cases": CASES,
                "samples": sorted(p.name + str(p.stat().st_size)
                                  for c in CASES for p in (REPO / "plans_sample" / c).iterdir())}
    mf = root / "manifest.json"
    if mf.exists() and json.loads(mf.read_text()) == manifest:
        return copies * len(CASES)
    shutil.rmtree(root, ignore_errors=True)
    jobs = [(c, i, str(root / "exports" / f"{c}_{i:03d}")) for i in range(copies) for c in CASES]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        list(ex.map(_copy_case, jobs))
    mf.write_text(json.dumps(manifest))
    return len(jobs)


def _burn(n: int) -> float:
    c0 = time.process_time()
    x = 0
    for k in range(n):
        x = (x * 31 + k) % 1000003
    return time.process_time() - c0


def reference(n: int = 3_000_000) -> dict:
    """A pure-Python CPU loop in 1 process, then in 2 at once: loops per CPU-second
    and the wall-clock scaling 2 vs 1 (about 2 on an idle 2-core machine)."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(1) as ex:
        cpu1 = ex.submit(_burn, n).result()
    wall1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as ex:
        cpus2 = list(ex.map(_burn, [n, n]))
    wall2 = time.perf_counter() - t0
    return {"loops_per_cpu_s_1": n / cpu1, "loops_per_cpu_s_2": 2 * n / sum(cpus2),
            "wall_scaling": (2 * n / wall2) / (n / wall1)}


def _subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_all() -> tuple[float, float]:
    """Wait for every remaining descendant (orphans come to us); their CPU times."""
    before = os.times()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    after = os.times()
    return (after.children_user - before.children_user,
            after.children_system - before.children_system)


def run_batch(exports: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    c0 = os.times()
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "rtqa"), "batch", str(exports),
                             "--out", str(out), "--workers", str(workers), "--quiet"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.communicate()[1]
    wall = time.perf_counter() - t0
    _reap_all()
    c1 = os.times()
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() \
        else {}
    plans = summary.get("plans") or []
    statuses = [p.get("status") for p in plans] if isinstance(plans, list) else []
    html = len(list((out / "plans").glob("*.html"))) if (out / "plans").exists() else 0
    return {"workers": workers, "exit": proc.returncode, "wall_s": wall, "cpu_s": cpu,
            "plans": len(statuses), "html_reports": html,
            "statuses": {s: statuses.count(s) for s in set(statuses)},
            "stderr": err.decode(errors="replace")[-400:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=12, help="copies of each sample")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    a = ap.parse_args(argv)
    root = Path(a.out).resolve()
    if not _subreaper():
        print("cannot become a child subreaper (not Linux?): CPU of the fork server and "
              "its workers would be missed", file=sys.stderr)
        return 1
    n = generate(root, a.copies)
    exports = root / "exports"
    print(f"rtqa batch on {n} copies of the bundled sample ({a.copies} x {', '.join(CASES)}), "
          f"JSON + HTML reports; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    runs, refs, ok = [], [], True
    refs.append(reference())
    for _ in range(a.rounds):
        for workers in (1, 2):
            r = run_batch(exports, root / f"run_{workers}", workers)
            refs.append(reference())
            r["reference_before"], r["reference_after"] = refs[-2], refs[-1]
            runs.append(r)
            good = r["exit"] == 1 and r["plans"] == n and r["html_reports"] == n \
                and r["statuses"].get("PASS") == n // 2 and r["statuses"].get("FAIL") == n // 2
            ok &= good
            ref_rate = (r["reference_before"]["loops_per_cpu_s_1"]
                        + r["reference_after"]["loops_per_cpu_s_1"]) / 2
            ref_rate2 = (r["reference_before"]["loops_per_cpu_s_2"]
                         + r["reference_after"]["loops_per_cpu_s_2"]) / 2
            scaling = (r["reference_before"]["wall_scaling"]
                       + r["reference_after"]["wall_scaling"]) / 2
            print(f"  {workers} worker{'s' if workers > 1 else ' '}: {r['plans']} plans "
                  f"{r['statuses']} in {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU -> "
                  f"{60 * r['plans'] / r['cpu_s']:.1f} plans per CPU-minute, "
                  f"{60 * r['plans'] / r['wall_s']:.1f} per wall-minute"
                  + ("" if good else f"  UNEXPECTED (exit {r['exit']}): {r['stderr']}"))
            print(f"             reference loop (same moments): {ref_rate / 1e6:.2f} M loops "
                  f"per CPU-s in 1 process, {ref_rate2 / 1e6:.2f} M in 2 at once; wall "
                  f"scaling 2 vs 1 x{scaling:.2f}")
    by = {w: [r for r in runs if r["workers"] == w] for w in (1, 2)}
    if by[1] and by[2]:
        t1 = max(r["plans"] / r["wall_s"] for r in by[1])
        t2 = max(r["plans"] / r["wall_s"] for r in by[2])
        print(f"  batch wall scaling 1 -> 2 workers: x{t2 / t1:.2f} (the loop's at those "
              f"moments: x{sum(r['wall_scaling'] for r in refs) / len(refs):.2f})")
    best = max(60 * r["plans"] / r["cpu_s"] for r in runs)
    print(f"  goal >= 60 plans per CPU-minute: best {best:.1f} -> "
          f"{'MET' if best >= 60 else 'NOT MET'}")
    (root / "batch_sample_bench.json").write_text(json.dumps(
        {"plans": n, "runs": runs, "references": refs}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
