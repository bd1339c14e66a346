"""Nelms et al. 2015 analytic DVH benchmark: ``python -m rtqa.validation.nelms DIR``.

DIR holds the benchmark data (``analytical_points.csv``, ``structures/``, ``dose/``); it is
used for validation only and never copied into the project. For each structure/dose pair
that has a dose file, 9 values are compared with the analytic truth: volume (cc), Dmin,
Dmax, Dmean, D99, D95, D5, D1 and D0.03cc (cGy in the table). The paper's rule: a value
fails when it differs from the truth by more than 3% of the truth (2% also reported).
Exit code 0 when no value fails at 3%, 1 otherwise, 2 when the data is missing.
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rtqa.dvh import compute_dvh
from rtqa.dvh.metrics import dose_at_volume
from rtqa.reading import load_export

METRICS = ("Volume", "Dmin", "Dmax", "Dmean", "D99", "D95", "D5", "D1", "D0.03cc")


@dataclass(frozen=True)
class Comparison:
    structure: str
    dose_file: str
    metric: str
    truth: float
    value: float

    @property
    def rel_error(self) -> float:
        return abs(self.value - self.truth) / abs(self.truth)


def cases(root: Path):
    """(structure name, structure file, dose file, truth dict) for rows with a dose file."""
    with open(root / "analytical_points.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            voxel = row["Dose Voxel (mm)"].strip()
            if "x" in voxel:
                continue  # 0.4x0.2x0.4 mm grids are not part of the data
            grad = "AntPost" if row["Gradient direction"].startswith("Z") else "SupInf"
            name = row["Structure name"].strip()
            dose = root / "dose" / f"Linear_{grad}_{voxel}mm_Aligned.dcm"
            truth = {"Volume": float(row["Total Volume (cc)"])}
            for m in METRICS[1:]:
                truth[m] = float(row[m]) / 100.0  # cGy -> Gy
            yield name, root / "structures" / f"{name}.dcm", dose, truth


def evaluate_case(structure_file: Path, dose_file: Path, truth: dict, name: str):
    export = load_export([structure_file, dose_file])
    structure = next(s for s in export.structure_sets[0].structures if s.has_volume)
    dvh = compute_dvh(structure, export.courses[0].grid)
    e, c, v = dvh.edges_gy, dvh.cum_cc, dvh.volume_cc
    values = {
        "Volume": dvh.total_volume_cc, "Dmin": dvh.min_gy, "Dmax": dvh.max_gy,
        "Dmean": dvh.mean_gy, "D99": dose_at_volume(e, c, 0.99 * v),
        "D95": dose_at_volume(e, c, 0.95 * v), "D5": dose_at_volume(e, c, 0.05 * v),
        "D1": dose_at_volume(e, c, 0.01 * v), "D0.03cc": dose_at_volume(e, c, 0.03),
    }
    return [Comparison(name, dose_file.name, m, truth[m], float(values[m])) for m in METRICS]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else "../shared/validation/nelms2015")
    if not (root / "analytical_points.csv").exists():
        print(f"rtqa validate: no Nelms 2015 data at {root}", file=sys.stderr)
        return 2
    verbose = "-v" in args
    results: list[Comparison] = []
    t0 = time.perf_counter()
    for name, sfile, dfile, truth in cases(root):
        results.extend(evaluate_case(sfile, dfile, truth, name))
    elapsed = time.perf_counter() - t0
    fail3 = [r for r in results if r.rel_error > 0.03]
    fail2 = [r for r in results if r.rel_error > 0.02]
    pairs = len(results) // len(METRICS)
    shown = fail2 if not verbose else results
    if shown:
        print(f"{'structure':<22}{'dose':<30}{'metric':<9}{'truth':>9}{'rtqa':>9}{'err%':>7}")
    for r in shown:
        flag = " FAIL3" if r.rel_error > 0.03 else (" >2%" if r.rel_error > 0.02 else "")
        print(f"{r.structure:<22}{r.dose_file:<30}{r.metric:<9}{r.truth:>9.3f}{r.value:>9.3f}"
              f"{100 * r.rel_error:>7.2f}{flag}")
    worst = max(results, key=lambda r: r.rel_error)
    print(f"Nelms 2015 benchmark: {pairs} structure/dose pairs, {len(results)} values, "
          f"{elapsed:.1f} s")
    print(f"failures at 3%: {len(fail3)}/{len(results)}; at 2%: {len(fail2)}/{len(results)}; "
          f"worst {100 * worst.rel_error:.2f}% ({worst.structure}, {worst.dose_file}, "
          f"{worst.metric})")
    return 1 if fail3 else 0


if __name__ == "__main__":
    raise SystemExit(main())
