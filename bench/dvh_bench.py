"""``make bench``: whole-plan DVH speed and peak memory, rtqa against dicompyler-core.

Goal: rtqa's DVH engine >= 10x faster than ``dicompylercore.dvhcalc.get_dvh`` at its
defaults on a body-sized plan, with peak memory under 1 GB, both measured in the same run.

    .venv/bin/python bench/dvh_bench.py [--runs 3] [--profile] [--out bench/out/body_bench]

Steps (see bench/README.md):
1. write the ``body_bench`` case of ``rtqa.sample`` (20 ROIs, contours every 2 mm, 2.5 mm
   dose grid over 40 x 26 x 34 cm) into ``--out`` (git-ignored ``bench/out/`` by default);
2. build ``.venv-peer`` once (``pydicom<3`` + ``dicompyler-core``) and run
   ``bench/peer_dvh.py`` there: ``get_dvh(rtstruct, rtdose, roi)`` for every ROI with contours;
3. run rtqa in a fresh ``.venv/bin/python`` process (this file with ``--worker-rtqa``):
   ``load_export([folder])`` then ``compute_dvh(structure, courses[0].grid)`` for every
   structure with volume, default Settings;
4. repeat 2-3 ``--runs`` times, interleaved; wall time = best (minimum) run, peak memory =
   highest run (conservative); print the table, the ratio, the goal lines and a
   per-structure comparison.

Exit status: 0 when both tools ran (whether or not the goals are met), 1 when either tool
(or the case generator, or the peer environment) failed.

This orchestrating process imports nothing but the standard library on purpose: on Linux
a child's ``ru_maxrss`` starts from its parent's peak RSS (it is carried across exec), so
a heavy parent would inflate both tools' memory figures. Each worker also reports VmHWM
(its own address space only) as a cross-check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PEER_VENV = REPO / ".venv-peer"
PEER_PY = PEER_VENV / "bin" / "python"
PEER_STAMP = PEER_VENV / ".rtqa-peer-ok"
PEER_SCRIPT = BENCH / "peer_dvh.py"
DEFAULT_OUT = BENCH / "out" / "body_bench"
RESULT_JSON = BENCH / "out" / "dvh_bench.json"

GOAL_RATIO = 10.0
GOAL_PEAK_BYTES = 1_000_000_000  # "1 GB" taken as 10^9 bytes (stricter than 2^30)
RUN_TIMEOUT_S = 3600


class BenchError(Exception):
    """A tool, the generator or the peer environment failed: exit non-zero."""


# ---------------------------------------------------------------------------------------
# Small helpers (standard library only)
# ---------------------------------------------------------------------------------------


def _peak_rss_kb() -> int:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r // 1024) if sys.platform == "darwin" else int(r)


def _vm_hwm_kb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _mb(kb: float) -> float:
    """KB (1024 bytes) -> MB (10^6 bytes)."""
    return kb * 1024 / 1e6


def _rtqa_python() -> str:
    venv_py = REPO / ".venv" / "bin" / "python"
    return str(venv_py) if venv_py.exists() else sys.executable


def _run_json(cmd: list[str], what: str) -> dict:
    """Run a worker, return the JSON object on the last line of its stdout."""
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: no result after {RUN_TIMEOUT_S} s") from None
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-25:])
        raise BenchError(f"{what} failed (exit {p.returncode}):\n{tail}")
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"{what}: no JSON result on stdout:\n{p.stdout[-2000:]}\n"
                         f"{p.stderr[-2000:]}") from None


# ---------------------------------------------------------------------------------------
# Workers (run in their own processes)
# ---------------------------------------------------------------------------------------


def worker_generate(outdir: str) -> int:
    """Write body_bench into ``outdir`` and describe what was written (JSON on stdout)."""
    import numpy as np
    import pydicom

    from rtqa.sample import body_bench, write_case

    t0 = time.perf_counter()
    res = write_case(body_bench(), outdir)
    gen_s = time.perf_counter() - t0
    # load_export reads the whole folder: nothing else may be in it.
    written = {Path(f).resolve() for f in res["files"]}
    stale = [f for f in Path(outdir).resolve().iterdir() if f.is_file() and f not in written]
    if stale:
        if (BENCH / "out") in Path(outdir).resolve().parents:
            for f in stale:
                f.unlink()
        else:
            raise SystemExit(f"{outdir} holds other files besides the body_bench case "
                             f"({', '.join(f.name for f in stale[:5])}): use an empty folder")
    if len(res["plans"]) != 1 or len(res["plans"][0]["rtdose"]) != 1:
        raise SystemExit("body_bench: expected one plan with one RTDOSE file")
    rs_path, rd_path = res["rtstruct"], res["plans"][0]["rtdose"][0]

    rs = pydicom.dcmread(rs_path)
    names = {int(r.ROINumber): str(r.ROIName) for r in rs.StructureSetROISequence}
    n_rois, npts, gaps = 0, [], []
    for rc in rs.ROIContourSequence:
        cs = list(rc.get("ContourSequence", []) or [])
        if not cs:
            continue
        n_rois += 1
        npts += [int(c.NumberOfContourPoints) for c in cs]
        z = np.unique(np.round([float(c.ContourData[2]) for c in cs], 3))
        gaps += list(np.diff(z))
    rd = pydicom.dcmread(rd_path, stop_before_pixels=True)
    dy, dx = (float(v) for v in rd.PixelSpacing)
    offs = np.asarray([float(v) for v in rd.GridFrameOffsetVector])
    dz = float(np.median(np.diff(offs))) if offs.size > 1 else float("nan")
    shape = (int(rd.NumberOfFrames), int(rd.Rows), int(rd.Columns))
    extent_cm = (shape[2] * dx / 10, shape[1] * dy / 10, shape[0] * dz / 10)
    print(json.dumps({
        "outdir": str(Path(outdir).resolve()), "rtstruct": str(Path(rs_path).resolve()),
        "rtdose": str(Path(rd_path).resolve()), "generate_s": gen_s,
        "n_rois": len(names), "n_rois_with_contours": n_rois,
        "has_external": any(n.lower() == "external" for n in names.values()),
        "n_contours": len(npts), "n_points": int(sum(npts)),
        "points_per_contour_median": float(np.median(npts)) if npts else 0.0,
        "points_per_contour_min": int(min(npts)) if npts else 0,
        "plane_spacing_mm": float(np.median(gaps)) if gaps else float("nan"),
        "dose_spacing_mm": [dx, dy, dz], "dose_shape_zyx": shape,
        "dose_extent_cm_xyz": extent_cm,
    }))
    return 0


def _rtqa_whole_plan(folder: str) -> dict:
    from rtqa.dvh import compute_dvh
    from rtqa.reading import load_export

    t0, c0 = time.perf_counter(), time.process_time()
    export = load_export([folder])
    t_read = time.perf_counter() - t0
    if len(export.courses) != 1 or len(export.structure_sets) != 1:
        raise SystemExit(f"expected one course dose and one structure set, found "
                         f"{len(export.courses)} and {len(export.structure_sets)}")
    grid = export.courses[0].grid
    rois = []
    for s in export.structure_sets[0].structures:
        if not s.has_volume:
            continue
        t = time.perf_counter()
        d = compute_dvh(s, grid)
        rois.append({"roi": s.roi_number, "name": s.name, "volume_cc": d.volume_cc,
                     "outside_cc": d.outside_cc, "mean_gy": d.mean_gy, "min_gy": d.min_gy,
                     "max_gy": d.max_gy, "seconds": time.perf_counter() - t,
                     "peak_rss_kb_so_far": _peak_rss_kb()})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "read_s": t_read, "rois": rois}


def worker_rtqa(folder: str, profile: bool, top: int) -> int:
    import rtqa  # imports are outside the timed region, as in peer_dvh.py
    import rtqa.dvh  # noqa: F401
    import rtqa.reading  # noqa: F401

    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        res = _rtqa_whole_plan(folder)
        prof.disable()
        for key in ("cumulative", "tottime"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
            text = buf.getvalue()
            i = text.find("   ncalls")
            print(f"--- rtqa profile, top {top} by {key} time "
                  f"(whole plan under cProfile: {res['wall_s']:.2f} s) ---")
            print(text[i:].rstrip() if i >= 0 else text.rstrip())
            print()
        slow = sorted(res["rois"], key=lambda r: -r["seconds"])[:8]
        print("--- rtqa slowest structures (under cProfile) ---")
        for r in slow:
            print(f"  {r['name']:<14} {r['seconds']:7.2f} s")
        print(f"  reading (load_export)  {res['read_s']:5.2f} s")
        print()
        print("--- rtqa peak RSS after each structure (ru_maxrss; which one sets the peak) ---")
        prev = None
        for r in res["rois"]:
            kb = r["peak_rss_kb_so_far"]
            if prev is None or kb > prev:
                print(f"  {r['name']:<14} {_mb(kb):7.0f} MB")
            prev = kb
        return 0

    res = _rtqa_whole_plan(folder)
    res.update(tool="rtqa", version=getattr(rtqa, "__version__", "?"),
               peak_rss_kb=_peak_rss_kb(), vm_hwm_kb=_vm_hwm_kb())
    print(json.dumps(res))
    return 0


# ---------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------


def ensure_peer(rebuild: bool) -> None:
    """Build .venv-peer once: python3 -m venv .venv-peer; pip install "pydicom<3" dicompyler-core."""
    if rebuild and PEER_VENV.exists():
        shutil.rmtree(PEER_VENV)
    if PEER_STAMP.exists() and PEER_PY.exists():
        return
    check = [str(PEER_PY), "-c", "import dicompylercore.dvhcalc, pydicom; "
             "assert int(pydicom.__version__.split('.')[0]) < 3"]
    if PEER_PY.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        PEER_STAMP.touch()
        return
    base = shutil.which("python3") or sys.executable
    print(f"building {PEER_VENV.name} (once): dicompyler-core with pydicom < 3 ...", flush=True)
    steps = [[base, "-m", "venv", str(PEER_VENV)],
             [str(PEER_PY), "-m", "pip", "install", "-q", "pydicom<3", "dicompyler-core"]]
    for cmd in steps:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"building {PEER_VENV.name} failed: {' '.join(cmd)}\n"
                             f"{(p.stderr or p.stdout)[-3000:]}")
    p = subprocess.run(check, capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"{PEER_VENV.name} cannot import dicompyler-core with pydicom < 3:\n"
                         f"{p.stderr[-2000:]}")
    PEER_STAMP.touch()


def peer_versions() -> str:
    code = ("import dicompylercore, pydicom, numpy, matplotlib; print("
            "f'dicompyler-core {dicompylercore.__version__}, pydicom {pydicom.__version__}, "
            "numpy {numpy.__version__}, matplotlib {matplotlib.__version__}')")
    p = subprocess.run([str(PEER_PY), "-c", code], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def rtqa_versions(py: str) -> str:
    code = ("import rtqa, pydicom, numpy; print(f'rtqa {getattr(rtqa, \"__version__\", \"?\")}, "
            "pydicom {pydicom.__version__}, numpy {numpy.__version__}')")
    p = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=REPO)
    return p.stdout.strip() or "?"


def check_case(c: dict) -> list[str]:
    """What the body-sized plan must have; returns the shortfalls (printed as warnings)."""
    bad = []
    if c["n_rois_with_contours"] < 15:
        bad.append(f"only {c['n_rois_with_contours']} ROIs with contours (want >= 15)")
    if not c["has_external"]:
        bad.append("no External ROI")
    if abs(c["plane_spacing_mm"] - 2.0) > 0.05:
        bad.append(f"contour planes {c['plane_spacing_mm']:.2f} mm apart (want 2 mm)")
    if c["points_per_contour_median"] < 100:
        bad.append(f"median {c['points_per_contour_median']:.0f} points per contour "
                   "(want a few hundred)")
    if any(abs(s - 2.5) > 0.01 for s in c["dose_spacing_mm"]):
        bad.append(f"dose grid spacing {c['dose_spacing_mm']} mm (want 2.5 mm)")
    ex = c["dose_extent_cm_xyz"]
    if ex[0] < 38 or ex[1] < 24 or ex[2] < 32:
        bad.append(f"dose grid {ex[0]:.1f} x {ex[1]:.1f} x {ex[2]:.1f} cm "
                   "(want about 40 x 26 x 34 cm)")
    return bad


def _load(prefix: bool = True) -> str:
    try:
        one, five, _ = os.getloadavg()
    except (OSError, AttributeError):
        return ""
    return f"{', load average' if prefix else ''} {one:.2f} (1 min), {five:.2f} (5 min)"


def _times(runs: list[dict]) -> str:
    return ", ".join(f"{r['wall_s']:.2f}" for r in runs)


def _fmt(x, nd=2, width=9):
    return f"{'-':>{width}}" if x is None else f"{x:{width}.{nd}f}"


def print_comparison(peer: dict, rq: dict) -> None:
    p_by = {r["roi"]: r for r in peer["rois"]}
    q_by = {r["roi"]: r for r in rq["rois"]}
    print()
    print("Per structure (informational: the tools use different conventions; dicompyler-core "
          "counts whole dose voxels\nper contour plane, rtqa integrates sub-voxel samples "
          "between interpolated planes; volumes in cc, doses in Gy)")
    hdr = (f"{'ROI':<14} {'vol dcc':>9} {'vol rtqa':>9} {'dvol %':>7}  {'mean dcc':>8} "
           f"{'mean rtqa':>9} {'dmean':>7}  {'max dcc':>7} {'max rtqa':>8}  "
           f"{'t dcc s':>7} {'t rtqa s':>8}")
    print(hdr)
    print("-" * len(hdr))
    for roi in sorted(set(p_by) | set(q_by)):
        p, q = p_by.get(roi), q_by.get(roi)
        name = (q or p)["name"]
        pv, qv = (p or {}).get("volume_cc"), (q or {}).get("volume_cc")
        pm, qm = (p or {}).get("mean_gy"), (q or {}).get("mean_gy")
        dv = 100 * (qv - pv) / pv if pv and qv is not None else None
        dm = qm - pm if pm is not None and qm is not None else None
        print(f"{name[:14]:<14} {_fmt(pv, 1)} {_fmt(qv, 1)} {_fmt(dv, 1, 7)}  "
              f"{_fmt(pm, 3, 8)} {_fmt(qm, 3, 9)} {_fmt(dm, 3, 7)}  "
              f"{_fmt((p or {}).get('max_gy'), 2, 7)} {_fmt((q or {}).get('max_gy'), 2, 8)}  "
              f"{_fmt((p or {}).get('seconds'), 2, 7)} {_fmt((q or {}).get('seconds'), 2, 8)}")
    missing = sorted(set(p_by) ^ set(q_by))
    if missing:
        print(f"note: ROI(s) {missing} computed by only one tool")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per tool (default 3; best time kept)")
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help="folder the body_bench case is written to (default bench/out/body_bench)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one rtqa run (cProfile, top lines by cumulative and own time)")
    ap.add_argument("--top", type=int, default=15, help="profile lines to show (default 15)")
    ap.add_argument("--profile-only", action="store_true",
                    help="only write the case and profile rtqa (no timing, no peer)")
    ap.add_argument("--rebuild-peer", action="store_true", help="rebuild .venv-peer from scratch")
    ap.add_argument("--worker-generate", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--worker-rtqa", metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.worker_generate:
        return worker_generate(a.worker_generate)
    if a.worker_rtqa:
        return worker_rtqa(a.worker_rtqa, a.profile, a.top)
    if a.runs < 1:
        ap.error("--runs must be >= 1")

    try:
        return _orchestrate(a)
    except BenchError as e:
        print(f"\nbench FAILED: {e}", file=sys.stderr)
        return 1


def _orchestrate(a) -> int:
    py = _rtqa_python()
    me = str(Path(__file__).resolve())
    out = Path(a.out).resolve()

    case = _run_json([py, me, "--worker-generate", str(out)],
                     "generating body_bench with rtqa.sample")
    print(f"plan: rtqa.sample body_bench -> {case['outdir']}")
    ex = case["dose_extent_cm_xyz"]
    print(f"  {case['n_rois_with_contours']} ROIs with contours (External: "
          f"{'yes' if case['has_external'] else 'NO'}), {case['n_contours']} contours, "
          f"{case['n_points']} points (median {case['points_per_contour_median']:.0f} per "
          f"contour), planes {case['plane_spacing_mm']:.1f} mm apart")
    print(f"  dose grid {case['dose_shape_zyx'][2]} x {case['dose_shape_zyx'][1]} x "
          f"{case['dose_shape_zyx'][0]} nodes, {case['dose_spacing_mm'][0]:g} mm, "
          f"{ex[0]:.1f} x {ex[1]:.1f} x {ex[2]:.1f} cm")
    for msg in check_case(case):
        print(f"  WARNING: plan is not the specified body-sized plan: {msg}")

    if a.profile_only:
        print()
        return _profile(py, me, case, a.top)

    ensure_peer(a.rebuild_peer)
    print(f"peer: {peer_versions()}  ({PEER_VENV.name})")
    print(f"rtqa: {rtqa_versions(py)}  ({Path(py).parent.parent.name if py != sys.executable else py})")
    print(f"host: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.platform}"
          f"{_load()}")
    print(f"\nrunning each tool {a.runs}x, interleaved, each run in a fresh process ...",
          flush=True)

    peer_runs, rtqa_runs = [], []
    for i in range(a.runs):
        peer_runs.append(_run_json([str(PEER_PY), str(PEER_SCRIPT), case["rtstruct"],
                                    case["rtdose"]], f"dicompyler-core (run {i + 1})"))
        rtqa_runs.append(_run_json([py, me, "--worker-rtqa", case["outdir"]],
                                   f"rtqa (run {i + 1})"))
        print(f"  run {i + 1}: dicompyler-core {peer_runs[-1]['wall_s']:.2f} s, "
              f"rtqa {rtqa_runs[-1]['wall_s']:.2f} s", flush=True)

    peer = min(peer_runs, key=lambda r: r["wall_s"])
    rq = min(rtqa_runs, key=lambda r: r["wall_s"])
    peer_kb = max(r["peak_rss_kb"] for r in peer_runs)
    rq_kb = max(r["peak_rss_kb"] for r in rtqa_runs)
    ratio = peer["wall_s"] / rq["wall_s"] if rq["wall_s"] > 0 else float("inf")

    print()
    print(f"Whole-plan DVH, reading included (time: best of {a.runs}; peak memory: highest of "
          f"{a.runs}, ru_maxrss)")
    hdr = (f"{'tool':<18} {'wall time (s)':>14} {'peak memory (MB)':>17} {'structures':>11} "
           f"{'cpu time (s)':>13}")
    print(hdr)
    print("-" * len(hdr))
    for name, best, kb in (("dicompyler-core", peer, peer_kb), ("rtqa", rq, rq_kb)):
        print(f"{name:<18} {best['wall_s']:14.2f} {_mb(kb):17.0f} {len(best['rois']):11d} "
              f"{best['cpu_s']:13.2f}")
    print(f"  (rtqa: reading {rq['read_s']:.2f} s + DVHs {rq['wall_s'] - rq['read_s']:.2f} s; "
          f"times of all runs: dicompyler-core {_times(peer_runs)}; rtqa {_times(rtqa_runs)})")
    for name, runs in (("dicompyler-core", peer_runs), ("rtqa", rtqa_runs)):
        hwm = [r.get("vm_hwm_kb") for r in runs]
        if all(h is not None for h in hwm):
            rss = max(r["peak_rss_kb"] for r in runs)
            if abs(max(hwm) - rss) > 0.05 * rss:
                print(f"  note: {name} ru_maxrss {_mb(rss):.0f} MB differs from its VmHWM "
                      f"{_mb(max(hwm)):.0f} MB")
    print()
    print(f"speed ratio (dicompyler-core / rtqa): {ratio:.1f}x")
    if rq["cpu_s"] > 0:
        print(f"  (cpu-time ratio of the same runs: {peer['cpu_s'] / rq['cpu_s']:.1f}x; "
              f"load average after the runs{_load(prefix=False)})")
    print(f"rtqa peak memory: {_mb(rq_kb):.0f} MB")
    print(f"goal >= {GOAL_RATIO:g}x: {'MET' if ratio >= GOAL_RATIO else 'NOT MET'}")
    print(f"goal < 1 GB: {'MET' if rq_kb * 1024 < GOAL_PEAK_BYTES else 'NOT MET'}")

    print_comparison(peer, rq)

    RESULT_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULT_JSON.write_text(json.dumps({
        "case": case, "runs": a.runs, "speed_ratio": ratio,
        "goal_ratio_met": ratio >= GOAL_RATIO, "goal_memory_met": rq_kb * 1024 < GOAL_PEAK_BYTES,
        "dicompyler_core": {"best": peer, "wall_s_runs": [r["wall_s"] for r in peer_runs],
                            "peak_rss_kb_max": peer_kb},
        "rtqa": {"best": rq, "wall_s_runs": [r["wall_s"] for r in rtqa_runs],
                 "peak_rss_kb_max": rq_kb},
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                 "platform": sys.platform},
    }, indent=1))
    print(f"\nresults: {RESULT_JSON.relative_to(REPO)}")

    if a.profile:
        print()
        return _profile(py, me, case, a.top)
    return 0


def _profile(py: str, me: str, case: dict, top: int) -> int:
    cmd = [py, me, "--worker-rtqa", case["outdir"], "--profile", "--top", str(top)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if p.returncode != 0:
        raise BenchError(f"rtqa under cProfile failed (exit {p.returncode}):\n"
                         f"{(p.stderr or p.stdout)[-3000:]}")
    print(p.stdout.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
