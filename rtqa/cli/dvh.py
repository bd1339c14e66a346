"""``rtqa dvh``: DVHs and TG-263 metrics for every structure of a plan export."""

from __future__ import annotations

import json
import math

import click

from rtqa.cli.common import EXIT_INPUT, handle_errors, progress
from rtqa.dvh import compute_dvh
from rtqa.errors import RtqaError
from rtqa.dvh.metrics import evaluate, parse_metric
from rtqa.dvh.plan_dvh import pairings
from rtqa.reading import load_export

BASE_METRICS = ("Min[Gy]", "Mean[Gy]", "Max[Gy]")


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}" if abs(v) < 1000 else f"{v:.1f}"


@click.command("dvh")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--metric", "-m", "metrics", multiple=True, metavar="M",
              help="TG-263 metric to add, e.g. D95%[Gy], D2cc[Gy], V20Gy[%], CV15Gy[cc], "
                   "DC700cc[Gy] (repeatable).")
@click.option("--prescription", type=float, metavar="GY",
              help="Prescription dose in Gy for V95%-style metrics (default: from the RTPLAN).")
@click.option("--fractions", type=click.IntRange(min=1), metavar="N",
              help="Fractions to scale a per-fraction dose (DoseSummationType FRACTION) when "
                   "there is no RTPLAN.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout instead of a table.")
@handle_errors
def dvh(paths, metrics, prescription, fractions, as_json):
    """Compute DVHs for every structure in PATHS (files and folders in any mix).

    Files are recognised by their DICOM SOP Class (any file name; non-DICOM files are
    skipped). Each RTSTRUCT is evaluated against the RTDOSE of its frame of reference; a
    per-fraction dose is multiplied by the RTPLAN's fraction count.

    \b
    Method: structures are sampled finely (SBRT targets at <= 1/120 of their size),
    cross-sections are interpolated between contour planes, the end planes get
    half-slice caps, dose is interpolated trilinearly, and the cumulative DVH is exact
    on 0.01 Gy nodes. A structure partly outside the dose grid is evaluated on the
    covered part, with a warning giving the volume outside (never counted as 0 Gy).

    \b
    Metrics (TG-263): D95%[Gy] min dose to the hottest 95%; D2cc[Gy]; V20Gy[%] and
    V20Gy[cc] volume receiving >= 20 Gy; V95%[%] (% of prescription); CV15Gy[cc] volume
    receiving < 15 Gy; DC700cc[Gy] max dose to the coldest 700 cc; Mean/Max/Min[Gy];
    cGy variants. Units: Gy, cc.

    \b
    Examples:
      rtqa dvh plan/
      rtqa dvh plan/ -m D95%[Gy] -m D2cc[Gy] --json
      rtqa dvh RD.dcm RS_a.dcm RS_b.dcm -m "V20Gy[%]"
    """
    parsed = [parse_metric(m) for m in metrics]
    export = load_export(list(paths), fractions_override=fractions)
    pairs = pairings(export)
    multi = {}
    for p in pairs:
        multi.setdefault((id(p.structure_set), p.structure.roi_number), []).append(p)
    report = progress()
    rows = []
    failed = False
    for n, p in enumerate(pairs, 1):
        report(n - 1, len(pairs), p.structure.name)
        name = p.structure.name
        if len(multi[(id(p.structure_set), p.structure.roi_number)]) > 1:
            name = f"{name} @ {p.course.label}"
        warnings = []
        if p.course.per_fraction:
            warnings.append("dose is per fraction (no RTPLAN gives the fraction count)")
        try:
            d = compute_dvh(p.structure, p.course.grid, ct_z=p.ct_z)
        except RtqaError as exc:
            failed = True
            rows.append({"name": name, "volume_cc": None,
                         "metrics": {m: None for m in (*BASE_METRICS, *metrics)},
                         "warnings": warnings + [exc.reason]})
            continue
        warnings.extend(d.warnings)
        values = {"Min[Gy]": d.min_gy, "Mean[Gy]": d.mean_gy, "Max[Gy]": d.max_gy}
        rx = prescription if prescription is not None else (
            p.course.plan.prescription_gy if p.course.plan else None)
        for text, m in zip(metrics, parsed):
            try:
                values[text] = float(evaluate(m, d, rx))
            except RtqaError as exc:
                failed = True
                values[text] = None
                warnings.append(f"{text}: {exc.reason}")
        rows.append({"name": name, "volume_cc": d.total_volume_cc, "metrics": values,
                     "warnings": warnings})
    report(len(pairs), len(pairs), "")
    for w in export.warnings:
        click.echo(f"rtqa: warning: {w}", err=True)
    if as_json:
        clean = [{**r, "metrics": {k: (None if v is None or not math.isfinite(v) else v)
                                   for k, v in r["metrics"].items()}} for r in rows]
        click.echo(json.dumps({"structures": clean}, indent=2))
    else:
        cols = [*BASE_METRICS, *metrics]
        width = max([len(r["name"]) for r in rows] + [9])
        click.echo(f"{'Structure':<{width}}  {'Volume[cc]':>10}  "
                   + "  ".join(f"{c:>12}" for c in cols))
        for r in rows:
            click.echo(f"{r['name']:<{width}}  {_fmt(r['volume_cc']):>10}  "
                       + "  ".join(f"{_fmt(r['metrics'][c]):>12}" for c in cols))
            for w in r["warnings"]:
                click.echo(f"{'':<{width}}  ! {w}")
    if failed:
        raise SystemExit(EXIT_INPUT)
