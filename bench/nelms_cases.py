"""The Nelms 2015 benchmark cases and the 3% rule, for every engine of ``make bench``.

Standard library only: imported by the orchestrator (bench/dvh_bench.py) and by the
dicompyler-core peer (bench/peer_dvh.py, its own environment). The same cases as
``rtqa.validation.nelms`` (rows with a dose file: 90 structure/dose pairs, 9 values each).
"""

from __future__ import annotations

import csv
from pathlib import Path

METRICS = ("Volume", "Dmin", "Dmax", "Dmean", "D99", "D95", "D5", "D1", "D0.03cc")


def cases(root):
    """(structure name, structure file, dose file, truth {metric: cc or Gy})."""
    root = Path(root)
    with open(root / "analytical_points.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            voxel = row["Dose Voxel (mm)"].strip()
            if "x" in voxel:
                continue  # 0.4x0.2x0.4 mm grids are not part of the data
            grad = "AntPost" if row["Gradient direction"].startswith("Z") else "SupInf"
            name = row["Structure name"].strip()
            truth = {"Volume": float(row["Total Volume (cc)"])}
            for m in METRICS[1:]:
                truth[m] = float(row[m]) / 100.0  # cGy -> Gy
            yield (name, root / "structures" / f"{name}.dcm",
                   root / "dose" / f"Linear_{grad}_{voxel}mm_Aligned.dcm", truth)


def failures(root, values: list, tol: float = 0.03) -> tuple[int, int]:
    """(failures, values) at ``tol`` for per-case metric dicts in ``cases`` order; a
    missing or non-numeric value (the engine gave none) counts as a failure."""
    n_fail = n = 0
    for (_, _, _, truth), got in zip(cases(root), values):
        for m in METRICS:
            n += 1
            v = (got or {}).get(m)
            if v is None or v != v or abs(v - truth[m]) > tol * abs(truth[m]):
                n_fail += 1
    return n_fail, n
