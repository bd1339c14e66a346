"""The data model of ``rtqa batch`` and the small helpers every step shares.

Conventions:

* Paths in :class:`Header`, :class:`PlanUnit` and :class:`PlanTask` are absolute (ROOT
  made absolute, symbolic links not resolved); paths shown to people (``rel``,
  ``folders``, summary rows) are relative to ROOT and ``/``-separated.
* :class:`PlanTask` is what crosses a process (or Dask) boundary: small, frozen and
  picklable, with every file argument already absolute (:meth:`CheckSettings.resolved`).
* Times: wall-clock stamps are UTC ISO 8601 to the second (:func:`now`); durations and
  time limits are seconds (measured with ``time.monotonic``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "BatchOptions", "BatchResult", "CheckSettings", "DEFAULT_TIMEOUT_S", "Discovery",
    "Header", "MAX_DEPTH", "PLANS_DIR", "PlanTask", "PlanUnit", "ProgressFn",
    "SUMMARY_SCHEMA", "default_workers", "exit_code", "now",
    "sha256_file", "timeout_limit",
]

SUMMARY_SCHEMA = "rtqa-batch/1"
PLANS_DIR = "plans"
MAX_DEPTH = 32
#: Default time limit per plan (``--timeout``), in seconds.
DEFAULT_TIMEOUT_S = 900.0


# --- data model ------------------------------------------------------------------------

@dataclass(frozen=True)
class Header:
    """What discovery reads from one DICOM file (no pixel data, no contours)."""

    path: str                     # absolute (ROOT made absolute, links not resolved)
    rel: str                      # relative to ROOT, "/"-separated
    kind: str                     # RTPLAN, RTDOSE, RTSTRUCT, CT, MR, OTHER
    sop_instance_uid: str
    patient_id: str
    frame_uid: str = ""
    series_uid: str = ""
    label: str = ""               # RTPlanLabel (or RTPlanName) / StructureSetLabel
    refs: tuple[str, ...] = ()    # RTPLAN -> RTSTRUCT; RTDOSE -> RTPLAN; RTSTRUCT -> CT series

    @property
    def folder(self) -> str:
        return os.path.dirname(self.rel)


@dataclass(frozen=True)
class PlanUnit:
    """One plan of the batch: the files checked together as one export."""

    key: str                      # 12 hex digits, stable for the same patient and anchors
    name: str                     # report file stem: patient _ label _ key
    patient_id: str
    label: str                    # plan labels joined by "+", or the dose file name
    plan_labels: tuple[str, ...] = ()
    plan_uids: tuple[str, ...] = ()
    dose_uids: tuple[str, ...] = ()
    rtstruct_uids: tuple[str, ...] = ()
    frame_uid: str = ""
    ct_series_uids: tuple[str, ...] = ()
    files: tuple[str, ...] = ()   # absolute paths, sorted
    kinds: tuple[str, ...] = ()   # per file
    uids: tuple[str, ...] = ()    # per file (SOPInstanceUID, "" when unreadable)
    folders: tuple[str, ...] = () # folders of the anchors, relative to ROOT
    notes: tuple[str, ...] = ()   # discovery notes shown with the plan
    problem: str = ""             # set: ERROR without checking (conflicting copies, ...)


@dataclass
class Discovery:
    root: str
    units: list[PlanUnit]
    unassigned: list[dict]        # {"path", "kind", "reason"} (relative paths)
    n_files: int                  # files looked at
    n_dicom: int                  # DICOM files indexed


@dataclass(frozen=True)
class CheckSettings:
    """What ``rtqa check`` options every plan of the batch (or of ``rtqa serve``) is
    checked with: each field is the ``rtqa check`` option of the same name (``overrides``
    is ``--map``; mappings are kept as sorted (name, value) pairs so the settings stay
    hashable and picklable). :meth:`options` builds the check's options from them."""

    protocol: str = "oligo-hcc"
    constraints: tuple[str, ...] = ()
    overrides: tuple[tuple[str, str], ...] = ()
    sum_plans: bool = False
    delivery: str | None = None
    end_caps: str = "half"
    plan: str | None = None
    roi_types: tuple[tuple[str, str], ...] = ()
    lesion_organs: tuple[tuple[str, str], ...] = ()

    def options(self, **extra):
        """The check's :class:`~rtqa.checks.context.CheckOptions`
        (:func:`rtqa.checks.options.check_options`); ``extra``: e.g. ``progress``."""
        from rtqa.checks.options import check_options
        return check_options(protocol=self.protocol, constraints=self.constraints,
                             overrides=self.overrides, sum_plans=self.sum_plans,
                             delivery=self.delivery, end_caps=self.end_caps, plan=self.plan,
                             roi_types=self.roi_types, lesion_organs=self.lesion_organs,
                             **extra)

    def check_args(self) -> dict:
        """The options that differ from ``rtqa check``'s defaults, by name (for the
        settings fingerprint and the summary)."""
        out = {}
        for name, default in (("sum_plans", False), ("delivery", None), ("end_caps", "half"),
                              ("plan", None), ("roi_types", ()), ("lesion_organs", ())):
            value = getattr(self, name)
            if value != default:
                out[name] = [list(p) for p in value] if isinstance(value, tuple) else value
        return out

    def resolved(self) -> CheckSettings:
        """File arguments made absolute (workers may run elsewhere)."""
        proto = self.protocol.strip()
        if "/" in proto or "\\" in proto or proto.endswith(".toml"):  # as resolve_protocol
            proto = os.path.abspath(os.path.expanduser(proto))
        return replace(self, protocol=proto,
                       constraints=tuple(os.path.abspath(c) for c in self.constraints))


@dataclass(frozen=True)
class PlanTask:
    """What a worker needs to check one plan (small and picklable)."""

    key: str
    name: str
    patient_id: str
    files: tuple[str, ...]
    kinds: tuple[str, ...]
    uids: tuple[str, ...]
    settings: CheckSettings
    problem: str = ""


@dataclass
class BatchOptions:
    settings: CheckSettings = field(default_factory=CheckSettings)
    workers: int | None = None    # None: number of usable cores
    out: str = "rtqa-batch"
    resume: bool = False
    scheduler: str | None = None  # Dask scheduler address: run on that cluster
    per_plan: bool = False
    #: Plans a local worker process checks before it is replaced (a new one is forked
    #: from the preloaded server). A kept worker does not pay again for what the first
    #: plan filled (matplotlib's text and font caches, pydicom's, the engine's): 0.1 s
    #: CPU a plan on the bundled sample (about 5%, measured pairwise against a fresh
    #: fork); replacing it every 16 plans bounds what it may accumulate.
    #: 1: a fresh process per plan (memory bounded by one plan); None: kept for the run.
    max_tasks_per_child: int | None = 16
    #: Time limit per plan in seconds (``--timeout``); 0 or None: no limit. A plan still
    #: running then is ERROR ("timed out after N s") and its worker process is killed
    #: (see :mod:`rtqa.batch.pool`; on Dask :mod:`rtqa.batch.dask_cluster`).
    timeout: float | None = DEFAULT_TIMEOUT_S
    #: What a worker runs for each plan (default :func:`rtqa.batch.worker.check_plan`), for
    #: tools and tests: ``check(task) -> result`` as ``check_plan``. It crosses a process
    #: boundary, so it must be picklable (a module-level function or a
    #: ``functools.partial`` of one).
    check: Callable[[PlanTask], dict] | None = None


@dataclass
class BatchResult:
    summary: dict
    rows: list[dict]
    exit_code: int
    out: Path
    stats: list[dict] = field(default_factory=list)   # per checked plan: worker figures
    checked: int = 0
    resumed: int = 0
    seconds: float = 0.0


ProgressFn = Callable[[str, dict], None]


# --- small helpers ---------------------------------------------------------------------

def _safe(text: str, limit: int) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text or "").strip("._-")
    return s[:limit].rstrip("._-") or "x"


def _hash(*parts: str, n: int = 12) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:n]


def _relpath(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root).replace(os.sep, "/")
    except ValueError:
        return path


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_workers() -> int:
    if hasattr(os, "process_cpu_count"):
        n = os.process_cpu_count()  # Python 3.13+
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count()
    return max(1, n or 1)


def exit_code(rows: Iterable[dict]) -> int:
    """2 if any plan is ERROR (or there is none), else 1 if any FAILs, else 0."""
    statuses = [r["status"] for r in rows]
    if not statuses or "ERROR" in statuses:
        return 2
    return 1 if "FAIL" in statuses else 0


def timeout_limit(timeout: float | None) -> float | None:
    """The time limit per plan in seconds, or None for no limit (``0`` or ``None``);
    raises ValueError for a negative or non-finite value."""
    if timeout is None or timeout == 0:
        return None
    t = float(timeout)
    if not (0 < t < float("inf")):
        raise ValueError("the time limit per plan must be a positive number of seconds "
                         f"or 0 (no limit), not {timeout!r}")
    return t


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
