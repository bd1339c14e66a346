"""``rtqa batch``: QA of every plan export found under one folder.

Three steps, each usable on its own:

1. **Discovery** (:func:`discover`, :mod:`rtqa.batch.discovery`, which states the
   grouping rule): read the header of every file under ROOT and link objects by UID into
   plan units, whatever the folder layout.
2. **Checking**: every plan unit is checked exactly as ``rtqa check`` would check an
   export made of its files (:func:`check_plan` in :mod:`rtqa.batch.worker`, which runs
   :func:`rtqa.checks.pipeline.run_check` on the unit's file list), in a pool of local worker
   processes (:mod:`rtqa.batch.pool`) or on a Dask cluster (:mod:`rtqa.batch.dask_cluster`).
   Plans are handed out lazily and every local worker process checks one plan and exits
   (by default), so a worker's memory is bounded by one plan and a plan that crashes its
   worker takes only itself down.
3. **Reporting** (:mod:`rtqa.batch.summary`): the JSON and HTML report of every plan in
   ``OUT/plans/``, and ``OUT/summary.json``, ``OUT/summary.csv`` and ``OUT/index.html``
   for the whole batch.

:func:`run_batch` (:mod:`rtqa.batch.run`) does all three, skipping plans that are up to
date with ``resume=True`` (:mod:`rtqa.batch.resume`). :mod:`rtqa.batch.model` holds the
data classes and helpers they share.

Statuses and exit code: every plan is PASS, FAIL or ERROR exactly as ``rtqa check``
would report it; a plan that cannot be read, raises, or whose worker process dies is
ERROR with the reason and the batch carries on. Exit code 2 if any plan is ERROR (or no
plan was found), else 1 if any plan FAILs, else 0.

Two runs on the same files, local or Dask, give the same ``summary.json`` apart from the
timestamps (``created``, ``run``, each row's ``report_created``) and ``run.executor``.

Time limit (``BatchOptions.timeout``, ``--timeout``, default 900 s, 0: none): a plan
still running after it is ERROR ("timed out after N s ...") and the batch goes on; its
local worker process is killed (:mod:`rtqa.batch.pool`); on Dask the worker running it
is restarted through its nanny (:mod:`rtqa.batch.dask_cluster` says exactly what happens).

Every public name of the former single module ``rtqa/batch.py``, and the private ones
other modules use, are importable from here.
"""

from __future__ import annotations

from rtqa.batch.discovery import _HEADER_TAGS, _walk, discover, read_header
from rtqa.batch.model import (DEFAULT_TIMEOUT_S, MAX_DEPTH, PLANS_DIR, SUMMARY_SCHEMA,
                              BatchOptions, BatchResult, CheckSettings,
                              Discovery, Header, PlanTask, PlanUnit, ProgressFn, _hash,
                              _relpath, _safe,
                              default_workers, exit_code, sha256_file, timeout_limit)
from rtqa.batch.model import now as _now
from rtqa.batch.pool import (_PRELOAD, _WARM_ENV, _mp_context, _warm_up, run_isolated,
                             run_local)
from rtqa.batch.resume import _load_previous, _up_to_date, settings_fingerprint
from rtqa.batch.run import plan_task_for, run_batch
from rtqa.batch.summary import (CSV_COLUMNS, _csv_cell, _inputs_digest, _reason, counts_of,
                                index_html, make_row, summary_csv)
from rtqa.batch.worker import (_death_reason, _error_report, check_plan, crash_result, render_reports, timeout_reason)

__all__ = [
    "BatchOptions", "BatchResult", "CheckSettings", "DEFAULT_TIMEOUT_S", "Discovery",
    "Header", "PlanTask", "PlanUnit", "SUMMARY_SCHEMA", "check_plan",
    "discover", "exit_code", "read_header", "run_batch",
]
