"""``rtqa sample OUTDIR``: write a synthetic DICOM RT plan export to try rtqa on."""

from __future__ import annotations

from pathlib import Path

import click

from rtqa.sample.cases import CASES, get_case
from rtqa.sample.phantom import all_structures, lesion
from rtqa.sample.writer import write_case

_CASE_HELP = {
    "hcc_pass": ("oligoprogressive HCC: liver, lung and T10 lesions, one SBRT",
                 "plan of 5 fx; rtqa check: PASS, exit 0 (86 files, ~2.9 MB)"),
    "hcc_fail": ("same patient; rtqa check: FAIL, exit 1, for 3 problems: T10",
                 "under-dosed (BED10 48 < 60 Gy); normal liver dose (450 cc < 700",
                 "cc below 15 Gy, mean too high); spinal cord hot spot (~35 Gy)"),
    "body_bench": ("speed benchmark: hcc_pass with 20 ROIs contoured every 2 mm",
                   "and a 2.5 mm dose grid over 40 x 26 x 34 cm; no CT: rtqa",
                   "check gives ERROR, exit 2; use rtqa dvh (3 files, ~8.5 MB)"),
}


def _mb(paths: list[str]) -> str:
    return f"{sum(Path(p).stat().st_size for p in paths) / 1e6:.2f} MB"


@click.command(
    "sample",
    epilog="\b\nCases:\n" + "\n".join(
        "\n".join(f"  {k if i == 0 else '':<11} {line}" for i, line in enumerate(v))
        for k, v in _CASE_HELP.items())
    + "\n\n\b\nExamples:\n  rtqa sample plans/demo\n  rtqa sample plans/bad --case hcc_fail\n"
      "  rtqa check plans/demo",
)
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--case", "case_name", type=click.Choice(sorted(CASES)), default="hcc_pass",
              show_default=True, help="Which synthetic case to write.")
@click.option("--force", is_flag=True,
              help="Write even if OUTDIR is not empty (files of the same name are "
                   "overwritten; other files are left in place).")
def sample(outdir: Path, case_name: str, force: bool) -> None:
    """Write a synthetic DICOM RT export into OUTDIR.

    The export looks like one from a treatment planning system: a planning CT series
    (CT.nnn.dcm, RLE Lossless), an RT Structure Set (RS.*.dcm), RT Plans (RP.*.dcm) and
    RT Doses (RD.*.dcm), all linked by UID in one frame of reference. Structures are
    analytic solids and the dose is analytic, so the true DVH numbers are known
    (see rtqa.sample.plan_dose). Output is deterministic: the same case always gives
    byte-identical files.

    OUTDIR is created if missing and must be empty unless --force is given.
    """
    if outdir.exists() and any(outdir.iterdir()) and not force:
        raise click.UsageError(f"{outdir} is not empty; choose an empty folder or add --force")
    case = get_case(case_name)
    result = write_case(case, outdir)

    click.echo(f"Wrote case {case.name!r} to {outdir} ({_mb(result['files'])}, "
               f"{len(result['files'])} files):")
    if result["ct"]:
        ct = case.ct
        click.echo(f"  CT        {Path(result['ct'][0]).name} .. {Path(result['ct'][-1]).name}: "
                   f"{len(result['ct'])} slices, {ct.slice_spacing_mm:g} mm apart, pixels "
                   f"{ct.pixel_spacing_mm[0]:g} x {ct.pixel_spacing_mm[1]:g} mm "
                   f"({_mb(result['ct'])})")
    else:
        click.echo("  CT        not written (the structure set still references its UIDs)")
    structs = all_structures(case)
    click.echo(f"  RTSTRUCT  {Path(result['rtstruct']).name}: {len(structs)} ROIs "
               f"({_mb([result['rtstruct']])})")
    for p, info in zip(case.plans, result["plans"], strict=True):
        rx = ", ".join(f"{lesion(case, t.lesion).roi_names['PTV']} {t.prescription_gy:g} Gy"
                       for t in p.targets)
        if info["rtplan"]:
            click.echo(f"  RTPLAN    {Path(info['rtplan']).name}: {p.label}, "
                       f"{p.fractions} fx, {p.approval}; {rx}")
        nf, nr, nc = p.grid.shape
        dx, dy, dz = p.grid.spacing_mm
        for d in info["rtdose"]:
            click.echo(f"  RTDOSE    {Path(d).name}: {p.grid.summation}, {nc} x {nr} x {nf} "
                       f"voxels of {dx:g} x {dy:g} x {dz:g} mm, {p.grid.bits}-bit "
                       f"({_mb([d])})")
    if case.notes:
        click.echo("Expected:")
        for n in case.notes:
            click.echo(f"  - {n}")
    click.echo(f"Check it with: rtqa check {outdir}")
