"""``make bench``: whole-plan DVH time, peak memory and Nelms accuracy of rtqa, plastimatch
and dicompyler-core, side by side on the same plans, in one run, interleaved.

    .venv/bin/python bench/dvh_bench.py [--runs 3] [--plans body,body_1p25,rois64]
        [--no-dicompyler] [--no-plastimatch] [--renelms] [--profile]

Engines (each run in a fresh process; see bench/README.md):

* rtqa: ``load_export`` then ``compute_dvh`` for every structure with volume (default
  Settings). Timed region: reading and all DVHs (imports excluded, as for the peers).
* plastimatch (Debian package; the Makefile installs it, the bench skips it with a message
  when absent), its documented workflow: ``plastimatch convert --input RS --output-ss-img
  --output-ss-list --fixed RD`` (structures rasterised on the dose grid) then ``plastimatch
  dvh --input-ss-img --input-ss-list --input-dose RD``. Timed: both processes, whole.
  Also "fine": the structures rasterised on a finer grid on the contour planes
  (``--origin/--spacing/--dim``; in-plane ``--fine-mm``, 1 mm for the plans, 0.25 mm for
  Nelms), the dose resampled onto it by ``plastimatch dvh``.
* dicompyler-core (``.venv-peer``, pydicom < 3): ``get_dvh(RS, RD, roi)`` for every ROI
  with contours, at its defaults (bench/peer_dvh.py).

Plans (written by ``rtqa.sample`` into ``--out``, git-ignored): ``body`` (rtqa.sample
body_bench: 20 ROIs, 2 mm planes, 2.5 mm grid, 2.3 M voxels), ``body_1p25`` (the same at a
1.25 mm grid, 18 M voxels) and ``rois64`` (body_bench plus 44 spheres: 64 structures).

For every plan, ``--runs`` rounds, each round running every engine once (interleaved);
the table gives median wall time, median CPU time and the highest peak memory
(ru_maxrss of the engine's processes). Ratios are medians of the per-round ratios (the
engines of one round ran at nearly the same moment, so machine load cancels). rtqa's
memory is also given above its RSS after imports, as a multiple of the dose grid as
float64. Nelms 2015 failures at 3% (810 values) per engine: rtqa from
``rtqa.validation.nelms``; the peers' values are cached in bench/out (``--renelms``).

rtqa runs in the environment of the ``rtqa`` command (``rtqa._command_env``: single-threaded
BLAS, no transparent huge pages for numpy). The orchestrator imports nothing but the
standard library and the light ``rtqa/__init__``: on Linux a child's ru_maxrss
starts from its parent's peak RSS (carried across exec). Exit 0 when every engine that is
present ran, 1 when one crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))
from nelms_cases import cases as nelms_cases, failures as nelms_failures  # noqa: E402

PEER_VENV = REPO / ".venv-peer"
PEER_PY = PEER_VENV / "bin" / "python"
PEER_STAMP = PEER_VENV / ".rtqa-peer-ok"
PEER_SCRIPT = BENCH / "peer_dvh.py"
DEFAULT_OUT = BENCH / "out" / "plans"
RESULT_JSON = BENCH / "out" / "dvh_bench.json"
NELMS_DEFAULT = REPO.parent / "shared" / "validation" / "nelms2015"
PLANS = ("body", "body_1p25", "rois64")
RUN_TIMEOUT_S = 3600
#: plastimatch dvh bins: 0.01 Gy wide, up to 100 Gy
PM_BIN_GY, PM_BINS = 0.01, 10000


class BenchError(Exception):
    """An engine, the generator or the peer environment failed: exit non-zero."""


# ---------------------------------------------------------------------------------------
# Small helpers (standard library only)
# ---------------------------------------------------------------------------------------


def _peak_rss_kb() -> int:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r // 1024) if sys.platform == "darwin" else int(r)


def _mb(kb: float) -> float:
    """KB (1024 bytes) -> MB (10^6 bytes)."""
    return kb * 1024 / 1e6


def _rtqa_python() -> str:
    venv_py = REPO / ".venv" / "bin" / "python"
    return str(venv_py) if venv_py.exists() else sys.executable


def _rtqa_env() -> dict[str, str]:
    """The environment of an rtqa worker: the ``rtqa`` command's (``rtqa._command_env``:
    single-threaded BLAS, no transparent huge pages for numpy), so the bench times what
    ``rtqa check`` runs."""
    sys.path.insert(0, str(REPO))
    try:
        from rtqa import _command_env
    finally:
        sys.path.pop(0)
    return {**os.environ, **_command_env()}


def _run(cmd: list[str], what: str, env: dict | None = None) -> tuple[str, float, float, int]:
    """Run a process to completion: (stdout, wall s, cpu s, peak RSS KB) of that process
    alone (os.wait4 gives its own rusage)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, text=True, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-25:])
        raise BenchError(f"{what} failed (exit {p.returncode}):\n{tail}")
    return stdout, wall, ru.ru_utime + ru.ru_stime, int(ru.ru_maxrss)


def _last_json(stdout: str, what: str):
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"{what}: no JSON result on stdout:\n{stdout[-2000:]}") from None


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------------------------------
# Workers (run in .venv/bin/python, in their own processes)
# ---------------------------------------------------------------------------------------


def _extra_spheres(n: int):
    """``n`` spheres (r 8-20 mm) inside the body of body_bench, on a 3-D lattice."""
    from rtqa.sample.phantom import StructureSpec
    from rtqa.sample.shapes import sphere

    out, k = [], 0
    for z in (-120.0, -60.0, 0.0, 60.0, 120.0):
        for y in (-60.0, 0.0, 50.0):
            for x in (-110.0, -55.0, 0.0, 55.0, 110.0):
                if k == n:
                    return tuple(out)
                r = 8.0 + (k * 7) % 13
                out.append(StructureSpec(f"zBench_{k + 1:02d}", sphere((x, y + 0.5, z + 0.25), r),
                                         "AVOIDANCE", color=(120, 120, 120)))
                k += 1
    return tuple(out)


def _plan_case(name: str):
    from dataclasses import replace

    from rtqa.sample import body_bench

    case = body_bench()
    if name == "body_1p25":
        plan0 = case.plans[0]
        grid = replace(plan0.grid, spacing_mm=(1.25, 1.25, 1.25))
        return replace(case, name="body_1p25", plans=(replace(plan0, grid=grid),))
    if name == "rois64":
        n_now = len(case.structures) + sum(2 + (ls.ctv_margin_mm is not None)
                                           for ls in case.lesions)
        extra = _extra_spheres(64 - n_now)
        return replace(case, name="rois64", structures=case.structures + extra)
    return case


def worker_generate(outdir: str, plans: list[str]) -> int:
    """Write the bench plans into ``outdir/<plan>/`` and describe them (JSON on stdout)."""
    import numpy as np
    import pydicom

    from rtqa.sample import write_case

    described = {}
    for name in plans:
        folder = Path(outdir) / name
        if folder.exists():
            shutil.rmtree(folder)
        res = write_case(_plan_case(name), folder)
        rs_path, rd_path = res["rtstruct"], res["plans"][0]["rtdose"][0]
        rs = pydicom.dcmread(rs_path)
        n_rois, npts, zs = 0, 0, set()
        for rc in rs.ROIContourSequence:
            cs = list(rc.get("ContourSequence", []) or [])
            n_rois += bool(cs)
            for c in cs:
                npts += int(c.NumberOfContourPoints)
                zs.add(round(float(c.ContourData[2]), 3))
        rd = pydicom.dcmread(rd_path, stop_before_pixels=True)
        dy, dx = (float(v) for v in rd.PixelSpacing)
        offs = [float(v) for v in rd.GridFrameOffsetVector]
        shape = (int(rd.NumberOfFrames), int(rd.Rows), int(rd.Columns))
        ipp = [float(v) for v in rd.ImagePositionPatient]
        z = np.array(sorted(zs))
        described[name] = {
            "dir": str(folder.resolve()), "rtstruct": str(Path(rs_path).resolve()),
            "rtdose": str(Path(rd_path).resolve()), "n_rois": n_rois,
            "n_contours": sum(len(list(rc.get("ContourSequence", []) or []))
                              for rc in rs.ROIContourSequence),
            "n_points": npts, "dose_shape_zyx": shape,
            "dose_spacing_mm": [dx, dy, float(np.median(np.diff(offs)))],
            "dose_voxels": shape[0] * shape[1] * shape[2],
            # the dose grid's in-plane box and the contour planes (plastimatch fine grid)
            "xy_box": [ipp[0] - dx / 2, ipp[1] - dy / 2, ipp[0] + (shape[2] - 0.5) * dx,
                       ipp[1] + (shape[1] - 0.5) * dy],
            "planes": [float(z[0]), float(np.median(np.diff(z))), int(z.size)],
        }
    print(json.dumps(described))
    return 0


def worker_rtqa(folder: str, profile: bool, top: int) -> int:
    """Whole-plan DVH of rtqa: reading + every structure. JSON on stdout."""
    import rtqa
    import rtqa.dvh  # noqa: F401 - imports outside the timed region (as for the peers)
    import rtqa.reading  # noqa: F401
    from rtqa.dvh import compute_dvh
    from rtqa.reading import load_export

    rss_imports = _peak_rss_kb()

    def whole_plan():
        stages = {}
        t0, c0 = time.perf_counter(), time.process_time()
        export = load_export([folder])
        stages["read"] = time.perf_counter() - t0
        grid = export.courses[0].grid
        rois = []
        for s in export.structure_sets[0].structures:
            if not s.has_volume:
                continue
            t = time.perf_counter()
            d = compute_dvh(s, grid)
            rois.append({"name": s.name, "volume_cc": d.volume_cc, "mean_gy": d.mean_gy,
                         "max_gy": d.max_gy, "seconds": time.perf_counter() - t})
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"wall_s": wall, "cpu_s": cpu, "read_s": stages["read"],
                "voxels": int(grid.dose.size), "rois": rois}

    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        res = whole_plan()
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
        return 0
    res = whole_plan()
    res.update(tool="rtqa", version=getattr(rtqa, "__version__", "?"),
               rss_imports_kb=rss_imports, peak_rss_kb=_peak_rss_kb())
    print(json.dumps(res))
    return 0


def _pm_histogram(csv_path: str, column: str | None):
    """(edges Gy, voxels >= edge) of one structure (``column``: name; None: all) from a
    plastimatch cumulative DVH CSV (normalization vox)."""
    import csv as _csv

    with open(csv_path, newline="") as fh:
        rows = list(_csv.reader(fh))
    head = rows[0]
    cols = range(1, len(head)) if column is None else [head.index(column)]
    edges = [float(r[0]) for r in rows[1:]]
    return edges, {head[c]: [float(r[c]) for r in rows[1:]] for c in cols}


def _mha_voxel_mm3(path: str) -> float:
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b"ElementSpacing"):
                dx, dy, dz = (float(v) for v in line.split(b"=")[1].split())
                return dx * dy * dz
    raise BenchError(f"{path}: no ElementSpacing")


def pm_metrics(edges, counts, voxel_cc: float) -> dict:
    """The nine Nelms readings of a plastimatch cumulative histogram: volume = voxels x
    voxel volume; Dmin the highest bin edge every voxel reaches, Dmax the lower edge of the
    top non-empty bin; Dmean from the bins' centres; Dx read by rtqa's own dose_at_volume
    from the histogram as a cumulative DVH (cc)."""
    import numpy as np

    from rtqa.dvh.metrics import dose_at_volume

    e = np.asarray(edges, float)
    c = np.asarray(counts, float) * voxel_cc
    total = float(c[0])
    if total <= 0:
        return {}
    full = np.flatnonzero(c >= total)
    some = np.flatnonzero(c > 0)
    h = float(e[1] - e[0])
    diff = c - np.append(c[1:], 0.0)
    out = {"Volume": total, "Dmin": float(e[full[-1]]), "Dmax": float(e[some[-1]]),
           "Dmean": float(np.sum(diff * (e + h / 2)) / total)}
    ee, cc = np.append(e, e[-1] + h), np.append(c, 0.0)
    for m, v in (("D99", 0.99 * total), ("D95", 0.95 * total), ("D5", 0.05 * total),
                 ("D1", 0.01 * total), ("D0.03cc", 0.03)):
        try:
            out[m] = float(dose_at_volume(ee, cc, v))
        except ValueError:
            out[m] = None
    return out


def worker_pm_metrics(spec_path: str) -> int:
    """Nelms readings from plastimatch CSVs: ``spec`` is a JSON list of
    {csv, ss_img, column}; one JSON list of metric dicts on stdout."""
    out = []
    for item in json.loads(Path(spec_path).read_text()):
        if item is None:
            out.append({})
            continue
        edges, cols = _pm_histogram(item["csv"], None)
        # the structure's column (ROI names in the files differ from the table's names;
        # the other ROI is a marker point with no voxels)
        name = item["column"] if item["column"] in cols else max(cols, key=lambda c: cols[c][0])
        out.append(pm_metrics(edges, cols[name], _mha_voxel_mm3(item["ss_img"]) / 1000.0))
    print(json.dumps(out))
    return 0


# ---------------------------------------------------------------------------------------
# plastimatch (driven from the orchestrator: it is a C++ program)
# ---------------------------------------------------------------------------------------


def plastimatch_version() -> str | None:
    exe = shutil.which("plastimatch")
    if not exe:
        return None
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return (p.stdout or p.stderr).strip().splitlines()[-1] if (p.stdout or p.stderr) else "?"


def fine_geometry(xy_box, planes, fine_mm: float) -> list[str]:
    """plastimatch convert options for a grid of ``fine_mm`` in-plane over the dose grid's
    box, one slice per contour plane."""
    x0, y0, x1, y1 = xy_box
    z0, dz, nz = planes
    nx, ny = int(round((x1 - x0) / fine_mm)), int(round((y1 - y0) / fine_mm))
    return ["--origin", f"{x0 + fine_mm / 2:g} {y0 + fine_mm / 2:g} {z0:g}",
            "--spacing", f"{fine_mm:g} {fine_mm:g} {dz:g}", "--dim", f"{nx} {ny} {nz}"]


def run_plastimatch(rs: str, rd: str, work: Path, fine: list[str] | None) -> dict:
    """convert (rasterise) + dvh; wall and CPU time of both, the larger peak RSS."""
    work.mkdir(parents=True, exist_ok=True)
    ss, lst, out = work / "ss.mha", work / "ss.txt", work / "dvh.csv"
    geom = fine if fine is not None else ["--fixed", rd]
    _, w1, c1, m1 = _run(["plastimatch", "convert", "--input", rs, "--output-ss-img", str(ss),
                          "--output-ss-list", str(lst), *geom], "plastimatch convert")
    _, w2, c2, m2 = _run(["plastimatch", "dvh", "--input-ss-img", str(ss), "--input-ss-list",
                          str(lst), "--input-dose", rd, "--output-csv", str(out),
                          "--num-bins", str(PM_BINS), "--bin-width", str(PM_BIN_GY),
                          "--normalization", "vox"], "plastimatch dvh")
    return {"wall_s": w1 + w2, "cpu_s": c1 + c2, "peak_rss_kb": max(m1, m2),
            "convert_s": w1, "dvh_s": w2, "csv": str(out), "ss_img": str(ss)}


# ---------------------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------------------


def ensure_peer(rebuild: bool) -> None:
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
    for cmd in ([base, "-m", "venv", str(PEER_VENV)],
                [str(PEER_PY), "-m", "pip", "install", "-q", "pydicom<3", "dicompyler-core"]):
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"building {PEER_VENV.name} failed: {' '.join(cmd)}\n"
                             f"{(p.stderr or p.stdout)[-3000:]}")
    if subprocess.run(check, capture_output=True).returncode != 0:
        raise BenchError(f"{PEER_VENV.name} cannot import dicompyler-core with pydicom < 3")
    PEER_STAMP.touch()


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except (OSError, AttributeError):
        return "?"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def nelms_counts(a, py: str, me: str, tools: list[str], pm_ver: str | None) -> dict:
    """Failures at 3% of each engine on the Nelms 2015 data (None: data or engine absent)."""
    root = Path(a.nelms)
    if not (root / "analytical_points.csv").exists():
        print(f"Nelms 2015 data not found at {root}: accuracy column left empty")
        return {}
    counts = {}
    p = subprocess.run([py, "-m", "rtqa.validation.nelms", str(root)], cwd=REPO,
                       capture_output=True, text=True)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("failures at 3%")), "")
    counts["rtqa"] = line.split(":")[1].split(";")[0].strip() if line else "?"
    cache_path = BENCH / "out" / "nelms_peers.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() and not a.renelms else {}
    all_cases = list(nelms_cases(root))
    if "dicompyler-core" in tools:
        key = "dicompyler-core"
        if key not in cache:
            print("  Nelms: dicompyler-core on 90 pairs (once; cached) ...", flush=True)
            out, *_ = _run([str(PEER_PY), str(PEER_SCRIPT), "--nelms", str(root)],
                           "dicompyler-core on Nelms")
            cache[key] = _last_json(out, "dicompyler-core on Nelms")
        f, n = nelms_failures(root, cache[key])
        counts[key] = f"{f}/{n}"
    for mode in ("plastimatch", "plastimatch fine"):
        if mode not in tools:
            continue
        key = f"{mode} {pm_ver} {a.nelms_fine_mm if 'fine' in mode else ''}".strip()
        if key not in cache:
            print(f"  Nelms: {mode} on 90 pairs (once; cached) ...", flush=True)
            specs = []
            with tempfile.TemporaryDirectory() as tmp:
                for i, (name, sfile, dfile, _) in enumerate(all_cases):
                    fine = None
                    if "fine" in mode:
                        g = _last_json(_run([py, me, "--worker-nelms-geometry", str(sfile),
                                             str(dfile)], "geometry")[0], "geometry")
                        fine = fine_geometry(g["xy_box"], g["planes"], a.nelms_fine_mm)
                    try:
                        r = run_plastimatch(str(sfile), str(dfile), Path(tmp) / str(i), fine)
                        specs.append({"csv": r["csv"], "ss_img": r["ss_img"], "column": name})
                    except BenchError as e:
                        print(f"    {name} / {dfile.name}: {str(e).splitlines()[0]}")
                        specs.append(None)
                spec = Path(tmp) / "spec.json"
                spec.write_text(json.dumps(specs))
                out, *_ = _run([py, me, "--worker-pm-metrics", str(spec)], "plastimatch metrics")
            cache[key] = _last_json(out, "plastimatch metrics")
        f, n = nelms_failures(root, cache[key])
        counts[mode] = f"{f}/{n}"
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_text(json.dumps(cache))
    return counts


def worker_nelms_geometry(sfile: str, dfile: str) -> int:
    """The dose grid's in-plane box and the structure's contour planes (fine grid)."""
    import numpy as np

    from rtqa.reading import load_export

    ex = load_export([Path(sfile), Path(dfile)])
    g = ex.courses[0].grid
    s = next(s for s in ex.structure_sets[0].structures if s.has_volume)
    z = s.z_planes
    dx, dy = float(g.x[1] - g.x[0]), float(g.y[1] - g.y[0])
    print(json.dumps({"xy_box": [g.x[0] - dx / 2, g.y[0] - dy / 2, g.x[-1] + dx / 2,
                                 g.y[-1] + dy / 2],
                      "planes": [float(z[0]), float(np.median(np.diff(z))), int(z.size)]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="rounds per plan (default 3)")
    ap.add_argument("--plans", default=",".join(PLANS), help=f"comma list of {PLANS}")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plans")
    ap.add_argument("--fine-mm", type=float, default=1.0,
                    help="plastimatch fine grid in-plane spacing for the plans (mm)")
    ap.add_argument("--nelms", default=str(NELMS_DEFAULT), help="Nelms 2015 data folder")
    ap.add_argument("--nelms-fine-mm", type=float, default=0.25,
                    help="plastimatch fine grid in-plane spacing for Nelms (mm)")
    ap.add_argument("--renelms", action="store_true", help="recompute the peers' Nelms values")
    ap.add_argument("--no-dicompyler", action="store_true")
    ap.add_argument("--no-plastimatch", action="store_true")
    ap.add_argument("--profile", action="store_true", help="then a cProfile of rtqa per plan")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--rebuild-peer", action="store_true")
    ap.add_argument("--worker-generate", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--worker-rtqa", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--worker-pm-metrics", metavar="SPEC", help=argparse.SUPPRESS)
    ap.add_argument("--worker-nelms-geometry", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    plans = [p for p in a.plans.split(",") if p]
    if a.worker_generate:
        return worker_generate(a.worker_generate, plans)
    if a.worker_rtqa:
        return worker_rtqa(a.worker_rtqa, a.profile, a.top)
    if a.worker_pm_metrics:
        return worker_pm_metrics(a.worker_pm_metrics)
    if a.worker_nelms_geometry:
        return worker_nelms_geometry(*a.worker_nelms_geometry)
    if a.runs < 1 or any(p not in PLANS for p in plans):
        ap.error(f"--runs must be >= 1 and --plans from {PLANS}")
    try:
        return _orchestrate(a, plans)
    except BenchError as e:
        print(f"\nbench FAILED: {e}", file=sys.stderr)
        return 1


def _orchestrate(a, plans: list[str]) -> int:
    py, me = _rtqa_python(), str(Path(__file__).resolve())
    out = Path(a.out).resolve()
    print(f"writing the plans ({', '.join(plans)}) with rtqa.sample into {out} ...", flush=True)
    desc = _last_json(_run([py, me, "--worker-generate", str(out), "--plans", ",".join(plans)],
                           "generating the plans")[0], "generating the plans")
    for name in plans:
        d = desc[name]
        sh = d["dose_shape_zyx"]
        print(f"  {name:<10} {d['n_rois']} ROIs, {d['n_contours']} contours, {d['n_points']} "
              f"points; dose grid {sh[2]} x {sh[1]} x {sh[0]} = {d['dose_voxels'] / 1e6:.2f} M "
              f"voxels at {d['dose_spacing_mm'][0]:g} mm; planes {d['planes'][1]:g} mm apart")

    tools = ["rtqa"]
    pm_ver = None
    if not a.no_plastimatch:
        pm_ver = plastimatch_version()
        if pm_ver:
            tools += ["plastimatch", "plastimatch fine"]
        else:
            print("plastimatch is not installed (Debian package plastimatch; `make bench` "
                  "tries apt-get): skipped")
    if not a.no_dicompyler:
        ensure_peer(a.rebuild_peer)
        tools.append("dicompyler-core")
    print(f"engines: {', '.join(tools)}; plastimatch {pm_ver or '-'}; host {os.cpu_count()} "
          f"CPUs, load {_load()}")

    print("\nNelms 2015 accuracy (failures at 3%) ...", flush=True)
    nelms = nelms_counts(a, py, me, tools, pm_ver)

    print(f"\ntimed runs: {a.runs} rounds per plan, every engine once per round, interleaved",
          flush=True)
    res: dict = {p: {t: [] for t in tools} for p in plans}
    rtqa_env = _rtqa_env()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs):
            for name in plans:
                d = desc[name]
                line = []
                for tool in tools:
                    if tool == "rtqa":
                        outp, wall, cpu, rss = _run([py, me, "--worker-rtqa", d["dir"]],
                                                    f"rtqa on {name}", env=rtqa_env)
                        r = _last_json(outp, "rtqa")
                        r["process_s"] = wall
                    elif tool.startswith("plastimatch"):
                        fine = (fine_geometry(d["xy_box"], d["planes"], a.fine_mm)
                                if tool.endswith("fine") else None)
                        r = run_plastimatch(d["rtstruct"], d["rtdose"],
                                            Path(tmp) / f"{name}_{i}_{tool[-4:]}", fine)
                        r["process_s"] = r["wall_s"]
                    else:
                        outp, wall, cpu, rss = _run([str(PEER_PY), str(PEER_SCRIPT),
                                                     d["rtstruct"], d["rtdose"]],
                                                    f"dicompyler-core on {name}")
                        r = _last_json(outp, "dicompyler-core")
                        r["process_s"] = wall
                    res[name][tool].append(r)
                    line.append(f"{tool} {r['wall_s']:.2f} s")
                print(f"  round {i + 1} {name:<10} " + ", ".join(line), flush=True)

    print(f"\nWhole-plan DVH (reading included). Median of {a.runs} rounds; peak memory: "
          "highest ru_maxrss; load after the runs " + _load())
    summary = {}
    for name in plans:
        d = desc[name]
        grid_mb = d["dose_voxels"] * 8 / 1e6
        print(f"\n{name}: {d['n_rois']} ROIs, {d['dose_voxels'] / 1e6:.2f} M voxels "
              f"(dose grid as float64: {grid_mb:.0f} MB)")
        hdr = (f"  {'engine':<18}{'wall s':>8}{'cpu s':>8}{'process s':>10}{'peak MB':>9}"
               f"{'rtqa/t wall':>12}{'rtqa/t cpu':>11}  Nelms fails (3%)")
        print(hdr)
        print("  " + "-" * (len(hdr) - 2))
        rq = res[name]["rtqa"]
        row = {}
        for tool in tools:
            runs = res[name][tool]
            ratio = _median([r["wall_s"] / q["wall_s"] for r, q in zip(runs, rq)])
            cratio = _median([r["cpu_s"] / q["cpu_s"] for r, q in zip(runs, rq)])
            row[tool] = {"wall_s": _median([r["wall_s"] for r in runs]),
                         "cpu_s": _median([r.get("cpu_s") for r in runs]),
                         "process_s": _median([r.get("process_s") for r in runs]),
                         "peak_mb": _mb(max(r["peak_rss_kb"] for r in runs)),
                         "time_over_rtqa": ratio, "cpu_over_rtqa": cratio}
            x = row[tool]
            print(f"  {tool:<18}{x['wall_s']:8.2f}{x['cpu_s']:8.2f}{x['process_s']:10.2f}"
                  f"{x['peak_mb']:9.0f}{1 / ratio:12.2f}{1 / cratio:11.2f}  {nelms.get(tool, '-')}")
        q = row["rtqa"]
        rss0 = _mb(max(r["rss_imports_kb"] for r in rq))
        above = q["peak_mb"] - rss0
        print(f"  rtqa: reading {_median([r['read_s'] for r in rq]):.2f} s + DVHs "
              f"{_median([r['wall_s'] - r['read_s'] for r in rq]):.2f} s; memory {rss0:.0f} MB "
              f"after imports + {above:.0f} MB = {above / grid_mb:.2f} x the dose grid as float64")
        if "plastimatch" in row:
            r, c = row["plastimatch"]["time_over_rtqa"], row["plastimatch"]["cpu_over_rtqa"]
            print(f"  goal rtqa <= 0.5 x plastimatch (dose grid): wall {1 / r:.2f} x, cpu "
                  f"{1 / c:.2f} x -> {'MET' if max(1 / r, 1 / c) <= 0.5 else 'NOT MET'}")
        if name == "body_1p25":
            print(f"  goal rtqa memory <= 1.5 x grid + fixed: {above / grid_mb:.2f} x -> "
                  f"{'MET' if above / grid_mb <= 1.5 else 'NOT MET'}")
        summary[name] = {"plan": d, "engines": row, "rtqa_rss_after_imports_mb": rss0,
                         "rtqa_peak_over_grid": above / grid_mb}
    RESULT_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULT_JSON.write_text(json.dumps({"summary": summary, "nelms_failures_3pct": nelms,
                                       "runs": res, "plastimatch": pm_ver}, indent=1))
    print(f"\nresults: {RESULT_JSON.relative_to(REPO)}")
    if a.profile:
        for name in plans:
            p = subprocess.run([py, me, "--worker-rtqa", desc[name]["dir"], "--profile",
                                "--top", str(a.top)], cwd=REPO, capture_output=True, text=True,
                               env=rtqa_env)
            print(f"\n=== {name} ===\n{p.stdout.rstrip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
