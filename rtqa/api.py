"""The public Python API of rtqa: plan QA and DVHs from DICOM RT exports.

Everything here is also reachable from the top-level package (``rtqa.check``,
``rtqa.dvh``, ``rtqa.exit_code``, ``rtqa.Report`` ...), which imports it lazily: ``import
rtqa`` stays light. The implementation (``rtqa.checks``, ``rtqa.dvh``, ``rtqa.reading``)
is private and may change; these names keep their meaning.

Units: dose in Gy, volume in cc (cm³), distances in mm.

Examples
--------
>>> import rtqa
>>> report = rtqa.check("plans_sample/hcc_pass")
>>> report.status, rtqa.exit_code(report)
('PASS', 0)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from rtqa import __version__
from rtqa.errors import RtqaError
from rtqa.results import EXIT_CODES, DoseView, Report

if TYPE_CHECKING:  # pragma: no cover
    from dicompylercore.dvh import DVH

__all__ = ["check", "dvh", "exit_code"]

PathsLike = "str | os.PathLike | Iterable[str | os.PathLike]"


def _paths(paths) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    out = [os.fspath(p) for p in paths]
    if not out:
        raise RtqaError("no path given: name a plan folder or its files")
    return out


def _error_report(message: str, protocol: str) -> Report:
    """The ERROR report of an export that could not be checked at all."""
    return Report(status="ERROR", protocol={"name": protocol, "path": "", "source": ""},
                  patient_id="", errors=(message,), rtqa_version=__version__,
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def check(paths, *, protocol: str = "oligo-hcc", constraints: Iterable[str] = (),
          fractions: int | None = None, overrides: Mapping[str, str] | None = None,
          sum_plans: bool = False, delivery: str | None = None,
          progress: Callable[[str], None] | None = None, strict: bool = False,
          end_caps: str = "half", plan: str | None = None,
          roi_types: Mapping[str, str] | None = None,
          lesion_organs: Mapping[str, str] | None = None) -> Report:
    """Check a plan export against a protocol: what ``rtqa check`` does, as a function.

    Parameters
    ----------
    paths : str, path-like, or iterable of them
        The export: a folder, files, or any mix (CT, RTSTRUCT, RTPLAN, RTDOSE; files are
        recognised by their SOP Class, whatever their names).
    protocol : str, default "oligo-hcc"
        A protocol name (``rtqa constraints list`` shows them) or a protocol TOML file.
    constraints : iterable of str, optional
        Extra constraint TOML files added to the protocol.
    fractions : int, optional
        Number of fractions, only for an export without an RTPLAN (never guessed; a value
        that contradicts an RTPLAN is an error).
    overrides : mapping of str to str, optional
        TG-263 standard name -> plan ROI name, e.g. ``{"SpinalCord": "CORD_1"}``
        (``--map SpinalCord=CORD_1``).
    sum_plans : bool, default False
        The RTPLANs on one structure set are delivered together as one course (summed).
        Without it several plans with doses give ERROR (they may be alternatives).
    delivery : {"concurrent", "sequential"}, optional
        How several plans are delivered: concurrent (same days: EQD2/BED of the physical
        sum) or sequential (each plan's EQD2/BED, summed). Default: the conservative one
        for each side, the higher organ dose and the lower lesion BED
        (``report.conventions["delivery"]`` says which was used).
    progress : callable, optional
        Called with a short text as each stage starts.
    strict : bool, default False
        Raise ``RtqaError`` for an export that cannot be checked at all, instead of
        returning an ERROR report with the reason in ``errors``.
    end_caps : {"half", "none"}, default "half"
        How far each structure extends beyond its first and last contour planes: half a
        contour spacing (the Nelms 2015 analytic truth) or not at all (nearer Eclipse's
        volumes; see docs/dicom-conventions.md). ``--end-caps`` of ``rtqa check``.
    plan : str, optional
        RTPlanLabel of the one plan to check (``--plan``); the other RTPLANs are listed
        as not checked (an APPROVED plan without dose is then no error).
    roi_types : mapping of str to str, optional
        ROI name -> RTROIInterpretedType stated by the user, replacing the declared one,
        e.g. ``{"T10_PTV": "PTV"}`` (``--roi-type T10_PTV=PTV``).
    lesion_organs : mapping of str to str, optional
        Lesion (or one of its ROI names) -> organ, for a lesion outside every organ
        contour, e.g. ``{"PTV_LN": "LymphNode"}`` (``--lesion-organ PTV_LN=LymphNode``).

    Returns
    -------
    Report
        ``status`` is ``"PASS"``, ``"FAIL"`` or ``"ERROR"`` (see :func:`exit_code`);
        ``checks`` holds one :class:`~rtqa.results.Check` per rule with its value, limit,
        source, dose view (physical, EQD2, BED), α/β (Gy), plans and fraction counts;
        ``lesions`` one :class:`~rtqa.results.LesionResult` per lesion (BED in Gy).

    Notes
    -----
    PASS needs every mandatory row to pass; a mandatory row that could not be evaluated
    makes the plan ERROR, never PASS. Lesion BED and organ EQD2 use the linear-quadratic
    model with each plan's own fraction count, summed voxel by voxel.

    References
    ----------
    .. [1] Fowler JF. The linear-quadratic formula and progress in fractionated
       radiotherapy. Br J Radiol 1989;62:679-694.
    .. [2] Ford E et al. Strategies for effective physics plan and chart review in
       radiation therapy: Report of AAPM Task Group 275. Med Phys 2020;47:e236-e272.

    Examples
    --------
    >>> import rtqa
    >>> report = rtqa.check("plans_sample/hcc_fail")
    >>> report.status, rtqa.exit_code(report)
    ('FAIL', 1)
    >>> [f"{les.name} {les.status}" for les in report.lesions]
    ['Liver PASS', 'Lung PASS', 'T10 FAIL']
    >>> t10 = report.lesions[2]
    >>> round(t10.bed_gy, 1), t10.comparator, t10.required_bed_gy, t10.alpha_beta
    (48.0, '>=', 60.0, 10.0)
    >>> cord = [c for c in report.checks if c.id == "oar.quantec.SpinalCord.D0.035cc"][0]
    >>> cord.dose_view, cord.alpha_beta, cord.plans, cord.fractions
    (<DoseView.EQD2: 'EQD2'>, 2.0, ('SBRT_5fx_bad',), (5,))
    >>> rtqa.check("no/such/folder").errors  # doctest: +ELLIPSIS
    ('...no/such/folder...',)
    """
    from rtqa.checks.options import check_options
    from rtqa.checks.pipeline import run_check
    options = check_options(protocol=protocol, constraints=constraints, fractions=fractions,
                            overrides=overrides, sum_plans=sum_plans, delivery=delivery,
                            end_caps=end_caps, plan=plan, roi_types=roi_types,
                            lesion_organs=lesion_organs, progress=progress)
    try:
        return run_check(_paths(paths), options)
    except RtqaError as exc:
        if strict:
            raise
        return _error_report(str(exc), protocol)


def exit_code(report: Report) -> int:
    """The exit code of ``rtqa check`` for ``report``: 0 PASS, 1 FAIL, 2 ERROR.

    Examples
    --------
    >>> import rtqa
    >>> rtqa.exit_code(rtqa.Report(status="ERROR", protocol={}, patient_id=""))
    2
    """
    return EXIT_CODES[str(report.status)]


def dvh(paths, *, fractions: int | None = None, prescription: float | None = None,
        dose_view: str = "physical", alpha_beta: float | None = None) -> dict[str, "DVH"]:
    """Cumulative DVHs of every structure of an export, as dicompyler-core ``DVH`` objects.

    The DVHs are rtqa's own (the conventions of ``rtqa dvh``: interpolated
    cross-sections between contour planes, half-slice end caps, trilinear dose, exact on
    0.01 Gy nodes); only the result type is dicompyler-core's.

    Parameters
    ----------
    paths : str, path-like, or iterable of them
        Folders and files in any mix. Each RTSTRUCT is paired with the RTDOSE of its frame
        of reference.
    fractions : int, optional
        Number of fractions for an export without an RTPLAN (a per-fraction dose is
        multiplied by it; needed for EQD2/BED).
    prescription : float, optional
        Prescription dose in Gy (whole course) for ``rx_dose``; default: the RTPLAN's.
    dose_view : {"physical", "EQD2", "BED"}, default "physical"
        The dose axis: absorbed dose, or its LQ equivalent dose in 2 Gy fractions or
        biologically effective dose at ``alpha_beta`` with the plan's fraction count.
    alpha_beta : float, optional
        α/β in Gy, required for EQD2 and BED.

    Returns
    -------
    dict of str to dicompylercore.dvh.DVH
        One cumulative DVH (cm³ against Gy) per structure with volume, keyed by ROI name
        (``"name @ plan"`` when several doses share its frame of reference). ``rx_dose``
        (Gy, in ``dose_view``) is set where a prescription is known, else None.

    Raises
    ------
    RtqaError
        The export cannot be read, or a structure's DVH cannot be computed (named).

    References
    ----------
    .. [1] Nelms B et al. Methods, software and datasets to verify DVH calculations
       against analytical values. Med Phys 2015;42:4435-4448.

    Examples
    --------
    >>> import rtqa
    >>> dvhs = rtqa.dvh("plans_sample/hcc_pass")
    >>> ptv = dvhs["PTV_Liver"]
    >>> round(float(ptv.volume), 1), ptv.rx_dose, ptv.volume_units
    (57.9, 50.0, 'cm3')
    >>> eqd2 = rtqa.dvh("plans_sample/hcc_pass", dose_view="EQD2", alpha_beta=10)
    >>> round(eqd2["PTV_Liver"].rx_dose, 2)  # 50 Gy in 5 fractions: BED 100, EQD2 83.33
    83.33
    """
    from rtqa.dvh.plan_dvh import pairings
    from rtqa.dvh.radiobiology import bed, eqd2
    from rtqa.dvh.service import DoseService
    from rtqa.reading import load_export

    view = DoseView(dose_view)
    if view is DoseView.NONE:
        raise ValueError("dose_view must be physical, EQD2 or BED")
    export = load_export(_paths(paths), fractions_override=fractions)
    pairs = pairings(export)
    services: dict[int, DoseService] = {}
    shared: dict[tuple[int, int], int] = {}
    for p in pairs:
        key = (id(p.structure_set), p.structure.roi_number)
        shared[key] = shared.get(key, 0) + 1
    out: dict[str, DVH] = {}
    for p in pairs:
        course = p.course
        if id(course) not in services:
            n = fractions or (course.plan.fractions if course.plan else None)
            services[id(course)] = DoseService([course], p.ct_z, [n])
        service = services[id(course)]
        name = p.structure.name
        if shared[(id(p.structure_set), p.structure.roi_number)] > 1:
            name = f"{name} @ {course.label}"
        if name in out:
            name = f"{name} ({p.structure_set.path.name})"
        try:
            d = service.dvh(p.structure, view, alpha_beta=alpha_beta)
        except RtqaError as exc:
            raise RtqaError(f"structure '{p.structure.name}': {exc.reason}",
                            exc.path or p.structure_set.path) from None
        rx = prescription if prescription is not None else (
            course.plan.prescription_gy if course.plan else None)
        n = service.fractions[0]
        if rx is not None and view is not DoseView.PHYSICAL:
            rx = float((bed if view is DoseView.BED else eqd2)(rx, n, alpha_beta))
        out[name] = d.to_dicompyler(rx_dose=rx)
    return out
