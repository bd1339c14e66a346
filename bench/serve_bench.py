"""Throughput of ``rtqa serve`` (``make bench-serve``): a benchmark, not a test.

For each round a fresh ``rtqa serve`` (child process, 127.0.0.1, ephemeral port)
receives the bundled sample ``plans_sample/hcc_pass`` (86 instances: 83 CT slices, RTSTRUCT,
RTPLAN, RTDOSE, 2.9 MB) from dcmtk's ``storescu`` in one association, and waits until
the plan's report is written. Reported per round and as the median:

* **instances/s received**: 86 / (time of the last receipt - time of the first receipt),
  from the server's own receipt times (each instance written to the spool and fsynced,
  and recorded in the database, before Success), and the client's view:
  86 / storescu's wall time (association set-up and release included);
* for reference, storescu to dcmtk's own ``storescp`` (the client's pace);
* **last instance -> finished report**: the check's finish time minus the last receipt,
  and the same less the settle time (``--settle``, a deliberate wait).

Usage: ``python bench/serve_bench.py [--rounds N] [--settle S]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "plans_sample" / "hcc_pass"


def _wait(pred, what, timeout=900):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"serve_bench: gave up waiting for {what}")


def one_round(work: Path, settle: float) -> dict:
    out = work / "out"
    log_path = work / "serve.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-c", "from rtqa.cli import main; main()",
                             "serve", "--port", "0", "--out", str(out), "--settle",
                             str(settle), "--log-level", "WARNING"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        port = _wait(lambda: (re.search(r"listening on 127\.0\.0\.1:(\d+)",
                                        log_path.read_text()) or [None, None])[1],
                     "rtqa serve to listen", 120)
        files = sorted(SAMPLE.glob("*.dcm"))
        t0 = time.perf_counter()
        res = subprocess.run(["storescu", "-xr", "-aet", "BENCH", "-aec", "RTQA",
                              "127.0.0.1", str(port), *map(str, files)],
                             capture_output=True, text=True)
        client_s = time.perf_counter() - t0
        if res.returncode != 0:
            raise SystemExit(f"storescu failed: {res.stderr[-2000:]}")
        db = out / "rtqa-serve.sqlite"

        def finished():
            conn = sqlite3.connect(db)
            try:
                return conn.execute("SELECT status, finished_at FROM checks").fetchone()
            finally:
                conn.close()
        status, finished_at = _wait(finished, "the report")
        conn = sqlite3.connect(db)
        first, last, n = conn.execute(
            "SELECT MIN(received), MAX(received), COUNT(*) FROM instances").fetchone()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(120)
        log.close()
    return {"n": n, "status": status, "server_ips": (n - 1) / (last - first),
            "client_ips": n / client_s, "to_report_s": finished_at - last,
            "to_report_less_settle_s": finished_at - last - settle}


def storescp_reference(work: Path) -> float | None:
    """instances/s from storescu to dcmtk's own storescp (the client's pace here)."""
    import socket
    if not shutil.which("storescp"):
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (work / "scp").mkdir()
    scp = subprocess.Popen(["storescp", "+xa", "-od", str(work / "scp"), str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        files = [str(f) for f in sorted(SAMPLE.glob("*.dcm"))]
        _wait(lambda: subprocess.run(["echoscu", "127.0.0.1", str(port)],
                                     capture_output=True).returncode == 0, "storescp", 60)
        t0 = time.perf_counter()
        subprocess.run(["storescu", "-xr", "127.0.0.1", str(port), *files], check=True,
                       capture_output=True)
        return len(files) / (time.perf_counter() - t0)
    finally:
        scp.terminate()
        scp.wait(60)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0)
    args = ap.parse_args(argv)
    if not shutil.which("storescu"):
        print("serve_bench: storescu not found (make dcmtk)", file=sys.stderr)
        return 2
    rows = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="rtqa-serve-bench-") as tmp:
            r = one_round(Path(tmp), args.settle)
        rows.append(r)
        print(f"round {i + 1}: {r['n']} instances, {r['status']}; received "
              f"{r['server_ips']:.1f} instances/s (server), {r['client_ips']:.1f}/s "
              f"(storescu wall time); last instance -> report {r['to_report_s']:.1f} s "
              f"({r['to_report_less_settle_s']:.1f} s after the {args.settle:g} s settle)")
    med = {k: statistics.median(r[k] for r in rows)
           for k in ("server_ips", "client_ips", "to_report_s", "to_report_less_settle_s")}
    print(f"median of {len(rows)}: {med['server_ips']:.1f} instances/s received "
          f"(server receipt times; {med['client_ips']:.1f}/s seen by storescu); "
          f"last instance -> finished report {med['to_report_s']:.1f} s "
          f"(settle {args.settle:g} s + {med['to_report_less_settle_s']:.1f} s checking "
          f"and writing). Machine: {os.cpu_count()} cores, shared.")
    with tempfile.TemporaryDirectory(prefix="rtqa-serve-bench-") as tmp:
        ref = storescp_reference(Path(tmp))
    if ref is not None:
        print(f"reference: storescu -> dcmtk storescp on this machine: {ref:.1f} "
              "instances/s (the client's own pace: storescu re-encodes each RLE image)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
