"""Prescription consistency: each prescription judged against what the RTPLAN ties it to.

Never against a guessed target. Per ``DoseReferenceSequence`` TARGET item with a
TargetPrescriptionDose (``rtqa.reading.prescription``):

* linked to an ROI with volume (ReferencedROINumber; VOLUME): the protocol's SBRT
  prescription checks on that ROI (``integrity.prescription``, the protocol's
  ``[prescription]``): coverage V100%Rx and near-minimum D99% (priority per protocol,
  "optimal" in oligo-hcc), and the maximum as % of Rx (mandatory);
* linked to a point (a POINT ROI, or COORDINATES with DoseReferencePointCoordinates): the
  dose at the point against the prescription, within ``POINT_TOLERANCE`` (PASS / WARN);
* tied to nothing (SITE, or no structure type; also a plan-level prescription from
  BeamDose x fractions): only what can be judged is judged, that *some* target ROI
  (RTROIInterpretedType PTV/CTV/GTV, or a lesion target) has its median dose in the
  accepted range. PASS when one does, WARN when none does; the row carries
  ``Reason.PRESCRIPTION_UNLINKED`` and names no target. A target "receives" the
  prescription when it meets the protocol's near-minimum (D99% >= 90 % of Rx) and
  maximum (<= 166.7 % of Rx) rows: true of a homogeneous plan and of one prescribed to
  the 60 % isodose alike (the former 95-115 % median range was not). A DoseReferenceDescription
  naming an ROI is reported, not used: for a SITE it names a treatment site.

Beam dose specification points (the first fraction group's BeamDoseSpecificationPoint,
shared by every beam): the dose there against the sum of BeamDose x fractions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from rtqa.checks.integrity import CAT, MAX_FLOOR_TOLERANCE, TG275, prescription
from rtqa.constraints.model import PrescriptionRule
from rtqa.dvh.data import DVHData
from rtqa.dvh.metrics import dose_at_volume
from rtqa.errors import RtqaError
from rtqa.reading.export import CourseDose
from rtqa.reading.prescription import read_prescriptions
from rtqa.reading.structures import Structure, StructureSet
from rtqa.results import NOT_EVALUATED, PASS, WARN, Check, DoseView, Reason

SOURCE = TG275 + " (prescription consistency); DICOM PS3.3 C.8.8.10 (Dose Reference)"
#: dose at a prescription point accepted around the prescription (fraction of it): the
#: planning system computed that dose itself; 3% allows for dose-grid interpolation.
POINT_TOLERANCE = 0.03
TARGET_TYPES = ("PTV", "CTV", "GTV")


def _common(course: CourseDose) -> dict:
    plan = course.plan
    return dict(plans=(course.label,),
                fractions=(plan.fractions,) if plan and plan.fractions else ())


def _point_row(course: CourseDose, cid: str, rx: float, point, what: str) -> Check:
    from rtqa.dvh import trilinear
    d, inside = trilinear(course.grid, *(np.array([v]) for v in point))
    where = "(" + ", ".join(f"{v:.1f}" for v in point) + ") mm"
    if not bool(inside[0]):
        return Check(cid, CAT, NOT_EVALUATED, SOURCE, metric="dose at point", unit="Gy",
                     note=f"{course.label}: {what} at {where} lies outside the dose grid",
                     reason=Reason.OUTSIDE_DOSE_GRID, **_common(course))
    dose = float(d[0])
    ok = abs(dose - rx) <= POINT_TOLERANCE * rx
    lo, hi = rx * (1 - POINT_TOLERANCE), rx * (1 + POINT_TOLERANCE)
    return Check(cid, CAT, PASS if ok else WARN, SOURCE, metric="dose at point",
                 value=round(dose, 3), unit="Gy", limit=f"{lo:.2f}-{hi:.2f}",
                 note=f"{course.label}: {what} at {where}: {dose:.3f} Gy, "
                      f"{100 * dose / rx:.1f}% of the {rx:g} Gy the RTPLAN gives there",
                 reason=None if ok else Reason.DOSE_INCONSISTENT,
                 dose_view=DoseView.PHYSICAL, **_common(course))


def _near_min_max(d: DVHData, rule: PrescriptionRule) -> tuple[float, float]:
    """(D<near_min_volume_pct>%, maximum) of a DVH (Gy)."""
    vol = rule.near_min_volume_pct / 100 * d.volume_cc
    return float(dose_at_volume(d.edges_gy, d.cum_cc, vol)), float(d.max_gy)


def _unlinked_row(course: CourseDose, cid: str, rx: float, why: str,
                  targets: list[Structure], dvh_for, rule: PrescriptionRule) -> Check:
    lo, hi = rule.near_min_dose_pct / 100, rule.max_dose_pct / 100
    dv = f"D{rule.near_min_volume_pct:g}%"
    seen = []
    for t in targets:
        try:
            d = dvh_for(t)
            if d.volume_cc > 0:
                seen.append((t.name, *_near_min_max(d, rule)))
        except (RtqaError, ValueError):
            continue
    base = dict(metric=f"{dv}[Gy] of some target", unit="Gy",
                limit=f">= {lo * rx:.2f} with maximum <= {hi * rx:.2f} in one target",
                reason=Reason.PRESCRIPTION_UNLINKED, dose_view=DoseView.PHYSICAL,
                rois=tuple(n for n, _, _ in seen), **_common(course))
    src = SOURCE + "; " + rule.coverage_source
    head = (f"{course.label}: prescription of {rx:g} Gy tied to no ROI ({why}); it is "
            "compared with no particular target: judged is only whether some target ROI "
            f"receives it ({dv} >= {100 * lo:g}% and maximum <= {100 * hi:g}% of it)")
    if not seen:
        return Check(cid, CAT, WARN, src, note=head + "; the plan has no target ROI "
                     "with a dose to judge", **base)
    listing = ", ".join(f"{n} {100 * m / rx:.0f}%/{100 * x / rx:.0f}%" for n, m, x in seen)
    floor = (1 - MAX_FLOOR_TOLERANCE) * rx   # a maximum below Rx: not delivered
    hits = [(n, m, x) for n, m, x in seen if m >= lo * rx and floor <= x <= hi * rx]
    if hits:
        n, m, x = max(hits, key=lambda t: t[1])
        return Check(cid, CAT, PASS, src, value=round(m, 3),
                     note=f"{head}; {n} does ({dv} {100 * m / rx:.1f}%, maximum "
                          f"{100 * x / rx:.1f}%). {dv}/maximum: {listing}", **base)
    n, m, x = min(seen, key=lambda t: abs(t[1] / rx - 1.0))
    return Check(cid, CAT, WARN, src, value=round(m, 3),
                 note=f"{head}; none does (nearest {n}, {dv} {100 * m / rx:.1f}%, maximum "
                      f"{100 * x / rx:.1f}%). {dv}/maximum: {listing}: check the "
                      "prescription", **base)


def evaluate(course: CourseDose, ss: StructureSet, lesion_targets: list[Structure],
             dvh_for: Callable[[Structure], DVHData],
             rule: PrescriptionRule | None = None) -> list[Check]:
    """Prescription rows of one course (see the module docstring); ``rule``: the
    protocol's ``[prescription]`` (defaults when None)."""
    rule = rule or PrescriptionRule()
    plan = course.plan
    if plan is None:
        return []
    info = plan.dose_references or read_prescriptions(plan.path)
    by_number = {s.roi_number: s for s in ss.structures}
    by_lower = {s.name.lower(): s for s in ss.structures}
    targets = [s for s in ss.structures if s.has_volume
               and (s.interpreted_type.upper() in TARGET_TYPES)]
    targets += [t for t in lesion_targets if t not in targets and t.has_volume]
    label = course.label
    rows: list[Check] = []
    for k, ref in enumerate(info.references):
        rx = ref.prescription_gy
        if ref.reference_type != "TARGET" or rx is None or not rx > 0:
            continue
        tag = f"ref{ref.number if ref.number is not None else k + 1}"
        if ref.roi_number is not None:
            s = by_number.get(ref.roi_number)
            if s is None:
                rows += [replace(r, reason=Reason.PRESCRIPTION_UNLINKED) for r in
                         prescription(course, rx, None, None, ref.roi_number, rule)]
            elif s.has_volume:
                try:
                    d = dvh_for(s)
                except RtqaError:
                    d = None
                rows += prescription(course, rx, s, d, rule=rule)
            elif s.points.size:
                rows.append(_point_row(course, f"integrity.prescription.{label}.{s.name}",
                                       rx, tuple(s.points[0]), f"prescription point ROI "
                                       f"'{s.name}'"))
            else:
                rows.append(Check(
                    f"integrity.prescription.{label}.{s.name}", CAT, NOT_EVALUATED, SOURCE,
                    metric="prescription", note=f"{label}: the prescription of {rx:g} Gy "
                    f"is linked to ROI '{s.name}', which has neither volume nor a point",
                    reason=Reason.STRUCTURE_EMPTY, **_common(course)))
            continue
        if ref.structure_type == "COORDINATES" and ref.point_mm is not None:
            what = "prescription point" + (f" '{ref.description}'" if ref.description else "")
            rows.append(_point_row(course, f"integrity.prescription.{label}.{tag}", rx,
                                   ref.point_mm, what))
            continue
        why = (f"DoseReferenceStructureType {ref.structure_type or 'absent'}, "
               "no ReferencedROINumber")
        if ref.description:
            named = by_lower.get(ref.description.lower())
            why += f"; DoseReferenceDescription '{ref.description}'"
            if named is not None:
                why += (f" is also an ROI's name, not used: a "
                        f"{ref.structure_type or 'reference without type'} names no volume")
        rows.append(_unlinked_row(course, f"integrity.prescription.{label}.{tag}", rx, why,
                                  targets, dvh_for, rule))
    dosed = [b for b in info.beams if b.dose_gy is not None and b.dose_gy > 0]  # not setup
    points = {b.point_mm for b in dosed}
    if not any(r.prescription_gy for r in info.references if r.reference_type == "TARGET"):
        if plan.prescription_gy is not None:
            rows.append(_unlinked_row(
                course, f"integrity.prescription.{label}.beams", plan.prescription_gy,
                "BeamDose x NumberOfFractionsPlanned, no DoseReferenceSequence prescription",
                targets, dvh_for, rule))
        elif len(points) > 1:
            rows.append(Check(
                f"integrity.prescription.{label}.target", CAT, WARN, SOURCE,
                metric="prescription", reason=Reason.PRESCRIPTION_UNLINKED,
                note=f"{label}: no TargetPrescriptionDose; BeamDose is given at "
                     f"{len(points)} different beam dose specification points (several "
                     "isocentres): their sum is no prescription, so none is checked",
                **_common(course)))
        else:
            rows += prescription(course, None, None, None, rule=rule)
    if (dosed and len(points) == 1 and None not in points and plan.fractions
            and not course.per_fraction):
        per_fx = float(sum(b.dose_gy for b in dosed))
        rows.append(_point_row(course, f"integrity.prescription.{label}.beam_point",
                               per_fx * plan.fractions, next(iter(points)),
                               "beam dose specification point (sum of BeamDose "
                               f"{per_fx:.3f} Gy x {plan.fractions} fractions)"))
    return [r if r.plans else replace(r, **_common(course), dose_view=(
        DoseView.PHYSICAL if r.unit == "Gy" or (r.metric or "").endswith("[Gy]")
        else r.dose_view)) for r in rows]
