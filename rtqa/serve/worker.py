"""Checking one plan set in a worker process, with the batch time limit.

:func:`check_set` is what runs in the worker: exactly the check of ``rtqa check`` (and
of ``rtqa batch``: :func:`rtqa.checks.pipeline.run_check` with the same options, input
errors and internal errors turned into an ERROR report by the batch worker's helpers),
then the server's own notes are added to the report before it is rendered:

* ``errors``: what was still missing when the deadline passed (the report is ERROR:
  an incomplete export is never passed);
* ``warnings``: the check it supersedes (a plan received again), instances received
  with different contents, and where the instances came from.

:func:`run_check_process` runs it in a fresh process from the batch's fork server
(:func:`rtqa.batch.pool._mp_context`, modules already imported) and kills that process
when the time limit (``--timeout``, the batch's, default 900 s) passes: the plan is then
ERROR "timed out after N s", as in ``rtqa batch``. A worker process that dies gives an
ERROR report with the reason.
"""

from __future__ import annotations

import os
from dataclasses import replace

from rtqa.batch.model import CheckSettings, PlanTask, timeout_limit

__all__ = ["check_set", "run_check_process", "run_pdf_process", "pdf_from_html"]


def check_set(task: PlanTask, extra_errors: tuple[str, ...] = (),
              extra_warnings: tuple[str, ...] = (), problem: str = "") -> dict:
    """Check one plan set; returns ``{"json", "html", "note", "status"}`` (texts).

    ``problem``: no check, an ERROR report with this reason (the worker died or timed
    out)."""
    from rtqa.batch.worker import _error_report, check_task, render_reports
    if problem:
        report = _error_report(task, problem, with_inputs=False)
    else:
        report = check_task(task)
    report = replace(report, errors=tuple(report.errors) + tuple(extra_errors),
                     warnings=tuple(report.warnings) + tuple(extra_warnings),
                     status="ERROR" if extra_errors else report.status)
    json_text, html_text, note = render_reports(report)
    return {"json": json_text, "html": html_text, "note": note, "status": report.status}


def _child(conn, func, args) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = func(*args)
        conn.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001
            pass
    finally:
        conn.close()


def _in_process(func, args, timeout: float | None, stop) -> tuple[str, object]:
    """``func(*args)`` in a fresh process from the batch's fork server, with a time
    limit (seconds; None: none): ("ok", result), ("stopped", None) when ``stop`` was
    set (the process is killed), or ("failed", reason) when the process raised, died or
    ran out of time (then killed)."""
    import time
    from multiprocessing.connection import wait

    from rtqa.batch.pool import _mp_context
    from rtqa.batch.worker import _death_reason, timeout_reason
    limit = timeout_limit(timeout)
    ctx = _mp_context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, func, args), daemon=True)
    proc.start()
    child.close()
    t_end = None if limit is None else time.monotonic() + limit
    try:
        while True:
            left = None if t_end is None else max(0.0, t_end - time.monotonic())
            step = 0.5 if left is None else min(0.5, left)
            ready = wait([parent, proc.sentinel], timeout=step)
            if parent in ready:
                try:
                    kind, payload = parent.recv()
                except (EOFError, OSError):
                    kind, payload = "died", None
                if kind == "ok":
                    return "ok", payload
                proc.join(5)
                return "failed", (f"internal error in the worker process ({payload})"
                                  if kind == "error" else _death_reason(proc.exitcode))
            if proc.sentinel in ready:
                proc.join(5)
                return "failed", _death_reason(proc.exitcode)
            if stop is not None and stop.is_set():
                return "stopped", None
            if t_end is not None and time.monotonic() >= t_end:
                return "failed", timeout_reason(limit)
    finally:
        if proc.exitcode is None:
            proc.kill()
        proc.join(5)
        parent.close()


def run_check_process(task: PlanTask, extra_errors=(), extra_warnings=(),
                      timeout: float | None = None, stop=None) -> dict:
    """:func:`check_set` in a fresh worker process with a time limit (seconds, None or
    0: none). ``stop``: a ``threading.Event``; when it is set the process is killed and
    None is returned (server shutting down: the plan stays pending)."""
    kind, payload = _in_process(check_set, (task, tuple(extra_errors),
                                            tuple(extra_warnings)), timeout, stop)
    if kind == "ok":
        return payload
    if kind == "stopped":
        return None
    return check_set(task, tuple(extra_errors), tuple(extra_warnings), problem=payload)


def pdf_from_html(html_text: str) -> bytes:
    """The A4 PDF of an HTML report, printed by WeasyPrint as ``rtqa check --pdf`` prints
    it (:func:`rtqa.report.pdf.render_pdf` prints the same HTML)."""
    import logging

    from rtqa.report.pdf import _gc_paused, _import_weasyprint
    weasyprint = _import_weasyprint()   # without find_library's subprocesses
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    with _gc_paused():                  # as render_pdf: ~0.1 s less CPU a report
        return weasyprint.HTML(string=html_text, base_url=None).render().write_pdf()


def run_pdf_process(html_text: str, timeout: float | None = None, stop=None
                    ) -> tuple[bytes | None, str]:
    """:func:`pdf_from_html` in a worker process with the time limit: (PDF bytes, "") or
    (None, the reason; "" when the server is stopping)."""
    kind, payload = _in_process(pdf_from_html, (html_text,), timeout, stop)
    if kind == "ok":
        return payload, ""
    return None, ("" if kind == "stopped" else str(payload))


def plan_task(key: str, name: str, patient_id: str, members, settings: CheckSettings
              ) -> PlanTask:
    """The batch's task for one plan set (files in the spool)."""
    return PlanTask(key, name, patient_id, tuple(os.fspath(m.path) for m in members),
                    tuple(m.kind for m in members), tuple(m.sop_uid for m in members),
                    settings)
