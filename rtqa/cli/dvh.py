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
#: where the prescription of a %-of-prescription metric came from (table tag, words)
RX_FROM = {
    "own": "the target prescription linked to this ROI (ReferencedROINumber) in its RTPLAN",
    "lesion": "a target without a prescription of its own: the prescription linked to the "
              "other targets of its lesion (e.g. the PTV around this GTV)",
    "plan": "no prescription is linked to this ROI or its lesion: the highest target "
            "prescription of its RTPLAN",
    "option": "--prescription",
}
CSV_HEADER = "structure,dose_gy,volume_cc,volume_pct"


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}" if abs(v) < 1000 else f"{v:.1f}"


def lesion_groups(structure_set) -> dict[int, tuple[int, ...]]:
    """ROI number -> ROI numbers of the same lesion (targets grouped by geometry, as
    ``rtqa check`` does: ``rtqa.checks.lesions``); organs and helpers are in none."""
    from rtqa.checks.lesions import find_targets, group_targets
    from rtqa.checks.names import match_rois
    names = [s.name for s in structure_set.structures]
    types = {s.name: s.interpreted_type for s in structure_set.structures}
    targets, _ = find_targets(structure_set, match_rois(names, roi_types=types))
    groups, _ = group_targets(targets)
    out = {}
    for group in groups:
        numbers = tuple(t.roi_number for t in group)
        for n in numbers:
            out[n] = numbers
    return out


def prescription_for(pairing, override: float | None, lesions=None
                     ) -> tuple[float | None, str | None, str]:
    """(prescription Gy, where from, note) for the %-of-prescription metrics of one
    structure on one course. Where from:

    * "option": ``--prescription``;
    * "own": the target prescription its RTPLAN links to this ROI (ReferencedROINumber;
      the highest when several are);
    * "lesion": a target with no prescription of its own (a GTV or CTV inside its PTV)
      takes the one prescription linked to the other ROIs of its lesion (``lesions``:
      ``lesion_groups``); when they carry different prescriptions it has none (None,
      and the note says why);
    * "plan": every other ROI (organs, helpers, targets of a lesion with no linked
      prescription): the plan's highest target prescription;
    * None: no RTPLAN prescription applies (no RTPLAN, or one without a dose).
    """
    if override is not None:
        return float(override), "option", ""
    plan = pairing.course.plan
    if plan is None:
        return None, None, "no RTPLAN gives this dose a prescription"
    by_roi: dict[int, float] = {}
    for t in plan.prescriptions:
        if t.roi_number is not None:
            by_roi[t.roi_number] = max(by_roi.get(t.roi_number, 0.0), float(t.dose_gy))
    number = pairing.structure.roi_number
    if number in by_roi:
        return by_roi[number], "own", ""
    group = (lesions or {}).get(number, ())
    linked = sorted({by_roi[n] for n in group if n in by_roi})
    if len(linked) == 1:
        return linked[0], "lesion", ""
    if len(linked) > 1:
        doses = ", ".join(f"{x:g} Gy" for x in linked)
        return None, None, (f"its lesion's targets carry different prescriptions ({doses}): "
                            "which one applies cannot be told; give --prescription GY")
    rx = plan.prescription_gy
    if rx is None:
        return None, None, "its RTPLAN has no target prescription"
    return float(rx), "plan", ""


def _csv_rows(name: str, d, step: float):
    """CSV lines of one cumulative DVH: every ``step`` Gy from 0 to the last node."""
    import numpy as np
    edges = np.asarray(d.edges_gy, dtype=float)
    cum = np.asarray(d.cum_cc, dtype=float)
    if edges.size == 0:
        return []
    n = int(math.floor(edges[-1] / step + 1e-9))
    doses = np.round(np.arange(n + 1) * step, 6)
    if doses[-1] < edges[-1] - 1e-9:
        doses = np.append(doses, edges[-1])
    cc = np.interp(doses, edges, cum, right=0.0)
    vol = float(d.volume_cc)
    pct = cc * 100.0 / vol if vol > 0 else np.zeros_like(cc)
    field = _csv_field(name)
    nd = _decimals(step)
    return [f"{field},{x:.{nd}f},{c:.4f},{p:.4f}" for x, c, p in
            zip(doses.tolist(), cc.tolist(), pct.tolist())]


def _decimals(step: float) -> int:
    """Decimals that print every multiple of ``step`` (Gy) exactly: 2 for a step of whole
    0.01 Gy (the default 0.1 Gy prints 0.10), up to 6 (0.015 Gy prints 0.015, not 0.01)."""
    for nd in range(2, 7):
        if abs(step * 10 ** nd - round(step * 10 ** nd)) < 1e-6:
            return nd
    return 6


def _csv_field(text: str) -> str:
    """A CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a
    leading = + - @ is prefixed with ' so that spreadsheets do not run it as a formula."""
    if text[:1] in ("=", "+", "-", "@"):
        text = "'" + text
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


@click.command("dvh")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--metric", "-m", "metrics", multiple=True, metavar="M",
              help="TG-263 metric to add, e.g. D95%[Gy], D2cc[Gy], V20Gy[%], CV15Gy[cc], "
                   "DC700cc[Gy] (repeatable).")
@click.option("--prescription", type=click.FloatRange(min=0, min_open=True), metavar="GY",
              help="Prescription dose in Gy for the %-of-prescription metrics (V95%[%], "
                   "CV95%[cc]) of every structure. Default: each structure's own target "
                   "prescription from its RTPLAN, else the plan's highest (see below).")
@click.option("--fractions", type=click.IntRange(min=1), metavar="N",
              help="Fractions to scale a per-fraction dose (DoseSummationType FRACTION) when "
                   "there is no RTPLAN.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout instead of a table.")
@click.option("--csv", "csv_path", metavar="PATH|-",
              help="Write the cumulative DVH curves as CSV to PATH ('-': stdout, instead of "
                   "the table): one row per structure and dose, columns structure, dose_gy "
                   "(Gy), volume_cc (cc receiving at least that dose), volume_pct (% of the "
                   "structure's volume inside the dose grid).")
@click.option("--csv-step", type=click.FloatRange(min=0.01, max=10.0), default=0.1,
              show_default=True, metavar="GY",
              help="Dose step of the CSV rows in Gy (the DVH is exact on 0.01 Gy nodes; "
                   "values between nodes are interpolated linearly).")
@handle_errors
def dvh(paths, metrics, prescription, fractions, as_json, csv_path, csv_step):
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
    Prescription of V95%[%]-style metrics (dose as % of prescription), per structure:
      own     the target prescription (TargetPrescriptionDose) its RTPLAN links to this
              ROI, e.g. PTV_T10 30 Gy in a plan that also prescribes 50 Gy elsewhere;
      lesion  a target without its own (GTV_T10 inside PTV_T10): the prescription of the
              other targets of its lesion (grouped by geometry as in rtqa check); if
              they differ, none (an error naming them: give --prescription);
      plan    any other ROI (organs, helpers): the plan's highest target prescription;
      option  --prescription GY, for every structure.
    The table adds an Rx[Gy] column with the source, the JSON a "prescription" object.
    Without an RTPLAN prescription and without --prescription such a metric is an error.

    \b
    CSV (--csv PATH or --csv - for stdout): long format, one row per structure and dose
    step (--csv-step, default 0.1 Gy), header
      structure,dose_gy,volume_cc,volume_pct
    dose_gy in Gy; volume_cc the volume (cc) receiving at least that dose; volume_pct the
    same in % of the structure's volume inside the dose grid. A structure on several
    courses is named "ROI @ plan". Metrics (-m) are not in the CSV: use the table or --json.

    \b
    Examples:
      rtqa dvh plan/
      rtqa dvh plan/ -m D95%[Gy] -m D2cc[Gy] --json
      rtqa dvh plan/ -m "V95%[%]" -m "V100%[cc]"
      rtqa dvh plan/ --csv dvh.csv
      rtqa dvh RD.dcm RS_a.dcm RS_b.dcm -m "V20Gy[%]"
    """
    if csv_path is not None and not csv_path.strip():
        raise click.UsageError("--csv needs a file path, or - for stdout")
    if as_json and csv_path == "-":
        raise click.UsageError("--json and --csv - both write to stdout: choose one, or "
                               "give --csv a file path")
    csv_file = None
    if csv_path and csv_path != "-":
        from rtqa.reading.scan import expand_paths
        from rtqa.report.atomic import check_destination
        check_destination(csv_path, refuse=expand_paths(list(paths)))  # before computing
        csv_file = csv_path
    parsed = [parse_metric(m) for m in metrics]
    relative = any(m.needs_prescription for m in parsed)
    export = load_export(list(paths), fractions_override=fractions)
    pairs = pairings(export)
    multi = {}
    for p in pairs:
        multi.setdefault((id(p.structure_set), p.structure.roi_number), []).append(p)
    report = progress()
    rows = []
    lesions: dict[int, dict] = {}
    csv_lines = [CSV_HEADER]
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
        if csv_path:
            csv_lines += _csv_rows(name, d, csv_step)
        values = {"Min[Gy]": d.min_gy, "Mean[Gy]": d.mean_gy, "Max[Gy]": d.max_gy}
        if relative and prescription is None and id(p.structure_set) not in lesions:
            lesions[id(p.structure_set)] = lesion_groups(p.structure_set)
        rx, rx_from, why = prescription_for(p, prescription, lesions.get(id(p.structure_set)))
        for text, m in zip(metrics, parsed):
            try:
                if m.needs_prescription and rx is None:
                    raise RtqaError(f"{m} on {name!r}: dose given as % of prescription, but "
                                    f"{why}")
                values[text] = float(evaluate(m, d, rx))
            except RtqaError as exc:
                failed = True
                values[text] = None
                warnings.append(f"{text}: {exc.reason}")
        row = {"name": name, "volume_cc": d.total_volume_cc, "metrics": values,
               "warnings": warnings}
        if relative:
            row["prescription"] = {
                "dose_gy": rx, "from": rx_from,
                "plan": p.course.plan.display if p.course.plan else None}
        rows.append(row)
    report(len(pairs), len(pairs), "")
    for w in export.warnings:
        click.echo(f"rtqa: warning: {w}", err=True)
    if csv_file:
        from rtqa.report.atomic import write_all
        write_all([(csv_file, "\n".join(csv_lines) + "\n")])
    if csv_path == "-":
        click.echo("\n".join(csv_lines))
    elif as_json:
        clean = [{**r, "metrics": {k: (None if v is None or not math.isfinite(v) else v)
                                   for k, v in r["metrics"].items()}} for r in rows]
        click.echo(json.dumps({"structures": clean}, indent=2))
    else:
        cols = [*BASE_METRICS, *metrics]
        width = max([len(r["name"]) for r in rows] + [9])

        def rx_cell(r):
            rx = r["prescription"]
            return "—" if rx["dose_gy"] is None else f"{rx['dose_gy']:g} ({rx['from']})"
        rx_head = f"  {'Rx[Gy]':>12}" if relative else ""
        click.echo(f"{'Structure':<{width}}  {'Volume[cc]':>10}{rx_head}  "
                   + "  ".join(f"{c:>12}" for c in cols))
        for r in rows:
            rx_col = f"  {rx_cell(r):>12}" if relative else ""
            click.echo(f"{r['name']:<{width}}  {_fmt(r['volume_cc']):>10}{rx_col}  "
                       + "  ".join(f"{_fmt(r['metrics'][c]):>12}" for c in cols))
            for w in r["warnings"]:
                click.echo(f"{'':<{width}}  ! {w}")
        if relative:
            used = sorted({r["prescription"]["from"] for r in rows
                           if r.get("prescription", {}).get("from")})
            for key in used:
                click.echo(f"Rx ({key}): {RX_FROM[key]}")
    if failed:
        raise SystemExit(EXIT_INPUT)
