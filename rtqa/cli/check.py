"""``rtqa check``: one command, a pass/fail QA report for peer review and automation."""

from __future__ import annotations

import shutil
import sys
import traceback
from pathlib import Path

import click

from rtqa.cli.common import debug_enabled, parse_map, parse_pairs
from rtqa.errors import RtqaError
from rtqa.results import EXIT_CODES, Report


def _destinations(json_path, html_path, refuse: set[Path], pdf_path=None) -> list[str]:
    """The report files asked for, each tested before any computation (its folder exists
    and is writable, it is not a folder nor an input file); RtqaError names the first
    that cannot be written."""
    from rtqa.report.atomic import check_destination
    dests = [d for d in (json_path, html_path, pdf_path) if d and d != "-"]
    if len({Path(d).resolve() for d in dests}) < len(dests):
        names = [n for n, d in (("--json", json_path), ("--html", html_path),
                                ("--pdf", pdf_path)) if d and d != "-"]
        raise RtqaError(f"{' and '.join(names)} name the same file", dests[0])
    for dest in dests:
        check_destination(dest, refuse=refuse)
    return dests


def _discard_stale(dests: list[str], refuse: set[Path]) -> list[str]:
    """Remove the files an unwritten report would have replaced (an earlier run's report
    must not stand beside this run's exit code); returns those removed."""
    from rtqa.report.atomic import refused
    removed = []
    for dest in dests:
        target = Path(dest).resolve()
        try:
            if target.is_file() and not refused(target, refuse):
                target.unlink()
                removed.append(dest)
        except OSError:
            pass
    return removed


def report_width() -> int:
    """Columns of the terminal report: the terminal's width; else ``COLUMNS`` when it is
    set (also when the output is piped: ``COLUMNS=80 rtqa check plan/ | less``); else
    100 (``rtqa.report.text.DEFAULT_WIDTH``)."""
    from rtqa.report.text import DEFAULT_WIDTH
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def _emit(report: Report, json_path, html_path, quiet: bool, refuse: set[Path],
          pdf_path=None) -> str:
    """Show the terminal report (unless ``quiet``; the JSON on stdout with ``--json -``)
    and write the report files all or none (:func:`rtqa.report.atomic.write_all`).
    Returns "" or the one-line reason why no report file was written."""
    from rtqa.report.atomic import write_all
    from rtqa.report.json_report import dumps
    json_text = dumps(report) if json_path else None
    html_text = None
    if html_path:
        from rtqa.report.html import render_html
        html_text = render_html(report)
    pdf_bytes = None
    if pdf_path:
        from rtqa.report.pdf import render_pdf
        pdf_bytes = render_pdf(report)
    if json_path == "-":
        click.echo(json_text, nl=False)
    elif not quiet:
        from rtqa.report.text import render_text
        tty = sys.stdout.isatty()
        click.echo(render_text(report, color=tty, width=report_width()))
    files = [(p, t) for p, t in ((json_path, json_text), (html_path, html_text),
                                 (pdf_path, pdf_bytes)) if p and p != "-"]
    if not files:
        return ""
    try:
        write_all(files, refuse=refuse)
    except RtqaError as exc:
        removed = _discard_stale([p for p, _ in files], refuse)
        return (f"{exc}; no report file written"
                + (f" (the earlier {', '.join(removed)} removed)" if removed else ""))
    return ""


@click.command("check")
@click.argument("plan_dir", type=click.Path(path_type=str))
@click.option("--protocol", "-p", default="oligo-hcc", show_default=True, metavar="NAME|FILE",
              help="Protocol: a name from constraints/protocols/ or a protocol TOML file.")
@click.option("--constraints", "-c", "constraint_files", multiple=True, metavar="FILE",
              help="Extra constraint file added to the protocol (repeatable).")
@click.option("--fractions", type=click.IntRange(min=1), metavar="N",
              help="Number of fractions when there is no RTPLAN (never guessed). The "
                   "verdict stays ERROR: without the RTPLAN's prescription each lesion's "
                   "prescribed-BED row is NOT EVALUATED.")
@click.option("--map", "maps", multiple=True, metavar="STD=ROI",
              help="Map a TG-263 name to a plan ROI, e.g. --map SpinalCord=CORD_1 (repeatable).")
@click.option("--roi-type", "roi_types", multiple=True, metavar="ROI=TYPE",
              help="State an ROI's RTROIInterpretedType (PTV, GTV, ORGAN, CONTROL, ...), "
                   "replacing the declared one: --roi-type T10_PTV=PTV makes a mistyped "
                   "target a target; --roi-type Hippo=CONTROL says an unrecognised ROI is "
                   "no organ of the protocol (repeatable).")
@click.option("--lesion-organ", "lesion_organs", multiple=True, metavar="LESION=ORGAN",
              help="Name the organ of a lesion outside every organ contour, by the lesion "
                   "or one of its ROIs, e.g. --lesion-organ PTV_LN=LymphNode (repeatable). "
                   "Without it such a lesion's organ is unknown and the organ count may be "
                   "NOT EVALUATED.")
@click.option("--json", "json_path", metavar="PATH|-",
              help="Write the JSON report (schema rtqa-report/2) to PATH, or '-' for stdout.")
@click.option("--html", "html_path", metavar="PATH",
              help="Write the self-contained HTML report for peer review to PATH.")
@click.option("--pdf", "pdf_path", metavar="PATH",
              help="Write the same report as an A4 PDF to PATH (patient, plan and page "
                   "number on every page; needs the 'pdf' extra: pip install 'rtqa[pdf]').")
@click.option("--sum-plans", is_flag=True,
              help="Confirm that the RTPLANs on one structure set are delivered together "
                   "as one course (their doses are summed). Without it several plans with "
                   "doses are an ERROR: they may be alternatives (a re-plan next to the "
                   "original).")
@click.option("--plan", "plan_label", metavar="LABEL",
              help="Check only the RTPLAN with this RTPlanLabel; the other plans are "
                   "listed as not checked (an APPROVED plan without dose is then no error).")
@click.option("--delivery", type=click.Choice(["concurrent", "sequential"]),
              help="How several plans are delivered: concurrent (same days: physical sum, "
                   "then EQD2/BED) or sequential (EQD2/BED of each plan, summed). Default: "
                   "the conservative one for each side (higher organ dose, lower lesion "
                   "BED); the report says which was used.")
@click.option("--end-caps", type=click.Choice(["half", "none"]), default="half",
              show_default=True,
              help="How far a structure extends beyond its first and last contour planes: "
                   "'half' a contour spacing (the Nelms 2015 analytic truth) or 'none' (the "
                   "structure ends on its outermost planes; nearer Eclipse's volumes). "
                   "See docs/dicom-conventions.md.")
@click.option("--quiet", "-q", is_flag=True, help="No terminal report, no progress.")
def check(plan_dir, protocol, constraint_files, fractions, maps, roi_types, lesion_organs,
          json_path, html_path, sum_plans, delivery, plan_label, end_caps, quiet, pdf_path=None):
    """Check the plan export in PLAN_DIR against a protocol and report PASS/FAIL.

    \b
    What is checked (default protocol: oligo-hcc, the phase II trial of radiotherapy for
    oligoprogressive HCC, NCT06261047):
      * lesions: every lesion's BED (LQ, α/β 10 Gy) of D95% of its PTV >= 60 Gy,
        each with its own plan's (or fraction group's) fractions; several plans are
        summed voxel-wise as BED only with --sum-plans (else ERROR); and, as a row
        of its own, the BED10 of the RTPLAN's prescription >= 60 Gy (no RTPLAN, or
        no prescription tied to the lesion: NOT EVALUATED);
      * organs at risk: QUANTEC / TG-101 / HyTEC rows chosen by fraction count
        (conventional limits on voxel-wise EQD2), the normal-liver rule
        (>= 700 cc of Liver - GTV below 15 Gy);
      * plan integrity (TG-275): UID links, frame of reference, dose-grid coverage,
        each prescription on its ROI (V100%Rx >= 95 %, D99% >= 90 % of Rx: optimal;
        PTV maximum 98-166.7 % of Rx: mandatory), ApprovalStatus, grid resolution,
        planning CT;
        dose accounting (each RTDOSE counted once: duplicates, PLAN + BEAM, plan
        sums), every RTPLAN listed, BeamDose x fractions vs prescription and grid,
        dose maximum vs prescription, contour gaps and open contours per ROI;
      * protocol: <= 5 lesions in <= 3 organs (a lesion's organ is the organ contour
        holding most of its GTV), PTV margin 2-5 mm around the CTV (no CTV: at least
        2 mm around the GTV).
    ROIs are read by their declared RTROIInterpretedType first, then by name (every
    ROI's role is in the report); rings, walls, PRVs and helpers are never lesions.
    Every row carries its source. Units: Gy, cc, mm.

    \b
    Exit codes: 0 every check passes; 1 a check fails; 2 something required could not
    be evaluated (input error, missing structure, no dose), or a report file asked for
    could not be written. Never 0 in that case.

    \b
    Report files (--json, --html) are checked before the plan is read: a folder that
    does not exist or cannot be written stops at once. They are written all or none:
    if one cannot be written (full disk ...), none is (earlier files at those paths are
    removed), the terminal report is still shown, one line names the file and the
    reason, and the exit code is 2 whatever the verdict.

    The terminal report starts with the verdict and the rows it rests on, and fits the
    terminal's width (when piped: COLUMNS if set, e.g. COLUMNS=80, else 100 columns).

    \b
    Examples:
      rtqa check plan/
      rtqa check plan/ --json report.json --html report.html --pdf report.pdf
      rtqa check plan/ --map SpinalCord=CORD_1
      rtqa check plan/ --map Heart=Herz --roi-type T10_PTV=PTV --lesion-organ PTV_LN=LymphNode
      rtqa check plan/ --protocol my-protocol.toml -c extra-limits.toml
    """
    from rtqa._preload import CHECK_MODULES, frozen_imports

    overrides = parse_map(maps)
    types = parse_pairs(roi_types, "--roi-type", "ROI=TYPE (e.g. T10_PTV=PTV)")
    organs = parse_pairs(lesion_organs, "--lesion-organ", "LESION=ORGAN (e.g. PTV_LN=LymphNode)")
    # what the check imports (WeasyPrint too, for --pdf), imported with the collector off
    # and then frozen: ~0.05 s CPU less (rtqa._preload)
    with frozen_imports(CHECK_MODULES):
        from rtqa.api import _error_report, check as run_check
        try:
            from rtqa.reading.scan import expand_paths
            refuse = {p.resolve() for p in expand_paths([plan_dir])}
        except RtqaError as exc:  # names the file or sub-folder it is about
            click.echo(f"rtqa: error: {exc}", err=True)
            raise SystemExit(2)
        except (OSError, RuntimeError) as exc:
            where = getattr(exc, "filename", None) or plan_dir
            click.echo(f"rtqa: error: {where}: {getattr(exc, 'strerror', None) or exc}",
                       err=True)
            raise SystemExit(2)
        if pdf_path:  # before any computation: say so now, not after the check
            from rtqa.report.pdf import pdf_available
            problem = pdf_available()
            if problem:
                click.echo(f"rtqa: error: --pdf {pdf_path}: {problem}", err=True)
                raise SystemExit(2)
    try:
        _destinations(json_path, html_path, refuse, pdf_path)
    except RtqaError as exc:   # before any computation
        click.echo(f"rtqa: error: {exc}", err=True)
        raise SystemExit(2)
    show = (not quiet) and sys.stderr.isatty()

    def progress(msg: str) -> None:
        if show:
            sys.stderr.write(f"\r\033[Krtqa: {msg} ...")
            sys.stderr.flush()

    try:
        report = run_check([plan_dir], protocol=protocol, constraints=constraint_files,
                           fractions=fractions, overrides=overrides, sum_plans=sum_plans,
                           delivery=delivery, progress=progress, strict=True,
                           end_caps=end_caps, plan=plan_label, roi_types=types,
                           lesion_organs=organs)
    except RtqaError as exc:
        if show:
            sys.stderr.write("\r\033[K")
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"rtqa: error: {exc}", err=True)
        if json_path or html_path or pdf_path:  # an ERROR report replaces earlier ones
            failed = _emit(_error_report(str(exc), protocol), json_path, html_path, True,
                           refuse, pdf_path)
            if failed:
                click.echo(f"rtqa: error: {failed}", err=True)
        raise SystemExit(2)
    except Exception as exc:  # noqa: BLE001
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"rtqa: error: internal error ({type(exc).__name__}: {exc}); run with "
                   "--debug for details and please report it", err=True)
        raise SystemExit(2)
    if show:
        sys.stderr.write("\r\033[K")
    failed = _emit(report, json_path, html_path, quiet, refuse, pdf_path)
    if failed:   # the report was shown; the files asked for are not there: exit 2
        click.echo(f"rtqa: error: {failed}", err=True)
        raise SystemExit(2)
    raise SystemExit(EXIT_CODES[report.status])
