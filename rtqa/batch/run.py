"""Orchestration of ``rtqa batch``: discover, skip what is up to date, check the rest
locally or on Dask, write every report and the summary.

Conventions:

* Nothing is written before discovery succeeds and the protocol loads (a typo stops the
  batch before it starts); reports are written atomically as results arrive, and never
  over an input file.
* The summary (``summary.json``, ``summary.csv``, ``index.html``) is written at the end,
  also when the run is interrupted (Ctrl-C, a report that cannot be written): then
  ``"complete": false``, exit code 2, and ``--resume`` continues where it stopped.
* Rows are in discovery order, whatever the completion order.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rtqa.batch.discovery import discover
from rtqa.batch.model import (PLANS_DIR, TEST_FAULT_ENV, BatchOptions, BatchResult,
                              CheckSettings, PlanTask, PlanUnit, ProgressFn,
                              default_workers, exit_code, now, timeout_limit)
from rtqa.batch.pool import run_local
from rtqa.batch.resume import _load_previous, _up_to_date, settings_fingerprint
from rtqa.batch.summary import counts_of, index_html, make_row, summary_csv, summary_doc
from rtqa.errors import RtqaError

__all__ = ["plan_task_for", "run_batch"]


def run_batch(root: str | os.PathLike, options: BatchOptions | None = None, *,
              progress: ProgressFn | None = None) -> BatchResult:
    """Discover, check and report every plan under ``root``; see :mod:`rtqa.batch`.

    ``progress(event, info)`` is called with ``"discovering"`` ({"files"}),
    ``"discovered"`` ({"plans", "files", "to_check", "resumed"}) and ``"plan"``
    ({"done", "total", "row", "counts"}). Raises ``RtqaError`` when ROOT is not a folder,
    the protocol cannot be loaded, the Dask scheduler cannot be used, or a report cannot
    be written; ValueError for a negative or non-finite ``options.timeout``."""
    options = options or BatchOptions()
    limit = timeout_limit(options.timeout)
    say = progress or (lambda _e, _i: None)
    started, t0 = now(), time.perf_counter()
    settings = options.settings.resolved()
    fingerprint = settings_fingerprint(settings)
    out = Path(options.out).absolute()
    client = None
    if options.scheduler:   # connect first: a wrong address fails before discovery
        from rtqa.batch.dask_cluster import connect
        client = connect(options.scheduler, settings, fingerprint)
    try:
        disc = discover(root, per_plan=options.per_plan, exclude=[str(out)],
                        progress=lambda n: say("discovering", {"files": n}))
    except BaseException:
        if client is not None:
            client.close()
        raise
    inputs_all = {os.path.realpath(f) for u in disc.units for f in u.files}
    try:
        (out / PLANS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if client is not None:
            client.close()
        raise RtqaError(f"cannot create the output folder ({exc.strerror or exc})",
                        out) from None
    from rtqa.report.atomic import write_atomic

    def write(path: Path, data: str, refuse=()) -> None:
        if os.path.realpath(path) in inputs_all:
            raise RtqaError("refusing to overwrite an input file with a report", path)
        write_atomic(path, data, refuse=refuse)

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
    fault = os.environ.get(TEST_FAULT_ENV, "")
    tasks = (PlanTask(u.key, u.name, u.patient_id, u.files, u.kinds, u.uids, settings,
                      u.problem, fault) for u in to_check)
    by_key = {u.key: u for u in to_check}
    workers = options.workers or default_workers()
    stats: list[dict] = []
    if options.scheduler:
        from rtqa.batch.dask_cluster import run_dask
        results = run_dask(tasks, client, limit)
        executor = f"dask {options.scheduler}"
    else:
        results = run_local(tasks, workers, options.max_tasks_per_child, limit)
        executor = f"local, {workers} worker process{'es' if workers != 1 else ''}"
    complete = False
    interrupted: BaseException | None = None
    running = counts_of(list(rows.values()))
    try:
        for task, result in results:
            unit = by_key[task.key]
            write(out / PLANS_DIR / f"{unit.name}.json", result["json"], refuse=unit.files)
            html = result.get("html") is not None
            if html:
                write(out / PLANS_DIR / f"{unit.name}.html", result["html"], refuse=unit.files)
            row = make_row(unit, json.loads(result["json"]), root=disc.root,
                           fingerprint=fingerprint, html=html, resumed=False,
                           note=result.get("note") or "")
            rows[unit.key] = row
            if result.get("stats"):
                stats.append(dict(result["stats"], key=unit.key, status=row["status"]))
            running[row["status"]] = running.get(row["status"], 0) + 1
            say("plan", {"done": len(rows), "total": total, "row": row,
                         "counts": dict(running)})
        complete = True
    except BaseException as exc:  # interrupted (Ctrl-C) or a report cannot be written
        interrupted = exc
        raise
    finally:
        close = getattr(results, "close", None)
        if close:
            close()
        if client is not None:
            client.close()
        order = {u.key: i for i, u in enumerate(disc.units)}
        ordered = sorted(rows.values(), key=lambda r: order[r["key"]])
        seconds = time.perf_counter() - t0
        code = exit_code(ordered) if complete else 2
        summary = summary_doc(disc, ordered, settings=settings, per_plan=options.per_plan,
                              timeout=limit,
                              fingerprint=fingerprint, started=started, finished=now(),
                              seconds=seconds, executor=executor, complete=complete,
                              code=code, created=now())
        try:
            write(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
            write(out / "summary.csv", summary_csv(ordered))
            write(out / "index.html", index_html(summary))
        except Exception:
            if interrupted is None:
                raise
            # already failing: keep the first error; a partial summary is best effort
    return BatchResult(summary, ordered, code, out, stats, checked=summary["run"]["checked"],
                       resumed=summary["counts"]["resumed"], seconds=seconds)


def plan_task_for(unit: PlanUnit, settings: CheckSettings | None = None) -> PlanTask:
    """The worker task of one discovered plan (for tools and tests)."""
    return PlanTask(unit.key, unit.name, unit.patient_id, unit.files, unit.kinds, unit.uids,
                    (settings or CheckSettings()).resolved(), unit.problem, "")
