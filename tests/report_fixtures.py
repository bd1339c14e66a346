"""Synthetic ``Report`` objects for the renderer tests (no DICOM involved).

``hcc_report()`` is a realistic oligoprogressive-HCC result: two plans, three lesions
(one summed over both plans, failing BED10 >= 60 Gy), QUANTEC / TG-101 / normal-liver
organ-at-risk rows with their sources, an optimal row not met, a WARN row, NOT EVALUATED
rows with reasons, warnings, inputs with sha256, conventions and DVH curves with marks.
Overall status FAIL. Variants: ``passing_report()``, ``error_report()`` and
``hostile_report()`` (markup, control characters, mathtext and non-ASCII from "DICOM").
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from rtqa.results import (DoseView, 
    FAIL, NOT_EVALUATED, PASS, WARN, Check, Curve, DoseFileInfo, InputFile, LesionResult,
    PlanInfo, Report, StructureInfo, TargetPrescription,
)

QUANTEC = "Marks et al. IJROBP 2010;76(3S):S10, Table 1"
TG101 = "Benedict et al. Med Phys 2010;37(8):4078, Table III"
PAN = ("Pan et al. IJROBP 2010;76(3S):S94 (after Schefter et al. IJROBP 2005); trial "
       "protocol NCT06261047, Ther Adv Med Oncol 2025;17, ref. 36")
TRIAL = "NCT06261047 protocol (Ther Adv Med Oncol 2025;17)"
LESION_SOURCE = (TRIAL + ", Dose/fractionation: every oligoprogressive lesion receives BED "
                 "(LQ, alpha/beta = 10 Gy) of at least 60 Gy")
PS33 = "DICOM PS3.3"

PATIENT = "HCC-0042"
UID = "1.2.826.0.1.3680043.8.498."


def bed(dose: float, n: int, ab: float = 10.0) -> float:
    return dose * (1 + dose / (n * ab))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dvh(d50: float, spread: float, dmax: float, n: int = 60) -> tuple[tuple, tuple]:
    """A smooth synthetic cumulative DVH: volume % receiving >= dose."""
    doses = tuple(round(dmax * i / (n - 1), 3) for i in range(n))
    vols = tuple(round(100 * 0.5 * math.erfc((d - d50) / (spread * math.sqrt(2))), 4)
                 for d in doses)
    return doses, vols


def curve(name, volume_cc, d50, spread, dmax, marks=()):
    """A Curve whose marks (dose, label, status) sit on the curve."""
    d, v = dvh(d50, spread, dmax)
    on_curve = tuple((dose, round(float(np.interp(dose, d, v)), 4), label, status)
                     for dose, label, status in marks)
    return Curve(name=name, dose_gy=d, volume_pct=v, volume_cc=volume_cc, marks=on_curve)


def _checks(names=None) -> tuple[Check, ...]:
    n = names or {}
    duodenum = n.get("duodenum", "Duodenum")
    liver_rois = ("Liver", "GTV_L1", "GTV_L2", "GTV_L3")
    lesion = [
        Check(id="lesion.L1.bed", category="lesions", status=PASS, source=LESION_SOURCE,
              structure="PTV_L1", rois=("PTV_L1",), metric="BED10(D95%)[Gy]",
              value=round(bed(50.4, 4), 2), unit="Gy", limit=">= 60"),
        Check(id="lesion.L2.bed", category="lesions", status=PASS, source=LESION_SOURCE,
              structure="PTV_L2", rois=("PTV_L2",), metric="BED10(D95%)[Gy]",
              value=round(bed(45.2, 4), 2), unit="Gy", limit=">= 60"),
        Check(id="lesion.L3.bed", category="lesions", status=FAIL, source=LESION_SOURCE,
              structure="PTV_L3", rois=("PTV_L3",), metric="BED10(D95%)[Gy]", value=58.71,
              unit="Gy", limit=">= 60",
              note="Summed voxel-wise over LIVER_SBRT (4 fx) and PVTT_BOOST (5 fx) as BED; "
                   "physical doses of different fractionation are not added."),
    ]
    integrity = [
        Check(id="integrity.plan.LIVER_SBRT.approval", category="plan integrity", status=PASS,
              source=f"{PS33} C.8.8.16 Approval Module", structure=None, metric="ApprovalStatus",
              limit="APPROVED", note=""),
        Check(id="integrity.plan.PVTT_BOOST.approval", category="plan integrity", status=WARN,
              source=f"{PS33} C.8.8.16 Approval Module", metric="ApprovalStatus",
              limit="APPROVED", note="PVTT_BOOST is UNAPPROVED: checked as exported."),
        Check(id="integrity.dose.LIVER_SBRT.summation", category="plan integrity", status=PASS,
              source=f"{PS33} C.8.8.3 RT Dose Module", metric="DoseSummationType",
              note="FRACTION dose multiplied by 4 fractions (RTPLAN)."),
        Check(id="integrity.dose.grid_coverage", category="plan integrity", status=PASS,
              source=f"{PS33} C.8.8.3 RT Dose Module", structure="Body", rois=("BODY",),
              metric="outside dose grid [cc]", value=0.0, unit="cc", limit="== 0"),
        Check(id="integrity.frame_of_reference", category="plan integrity", status=PASS,
              source=f"{PS33} C.7.4.1 Frame of Reference Module", metric="FrameOfReferenceUID",
              note="CT, RTSTRUCT and both RTDOSE share one frame of reference."),
    ]
    oar = [
        Check(id="oar.normal_liver.Liver-GTV.CV15Gy", category="organs at risk", status=PASS,
              source=PAN, structure="Liver - GTV", rois=liver_rois, metric="CV15Gy[cc]",
              value=812.4, unit="cc", limit=">= 700",
              note="Spared volume: liver minus GTV receiving strictly < 15 Gy (summed BED "
                   "plan converted to physical-equivalent per the 4 fx schedule)."),
        Check(id="oar.quantec.Liver-GTV.Mean", category="organs at risk", status=PASS,
              source=QUANTEC, structure="Liver - GTV", rois=liver_rois, metric="Mean[Gy]",
              value=21.37, unit="Gy", limit="< 28",
              note="QUANTEC conventional row evaluated on voxel-wise EQD2 (α/β 3 Gy).",
              dose_view=DoseView.EQD2, alpha_beta=3.0, plans=("LIVER_SBRT",),
              fractions=(5,)),
        Check(id="oar.tg101.SpinalCord.D0.035cc", category="organs at risk", status=PASS,
              source=TG101, structure="SpinalCord", rois=("Spinal Cord",),
              metric="D0.035cc[Gy]", value=12.31, unit="Gy", limit="< 30",
              note="Point max dose, evaluated as D0.035cc (5 fx row)."),
        Check(id="oar.tg101.SpinalCord.D0.25cc", category="organs at risk", status=PASS,
              source=TG101, structure="SpinalCord", rois=("Spinal Cord",),
              metric="D0.25cc[Gy]", value=10.8, unit="Gy", limit="< 22.5"),
        Check(id="oar.tg101.Duodenum.D5cc", category="organs at risk", status=FAIL,
              source=TG101, structure=duodenum, rois=(duodenum,), metric="D5cc[Gy]",
              value=19.84, unit="Gy", limit="< 18",
              note="Volume max dose: less than 5 cc may reach the limit (5 fx row).",
              dose_view=DoseView.PHYSICAL, plans=("LIVER_SBRT",), fractions=(5,)),
        Check(id="oar.tg101.Duodenum.D0.035cc", category="organs at risk", status=PASS,
              source=TG101, structure=duodenum, rois=(duodenum,), metric="D0.035cc[Gy]",
              value=28.06, unit="Gy", limit="< 32"),
        Check(id="oar.tg101.Stomach.D10cc", category="organs at risk", status=PASS,
              source=TG101, structure="Stomach", rois=("STOMACH",), metric="D10cc[Gy]",
              value=14.2, unit="Gy", limit="< 18"),
        Check(id="oar.tg101.Bowel_Large.D20cc", category="organs at risk", status=WARN,
              source=TG101, structure="Bowel_Large", rois=("Colon",), metric="D20cc[Gy]",
              value=24.5, unit="Gy", limit="< 25",
              note="Row seen only in a secondary compilation (V2): reported, does not fail "
                   "the plan."),
        Check(id="oar.quantec.Kidneys.Mean", category="organs at risk", status=NOT_EVALUATED,
              source=QUANTEC, structure="Kidney_L + Kidney_R", rois=("Kidney_R",),
              metric="Mean[Gy]", value=None, unit="Gy", limit="< 18", priority="optimal",
              note="No ROI matches Kidney_L ('Kidney_L_old' is a near match and is never "
                   "used); bilateral mean not evaluated."),
        Check(id="oar.quantec.Lungs-GTV.V20Gy", category="organs at risk", status=PASS,
              source=QUANTEC, structure="Lungs - GTV", rois=("Lung_L", "Lung_R"),
              metric="V20Gy[%]", value=3.1, unit="%", limit="<= 30",
              note="Evaluated on voxel-wise EQD2 (α/β 3 Gy).",
              dose_view=DoseView.EQD2, alpha_beta=3.0, plans=("LIVER_SBRT",),
              fractions=(5,)),
        Check(id="oar.hytec.Ribs.D0.035cc", category="organs at risk", status=FAIL,
              source="HyTEC, Int J Radiat Oncol Biol Phys 2021 (chest wall)",
              structure="Ribs", rois=("Ribs",), metric="D0.035cc[Gy]", value=41.2,
              unit="Gy", limit="< 40", priority="optimal",
              note="Optimal HyTEC row: not met, does not fail the plan."),
    ]
    protocol = [
        Check(id="protocol.oligoprogression.lesions", category="protocol", status=PASS,
              source=TRIAL + ": 1-5 oligoprogressive lesions in up to 3 organs",
              metric="lesions", value=3, unit="", limit="<= 5"),
        Check(id="protocol.oligoprogression.organs", category="protocol", status=PASS,
              source=TRIAL + ": 1-5 oligoprogressive lesions in up to 3 organs",
              metric="organs", value=1, unit="", limit="<= 3"),
        Check(id="protocol.planning_ct.slice_spacing", category="protocol", status=PASS,
              source=TRIAL + ": planning CT slice thickness should not exceed 3 mm",
              metric="slice spacing", value=2.5, unit="mm", limit="<= 3",
              note="Measured from the slice positions, not read from SliceThickness."),
        Check(id="protocol.planning_ct.pixel_size", category="protocol", status=PASS,
              source=TRIAL + ": pixel size should not exceed 1 x 1 mm",
              metric="pixel size", value=0.977, unit="mm", limit="<= 1"),
        Check(id="protocol.ptv_margin.L1", category="protocol", status=PASS,
              source=TRIAL + ": PTV = CTV expanded by 2-5 mm", structure="PTV_L1",
              rois=("PTV_L1", "CTV_L1"), metric="margin", value=5.0, unit="mm",
              limit="2-5"),
        Check(id="protocol.ptv_margin.L3", category="protocol", status=NOT_EVALUATED,
              source=TRIAL + ": PTV = CTV expanded by 2-5 mm", structure="PTV_L3",
              rois=("PTV_L3",), metric="margin", value=None, unit="mm", limit="2-5",
              priority="optimal",
              note="Lesion L3 has no CTV: the margin cannot be measured."),
    ]
    return tuple(integrity + lesion + oar + protocol)


def hcc_report(**changes) -> Report:
    """Oligoprogressive HCC, 3 lesions, 2 plans: FAIL (duodenum D5cc and lesion L3)."""
    plans = (
        PlanInfo(label="LIVER_SBRT", sop_instance_uid=UID + "2.1", fractions=4,
                 prescription_gy=60.0, approval_status="APPROVED", file="plan/RP.LIVER_SBRT.dcm",
                 name="Liver SBRT 60 Gy/4", reviewer="Curie^Marie", review_date="2025-03-13T16:05",
                 targets=(TargetPrescription("PTV_L1", 60.0), TargetPrescription("PTV_L2", 60.0))),
        PlanInfo(label="PVTT_BOOST", sop_instance_uid=UID + "2.2", fractions=5,
                 prescription_gy=35.0, approval_status="UNAPPROVED",
                 file="plan/RP.PVTT_BOOST.dcm",
                 targets=(TargetPrescription("", 35.0, "PVTT boost"),)),
    )
    doses = (
        DoseFileInfo(file="plan/RD.LIVER_SBRT.dcm", sop_instance_uid=UID + "3.1",
                     summation_type="PLAN", plan="LIVER_SBRT", role="plan dose", used=True,
                     note="DoseSummationType PLAN: dose used as stored"),
        DoseFileInfo(file="plan/RD.PVTT_BOOST.dcm", sop_instance_uid=UID + "3.2",
                     summation_type="PLAN", plan="PVTT_BOOST", role="plan dose", used=True,
                     note="DoseSummationType PLAN: dose used as stored"),
    )
    lesions = (
        LesionResult(name="L1 segment VIII", targets=("PTV_L1", "CTV_L1", "GTV_L1"),
                     plans=("LIVER_SBRT",), fractions=(4,), metric="D95%[Gy]", dose_gy=50.4,
                     bed_gy=round(bed(50.4, 4), 2), alpha_beta=10.0, required_bed_gy=60.0,
                     status=PASS, organ="Liver", prescribed_bed_gy=150.0),
        LesionResult(name="L2 segment IVa", targets=("PTV_L2", "GTV_L2"), plans=("LIVER_SBRT",),
                     fractions=(4,), metric="D95%[Gy]", dose_gy=45.2,
                     bed_gy=round(bed(45.2, 4), 2), alpha_beta=10.0, required_bed_gy=60.0,
                     status=PASS, organ="Liver", prescribed_bed_gy=150.0),
        LesionResult(name="L3 portal vein thrombus", targets=("PTV_L3", "GTV_L3"),
                     plans=("LIVER_SBRT", "PVTT_BOOST"), fractions=(4, 5), metric="D95%[Gy]",
                     dose_gy=None, bed_gy=58.71, alpha_beta=10.0, required_bed_gy=60.0,
                     status=FAIL, organ="Liver", prescribed_bed_gy=None,
                     note="Summed voxel-wise as BED over two plans; no single physical dose."),
    )
    structures = (
        StructureInfo("PTV_L1", 57.77, 46.1, 55.8, 62.4, None),
        StructureInfo("GTV_L1", 21.3, 55.2, 58.9, 62.4, None),
        StructureInfo("PTV_L2", 33.1, 41.0, 50.2, 61.0, None),
        StructureInfo("PTV_L3", 18.4, 30.2, 38.9, 44.1, None),
        StructureInfo("Liver", 1612.0, 0.4, 16.8, 62.4, "Liver"),
        StructureInfo("Spinal Cord", 38.2, 0.1, 3.2, 12.9, "SpinalCord"),
        StructureInfo("Duodenum", 61.5, 0.8, 7.4, 29.1, "Duodenum"),
        StructureInfo("STOMACH", 240.7, 0.3, 4.9, 21.0, "Stomach"),
        StructureInfo("Colon", 410.2, 0.1, 3.3, 26.0, "Bowel_Large"),
        StructureInfo("Kidney_R", 151.0, 0.2, 2.1, 9.4, "Kidney_R"),
        StructureInfo("Kidney_L_old", 148.9, float("nan"), None, None, None),
        StructureInfo("BODY", 21034.5, 0.0, 2.6, 62.4, "External", outside_cc=2.1),
    )
    inputs = tuple(
        InputFile(path=p, kind=k, sop_instance_uid=(UID + u) if u else "", sha256=sha(p))
        for p, k, u in (
            ("plan/CT.0001.dcm", "CT", "1.1"), ("plan/CT.0002.dcm", "CT", "1.2"),
            ("plan/RS.dcm", "RTSTRUCT", "3.1"),
            ("plan/RP.LIVER_SBRT.dcm", "RTPLAN", "2.1"), ("plan/RP.PVTT_BOOST.dcm", "RTPLAN", "2.2"),
            ("plan/RD.LIVER_SBRT.dcm", "RTDOSE", "4.1"), ("plan/RD.PVTT_BOOST.dcm", "RTDOSE", "4.2"),
            ("constraints/protocols/oligo-hcc.toml", "protocol", ""),
        ))
    conventions = {
        "dvh": "Circular-arc interpolation between contour planes, half-slice end caps, "
               "trilinear dose, cumulative DVH exact on 0.01 Gy nodes.",
        "point max": "Dmax evaluated as D0.035cc[Gy], not a single voxel.",
        "normal liver": "Liver - GTV; CV15Gy counts dose strictly < 15 Gy.",
        "alpha/beta lesions": "α/β = 10 Gy for lesion BED (protocol oligo-hcc).",
        "alpha/beta EQD2": "α/β = 3 Gy (2 Gy spinal cord, brainstem, optic structures) for "
                           "QUANTEC conventional rows on hypofractionated plans.",
        "summation": "Plans of different fractionation add as BED voxel by voxel.",
    }
    d_vol = 61.5
    liver_normal = 1612.0 - 21.3 - 8.0 - 7.1
    curves = (
        curve("PTV_L1", 57.77, 55.0, 2.8, 64.0, [(50.4, "D95% → BED10 113.9", PASS)]),
        curve("PTV_L3", 18.4, 38.0, 3.2, 46.0, [(32.9, "D95% → BED10 58.7", FAIL)]),
        curve("Liver - GTV", liver_normal, 9.0, 6.0, 62.0,
              [(15.0, "CV15Gy ≥ 700 cc", PASS)]),
        curve("Duodenum", d_vol, 9.0, 7.0, 30.0,
              [(19.84, "D5cc < 18 Gy", FAIL),
               (28.06, "D0.035cc < 32 Gy", PASS)]),
        curve("SpinalCord", 38.2, 3.0, 2.5, 13.0, [(12.31, "Dmax < 30 Gy", PASS)]),
        curve("Stomach", 240.7, 4.0, 3.5, 21.0, [(14.2, "D10cc < 18 Gy", PASS)]),
    )
    report = Report(
        status="FAIL",
        protocol={"name": "oligo-hcc", "path": "constraints/protocols/oligo-hcc.toml",
                  "source": "Study protocol, NCT06261047, Ther Adv Med Oncol 2025;17; SABR "
                            "conventions from KROG 20-04, Cancers 2022;14:5848"},
        patient_id=PATIENT, patient_name="Nguyen^Thi Lan", plans=plans, doses=doses,
        lesions=lesions, checks=_checks(),
        structures=structures,
        warnings=("BODY: 2.1 cc outside the dose grid of plan/RD.PVTT_BOOST.dcm (left out of "
                  "the DVH, not counted as 0 Gy)",
                  "TG-101 errata (Med Phys 2012;39:563) not re-checked against the shipped rows"),
        errors=(), inputs=inputs, conventions=conventions, rtqa_version="0.1.0",
        created="2025-03-14T09:26:53+00:00", curves=curves,
        overview=_overview(structures),
    )
    return dataclasses.replace(report, **changes) if changes else report


def _overview(structures) -> tuple[Curve, ...]:
    """The physical DVH of every structure with a known mean (no marks), in order."""
    return tuple(curve(s.name, s.volume_cc, s.mean_gy, max(1.0, (s.max_gy - s.min_gy) / 6),
                       s.max_gy) for s in structures if s.mean_gy is not None)


def passing_report() -> Report:
    """The HCC report with every mandatory row passing (WARN and optimal rows kept)."""
    r = hcc_report()
    checks = tuple(dataclasses.replace(c, status=PASS, value=17.1)
                   if c.id == "oar.tg101.Duodenum.D5cc" else
                   dataclasses.replace(c, status=PASS, value=61.2)
                   if c.id == "lesion.L3.bed" else c for c in r.checks)
    lesions = r.lesions[:2] + (dataclasses.replace(r.lesions[2], status=PASS, bed_gy=61.2),)
    return dataclasses.replace(r, status="PASS", checks=checks, lesions=lesions)


def error_report() -> Report:
    """An ERROR report: an error and a mandatory NOT EVALUATED row."""
    r = hcc_report()
    ne = Check(id="oar.tg101.Esophagus.D5cc", category="organs at risk", status=NOT_EVALUATED,
               source=TG101, structure="Esophagus", metric="D5cc[Gy]", unit="Gy",
               limit="< 27.5", note="No ROI matches Esophagus.")
    return dataclasses.replace(
        r, status="ERROR", checks=r.checks + (ne,),
        errors=("plan/RD.PVTT_BOOST.dcm: DoseType ERROR is refused",))


SCRIPT = "<script>alert(1)</script>"
NONASCII = "Leber_Å/µ"
MATHTEXT = "$\\alpha$ 50$ cord"
CONTROL = "Cord\x1b[2J\nPASS fake row"


def hostile_report() -> Report:
    """Strings from "DICOM" that must be escaped: markup, non-ASCII, mathtext, controls."""
    r = hcc_report()
    extra = (
        Check(id="oar.custom.script", category="organs at risk", status=FAIL, source=TG101,
              structure=SCRIPT, rois=(SCRIPT,), metric="D0.035cc[Gy]", value=31.0,
              unit="Gy", limit="< 30", note=f"ROI {SCRIPT} checked"),
        Check(id="oar.custom.nonascii", category="organs at risk", status=PASS, source=PAN,
              structure=NONASCII, rois=(NONASCII,), metric="CV15Gy[cc]", value=900.0,
              unit="cc", limit=">= 700"),
        Check(id="oar.custom.control", category="organs at risk", status=PASS, source=TG101,
              structure=CONTROL, rois=(CONTROL,), metric="D0.035cc[Gy]", value=10.0,
              unit="Gy", limit="< 30"),
    )
    curves = r.curves + (
        curve(SCRIPT, 30.0, 20.0, 4.0, 35.0, [(31.0, SCRIPT, FAIL)]),
        curve(NONASCII, 1500.0, 8.0, 5.0, 40.0, [(15.0, "CV15Gy ≥ 700 cc Å/µ", PASS)]),
        curve(MATHTEXT, 40.0, 4.0, 2.0, 12.0, [(10.0, MATHTEXT, PASS)]),
    )
    plans = (dataclasses.replace(r.plans[0], label="<b>PLAN</b> & Å"),) + r.plans[1:]
    structures = r.structures + (StructureInfo(SCRIPT, 30.0, 1.0, 20.0, 35.0, None),)
    return dataclasses.replace(
        r, patient_id="<i>Åsa</i>/µ-001", checks=r.checks + extra, curves=curves, plans=plans,
        structures=structures, overview=_overview(structures),
        lesions=(dataclasses.replace(r.lesions[0], name=f"L1 {SCRIPT}"),) + r.lesions[1:])
