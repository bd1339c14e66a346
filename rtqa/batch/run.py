"""Orchestration of ``rtqa batch``: discover, skip what is up to date, check the rest
locally or on Dask, write every report and the summary.

Conventions:

* The protocol loads first (a typo stops the batch before it starts). Then ``OUT`` is
  created and locked (:mod:`rtqa.batch.lock`): a second batch on the same ``--out`` stops
  at once (exit 2) instead of mixing its plans in. No report is written before discovery
  succeeds, and none into an ``OUT`` holding the summary of a batch on another ROOT
  (its plans would drop out of the summary).
* Reports are written as results arrive, never over an input file: a plan's JSON and
  HTML are written in full to temporary files, the old pair is removed, and the new pair
  renamed in (:func:`rtqa.report.atomic.write_all`), so the two never disagree.
* The summary (``summary.json``, ``summary.csv``, ``index.html``, rewritten together, each
  atomically) only ever lists plans whose reports are already on disk and say what the
  row says: it is rewritten before the first report is written (listing only the plans
  carried over by ``--resume``; ``"complete": false``), then as reports arrive (at most
  every ``PUBLISH_S`` seconds), and at the end. A batch killed at any moment (kill -9)
  leaves an index that is incomplete but never wrong, and ``--resume`` continues. On an
  interruption it can see (Ctrl-C, a report that cannot be written) the final summary
  says ``"complete": false`` and the exit code is 2.
* Rows are in discovery order, whatever the completion order.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rtqa.batch.discovery import discover
from rtqa.batch.lock import OutputLock
from rtqa.batch.model import (PLANS_DIR, BatchOptions, BatchResult,
                              CheckSettings, PlanTask, PlanUnit, ProgressFn,
                              default_workers, exit_code, now, timeout_limit)
from rtqa.batch.pool import run_local
from rtqa.batch.resume import (_load_previous, _up_to_date, previous_root,
                               settings_fingerprint)
from rtqa.batch.summary import counts_of, index_html, make_row, summary_csv, summary_doc
from rtqa.errors import RtqaError

__all__ = ["PUBLISH_S", "plan_task_for", "run_batch"]

#: While plans are checked, the summary and index are rewritten at most this often (s).
PUBLISH_S = 2.0


def run_batch(root: str | os.PathLike, options: BatchOptions | None = None, *,
              progress: ProgressFn | None = None) -> BatchResult:
    """Discover, check and report every plan under ``root``; see :mod:`rtqa.batch`.

    ``progress(event, info)`` is called with ``"discovering"`` ({"files"}),
    ``"discovered"`` ({"plans", "files", "to_check", "resumed"}) and ``"plan"``
    ({"done", "total", "row", "counts"}). Raises ``RtqaError`` when ROOT is not a folder,
    the protocol cannot be loaded, the Dask scheduler cannot be used, another batch
    holds ``options.out``, or a report cannot be written; ValueError for a negative or
    non-finite ``options.timeout``."""
    options = options or BatchOptions()
    limit = timeout_limit(options.timeout)
    say = progress or (lambda _e, _i: None)
    started, t0 = now(), time.perf_counter()
    settings = options.settings.resolved()
    fingerprint = settings_fingerprint(settings)
    out = Path(options.out).absolute()
    try:   # lock --out first: a second batch on it stops before any work
        out.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(out).acquire()
    except OSError as exc:
        raise RtqaError(f"cannot create the output folder ({exc.strerror or exc})",
                        out) from None
    try:
        return _discover_and_run(root, options, settings, fingerprint, out, limit, say,
                                  started, t0)
    finally:
        lock.release()


def _discover_and_run(root, options: BatchOptions, settings: CheckSettings,
                       fingerprint: str, out: Path, limit, say, started: str,
                       t0: float) -> BatchResult:
    """Connect (Dask), discover, then :func:`_run_locked` (``out`` is locked)."""
    client = None
    if options.scheduler:   # connect first: a wrong address fails before discovery
        from rtqa.batch.dask_cluster import connect
        client = connect(options.scheduler, settings, fingerprint)
    try:
        disc = discover(root, per_plan=options.per_plan, exclude=[str(out)],
                        progress=lambda n: say("discovering", {"files": n}))
        inputs_all = {os.path.realpath(f) for u in disc.units for f in u.files}
        other = previous_root(out)
        if other is not None and os.path.normcase(other) != os.path.normcase(disc.root):
            # its summary would lose that batch's plans: one --out per ROOT
            raise RtqaError(f"holds the reports of a batch on {other}, not {disc.root}: "
                            "choose another --out (or remove its summary.json to start "
                            "afresh)", out)
        (out / PLANS_DIR).mkdir(exist_ok=True)
    except BaseException as exc:
        if client is not None:
            client.close(timeout=10)
        if isinstance(exc, OSError):
            raise RtqaError(f"cannot create the output folder ({exc.strerror or exc})",
                            out) from None
        raise
    return _run_locked(disc, options, settings, fingerprint, out, client, inputs_all,
                       limit, say, started, t0)


def _run_locked(disc, options: BatchOptions, settings: CheckSettings, fingerprint: str,
                out: Path, client, inputs_all: set[str], limit, say, started: str,
                t0: float) -> BatchResult:
    """The part of :func:`run_batch` that writes to ``out`` (whose lock is held)."""
    from rtqa.report.atomic import write_all

    def write(items: list[tuple[Path, str]], refuse=(), clear_first=False) -> None:
        for path, _ in items:
            if os.path.realpath(path) in inputs_all:
                raise RtqaError("refusing to overwrite an input file with a report", path)
        write_all(items, refuse=refuse, clear_first=clear_first)

    previous = _load_previous(out) if options.resume else {}
    rows: dict[str, dict] = {}
    to_check: list[PlanUnit] = []
    for unit in disc.units:
        doc = _up_to_date(unit, previous.get(unit.key), out, fingerprint, disc.root) \
            if options.resume else None
        if doc is not None:
            rows[unit.key] = make_row(unit, doc, root=disc.root, fingerprint=fingerprint,
                                      html=bool(previous[unit.key].get("html")), resumed=True)
        else:
            to_check.append(unit)
    total = len(disc.units)
    say("discovered", {"plans": total, "files": disc.n_files, "to_check": len(to_check),
                       "resumed": len(rows)})
    tasks = (PlanTask(u.key, u.name, u.patient_id, u.files, u.kinds, u.uids, settings,
                      u.problem) for u in to_check)
    by_key = {u.key: u for u in to_check}
    workers = options.workers or default_workers()
    stats: list[dict] = []
    if options.scheduler:
        executor = f"dask {options.scheduler}"
    else:
        executor = f"local, {workers} worker process{'es' if workers != 1 else ''}"
    order = {u.key: i for i, u in enumerate(disc.units)}

    def publish(complete: bool) -> tuple[dict, list[dict], int, float]:
        ordered = sorted(rows.values(), key=lambda r: order[r["key"]])
        seconds = time.perf_counter() - t0
        code = exit_code(ordered) if complete else 2
        summary = summary_doc(disc, ordered, settings=settings, per_plan=options.per_plan,
                              timeout=limit,
                              fingerprint=fingerprint, started=started, finished=now(),
                              seconds=seconds, executor=executor, complete=complete,
                              code=code, created=now())
        write([(out / "summary.csv", summary_csv(ordered)),
               (out / "index.html", index_html(summary)),
               (out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False)
                + "\n")])
        return summary, ordered, code, seconds

    # before any report is replaced: the index lists only what stays true
    try:
        publish(complete=False)
    except BaseException:
        if client is not None:
            client.close(timeout=10)
        raise
    last_publish = time.monotonic()
    if options.scheduler:
        from rtqa.batch.dask_cluster import run_dask
        results = run_dask(tasks, client, limit, check=options.check)
    else:
        results = run_local(tasks, workers, options.max_tasks_per_child, limit,
                            check=options.check)
    complete = False
    interrupted: BaseException | None = None
    running = counts_of(list(rows.values()))
    try:
        for task, result in results:
            unit = by_key[task.key]
            json_path = out / PLANS_DIR / f"{unit.name}.json"
            html_path = out / PLANS_DIR / f"{unit.name}.html"
            html = result.get("html") is not None
            items = [(json_path, result["json"])]
            if html:
                items.append((html_path, result["html"]))
            else:
                try:
                    html_path.unlink()     # an older HTML report would say otherwise
                except FileNotFoundError:
                    pass
            write(items, refuse=unit.files, clear_first=True)
            doc = result.get("row") or json.loads(result["json"])  # the same members
            row = make_row(unit, doc, root=disc.root,
                           fingerprint=fingerprint, html=html, resumed=False,
                           note=result.get("note") or "")
            rows[unit.key] = row
            if result.get("stats"):
                stats.append(dict(result["stats"], key=unit.key, status=row["status"]))
            running[row["status"]] = running.get(row["status"], 0) + 1
            say("plan", {"done": len(rows), "total": total, "row": row,
                         "counts": dict(running)})
            if time.monotonic() - last_publish >= PUBLISH_S:
                publish(complete=False)
                last_publish = time.monotonic()
        complete = True
    except BaseException as exc:  # interrupted (Ctrl-C) or a report cannot be written
        interrupted = exc
        raise
    finally:
        close = getattr(results, "close", None)
        if close:
            close()
        if client is not None:
            client.close(timeout=10)
        try:
            summary, ordered, code, seconds = publish(complete)
        except Exception:
            if interrupted is None:
                raise
            # already failing: keep the first error; a partial summary is best effort
    return BatchResult(summary, ordered, code, out, stats, checked=summary["run"]["checked"],
                       resumed=summary["counts"]["resumed"], seconds=seconds)


def plan_task_for(unit: PlanUnit, settings: CheckSettings | None = None) -> PlanTask:
    """The worker task of one discovered plan (for tools and tests)."""
    return PlanTask(unit.key, unit.name, unit.patient_id, unit.files, unit.kinds, unit.uids,
                    (settings or CheckSettings()).resolved(), unit.problem)
