"""What runs in a worker process (local pool or Dask): check one plan, render its reports.

Conventions:

* :func:`check_plan` never raises for a plan's own problems: unreadable input, a check
  that raises, running out of memory and a report that cannot be rendered all give an
  ERROR report with the reason. It returns a small picklable dict
  ``{"key", "json": text, "html": text | None, "note", "row", "stats"}`` so the parent
  process only writes files; ``row``: the JSON report's members the summary row is made
  of (:data:`ROW_KEYS`, as ``json.loads`` of the text gives them), so the parent does not
  parse the whole report again (a result without it is parsed).
* A plan whose worker *process* is lost (killed, crashed, timed out) gets its ERROR
  report from :func:`crash_result`, rendered in the parent; the reasons are worded by
  :func:`_death_reason` and :func:`timeout_reason` ("timed out after N s ...").
* ERROR reports about the input record the plan's files with their SHA-256 (``--resume``
  may skip the plan while they are unchanged); ERRORs for other reasons (internal
  error, worker crash, time limit, out of memory) record no inputs, so the plan is
  always checked again.
* Inputs are hashed (SHA-256) *before* the check and again after it; the check's own
  record (the report's ``inputs``) must agree with both. When a file changed during the
  check (an export still being written, an RTDOSE replaced), the plan is checked again,
  up to ``CHECK_ATTEMPTS`` times, and then is ERROR ("input files changed while being
  checked", no inputs recorded, so ``--resume`` checks it again). A report therefore
  never records a file content other than the one its verdict was computed from.
* Everything a plan needs is in its :class:`~rtqa.batch.model.PlanTask`; nothing is read
  from the environment here. Tools and tests change what a worker runs by passing
  another callable (``BatchOptions.check``, or ``run`` to :func:`check_plan`), never
  through hooks in this module.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from datetime import datetime, timezone

from rtqa import __version__
from rtqa.batch.model import PlanTask, sha256_file
from rtqa.errors import RtqaError

__all__ = ["check_plan", "check_task", "crash_result", "render_reports", "timeout_reason"]

#: How many times a plan whose input files change during its check is checked.
CHECK_ATTEMPTS = 3

_TASKS_IN_PROCESS = 0
_RENDER_LOCK = threading.Lock()   # matplotlib is not thread-safe (Dask threads)


def _proc_status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_rss_kb() -> int | None:
    hwm = _proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r // 1024) if sys.platform == "darwin" else int(r)
    except (ImportError, OSError):
        return None


def _error_report(task: PlanTask, message: str, *, with_inputs: bool):
    """The ERROR report of a plan that could not be checked. ``with_inputs``: record the
    plan's files with their SHA-256 (the error is about the input, so --resume may skip
    the plan while they are unchanged); otherwise no inputs (always re-checked)."""
    from rtqa.results import InputFile, Report
    inputs = ()
    if with_inputs:
        items = []
        for path, kind, uid in zip(task.files, task.kinds, task.uids):
            try:
                digest = sha256_file(path)
            except OSError:
                return _error_report(task, message, with_inputs=False)
            items.append(InputFile(path, kind, uid, digest))
        inputs = tuple(items)
    return Report(status="ERROR", protocol={"name": task.settings.protocol, "path": "",
                                            "source": ""},
                  patient_id=task.patient_id, errors=(message,), inputs=inputs,
                  rtqa_version=__version__,
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    f = tb[-1]
    return f" at {os.path.basename(f.filename)}:{f.lineno}"


def render_reports(report) -> tuple[str, str | None, str]:
    """(JSON text, HTML text or None, note) of one report."""
    return _render(report)[:3]


#: The members of a JSON report that ``rtqa.batch.summary.make_row`` reads.
ROW_KEYS = ("status", "checks", "errors", "warnings", "inputs", "created")


def _render(report) -> tuple[str, str | None, str, dict]:
    """:func:`render_reports` and the report's :data:`ROW_KEYS` members as
    ``json.loads`` of its JSON text gives them (the summary row is made from these, so
    the parent does not parse the whole report, DVH curves included, again): the JSON
    text is ``rtqa.report.json_report.dumps`` of the report, written from the same
    ``to_dict`` document as the row members (tests compare both with ``dumps`` and
    ``json.loads``)."""
    import json

    from rtqa.report.json_report import _dumps_indented, to_dict
    doc = to_dict(report)
    text = _dumps_indented(doc) + "\n"          # = dumps(report)
    row = json.loads(json.dumps({k: doc[k] for k in ROW_KEYS if k in doc},
                                ensure_ascii=False, allow_nan=False))
    try:
        from rtqa.report.html import render_html
        with _RENDER_LOCK:
            return text, render_html(report), "", row
    except Exception as exc:  # noqa: BLE001 - the JSON report is still written
        return text, None, f"HTML report not written ({type(exc).__name__}: {exc})", row


def _digests(files) -> dict[str, str | None]:
    """SHA-256 of every file (None when it cannot be read)."""
    out: dict[str, str | None] = {}
    for f in files:
        try:
            out[f] = sha256_file(f)
        except OSError:
            out[f] = None
    return out


def _changed(before: dict, after: dict, report) -> list[str]:
    """Files whose content differs between the hash before the check, the check's own
    record (``report.inputs``) and the hash after it."""
    recorded = {i.path: i.sha256 for i in getattr(report, "inputs", ()) or ()}
    return [f for f in before
            if before[f] != after.get(f) or recorded.get(f, before[f]) != before[f]]


def check_task(task: PlanTask, run=None):
    """The report of one check of ``task``'s files with its settings, as ``rtqa check``
    gives it (``run(files, options) -> Report``, default
    :func:`rtqa.checks.pipeline.run_check`); the plan's own problems (input that cannot
    be checked, out of memory, an internal error) give its ERROR report, never an
    exception. Shared by ``rtqa batch`` and ``rtqa serve``."""
    if run is None:
        from rtqa.checks.pipeline import run_check as run
    try:
        return run(list(task.files), task.settings.options())
    except RtqaError as exc:
        return _error_report(task, str(exc), with_inputs=True)
    except MemoryError:
        return _error_report(task, "out of memory while checking this plan",
                             with_inputs=False)
    except Exception as exc:  # noqa: BLE001 - recorded, the batch (or server) goes on
        return _error_report(task, f"internal error ({type(exc).__name__}: {exc})"
                             f"{_where(exc)}; please report it", with_inputs=False)


def check_plan(task: PlanTask, *, run=None) -> dict:
    """Check one plan as ``rtqa check`` would; never raises for a plan's own problems.

    Returns ``{"key", "json": text, "html": text | None, "note", "row", "stats"}``
    (see the module docstring); runs in a
    worker process (pool or Dask). ``run(files, options) -> Report``: the check itself
    (default :func:`rtqa.checks.pipeline.run_check`; tests pass one that changes a file
    meanwhile)."""
    global _TASKS_IN_PROCESS
    _TASKS_IN_PROCESS += 1
    t0, c0 = time.perf_counter(), time.process_time()
    attempts = 0
    if task.problem:
        report = _error_report(task, task.problem, with_inputs=True)
    else:
        while True:
            attempts += 1
            before = _digests(task.files)
            report = check_task(task, run)
            changed = _changed(before, _digests(task.files), report)
            if not changed:
                break
            if attempts >= CHECK_ATTEMPTS:
                names = ", ".join(os.path.basename(f) for f in changed[:5])
                more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
                report = _error_report(
                    task, f"input files changed while being checked ({names}{more}), "
                    f"{attempts} times: check the plan again once its export is complete",
                    with_inputs=False)
                break
    try:
        json_text, html_text, note, row = _render(report)
    except Exception as exc:  # noqa: BLE001 - an inconsistent report is an ERROR
        report = _error_report(task, f"internal error: the report cannot be written "
                               f"({type(exc).__name__}: {exc})", with_inputs=False)
        json_text, html_text, note, row = _render(report)
    return {"key": task.key, "json": json_text, "html": html_text, "note": note, "row": row,
            "stats": {"pid": os.getpid(), "seconds": round(time.perf_counter() - t0, 3),
                      "cpu_s": round(time.process_time() - c0, 3),
                      "peak_rss_kb": _peak_rss_kb(), "rss_kb": _proc_status_kb("VmRSS"),
                      "tasks_in_process": _TASKS_IN_PROCESS, "attempts": attempts}}


def crash_result(task: PlanTask, reason: str) -> dict:
    """The result of a plan whose worker died (rendered in the calling process)."""
    report = _error_report(task, reason, with_inputs=False)
    json_text, html_text, note = render_reports(report)
    return {"key": task.key, "json": json_text, "html": html_text, "note": note,
            "stats": None}


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker process checking this plan died"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (killed: out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"the worker process checking this plan was killed by {name}{hint}"
    return f"the worker process checking this plan died (exit code {exitcode})"


def timeout_reason(limit: float, what: str = "its worker process was killed") -> str:
    """The ERROR reason of a plan that exceeded the time limit (``--timeout``)."""
    n = str(int(limit)) if float(limit).is_integer() else str(round(limit, 3))
    return f"timed out after {n} s (time limit per plan, --timeout): {what}"
