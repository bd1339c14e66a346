"""Local execution of ``rtqa batch``: a pool of worker processes on this machine.

Conventions:

* Worker processes are started from a *fork server* (``forkserver`` start method, else
  ``spawn``) that has imported the modules in ``_PRELOAD`` and filled the caches every
  plan uses (:func:`_warm_up`, run when this module is imported with ``_WARM_ENV`` set,
  i.e. in the fork server only). ``_PRELOAD`` names this module, so keep it in step if
  the code moves.
* Plans are handed out lazily (at most 2 x workers in flight); results come back in
  completion order as ``(task, result)`` pairs, ``result`` as from
  :func:`rtqa.batch.worker.check_plan`.
* A plan whose worker process dies is ERROR with the reason (exit code or signal) and
  the batch goes on.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from rtqa.batch.model import PlanTask
from rtqa.batch.worker import _death_reason, check_plan, crash_result

__all__ = ["run_isolated", "run_local"]

# Worker processes are forked from a server that has imported these modules and filled
# the caches every plan uses (report template, ROI-name aliases), so a fresh worker per
# plan costs a fork, not an interpreter start and imports.
_PRELOAD = ["rtqa.pipeline", "rtqa.report_json", "rtqa.report_html", "rtqa.batch.worker",
            "rtqa.batch.pool"]
_WARM_ENV = "RTQA_BATCH_FORKSERVER_WARM_UP"


def _warm_up() -> None:
    """Fill per-process caches (runs in the fork server only; never raises)."""
    try:
        from rtqa.names import load_aliases
        from rtqa.report_html import _environment
        _environment().get_template("report.html.j2")
        load_aliases()
    except Exception:  # noqa: BLE001 - a cold cache is only slower
        pass


if os.environ.get(_WARM_ENV) == "1":   # imported by the fork server (see _mp_context)
    _warm_up()


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        from multiprocessing import forkserver
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        # start the server now, with the variable set only for it to inherit
        os.environ[_WARM_ENV] = "1"
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(_WARM_ENV, None)
        return ctx
    return multiprocessing.get_context("spawn")


def _isolated_entry(conn, task: PlanTask) -> None:
    try:
        conn.send(check_plan(task))
    finally:
        conn.close()


def run_isolated(task: PlanTask, ctx=None) -> dict:
    """Check one plan alone in a fresh process; a crash is that plan's (ERROR)."""
    ctx = ctx or _mp_context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_isolated_entry, args=(send, task), daemon=True)
    proc.start()
    send.close()
    try:
        result = recv.recv()
    except (EOFError, OSError):
        result = None
    finally:
        recv.close()
    proc.join()
    return result if result is not None else crash_result(task, _death_reason(proc.exitcode))


def run_local(tasks: Iterable[PlanTask], workers: int,
              max_tasks_per_child: int | None = 1) -> Iterator[tuple[PlanTask, dict]]:
    """Check ``tasks`` in a process pool, yielding (task, result) as plans complete.

    At most 2 x workers plans are in flight. When a worker process dies the pool breaks
    and every plan then in flight is checked again alone in its own process, so the plan
    that kills its process is recorded as ERROR and the others get their real result."""
    ctx = _mp_context()
    cap = 2 * workers
    pending = iter(tasks)

    def new_pool() -> ProcessPoolExecutor:
        kw = {"max_workers": workers, "mp_context": ctx}
        if max_tasks_per_child is not None:
            kw["max_tasks_per_child"] = max_tasks_per_child
        return ProcessPoolExecutor(**kw)

    pool = new_pool()
    inflight: dict = {}
    exhausted = False
    try:
        while True:
            suspects: list[PlanTask] = []
            while not exhausted and len(inflight) < cap:
                task = next(pending, None)
                if task is None:
                    exhausted = True
                    break
                try:
                    inflight[pool.submit(check_plan, task)] = task
                except BrokenProcessPool:
                    suspects.append(task)
                    break
            if not inflight and not suspects:
                break
            if inflight and not suspects:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    task = inflight.pop(fut)
                    try:
                        yield task, fut.result()
                    except BrokenProcessPool:
                        suspects.append(task)
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
                        yield task, crash_result(task, f"internal error in the worker pool "
                                                 f"({type(exc).__name__}: {exc})")
            if suspects:
                # the pool is broken: every plan in flight fails with it
                suspects += list(inflight.values())
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                for task in dict.fromkeys(suspects):
                    yield task, run_isolated(task, ctx)
                pool = new_pool()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
