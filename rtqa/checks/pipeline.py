"""``rtqa check`` as a function: plan export in, :class:`rtqa.results.Report` out.

``run_check`` builds the plan context once (``rtqa.checks.context``: export, structure
set, name matches, courses with their fraction counts, CT slice positions, one dose
service) and runs the check families on it: lesions (``bed``), organs at risk (``oar``),
protocol rules (``protocol``) and plan integrity (``integrity``), each
``evaluate(context) -> Evaluation``; then collects structures, inputs (sha256) and the
conventions used. Input that cannot be read raises RtqaError (the CLI exits 2).
"""

from __future__ import annotations

import dataclasses

import hashlib
from datetime import datetime, timezone

from rtqa import __version__
from rtqa.checks import accounting, bed, integrity, oar, protocol as protocol_rules
from rtqa.checks.context import CheckOptions, PlanContext, build_context
from rtqa.checks.names import roi_infos
from rtqa.errors import RtqaError
from rtqa.reading.export import Export
from rtqa.results import (Check, DoseFileInfo, DoseView, InputFile, PlanInfo, Report,
                          StructureInfo, TargetPrescription,
                          overall_status)

__all__ = ["run_check", "CheckOptions", "CONVENTIONS"]

CONVENTIONS = {
    "dvh_geometry": "cross-sections interpolated between contour planes (circular arc of the "
                    "signed distance through neighbouring planes); half-slice end caps; "
                    "even-odd rule for several contours on a plane",
    "dvh_dose": "trilinear interpolation; cumulative DVH exact on 0.01 Gy nodes, metrics "
                "interpolated linearly; volume outside the dose grid left out and reported",
    "volume_metrics": "VxGy = volume receiving >= x Gy; CVxGy = volume receiving < x Gy; "
                      "Dx = minimum dose to the hottest x; DCx = maximum dose to the coldest x",
    "point_max": "point maximum evaluated as D0.035cc (TG-101 convention) where a row says so",
    "radiobiology": "linear-quadratic model; BED = D(1 + D/(n a/b)); EQD2 = BED/(1 + 2/(a/b)); "
                    "plans with different fractionation summed voxel-wise as BED/EQD2",
    "dose_summation": "each RTDOSE counted once: one representation per plan (or fraction "
                      "group): PLAN, else the sum of its BEAM doses, else FRACTION x the "
                      "group's NumberOfFractionsPlanned; plan sums (MULTI_PLAN) never added "
                      "to their plans' doses; duplicates are errors; several RTPLANs summed "
                      "only with --sum-plans",
}


def _inputs(export: Export) -> tuple[InputFile, ...]:
    out = []
    for f in export.scanned.files:  # the digest of the bytes the scan read and parsed
        digest = f.sha256 or hashlib.sha256(f.path.read_bytes()).hexdigest()
        out.append(InputFile(str(f.path), f.kind, f.sop_instance_uid, digest))
    return tuple(out)


def run_check(paths: list[str], options: CheckOptions | None = None) -> Report:
    """Check the plan export in ``paths`` (files and folders) and return its report."""
    options = options or CheckOptions()
    say = options.progress or (lambda _msg: None)
    say("reading the export")
    ctx = build_context(paths, options)
    say("lesions")
    lesions = bed.evaluate(ctx)
    say("organs at risk")
    oars = oar.evaluate(ctx)
    say("protocol")
    rules = protocol_rules.evaluate(ctx)
    say("plan integrity")
    plan = integrity.evaluate(ctx, lesions.checks + oars.checks)
    from rtqa.checks.lesions import evaluate_rois
    rois = evaluate_rois(ctx)
    checks, accounts, plans, doses = accounting.evaluate(
        ctx, [c for f in (lesions, oars, rules, plan, rois) for c in f.checks])
    families = (lesions, oars, rules, plan, rois, accounts)
    checks += accounts.checks
    warnings = list(ctx.warnings) + [w for f in families for w in f.warnings]
    say("structures")
    overview: list = []
    structures = _structures(ctx, warnings, overview)
    warnings += _contour_warnings(ctx)
    from rtqa.checks import headroom
    lesion_results = headroom.evaluate(  # OAR-limited lesions: informative, no verdict
        ctx, accounting.guard_lesions(lesions.lesions, checks), checks)
    report = _report(ctx, checks, lesion_results, structures, warnings,
                     tuple(c for f in families for c in f.curves), plans, doses)
    return dataclasses.replace(report, overview=tuple(overview))


def _structures(ctx: PlanContext, warnings: list[str], overview=None) -> list[StructureInfo]:
    """One StructureInfo per structure with a volume; ``overview`` (a list) receives the
    physical DVH curve of each (``Report.overview``)."""
    from rtqa.checks.context import curve
    out = []
    for s in ctx.structure_set.structures:
        if not s.has_volume:
            continue
        std = ctx.names.roi_to_standard.get(s.name)
        try:
            d = ctx.dose.dvh(s)
            out.append(StructureInfo(s.name, round(d.total_volume_cc, 4), round(d.min_gy, 4),
                                     round(d.mean_gy, 4), round(d.max_gy, 4), std,
                                     round(d.outside_cc, 4)))
            if overview is not None:
                overview.append(curve(s.name, d))
        except RtqaError as exc:
            warnings.append(f"{s.name}: {exc.reason}")
            out.append(StructureInfo(s.name, float("nan"), None, None, None, std))
    return out


def _report(ctx: PlanContext, checks, lesion_results, structures, warnings, curves,
            plans: tuple[PlanInfo, ...], doses: tuple[DoseFileInfo, ...]) -> Report:
    options, protocol = ctx.options, ctx.protocol
    plans = tuple(_identified(p, ctx) for p in plans)
    conventions = dict(CONVENTIONS)
    if options.end_caps != "half":
        conventions["dvh_geometry"] = conventions["dvh_geometry"].replace(
            "half-slice end caps", "no end caps (--end-caps none: structures end on their "
            "outermost contour planes)")
    conventions["dose_used"] = "; ".join(c.note for c in ctx.courses)
    conventions["alpha_beta"] = _alpha_betas(checks, protocol)
    conventions["delivery"] = _delivery(ctx)
    conventions["names"] = "; ".join(f"{k} = {v}" for k, v in sorted(
        ctx.names.standard_to_roi.items()))
    export = ctx.export
    return Report(
        status=overall_status(checks),
        protocol={"name": protocol.name, "path": str(protocol.path or ""),
                  "source": protocol.source},
        patient_id=export.patient_ids[0] if export.patient_ids else "",
        patient_name=_patient_name(ctx),
        plans=plans, doses=doses, lesions=tuple(lesion_results), checks=tuple(checks),
        structures=tuple(structures), rois=roi_infos(ctx.structure_set.structures, ctx.names),
        warnings=tuple(dict.fromkeys(warnings)), errors=(),
        inputs=_inputs(export), conventions=conventions, rtqa_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        curves=tuple(curves))


def _review_date(date: str, time: str) -> str:
    """DICOM DA + TM as ISO 8601 ("2025-03-14T09:26:53"); the text as written when it is
    not a well-formed date."""
    d = date.strip()
    if not (len(d) == 8 and d.isdigit()):
        return d
    iso = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    t = time.strip().split(".")[0]
    if len(t) >= 4 and t.isdigit():
        iso += f"T{t[:2]}:{t[2:4]}" + (f":{t[4:6]}" if len(t) >= 6 else "")
    return iso


def _identified(info: PlanInfo, ctx: PlanContext) -> PlanInfo:
    """``info`` with what identifies its RTPLAN for sign-off: plan name, approval reviewer
    and date, and each target prescription with the name of the ROI it is linked to."""
    plan = next((p for p in ctx.export.plans if info.sop_instance_uid
                 and p.sop_instance_uid == info.sop_instance_uid), None)
    if plan is None:
        return info
    names = {s.roi_number: s.name for s in ctx.structure_set.structures} \
        if ctx.structure_set is not None else {}
    targets = tuple(TargetPrescription(names.get(t.roi_number, "") if t.roi_number is not None
                                       else "", t.dose_gy, t.description)
                    for t in plan.prescriptions)
    return dataclasses.replace(info, name=plan.name, reviewer=plan.reviewer,
                               review_date=_review_date(plan.review_date, plan.review_time),
                               targets=targets)


def _patient_name(ctx: PlanContext) -> str:
    return next((p.patient_name for p in ctx.export.plans if p.patient_name), "")


def _alpha_betas(checks: list[Check], protocol) -> str:
    """The α/β values used, from the rows' ``dose_view`` and ``alpha_beta`` fields."""
    parts = []
    if protocol.lesions:
        parts.append(f"lesion BED: α/β = {protocol.lesions.alpha_beta:g} Gy")
    uses: dict[tuple[str, float], list[str]] = {}
    for c in checks:
        if c.alpha_beta is None or c.dose_view not in (DoseView.EQD2, DoseView.BED) \
                or c.category != oar.CATEGORY:
            continue
        names = uses.setdefault((str(c.dose_view), float(c.alpha_beta)), [])
        if c.structure not in names:
            names.append(c.structure)
    for (view, ab), names in sorted(uses.items()):
        parts.append(f"organs at risk on {view}: α/β = {ab:g} Gy ({', '.join(names)})")
    return "; ".join(parts)


def _delivery(ctx: PlanContext) -> str:
    """Which delivery assumption summed several plans (the rows' notes say it too)."""
    if len(ctx.courses) < 2:
        return "one plan: no summation of plans"
    stated = ctx.options.delivery
    if stated == "concurrent":
        return ("concurrent (stated): plans delivered on the same days; EQD2/BED of the "
                "voxel-wise physical sum (organs: in the fewest fractions of the plans; "
                "lesions: in the most)")
    if stated == "sequential":
        return ("sequential (stated): each plan's EQD2/BED with its own fraction count, "
                "summed voxel-wise; fraction-specific physical limits on each plan's own dose")
    return ("not stated (--delivery): conservative per side; organ rows as concurrent (the "
            "physical sum, then EQD2/BED in the fewest fractions: at least the sequential "
            "sum in every voxel); lesion coverage the lower BED of concurrent and sequential")


def _contour_warnings(ctx: PlanContext) -> list[str]:
    """Contour problems (dropped contours, self-intersecting planes, a single plane) of
    every ROI, named, so that no contour damage stays out of the report. Dose-coverage
    warnings have their own checks (integrity.coverage) and are not repeated."""
    ss = ctx.structure_set
    out = [f"ROI '{s.name}': {w}" for s in ss.structures for w in s.warnings]
    own_rois = {id(s) for s in ss.structures}
    for s, d in ctx.dose.computed():
        if id(s) not in own_rois:
            continue  # structures built from expressions (Liver - GTV)
        own = set(s.warnings)
        out += [f"ROI '{s.name}': {w}" for w in d.warnings
                if w not in own and "outside the dose grid" not in w]
    return out
