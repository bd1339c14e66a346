"""The plan context: everything one ``rtqa check`` reads, built once.

``build_context(paths, options)`` reads and links the export and holds: the export, the
plan's structure set, the ROI name matches (``match_rois``, run once), the protocol, the
courses (one per plan) with their own fraction counts, the planning-CT slice positions
(mm), the lesions found, and ONE ``rtqa.dvh.service.DoseService`` that gives any
structure's DVH in any dose view (physical per plan or summed, EQD2/BED at any α/β per
plan or summed), cached once, always with the CT slice positions.

Every check family reads only the context: ``evaluate(context) -> Evaluation`` in
``rtqa.checks.bed`` (lesions), ``oar`` (organs at risk), ``integrity`` and ``protocol``.
Input that cannot be checked raises ``RtqaError`` (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable, NamedTuple

import numpy as np

from rtqa.checks.names import NameMatch, match_rois
from rtqa.constraints import Protocol, load_constraint_file, load_protocol
from rtqa.dvh.data import DVHData
from rtqa.dvh.service import DoseService, DvhCache
from rtqa.errors import RtqaError
from rtqa.reading import load_export
from rtqa.reading.export import CourseDose, Export
from rtqa.reading.structures import Structure, StructureSet
from rtqa.results import Check, Curve, DoseView, LesionResult

__all__ = ["CheckOptions", "PlanContext", "Evaluation", "build_context", "curve",
           "MAX_CURVE_POINTS"]

Progress = Callable[[str], None]
#: Points of a plotted DVH curve (at most).
MAX_CURVE_POINTS = 400


@dataclass
class CheckOptions:
    """Options of one check (the ``rtqa check`` command-line options).

    ``protocol``: protocol name or TOML file; ``constraints``: extra constraint files;
    ``fractions``: fraction count when there is no RTPLAN; ``overrides``: TG-263 name ->
    plan ROI name (``--map``); ``sum_plans``: several plans that each meet a lesion's BED
    rule alone are one course (summed); ``dvh_cache``: a ``DvhCache`` the dose service
    computes through (e.g. a memo shared across checks); ``lesion_organs`` (``--lesion-organ``)
    and ``roi_types`` (``--roi-type``): see below."""

    protocol: str = "oligo-hcc"
    constraints: tuple[str, ...] = ()
    fractions: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    progress: Progress | None = None
    #: Several plans that each meet a lesion's BED rule alone are one course (summed);
    #: without it that lesion is NOT EVALUATED (they look like alternative plans).
    sum_plans: bool = False
    dvh_cache: DvhCache | None = None
    #: How several plans add up: "concurrent" (same days: physical sum, then LQ) or
    #: "sequential" (sum of EQD2/BED); None: the conservative one for each side (see
    #: ``rtqa.checks.oar`` and ``rtqa.checks.bed``).
    delivery: str | None = None
    #: end caps beyond a structure's outermost contour planes: "half" (the Nelms analytic
    #: truth) or "none" (``rtqa.dvh.geometry.END_CAPS``; ``--end-caps``)
    end_caps: str = "half"
    #: Label of the one RTPLAN to check (--plan): the others are listed, not checked.
    plan: str | None = None
    #: Lesion (or one of its ROI names) -> organ, for lesions outside every organ contour
    #: (``--lesion-organ PTV_LN=LymphNode``).
    lesion_organs: dict[str, str] = field(default_factory=dict)
    #: ROI name -> RTROIInterpretedType stated by the user (``--roi-type T10_PTV=PTV``);
    #: replaces the declared type everywhere.
    roi_types: dict[str, str] = field(default_factory=dict)


class Evaluation(NamedTuple):
    """What a check family returns: report rows, DVH curves to plot, warnings (and, for
    the lesion family, one ``LesionResult`` per lesion)."""

    checks: tuple[Check, ...] = ()
    curves: tuple[Curve, ...] = ()
    warnings: tuple[str, ...] = ()
    lesions: tuple[LesionResult, ...] = ()


def curve(name: str, dvh: DVHData, marks=(), objectives=(), dose_view=None,
          alpha_beta=None) -> Curve:
    """A cumulative DVH to plot: at most ``MAX_CURVE_POINTS`` nodes, dose (Gy) against
    volume (% of the covered volume; 0 when nothing is covered), 4 decimals."""
    n = dvh.edges_gy.size
    idx = np.unique(np.round(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS))).astype(int))
    pct = (100.0 * dvh.cum_cc[idx] / dvh.volume_cc if dvh.volume_cc > 0
           else np.zeros(idx.size))
    return Curve(name, tuple(float(v) for v in np.round(dvh.edges_gy[idx], 4)),
                 tuple(float(v) for v in np.round(pct, 4)), float(dvh.volume_cc),
                 tuple(marks), tuple(objectives),
                 DoseView(dose_view) if dose_view else DoseView.PHYSICAL, alpha_beta)


def structure_set_of(export: Export) -> StructureSet:
    """The plans' RTSTRUCT (the one they reference, else the only one)."""
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


def _protocol(options: CheckOptions) -> Protocol:
    protocol = load_protocol(options.protocol)
    extra = tuple(load_constraint_file(c) for c in options.constraints)
    return replace(protocol, sets=protocol.sets + extra) if extra else protocol


@dataclass(eq=False)
class PlanContext:
    """One plan export as every check family sees it (see the module docstring)."""

    export: Export
    structure_set: StructureSet
    protocol: Protocol
    options: CheckOptions
    names: NameMatch
    courses: tuple[CourseDose, ...]
    ct_z: np.ndarray | None
    dose: DoseService
    warnings: tuple[str, ...] = ()

    @property
    def fractions(self) -> tuple[int | None, ...]:
        """Fraction count of each course (``--fractions`` or its RTPLAN's; None unknown)."""
        return self.dose.fractions

    @property
    def fractions_override(self) -> int | None:
        return self.options.fractions

    @cached_property
    def by_name(self) -> dict[str, Structure]:
        return {s.name: s for s in self.structure_set.structures}

    @cached_property
    def lesions(self):
        """The lesions (``rtqa.checks.lesions.discover_lesions``), found once."""
        from rtqa.checks.lesions import discover_lesions
        return tuple(discover_lesions(self.structure_set, self.names,
                                      self.options.lesion_organs or None))


def build_context(paths, options: CheckOptions | None = None) -> PlanContext:
    """Read and link the export in ``paths`` and build its plan context.

    Raises ``RtqaError`` for an export that cannot be checked (several patients, a
    ``--fractions`` that contradicts an RTPLAN, no or ambiguous RTSTRUCT, no RTDOSE in its
    frame of reference, an unreadable protocol)."""
    options = options or CheckOptions()
    if options.delivery not in (None, "concurrent", "sequential"):
        raise RtqaError(f"delivery must be concurrent or sequential, got {options.delivery!r}")
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
    ss = structure_set_of(export)
    from rtqa.checks.accounting import select_courses
    if options.roi_types:
        from rtqa.checks.names import retype
        ss = retype(ss, options.roi_types)
    # one order whatever the file names, file order or plan labels
    courses = tuple(sorted(select_courses(export, ss, options.plan),
                           key=lambda c: (c.plan.sop_instance_uid if c.plan else "",
                                          c.grid.sop_instance_uid)))
    protocol = _protocol(options)
    ct = export.ct_for(ss)
    ct_z = ct.z if ct is not None else None
    fractions = [options.fractions or (c.plan.fractions if c.plan else None) for c in courses]
    from rtqa.dvh.settings import Settings
    dose = DoseService(courses, ct_z, fractions, cache=options.dvh_cache,
                       settings=Settings(end_caps=options.end_caps))
    names = match_rois([s.name for s in ss.structures], options.overrides or None,
                       roi_types={s.name: s.interpreted_type for s in ss.structures})
    by_name = {s.name for s in ss.structures}
    warnings = list(export.warnings)
    for std, roi in (options.overrides or {}).items():
        if std != roi and std in by_name:
            warnings.append(f"--map {std}={roi}: the plan also has an ROI named exactly "
                            f"'{std}', which is not used for {std}")
    return PlanContext(export, ss, protocol, options, names, dose.courses, ct_z, dose,
                       tuple(warnings))
