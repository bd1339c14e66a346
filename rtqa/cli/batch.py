"""``rtqa batch``: check every plan export under a folder, in parallel."""

from __future__ import annotations

import math
import shutil
import sys
import time

import click

from rtqa.cli.common import handle_errors, parse_map, parse_pairs

_SHOWN_PROBLEMS = 20
_REASON_CHARS = 200


def _clock(seconds: float) -> str:
    s = int(math.ceil(max(seconds, 0)))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class _Bar:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, enabled: bool):
        self.on = enabled
        self.t0 = time.monotonic()
        self.checked_t0 = None
        self.resumed = 0

    def _write(self, text: str) -> None:
        if self.on:
            width = shutil.get_terminal_size((100, 20)).columns
            sys.stderr.write("\r\033[K" + text[:max(width - 1, 20)])
            sys.stderr.flush()

    def __call__(self, event: str, info: dict) -> None:
        if event == "discovering":
            self._write(f"rtqa batch: looking for plans ... {info['files']} files")
        elif event == "discovered":
            self.resumed = info["resumed"]
            self.checked_t0 = time.monotonic()
            self._write(f"rtqa batch: {info['plans']} plans in {info['files']} files"
                        + (f", {info['resumed']} up to date" if info["resumed"] else ""))
        elif event == "plan":
            done, total, c = info["done"], info["total"], info["counts"]
            frac = done / total if total else 1.0
            cells = 24
            bar = "#" * int(frac * cells) + "-" * (cells - int(frac * cells))
            elapsed = time.monotonic() - (self.checked_t0 or self.t0)
            checked = done - self.resumed
            left = (total - done) * elapsed / checked if checked > 0 else 0
            self._write(f"[{bar}] {done}/{total}  PASS {c['PASS']}  FAIL {c['FAIL']}  "
                        f"ERROR {c['ERROR']}  {_clock(elapsed)} elapsed"
                        + (f", ~{_clock(left)} left" if done < total else ""))

    def clear(self) -> None:
        if self.on:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _tally(result, root: str) -> str:
    s = result.summary
    c = s["counts"]
    lines = [f"rtqa batch: {c['total']} plan{'s' if c['total'] != 1 else ''} under {root}: "
             f"{c['PASS']} PASS, {c['FAIL']} FAIL, {c['ERROR']} ERROR"
             + (f" ({c['resumed']} up to date, not checked again)" if c["resumed"] else "")
             + f" in {_clock(s['run']['seconds'])} ({s['run']['executor']})"]
    problems = [r for r in result.rows if r["status"] == "ERROR"] + \
               [r for r in result.rows if r["status"] == "FAIL"]
    from rtqa.batch import _reason
    from rtqa.report.text import clean
    for r in problems[:_SHOWN_PROBLEMS]:
        where = ", ".join(r["folders"])
        reason = clean(_reason(r))
        if len(reason) > _REASON_CHARS:
            reason = reason[:_REASON_CHARS - 3] + "..."
        lines.append(f"  {r['status']:<5}  {clean(r['patient_id']) or '-'}  "
                     f"{clean(r['label'])}  [{clean(where)}]  {reason}")
    if len(problems) > _SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(problems) - _SHOWN_PROBLEMS} more (see the index)")
    if s["unassigned"]:
        lines.append(f"  {len(s['unassigned'])} object(s) no plan uses (listed in "
                     "summary.json, 'unassigned')")
    lines.append(f"Reports: {result.out / 'index.html'} (summary.csv, summary.json, plans/)")
    return "\n".join(lines)


#: The ``rtqa check`` options that batch, serve and watch also take (each as in ``rtqa
#: check``, applied to every plan); see :func:`settings_from_cli`.
_MORE_CHECK_OPTIONS = [
    click.option("--sum-plans", is_flag=True,
                 help="As rtqa check: the RTPLANs checked together (on one RTSTRUCT) are "
                      "confirmed to be delivered as one course, their doses summed. Without it "
                      "such plans may be alternatives and the plan is ERROR."),
    click.option("--roi-type", "roi_types", multiple=True, metavar="ROI=TYPE",
                 help="As rtqa check, in every plan: state an ROI's RTROIInterpretedType "
                      "(PTV, GTV, ORGAN, CONTROL, ...), e.g. --roi-type T10_PTV=PTV "
                      "(repeatable)."),
    click.option("--lesion-organ", "lesion_organs", multiple=True, metavar="LESION=ORGAN",
                 help="As rtqa check, in every plan: the organ of a lesion outside every organ "
                      "contour, e.g. --lesion-organ PTV_LN=LymphNode (repeatable)."),
    click.option("--plan", "plan_label", metavar="LABEL",
                 help="As rtqa check: in every plan checked, check only the RTPLAN with this "
                      "RTPlanLabel (the others are listed as not checked)."),
    click.option("--delivery", type=click.Choice(["concurrent", "sequential"]),
                 help="As rtqa check: how several plans are delivered (default: the "
                      "conservative one for each side)."),
    click.option("--end-caps", type=click.Choice(["half", "none"]), default="half",
                 show_default=True,
                 help="As rtqa check: how far a structure extends beyond its outermost "
                      "contour planes ('half' a spacing, Nelms 2015; or 'none')."),
]


def more_check_options(func):
    """Add the ``rtqa check`` options of :data:`_MORE_CHECK_OPTIONS` to a command."""
    for option in reversed(_MORE_CHECK_OPTIONS):
        func = option(func)
    return func


def settings_from_cli(*, protocol, constraint_files=(), maps=(), sum_plans=False,
                      roi_types=(), lesion_organs=(), plan_label=None, delivery=None,
                      end_caps="half"):
    """The :class:`~rtqa.batch.model.CheckSettings` of the ``rtqa check`` options given
    to ``rtqa batch`` / ``rtqa serve`` / ``rtqa watch`` (parsed as ``rtqa check`` parses
    them; a malformed pair is a usage error naming the option)."""
    from rtqa.batch.model import CheckSettings
    types = parse_pairs(roi_types, "--roi-type", "ROI=TYPE (e.g. T10_PTV=PTV)")
    organs = parse_pairs(lesion_organs, "--lesion-organ",
                         "LESION=ORGAN (e.g. PTV_LN=LymphNode)")
    return CheckSettings(protocol=protocol, constraints=tuple(constraint_files),
                         overrides=tuple(sorted(parse_map(maps).items())),
                         sum_plans=bool(sum_plans), delivery=delivery, end_caps=end_caps,
                         plan=plan_label or None, roi_types=tuple(sorted(types.items())),
                         lesion_organs=tuple(sorted(organs.items())))


@click.command("batch")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--protocol", "-p", default="oligo-hcc", show_default=True, metavar="NAME|FILE",
              help="Protocol: a name from constraints/protocols/ or a protocol TOML file.")
@click.option("--constraints", "-c", "constraint_files", multiple=True, metavar="FILE",
              help="Extra constraint file added to the protocol (repeatable).")
@click.option("--map", "maps", multiple=True, metavar="STD=ROI",
              help="Map a TG-263 name to a plan ROI in every plan (repeatable).")
@click.option("--workers", "-j", type=click.IntRange(min=1), metavar="N",
              help="Worker processes (default: the number of CPU cores).")
@click.option("--out", "-o", "out", default="rtqa-batch", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=str),
              help="Folder for the reports, summary.csv, summary.json and index.html; "
                   "locked while the batch runs (a second batch on it stops, exit 2).")
@click.option("--resume", is_flag=True,
              help="Skip plans whose report in DIR is up to date with their files (SHA-256) "
                   "and settings.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run on a Dask distributed cluster, e.g. tcp://10.0.0.5:8786 "
                   "(needs rtqa[dask]; same files, rtqa and constraints on the workers). "
                   "An address that does not answer as a Dask scheduler within 30 s "
                   "(connection) + 10 s (handshake) stops the batch with one line.")
@click.option("--timeout", "timeout", type=click.FloatRange(min=0), default=900,
              show_default=True, metavar="SECONDS",
              help="Time limit per plan, in seconds (0: no limit). A plan still running "
                   "then is ERROR ('timed out after N s'), its worker process is killed "
                   "and the batch goes on (on Dask: the worker running it is restarted "
                   "through its nanny).")
@click.option("--per-plan", is_flag=True,
              help="Check every RTPLAN on its own, even when several share one RTSTRUCT.")
@more_check_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no tally.")
@handle_errors
def batch(root, protocol, constraint_files, maps, workers, out, resume, scheduler,
          timeout, per_plan, sum_plans, roi_types, lesion_organs, plan_label, delivery,
          end_caps, quiet):
    """Check every plan export under ROOT and write one report per plan plus an index.

    \b
    Plans are found by their DICOM headers, whatever the folder layout: each RTPLAN
    (or RTDOSE without its RTPLAN) with its RTDOSEs, RTSTRUCT and planning CT series,
    linked by UID within one PatientID. Plans of one patient on the same RTSTRUCT are
    checked together as one course, as `rtqa check` does for a folder holding them
    (--per-plan checks them apart); plans that each cover a lesion fully alone look
    like alternatives, not one course, and that lesion is NOT EVALUATED. Each plan is
    checked exactly as `rtqa check` would; a plan that cannot be read, whose worker
    crashes, or that runs longer than --timeout is ERROR and the batch goes on.

    \b
    Output in DIR: plans/<patient>_<plan>_<id>.json and .html per plan, summary.csv,
    summary.json and index.html (every plan with its status, failing checks and links).
    The index is rewritten as reports arrive and lists only plans whose reports are
    written: after a crash or kill it is incomplete, never wrong (--resume continues).
    A plan whose files change while it is checked is checked again.

    \b
    Nothing is skipped silently: a folder that cannot be read, a folder deeper than 32
    levels, or an --out pointing at a plan folder is an ERROR row.

    \b
    Exit codes: 0 every plan passes; 1 a plan fails; 2 a plan could not be evaluated
    (or no plan was found). 2 wins over 1.

    \b
    Examples:
      rtqa batch /data/exports --out qa-2025-06
      rtqa batch /data/exports --out qa-2025-06 --resume
      rtqa batch /data/exports --workers 8 --protocol my-protocol.toml
      rtqa batch /data/exports --timeout 1800
      rtqa batch /shared/exports --scheduler tcp://scheduler:8786
    """
    from rtqa.batch import BatchOptions, run_batch, timeout_limit

    try:
        timeout_limit(timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timeout") from None
    settings = settings_from_cli(protocol=protocol, constraint_files=constraint_files,
                                 maps=maps, sum_plans=sum_plans, roi_types=roi_types,
                                 lesion_organs=lesion_organs, plan_label=plan_label,
                                 delivery=delivery, end_caps=end_caps)
    bar = _Bar(enabled=(not quiet) and sys.stderr.isatty())
    options = BatchOptions(settings=settings, workers=workers, out=out, resume=resume,
                           scheduler=scheduler, per_plan=per_plan, timeout=timeout)
    try:
        result = run_batch(root, options, progress=bar)
    except KeyboardInterrupt:
        bar.clear()
        click.echo("rtqa batch: interrupted; the reports written so far are kept (run again "
                   "with --resume to continue)", err=True)
        raise SystemExit(130)
    finally:
        bar.clear()
    if not quiet:
        click.echo(_tally(result, root))
    if not result.rows:
        click.echo(f"rtqa: error: no plan (RTPLAN or RTDOSE) found under {root}", err=True)
    raise SystemExit(result.exit_code)
