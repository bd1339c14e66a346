"""Peer side of ``make bench``: dicompyler-core's whole-plan DVH at its defaults.

Runs inside ``.venv-peer`` (dicompyler-core 0.5.6 needs pydicom < 3; rtqa needs pydicom >= 3,
so the two cannot share one environment). Never imported by rtqa.

    .venv-peer/bin/python bench/peer_dvh.py RS.dcm RD.dcm

For every ROI that has contours, calls ``dicompylercore.dvhcalc.get_dvh(rtstruct_path,
rtdose_path, roi_number)`` with no other arguments (the documented default use: each call
parses both files itself) and prints one JSON object on stdout:

    {"tool": "dicompyler-core", "version", "pydicom", "wall_s", "cpu_s", "list_s",
     "peak_rss_kb", "vm_hwm_kb", "rois": [{"roi", "name", "volume_cc", "mean_gy",
     "min_gy", "max_gy", "seconds"}]}

``wall_s`` (and ``cpu_s``, user + system CPU time) is the get_dvh loop only (conservative for the comparison: finding which ROIs
have contours, ``list_s``, is left out). ``peak_rss_kb`` is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in KB (Linux reports KB, macOS bytes:
converted); ``vm_hwm_kb`` is VmHWM from /proc/self/status where it exists (None elsewhere).
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time


def _peak_rss_kb() -> int:
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


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def nelms(root: str) -> int:
    """The Nelms 2015 values of dicompyler-core at its defaults: for every case of
    bench/nelms_cases.py, get_dvh then the DVH class's own readings (volume, min, max,
    mean, D99, D95, D5, D1, D0.03cc). One JSON list on stdout, in case order."""
    import pydicom
    from dicompylercore import dvhcalc

    from nelms_cases import cases

    out = []
    for name, sfile, dfile, _ in cases(root):
        rs = pydicom.dcmread(str(sfile))
        # the one ROI with closed contours (the files also hold a marker point, POI_1)
        roi = next(int(rc.ReferencedROINumber) for rc in rs.ROIContourSequence
                   if any(str(c.ContourGeometricType) == "CLOSED_PLANAR"
                          for c in (rc.get("ContourSequence", []) or [])))
        try:
            d = dvhcalc.get_dvh(str(sfile), str(dfile), roi)
            vals = {"Volume": _num(d.volume), "Dmin": _num(d.min), "Dmax": _num(d.max),
                    "Dmean": _num(d.mean)}
            for m in ("D99", "D95", "D5", "D1", "D0.03cc"):
                vals[m] = _num(d.statistic(m).value)
        except Exception as exc:  # noqa: BLE001 - a case it cannot compute fails
            vals = {"error": f"{type(exc).__name__}: {exc}"}
        out.append(vals)
    print(json.dumps(out))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--nelms":
        return nelms(argv[1])
    if len(argv) != 2:
        print("usage: peer_dvh.py RTSTRUCT RTDOSE | --nelms DIR", file=sys.stderr)
        return 2
    rs_path, rd_path = argv
    import pydicom
    import dicompylercore
    from dicompylercore import dvhcalc

    t0 = time.perf_counter()
    rs = pydicom.dcmread(rs_path)
    names = {int(r.ROINumber): str(r.ROIName) for r in rs.StructureSetROISequence}
    rois = [int(rc.ReferencedROINumber) for rc in rs.ROIContourSequence
            if len(rc.get("ContourSequence", []) or []) > 0]
    del rs
    list_s = time.perf_counter() - t0

    out = []
    t_start, c_start = time.perf_counter(), time.process_time()
    for roi in rois:
        t = time.perf_counter()
        d = dvhcalc.get_dvh(rs_path, rd_path, roi)
        dt = time.perf_counter() - t
        out.append({"roi": roi, "name": names.get(roi, str(roi)),
                    "volume_cc": _num(d.volume), "mean_gy": _num(d.mean),
                    "min_gy": _num(d.min), "max_gy": _num(d.max), "seconds": dt})
    wall, cpu = time.perf_counter() - t_start, time.process_time() - c_start

    print(json.dumps({
        "tool": "dicompyler-core",
        "version": getattr(dicompylercore, "__version__", "?"),
        "pydicom": pydicom.__version__,
        "wall_s": wall,
        "cpu_s": cpu,
        "list_s": list_s,
        "peak_rss_kb": _peak_rss_kb(),
        "vm_hwm_kb": _vm_hwm_kb(),
        "rois": out,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
