"""``rtqa check`` as a function: plan export in, :class:`rtqa.results.Report` out.

Stages: read and link the export; choose the plan's structure set and doses; load the
protocol (plus extra constraint files); match ROI names; evaluate lesions (BED), organs at
risk, plan integrity and protocol rules; collect structures, inputs (sha256) and the
conventions used. Input that cannot be read raises RtqaError (the CLI exits 2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from rtqa import __version__
from rtqa.checks import accounting, integrity
from rtqa.constraints import Protocol, load_constraint_file, load_protocol
from rtqa.dvh.dosesum import combined
from rtqa.dvh import compute_dvh
from rtqa.dvh.data import DVHData
from rtqa.errors import RtqaError
from rtqa.checks.names import match_rois
from rtqa.reading import load_export
from rtqa.reading.export import CourseDose, Export
from rtqa.reading.structures import Structure, StructureSet
from rtqa.results import (NOT_EVALUATED, Check, Curve, InputFile, Report,
                          StructureInfo, overall_status)

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

Progress = Callable[[str], None]


@dataclass
class CheckOptions:
    protocol: str = "oligo-hcc"
    constraints: tuple[str, ...] = ()
    fractions: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    progress: Progress | None = None
    #: Several plans that each meet a lesion's BED rule alone are one course (summed);
    #: without it that lesion is NOT EVALUATED (they look like alternative plans).
    sum_plans: bool = False
    #: Label of the one RTPLAN to check (--plan): the others are listed, not checked.
    plan: str | None = None


class DoseContext:
    """The physical course dose of the plan(s) and a DVH cache keyed by structure."""

    def __init__(self, courses: list[CourseDose], ct_z):
        self.courses = courses
        self.grid = courses[0].grid if len(courses) == 1 else combined(courses, "physical")
        self.ct_z = ct_z
        # keyed by id(); each entry keeps its structure alive so an id is never reused
        self._cache: dict[int, tuple[Structure, DVHData]] = {}

    def cached(self) -> list[tuple[Structure, DVHData]]:
        """Every (structure, DVH) computed so far, in computation order."""
        return list(self._cache.values())

    def dvh(self, s: Structure) -> DVHData:
        key = id(s)
        if key not in self._cache:
            self._cache[key] = (s, compute_dvh(s, self.grid, ct_z=self.ct_z))
        return self._cache[key][1]


def _structure_set(export: Export) -> StructureSet:
    referenced = {p.referenced_structure_set_uid for p in export.plans}
    candidates = [s for s in export.structure_sets if s.sop_instance_uid in referenced]
    if len(candidates) > 1:
        raise RtqaError("the plans reference different RTSTRUCTs: "
                        + ", ".join(s.path.name for s in candidates))
    if candidates:
        chosen = candidates[0]
        others = [s for s in export.structure_sets if s is not chosen
                  and s.frame_of_reference_uid == chosen.frame_of_reference_uid]
        if others:
            raise RtqaError(
                f"several RTSTRUCTs in the plan's frame of reference ({chosen.path.name}, "
                "referenced by the RTPLAN, and " + ", ".join(o.path.name for o in others)
                + "): remove the structure set that does not belong to this plan")
        return chosen
    if not export.structure_sets:
        raise RtqaError("no RTSTRUCT in the export: there are no structures to check")
    if len(export.structure_sets) > 1:
        raise RtqaError("several RTSTRUCTs and no RTPLAN says which one belongs to the plan: "
                        + ", ".join(s.path.name for s in export.structure_sets))
    return export.structure_sets[0]


def _inputs(export: Export) -> tuple[InputFile, ...]:
    out = []
    for f in export.scanned.files:
        digest = hashlib.sha256(f.path.read_bytes()).hexdigest()
        out.append(InputFile(str(f.path), f.kind, f.sop_instance_uid, digest))
    return tuple(out)


def _protocol(options: CheckOptions) -> Protocol:
    protocol = load_protocol(options.protocol)
    extra = tuple(load_constraint_file(c) for c in options.constraints)
    return replace(protocol, sets=protocol.sets + extra) if extra else protocol


def _curve(name: str, d: DVHData, marks=()) -> Curve:
    idx = np.unique(np.linspace(0, d.edges_gy.size - 1, 400).astype(int))
    vol = 100.0 * d.cum_cc[idx] / d.volume_cc if d.volume_cc > 0 else d.cum_cc[idx] * 0
    return Curve(name, tuple(np.round(d.edges_gy[idx], 4)), tuple(np.round(vol, 4)),
                 d.volume_cc, tuple(marks))


def run_check(paths: list[str], options: CheckOptions | None = None) -> Report:
    options = options or CheckOptions()
    say = options.progress or (lambda _msg: None)
    say("reading the export")
    export = load_export(list(paths), fractions_override=options.fractions)
    if len(export.patient_ids) > 1:
        raise RtqaError("the export holds several patients (PatientID "
                        + ", ".join(repr(p) for p in export.patient_ids) + "): check one at a time")
    if options.fractions is not None:
        for p in export.plans:
            if p.fractions and p.fractions != options.fractions:
                raise RtqaError(
                    f"--fractions {options.fractions} contradicts RTPLAN '{p.display}' "
                    f"({p.fractions} fractions): --fractions is only for exports without an "
                    "RTPLAN", p.path)
    ss = _structure_set(export)
    courses = accounting.select_courses(export, ss, options.plan)
    protocol = _protocol(options)
    ct = export.ct_for(ss)
    dose = DoseContext(courses, ct.z if ct is not None else None)
    rois = [s for s in ss.structures if s.has_volume]
    names = match_rois([s.name for s in ss.structures], options.overrides or None,
                       roi_types={s.name: s.interpreted_type for s in ss.structures})
    by_name = {s.name: s for s in ss.structures}
    warnings = list(export.warnings)
    for std, roi in (options.overrides or {}).items():
        if std != roi and std in by_name:
            warnings.append(f"--map {std}={roi}: the plan also has an ROI named exactly "
                            f"'{std}', which is not used for {std}")
    checks: list[Check] = []
    curves: list[Curve] = []

    say("lesions")
    lesion_results, lesion_checks, lesion_curves, lesions = _lesions(
        export, ss, courses, protocol, names, dose, options)
    checks += lesion_checks
    curves += lesion_curves
    checks += _empty_targets(ss, names, protocol)

    say("organs at risk")
    oar_checks, oar_curves = _oars(protocol, ss, courses, names, dose, options)
    checks += oar_checks
    curves += oar_curves

    say("plan integrity")
    checks += integrity.links(export, ss, fractions_given=options.fractions is not None)
    checks += accounting.dose_accounting(export)
    checks += accounting.several_plans(courses, options.sum_plans)
    plans, plan_rows = accounting.plan_listing(export, courses, ss.frame_of_reference_uid,
                                               options.plan, options.fractions)
    checks += plan_rows
    checks += accounting.fraction_consistency(
        export, courses, ss, lambda s, c: dose.dvh(s) if len(courses) == 1
        else compute_dvh(s, c.grid, ct_z=dose.ct_z))
    checks += accounting.plausibility(courses)
    checked = {}
    for c in checks:
        for r in c.rois:
            s = by_name.get(r)
            if s is not None and s.has_volume and c.category != "plan integrity":
                try:
                    checked[r] = dose.dvh(s)
                except RtqaError:
                    pass
    checks += integrity.coverage(checked)
    damage = accounting.contour_damage(ss, ct, dose.grid)
    outside = {s.name: (d.outside_cc, d.total_volume_cc) for s, d in dose.cached()}
    checks, guarded = accounting.guard_rows(checks, damage, outside)
    checks += accounting.contour_rows(damage, guarded, dose.grid)
    target_dvhs = {}
    for les in lesions:
        for t in _lesion_targets(les):
            try:
                target_dvhs[t.name] = dose.dvh(t)
            except RtqaError:
                pass
    for course in courses:
        for rx, tgt, missing in _prescriptions(course, ss, lesions, dose):
            if missing is not None:
                checks.append(integrity.prescription(course, rx, None, None, missing))
                continue
            d = None
            if tgt is not None:
                try:
                    d = dose.dvh(tgt) if len(courses) == 1 else compute_dvh(tgt, course.grid)
                except RtqaError as exc:
                    warnings.append(f"prescription check of {tgt.name}: {exc.reason}")
                    tgt = None
            checks.append(integrity.prescription(course, rx, tgt, d))
        checks.append(integrity.approval(course))
        checks += integrity.grid_resolution(course, target_dvhs)
    if protocol.planning_ct:
        rule = protocol.planning_ct
        checks += integrity.planning_ct(export, ss, rule.max_slice_spacing_mm,
                                        rule.max_pixel_size_mm, rule.source)
    if protocol.ptv_margin:
        for les in lesions:
            ctv, ptv = _lesion_ctv_ptv(les)
            if ctv is not None and ptv is not None:
                m = protocol.ptv_margin
                checks.append(integrity.ptv_margin(ctv, ptv, m.min_mm, m.max_mm, m.source))

    say("structures")
    structures = []
    for s in rois:
        std = names.roi_to_standard.get(s.name)
        try:
            d = dose.dvh(s)
            structures.append(StructureInfo(s.name, round(d.total_volume_cc, 4),
                                            round(d.min_gy, 4), round(d.mean_gy, 4),
                                            round(d.max_gy, 4), std, round(d.outside_cc, 4)))
        except RtqaError as exc:
            warnings.append(f"{s.name}: {exc.reason}")
            structures.append(StructureInfo(s.name, float("nan"), None, None, None, std))

    warnings += _contour_warnings(ss, dose)
    conventions = dict(CONVENTIONS)
    conventions["dose_used"] = "; ".join(c.note for c in courses)
    conventions["alpha_beta"] = _alpha_betas(checks, protocol)
    conventions["names"] = "; ".join(f"{k} = {v}" for k, v in sorted(
        names.standard_to_roi.items()))
    status = overall_status(checks)
    return Report(
        status=status,
        protocol={"name": protocol.name, "path": str(protocol.path or ""),
                  "source": protocol.source},
        patient_id=export.patient_ids[0] if export.patient_ids else "",
        plans=plans, doses=accounting.dose_files(export, ss.frame_of_reference_uid),
        lesions=tuple(lesion_results), checks=tuple(checks),
        structures=tuple(structures), warnings=tuple(dict.fromkeys(warnings)), errors=(),
        inputs=_inputs(export), conventions=conventions, rtqa_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        curves=tuple(curves))


def _alpha_betas(checks, protocol) -> str:
    parts = []
    if protocol.lesions:
        parts.append(f"lesion BED: α/β = {protocol.lesions.alpha_beta:g} Gy")
    notes = sorted({c.note for c in checks if "α/β" in c.note and c.category == "organs at risk"})
    parts.extend(notes[:6])
    return "; ".join(parts)


# --- lesions ------------------------------------------------------------------------------

def _lesions(export, ss, courses, protocol, names, dose, options):
    from rtqa.checks.bed import evaluate_lesions, oligoprogression_checks
    from rtqa.checks.lesions import discover_lesions
    lesions = discover_lesions(ss, names)
    if protocol.lesions is None:
        return [], oligoprogression_checks(lesions, protocol.oligoprogression), [], lesions
    ev = evaluate_lesions(lesions, courses, protocol.lesions,
                          fractions_override=options.fractions, sum_plans=options.sum_plans,
                          dvh_for=lambda s, g: (dose.dvh(s) if g is dose.grid
                                                else compute_dvh(s, g, ct_z=dose.ct_z)))
    from rtqa.checks.bed import coverage_target
    from rtqa.dvh.metrics import dose_at_volume
    curves = []
    for r in ev.results:
        les = next((x for x in lesions if x.name == r.name), None)
        target = coverage_target(les, protocol.lesions.coverage_structures) if les else None
        if target is None:
            continue
        try:
            d = dose.dvh(target.structure)
        except RtqaError:
            continue
        d95 = dose_at_volume(d.edges_gy, d.cum_cc, 0.95 * d.volume_cc)
        bed = "n/a" if r.bed_gy is None else f"{r.bed_gy:.1f} Gy"
        curves.append(_curve(target.roi, d, [(float(d95), 95.0, f"{r.metric} (BED {bed})",
                                              r.status)]))
    checks = list(ev.checks) + list(oligoprogression_checks(lesions, protocol.oligoprogression))
    return list(ev.results), checks, curves, lesions


def _empty_targets(ss, names, protocol) -> list[Check]:
    """A target ROI without volume cannot be placed in a lesion: NOT EVALUATED (ERROR),
    never left out silently (the lesion would be judged on its other targets)."""
    from rtqa.checks.lesions import empty_targets
    source = protocol.lesions.source if protocol.lesions else "lesion discovery"
    out = []
    for s in empty_targets(ss, names):
        why = "; ".join(s.warnings[:3]) if s.warnings else "it has no closed contours"
        out.append(Check(
            f"lesion.target_without_volume.{s.name}", "lesions", NOT_EVALUATED, source,
            structure=s.name, rois=(s.name,), metric="target volume",
            note=f"target ROI '{s.name}' has no volume ({why}): its lesion cannot be "
                 "evaluated; remove the ROI from the export if it is an unused placeholder"))
    return out


def _contour_warnings(ss: StructureSet, dose: DoseContext) -> list[str]:
    """Contour problems (dropped contours, self-intersecting planes, a single plane) of
    every ROI, named, so that no contour damage stays out of the report. Dose-coverage
    warnings have their own checks (integrity.coverage) and are not repeated."""
    out = [f"ROI '{s.name}': {w}" for s in ss.structures for w in s.warnings]
    for s, d in dose.cached():
        own = set(s.warnings)
        out += [f"ROI '{s.name}': {w}" for w in d.warnings
                if w not in own and "outside the dose grid" not in w]
    return out


def _lesion_targets(lesion) -> list[Structure]:
    return [t.structure for t in lesion.targets]


def _lesion_ctv_ptv(lesion):
    inner = next((t.structure for cls in ("CTV", "ITV") for t in lesion.of_class(cls)), None)
    ptv = next((t.structure for t in lesion.of_class("PTV")), None)
    return inner, ptv


def _prescriptions(course, ss, lesions, dose):
    """(prescription Gy, target structure, missing ROI number) of a course's plan.

    ROI-linked TargetPrescriptionDose items are checked against their own ROI (the third
    item is the ROI number when the structure set lacks it); a plan-level prescription
    against the hottest coverage target (PTV, else GTV) of the lesions."""
    plan = course.plan
    if plan is None:
        return []
    by_number = {s.roi_number: s for s in ss.structures}
    linked = [(p.dose_gy, by_number.get(p.roi_number),
               None if p.roi_number in by_number else p.roi_number)
              for p in plan.prescriptions if p.roi_number is not None]
    if linked:
        return linked
    from rtqa.checks.bed import coverage_target
    best, best_dose = None, -1.0
    for les in lesions:
        t = coverage_target(les, ("PTV", "GTV"))
        if t is None:
            continue
        try:
            m = dose.dvh(t.structure).mean_gy
        except RtqaError:
            continue
        if m > best_dose:
            best, best_dose = t.structure, m
    return [(plan.prescription_gy, best, None)]


# --- organs at risk ------------------------------------------------------------------------

def _oars(protocol, ss, courses, names, dose, options):
    from rtqa.checks.bed import fractions_of
    from rtqa.checks.oar import evaluate_oars
    ns = fractions_of(courses, options.fractions)
    result = evaluate_oars(protocol, ss, courses, fractions=ns[0],
                           overrides=options.overrides or None, dvh_for=dose.dvh,
                           ct_z=dose.ct_z)
    return _collapse_absent(list(result.checks)), list(result.curves)


def _collapse_absent(checks: list[Check]) -> list[Check]:
    """Rows of organs the plan does not contain (optional, NOT EVALUATED) become one row
    naming those organs and how many rows they carry, instead of one row each."""
    absent = [c for c in checks if c.status == NOT_EVALUATED and c.priority == "optimal"
              and "no structure matching" in c.note]
    if not absent:
        return checks
    organs = list(dict.fromkeys(c.structure for c in absent))
    keep = [c for c in checks if c not in absent]
    keep.append(Check(
        "oar.absent", "organs at risk", NOT_EVALUATED,
        "protocol constraint sets (see constraints list)", structure="organs not in the plan",
        metric=f"{len(absent)} rows", note="no structure in the plan for: "
        + ", ".join(organs) + " — their rows are not evaluated (they do not fail the plan; "
        "map a differently named ROI with --map STANDARD=ROI)", priority="optimal"))
    return keep
