"""Local execution of ``rtqa batch``: worker processes on this machine, each killable.

Conventions:

* Worker processes are started from a *fork server* (``forkserver`` start method, else
  ``spawn``) that has imported the modules in ``_PRELOAD`` and filled the caches every
  plan uses (:func:`_warm_up`, run when this module is imported with ``_WARM_ENV`` set,
  i.e. in the fork server only). ``_PRELOAD`` names this module, so keep it in step if
  the code moves. The fork server imports the same rtqa as this process (see
  :func:`_fork_server_env`), and a worker that finds otherwise checks no plan: each of
  its plans is ERROR with the two paths.
* Every worker process is owned by :func:`run_local` (no ``ProcessPoolExecutor``, whose
  running futures cannot be cancelled): it gets one plan at a time over its own pipe,
  checks ``max_tasks_per_child`` plans (``BatchOptions`` default 16: kept processes
  skip the per-process warm-up of each plan; 1: a fresh process per plan, so a worker's
  memory is bounded by one plan) and exits. Exactly ``workers`` plans are in
  flight; the next plans are handed out before the results are returned, so the workers
  do not wait while the caller writes reports.
* Results come back in completion order as ``(task, result)`` pairs, ``result`` as from
  :func:`rtqa.batch.worker.check_plan`.
* A plan whose worker process dies is ERROR with the reason (exit code or signal); the
  other plans are not affected (each has its own process) and the batch goes on.
* Time limit (``timeout`` seconds, from the moment the plan is handed to its worker):
  a plan still running then is ERROR ("timed out after N s ..."), its worker process is
  killed (SIGKILL: the plan's CPU and memory are released at once) and reaped, and a
  fresh process takes the next plan. The result's ``stats`` then hold
  ``{"pid", "seconds", "timed_out": True}`` of the killed process.
* Worker processes ignore SIGINT: on Ctrl-C (or any error in the caller) the caller's
  ``close()`` of the generator kills the workers still running.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait

from rtqa._preload import CHECK_MODULES
from rtqa.batch.model import PlanTask, timeout_limit
from rtqa.batch.worker import _death_reason, check_plan, crash_result, timeout_reason

__all__ = ["run_isolated", "run_local"]

# Worker processes are forked from a server that has imported these modules and filled
# the caches every plan uses (report template, ROI-name aliases), so a fresh worker per
# plan costs a fork, not an interpreter start and imports.
# The modules a check imports on first use are listed too (rtqa._preload.CHECK_MODULES:
# numpy.ma among them, which numpy 2 imports inside np.unique, np.median and np.percentile).
_PRELOAD = [*CHECK_MODULES, "rtqa.batch.worker", "rtqa.batch.pool"]
_WARM_ENV = "RTQA_BATCH_FORKSERVER_WARM_UP"

#: glibc malloc settings of the fork server and so of every worker it forks, unless the
#: user set any malloc tunable (:func:`_malloc_env`). By default glibc returns freed
#: memory to the system at once (blocks above the mmap threshold, and the top of the heap
#: above the trim threshold), so every plan faults its arrays in again page by page: on
#: the bundled sample ~25,000 page faults and ~0.1 s system CPU per plan, ~0.3 s for a
#: worker's first plan. With these a worker reuses its freed memory: blocks up to 32 MiB
#: (glibc's own dynamic ceiling on 64-bit) come from the heap, and up to 64 MiB of free
#: heap is kept between plans (its peak RSS is unchanged: the memory of its largest plan).
#: Larger blocks (a fine dose grid) are mapped and unmapped as before.
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
_MALLOC_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                    "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")


def _malloc_env(environ=None) -> dict[str, str]:
    """The malloc variables to add for the fork server (:data:`_MALLOC`): {} when the
    user set any of :data:`_MALLOC_TUNABLES` (their choice stands)."""
    environ = os.environ if environ is None else environ
    if any(k in environ for k in _MALLOC_TUNABLES):
        return {}
    return dict(_MALLOC)


def _warm_up() -> None:
    """Fill per-process caches (runs in the fork server only; never raises): the report
    template, the ROI-name aliases and the check options of the default settings (the
    protocol and constraint files, parsed once per text in a process: ~0.15 s that each
    worker would otherwise pay on its first plan of a batch with the default protocol)."""
    try:
        from rtqa.batch.model import CheckSettings
        from rtqa.checks.names import load_aliases
        from rtqa.report.html import _environment
        _environment().get_template("report.html.j2")
        load_aliases()
        CheckSettings().resolved().options()
    except Exception:  # noqa: BLE001 - a cold cache is only slower
        pass


if os.environ.get(_WARM_ENV) == "1":   # imported by the fork server (see _mp_context)
    _warm_up()


def _rtqa_file() -> str:
    import rtqa
    return os.path.abspath(rtqa.__file__)


def _fork_server_env() -> dict[str, str]:
    """The environment the fork server is started with, so that it imports the rtqa this
    process runs. The server runs ``python -c ...`` and, unlike the processes it forks,
    does not get this process's ``sys.path`` (CPython's ``forkserver.main`` ignores it):
    its first ``sys.path`` entry is the current folder, so another rtqa there (a source
    checkout) would be preloaded and every worker would run that code. PYTHONSAFEPATH
    drops that entry; the folder holding this rtqa goes first on PYTHONPATH unless it is
    a site-packages folder (found there anyway, and it must not precede the standard
    library). BLAS is single-threaded and numpy asks for no huge pages there unless the
    user chose otherwise (``rtqa._command_env``), and malloc keeps freed memory for reuse unless the
    user set a malloc tunable (:func:`_malloc_env`)."""
    import site
    from rtqa import _command_env
    # single-threaded BLAS and no huge pages in the workers, as in the rtqa command, unless
    # the user chose otherwise
    env = {_WARM_ENV: "1", "PYTHONSAFEPATH": "1", **_command_env(), **_malloc_env()}
    root = os.path.dirname(os.path.dirname(_rtqa_file()))
    try:
        sites = site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:   # an old virtualenv's site module
        sites = []
    norm = os.path.normcase
    if norm(root) not in {norm(os.path.abspath(p)) for p in sites}:
        old = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = root + (os.pathsep + old if old else "")
    return env


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        from multiprocessing import forkserver
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        # start the server now (once per process), with these variables set only for it
        # to inherit
        env = _fork_server_env()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            forkserver.ensure_running()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return ctx
    return multiprocessing.get_context("spawn")


def _other_rtqa(expected: str) -> str:
    """Why this worker process must not check plans (it imported another rtqa than the
    parent), or ""."""
    mine = _rtqa_file()
    if os.path.normcase(mine) == os.path.normcase(expected):
        return ""
    return f"the worker process imported rtqa from {mine}, not {expected} as the batch"


def _worker_main(conn, max_tasks: int | None, rtqa_file: str, check=check_plan) -> None:
    """A worker process: check the plans received on ``conn`` one by one and send back
    ``("ok", result)`` (or ``("error", text)`` when a result cannot be sent, or when this
    process imported another rtqa than ``rtqa_file``, the parent's), until ``max_tasks``
    plans, ``None`` or the end of the pipe. ``check``: what checks one plan."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent handles Ctrl-C
    wrong = _other_rtqa(rtqa_file)
    served = 0
    try:
        while max_tasks is None or served < max_tasks:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            if task is None:
                return
            served += 1
            if wrong:
                conn.send(("error", wrong))
                continue
            result = check(task)
            try:
                conn.send(("ok", result))
            except (EOFError, OSError):        # the parent is gone
                return
            except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class _Worker:
    """One worker process of :func:`run_local` and the plan it is checking."""

    __slots__ = ("proc", "conn", "task", "t0", "deadline", "served")

    def __init__(self, ctx, max_tasks: int | None, check=check_plan):
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main,
                                args=(child, max_tasks, _rtqa_file(), check), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self.task: PlanTask | None = None
        self.t0 = 0.0
        self.deadline: float | None = None
        self.served = 0

    def assign(self, task: PlanTask, limit: float | None) -> None:
        self.task = task
        self.t0 = time.monotonic()
        self.deadline = None if limit is None else self.t0 + limit
        try:
            self.conn.send(task)
        except OSError:
            pass   # the process is already dead: its sentinel reports it

    def collect(self) -> dict | None:
        """The plan's result when the worker sent one, else None (the process died)."""
        try:
            if not self.conn.poll():
                return None
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            return None
        self.served += 1
        if kind == "ok":
            return payload
        return crash_result(self.task, f"internal error in the worker pool ({payload})")

    def release(self) -> None:
        """Tell an idle worker to exit."""
        try:
            self.conn.send(None)
        except OSError:
            pass

    def stop(self, join_s: float = 5.0) -> None:
        """Kill the process (if still alive), reap it and close its pipe."""
        if self.proc.exitcode is None:
            self.proc.kill()
        self.proc.join(join_s)
        self.conn.close()
        if self.proc.exitcode is not None:
            self.proc.close()


def run_local(tasks: Iterable[PlanTask], workers: int,
              max_tasks_per_child: int | None = 1, timeout: float | None = None, *,
              ctx=None, check=None) -> Iterator[tuple[PlanTask, dict]]:
    """Check ``tasks`` in ``workers`` worker processes, yielding (task, result) as plans
    complete; ``timeout``: seconds per plan (None or 0: no limit); ``check``: what a
    worker runs per plan (default :func:`~rtqa.batch.worker.check_plan`; picklable).
    See the module docstring."""
    if max_tasks_per_child is not None and max_tasks_per_child < 1:
        raise ValueError("max_tasks_per_child must be at least 1 (or None)")
    limit = timeout_limit(timeout)
    check = check or check_plan
    ctx = ctx or _mp_context()
    pending = iter(tasks)
    busy: list[_Worker] = []
    idle: list[_Worker] = []      # kept workers (max_tasks_per_child != 1) between plans
    retiring: list[_Worker] = []  # done with their last plan, exiting on their own
    done: list[tuple[PlanTask, dict]] = []
    exhausted = False
    try:
        while True:
            while not exhausted and len(busy) < workers:
                task = next(pending, None)
                if task is None:
                    exhausted = True
                    break
                while idle and idle[-1].proc.exitcode is not None:
                    idle.pop().stop()          # a kept worker that died while idle
                w = idle.pop() if idle else _Worker(ctx, max_tasks_per_child, check)
                w.assign(task, limit)
                busy.append(w)
            if exhausted and idle:             # no more plans: let kept workers exit
                for w in idle:
                    w.release()
                retiring += idle
                idle.clear()
            # the next plans are running: now hand out the results of the last round
            yield from done
            done.clear()
            for w in [w for w in retiring if w.proc.exitcode is not None]:
                retiring.remove(w)
                w.stop()                       # reap it and close its pipe
            if not busy:
                break
            deadlines = [w.deadline for w in busy if w.deadline is not None]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                             timeout=wait_s))
            now = time.monotonic()
            for w in list(busy):
                if w.conn in ready or w.proc.sentinel in ready:
                    result = w.collect()
                    if result is None:      # the process died without a result
                        w.proc.join(5)
                        reason = _death_reason(w.proc.exitcode)
                        w.stop()
                        result = crash_result(w.task, reason)
                    elif max_tasks_per_child is None or w.served < max_tasks_per_child:
                        idle.append(w)
                    else:
                        retiring.append(w)
                elif w.deadline is not None and now >= w.deadline:
                    pid = w.proc.pid
                    w.stop()
                    result = crash_result(w.task, timeout_reason(limit))
                    result["stats"] = {"pid": pid, "seconds": round(now - w.t0, 3),
                                       "timed_out": True}
                else:
                    continue
                busy.remove(w)
                done.append((w.task, result))
    finally:
        for w in busy + idle:
            w.stop()
        for w in retiring:
            w.stop()


def run_isolated(task: PlanTask, ctx=None, timeout: float | None = None, *,
                 check=None) -> dict:
    """Check one plan alone in a fresh process; a crash or a timeout is that plan's
    (ERROR)."""
    for _, result in run_local([task], 1, 1, timeout, ctx=ctx, check=check):
        return result
    raise AssertionError("run_local yielded no result")  # pragma: no cover
