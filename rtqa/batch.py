"""``rtqa batch``: QA of every plan export found under one folder.

Three steps, each usable on its own:

1. **Discovery** (:func:`discover`): walk ROOT (symbolic links are never followed) and
   read the *header* of every file (pydicom ``stop_before_pixels`` with only the tags
   needed to link objects); files that are not DICOM are ignored. Objects are linked by
   UID, never by folder, so any layout works (one folder per plan, per patient, per
   modality, all in one folder, nested at any depth).
2. **Checking**: every plan unit is checked exactly as ``rtqa check`` would check an
   export made of its files (:func:`rtqa.pipeline.run_check` on the unit's file list), in
   a pool of worker processes (:func:`run_batch`) or on a Dask cluster
   (:mod:`rtqa.batch_dask`). Plans are handed out lazily (at most 2 x workers in flight)
   and every local worker process checks one plan and exits, so a worker's memory is
   bounded by one plan and a plan that crashes its worker takes only itself down.
3. **Reporting**: the JSON and HTML report of every plan in ``OUT/plans/``, and
   ``OUT/summary.json``, ``OUT/summary.csv`` and ``OUT/index.html`` for the whole batch.

Grouping rule (what one "plan" of the batch is)
-----------------------------------------------
Objects are indexed by (PatientID, SOPInstanceUID); references are only followed
within one PatientID.

* An **anchor** is an RTPLAN, or an RTDOSE whose referenced RTPLAN is not under ROOT
  (a dose without plan). An RTDOSE whose RTPLAN is present belongs to that plan.
* Every anchor has a structure set: an RTPLAN the RTSTRUCT of its
  ReferencedStructureSetSequence; a dose without plan the RTSTRUCT of the same patient
  and FrameOfReferenceUID (when several, the one in the dose's folder; when still
  ambiguous, all of them, and the check reports the ambiguity).
* Default (``per_plan=False``): anchors of one patient that use the **same RTSTRUCT**
  are checked together as one export (one treatment course: the plans' doses are summed
  voxel-wise as BED, each with its own fractionation, as ``rtqa check`` does for a
  folder holding those plans). With ``per_plan=True`` (``--per-plan``) every RTPLAN is
  checked on its own with its doses, and doses without plan referencing the same
  (missing) RTPLAN together.
* Anchors without a structure set are checked on their own (the check then reports
  the missing RTSTRUCT).
* Each unit gets its RTSTRUCT, the RTDOSEs referencing its RTPLANs and the CT series the
  RTSTRUCT references (else the only CT series of the patient in that frame of reference).
* Copies of one object (same PatientID and SOPInstanceUID) in several files: identical
  copies are used once (the first path in sorted order; noted on the plan); copies that
  differ make every plan using them ERROR ("conflicting files"), never a guess.
* A file that claims to be DICOM (``.dcm`` name or ``DICM`` magic) but whose header
  cannot be read joins every plan with a file in the same folder (so that plan is
  ERROR with the reader's reason, as ``rtqa check`` of that folder would be); alone in
  its folder it becomes an ERROR entry of its own, because it may hide a plan.
* RTSTRUCTs and CT series that no plan or dose uses are listed as ``unassigned`` in
  ``summary.json`` (not errors).

Statuses and exit code: every plan is PASS, FAIL or ERROR exactly as ``rtqa check``
would report it; a plan that cannot be read, raises, or whose worker process dies is
ERROR with the reason and the batch carries on. Exit code 2 if any plan is ERROR (or no
plan was found), else 1 if any plan FAILs, else 0.

Resume (``resume=True``): a plan is skipped, and its previous result carried over, when
``summary.json`` has its row made with the same settings fingerprint (rtqa version,
protocol, constraint library and extra files, name maps); its JSON report is the one that
row describes (same ``created`` and the same digest of its ``inputs``); the report's
``inputs`` list exactly the plan's current files, each with the same SHA-256; and its HTML
report exists. Plans that ERRORed for a reason other than their input (internal error,
worker crash) record no inputs and are always checked again. A run stopped by Ctrl-C
writes the summary of the plans done so far (``"complete": false``), so ``--resume``
continues where it stopped.

Output (``OUT``): ``plans/<patient>_<plan label>_<key>.json|html`` (``key``: 12 hex digits
of a SHA-256 of the PatientID and the anchors' UIDs, so names are unique and stable);
``summary.json`` (schema ``rtqa-batch/1``: settings, run, counts, exit code, one row per
plan in discovery order, unassigned objects); ``summary.csv`` (one line per plan; cells
that would start a spreadsheet formula are prefixed with ``'``); ``index.html`` (self-
contained, no scripts: ERROR, then FAIL, then PASS plans with reasons and links). Two runs
on the same files, local or Dask, give the same ``summary.json`` apart from the
timestamps (``created``, ``run``, each row's ``report_created``) and ``run.executor``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from rtqa import __version__
from rtqa.errors import RtqaError

__all__ = [
    "BatchOptions", "BatchResult", "CheckSettings", "Discovery", "Header", "PlanTask",
    "PlanUnit", "SUMMARY_SCHEMA", "TEST_FAULT_ENV", "check_plan", "discover",
    "exit_code", "read_header", "run_batch",
]

SUMMARY_SCHEMA = "rtqa-batch/1"
#: Test hook (read by the parent and passed to the worker with each task, so it works
#: with any start method and on Dask): ``exit:TEXT`` makes the worker process checking a
#: plan whose report name or any input path contains TEXT die with ``os._exit(70)``;
#: ``raise:TEXT`` makes it raise RuntimeError. Never set it outside tests.
TEST_FAULT_ENV = "RTQA_BATCH_TEST_FAULT"
PLANS_DIR = "plans"
MAX_DEPTH = 32
_FAULT_EXIT_CODE = 70

_HEADER_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "Modality", "PatientID", "StudyInstanceUID",
    "SeriesInstanceUID", "FrameOfReferenceUID", "RTPlanLabel", "RTPlanName",
    "StructureSetLabel", "ReferencedStructureSetSequence", "ReferencedRTPlanSequence",
    "ReferencedFrameOfReferenceSequence",
]


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
    """What ``rtqa check`` options every plan of the batch is checked with."""

    protocol: str = "oligo-hcc"
    constraints: tuple[str, ...] = ()
    overrides: tuple[tuple[str, str], ...] = ()

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
    fault: str = ""               # test hook, see TEST_FAULT_ENV


@dataclass
class BatchOptions:
    settings: CheckSettings = field(default_factory=CheckSettings)
    workers: int | None = None    # None: number of usable cores
    out: str = "rtqa-batch"
    resume: bool = False
    scheduler: str | None = None  # Dask scheduler address: run on that cluster
    per_plan: bool = False
    #: Plans a local worker process checks before it is replaced. 1 (default) bounds a
    #: worker's memory by one plan. Values above 1 can hang the pool on Python versions
    #: without the fix for CPython gh-115634 (3.11, 3.12, older 3.13); None keeps workers.
    max_tasks_per_child: int | None = 1


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


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _looks_like_dicom(path: str) -> bool:
    if path.lower().endswith((".dcm", ".dicom")):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


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


# --- discovery -------------------------------------------------------------------------

def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, None)
    return "" if value is None else str(value).strip()


def read_header(path: str, rel: str = "") -> Header | None:
    """The linking header of one file; None when it is not DICOM. Raises ``RtqaError``
    when the file claims to be DICOM but its header cannot be read."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from rtqa.reading.sopclass import KIND

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        sop_class = _text(ds, "SOPClassUID")
    except InvalidDicomError:
        if _looks_like_dicom(path):
            raise RtqaError("not a DICOM file (no DICOM header)", rel or path) from None
        return None
    except (OSError, MemoryError) as exc:
        raise RtqaError(f"cannot be read ({exc})", rel or path) from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken files
        raise RtqaError(f"unreadable DICOM header ({type(exc).__name__}: {exc})",
                        rel or path) from None
    if not sop_class:
        if _looks_like_dicom(path):
            raise RtqaError("DICOM file without SOPClassUID", rel or path)
        return None
    kind = KIND.get(sop_class, "OTHER")
    refs: list[str] = []
    frame = _text(ds, "FrameOfReferenceUID")
    label = ""
    try:
        if kind == "RTPLAN":
            label = _text(ds, "RTPlanLabel") or _text(ds, "RTPlanName")
            refs = [_text(i, "ReferencedSOPInstanceUID")
                    for i in ds.get("ReferencedStructureSetSequence", None) or []]
        elif kind == "RTDOSE":
            refs = [_text(i, "ReferencedSOPInstanceUID")
                    for i in ds.get("ReferencedRTPlanSequence", None) or []]
        elif kind == "RTSTRUCT":
            label = _text(ds, "StructureSetLabel")
            for fr in ds.get("ReferencedFrameOfReferenceSequence", None) or []:
                frame = frame or _text(fr, "FrameOfReferenceUID")
                for st in fr.get("RTReferencedStudySequence", None) or []:
                    for se in st.get("RTReferencedSeriesSequence", None) or []:
                        refs.append(_text(se, "SeriesInstanceUID"))
    except Exception as exc:  # noqa: BLE001 - a malformed sequence
        raise RtqaError(f"unreadable DICOM references ({type(exc).__name__}: {exc})",
                        rel or path) from None
    return Header(path=path, rel=rel or path, kind=kind,
                  sop_instance_uid=_text(ds, "SOPInstanceUID"),
                  patient_id=_text(ds, "PatientID"), frame_uid=frame,
                  series_uid=_text(ds, "SeriesInstanceUID"), label=label,
                  refs=tuple(dict.fromkeys(r for r in refs if r)))


def _walk(root: str, exclude: Iterable[str] = ()) -> Iterator[str]:
    """Regular files under ``root`` in a stable order; links and ``exclude`` folders
    (resolved paths) are skipped."""
    skip = {os.path.realpath(e) for e in exclude}
    depth0 = root.rstrip(os.sep).count(os.sep)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if dirpath.count(os.sep) - depth0 >= MAX_DEPTH:
            dirnames[:] = []
        dirnames[:] = sorted(d for d in dirnames
                             if os.path.realpath(os.path.join(dirpath, d)) not in skip)
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            if not os.path.islink(p) and os.path.isfile(p):
                yield p


def discover(root: str | os.PathLike, *, per_plan: bool = False,
             exclude: Iterable[str] = (),
             progress: Callable[[int], None] | None = None) -> Discovery:
    """Find every plan under ``root`` (see the module docstring for the grouping rule)."""
    root_abs = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root_abs):
        raise RtqaError("is not a folder", root)
    headers: list[Header] = []
    unreadable: list[tuple[str, str, str]] = []   # (abs, rel, reason)
    n_files = 0
    for p in _walk(root_abs, exclude):
        n_files += 1
        rel = os.path.relpath(p, root_abs).replace(os.sep, "/")
        try:
            h = read_header(p, rel)
        except RtqaError as exc:
            unreadable.append((p, rel, exc.reason))
            continue
        if h is not None:
            headers.append(h)
        if progress and n_files % 200 == 0:
            progress(n_files)

    # (patient, uid) -> copies; identical copies collapse, differing ones conflict
    copies: dict[tuple[str, str], list[Header]] = {}
    for h in headers:
        copies.setdefault((h.patient_id, h.sop_instance_uid), []).append(h)
    obj: dict[tuple[str, str], Header] = {}
    dup_notes: dict[tuple[str, str], str] = {}
    conflicts: dict[tuple[str, str], str] = {}
    for k, hs in copies.items():
        obj[k] = hs[0]
        if len(hs) > 1:
            digests = {sha256_file(h.path) for h in hs}
            names = ", ".join(h.rel for h in hs)
            if len(digests) == 1:
                dup_notes[k] = (f"identical copies of one {hs[0].kind} ({names}): "
                                f"{hs[0].rel} used")
            else:
                conflicts[k] = (f"different files with the same SOPInstanceUID "
                                f"{k[1]} ({hs[0].kind}): {names}")
    by_kind: dict[str, list[Header]] = {}
    for h in obj.values():
        by_kind.setdefault(h.kind, []).append(h)
    for hs in by_kind.values():
        hs.sort(key=lambda h: h.rel)
    ct_series: dict[tuple[str, str], list[Header]] = {}
    for h in by_kind.get("CT", []):
        ct_series.setdefault((h.patient_id, h.series_uid), []).append(h)
    structs = by_kind.get("RTSTRUCT", [])
    plans = by_kind.get("RTPLAN", [])
    doses = by_kind.get("RTDOSE", [])

    def get(pid: str, uid: str, kind: str) -> Header | None:
        h = obj.get((pid, uid))
        return h if h is not None and h.kind == kind else None

    def struct_for_frame(pid: str, frame: str, folder: str) -> list[Header]:
        cands = [s for s in structs if s.patient_id == pid and s.frame_uid == frame and frame]
        if len(cands) > 1:
            local = [s for s in cands if s.folder == folder]
            if len(local) == 1:
                return local
        return cands

    # anchors: (group key, plan header or None, dose headers, structure sets)
    groups: dict[tuple, dict] = {}
    doses_of_plan: dict[tuple[str, str], list[Header]] = {}
    orphans: list[Header] = []
    for d in doses:
        plan = next((get(d.patient_id, r, "RTPLAN") for r in d.refs
                     if get(d.patient_id, r, "RTPLAN")), None)
        if plan is not None:
            doses_of_plan.setdefault((plan.patient_id, plan.sop_instance_uid), []).append(d)
        else:
            orphans.append(d)

    def group(key: tuple) -> dict:
        return groups.setdefault(key, {"plans": [], "doses": [], "structs": [],
                                       "pid": key[0], "notes": []})

    for p in plans:
        rs = next((get(p.patient_id, r, "RTSTRUCT") for r in p.refs
                   if get(p.patient_id, r, "RTSTRUCT")), None)
        if rs is not None and not per_plan:
            g = group((p.patient_id, "rs", rs.sop_instance_uid))
        else:
            g = group((p.patient_id, "plan", p.sop_instance_uid))
        g["plans"].append(p)
        g["doses"] += doses_of_plan.get((p.patient_id, p.sop_instance_uid), [])
        if rs is not None and rs not in g["structs"]:
            g["structs"].append(rs)
    plans_by_uid: dict[str, list[Header]] = {}
    for p in plans:
        plans_by_uid.setdefault(p.sop_instance_uid, []).append(p)
    for d in orphans:
        cands = struct_for_frame(d.patient_id, d.frame_uid, d.folder)
        elsewhere = [p for r in d.refs for p in plans_by_uid.get(r, [])]
        if len(cands) == 1 and not per_plan:
            g = group((d.patient_id, "rs", cands[0].sop_instance_uid))
        elif d.refs:
            g = group((d.patient_id, "missing-plan", d.refs[0]))
        else:
            g = group((d.patient_id, "dose", d.sop_instance_uid))
        g["doses"].append(d)
        for s in cands:
            if s not in g["structs"]:
                g["structs"].append(s)
        if len(cands) > 1:
            g["notes"].append(f"{d.rel}: no RTPLAN and {len(cands)} RTSTRUCTs in its frame "
                              "of reference: all included (the check reports which to use)")
        for p in elsewhere:
            g["notes"].append(f"{d.rel}: its RTPLAN {p.rel} has another PatientID "
                              f"({p.patient_id!r}, dose {d.patient_id!r}): not linked")

    used: set[str] = set()
    units: list[PlanUnit] = []
    for g in groups.values():
        pid = g["pid"]
        members: list[Header] = list(g["plans"]) + list(g["doses"]) + list(g["structs"])
        series: list[str] = []
        for s in g["structs"]:
            found = [uid for uid in s.refs if (pid, uid) in ct_series]
            if not found:
                same = sorted({k[1] for k, v in ct_series.items()
                               if k[0] == pid and v[0].frame_uid == s.frame_uid and s.frame_uid})
                found = same if len(same) == 1 else []
            series += [u for u in found if u not in series]
        if not g["structs"] and not series and g["doses"]:
            frame = g["doses"][0].frame_uid
            same = sorted({k[1] for k, v in ct_series.items()
                           if k[0] == pid and v[0].frame_uid == frame and frame})
            series = same if len(same) == 1 else []
        for uid in series:
            members += ct_series[(pid, uid)]
        members = sorted(dict.fromkeys(members), key=lambda h: h.rel)
        notes = list(g["notes"])
        problems = []
        for h in members:
            k = (h.patient_id, h.sop_instance_uid)
            if k in dup_notes:
                notes.append(dup_notes[k])
            if k in conflicts:
                problems.append(conflicts[k])
        used.update(h.path for h in members)
        anchors = ([f"plan:{p.sop_instance_uid}" for p in g["plans"]]
                   or [f"dose:{d.sop_instance_uid}" for d in g["doses"]])
        plan_labels = tuple(p.label or "RTPLAN" for p in g["plans"])
        if plan_labels:
            label = "+".join(plan_labels)
        else:
            label = "+".join(os.path.splitext(os.path.basename(d.rel))[0] for d in g["doses"])
        folders = sorted({h.folder or "." for h in (g["plans"] or g["doses"])})
        if len(g["plans"]) > 1:
            notes.append(f"{len(g['plans'])} plans on one RTSTRUCT checked together as one "
                         "course (doses summed as BED); use --per-plan to check them apart")
            if len(folders) > 1:
                notes.append("the plans of this course come from several folders: "
                             + ", ".join(folders))
        key = _hash(pid, *sorted(anchors))
        units.append(PlanUnit(
            key=key, name=f"{_safe(pid, 40)}_{_safe(label, 48)}_{key}", patient_id=pid,
            label=label, plan_labels=plan_labels,
            plan_uids=tuple(p.sop_instance_uid for p in g["plans"]),
            dose_uids=tuple(d.sop_instance_uid for d in g["doses"]),
            rtstruct_uids=tuple(s.sop_instance_uid for s in g["structs"]),
            frame_uid=(g["structs"][0].frame_uid if g["structs"]
                       else (g["plans"] or g["doses"])[0].frame_uid),
            ct_series_uids=tuple(series),
            files=tuple(h.path for h in members), kinds=tuple(h.kind for h in members),
            uids=tuple(h.sop_instance_uid for h in members), folders=tuple(folders),
            notes=tuple(dict.fromkeys(notes)), problem="; ".join(dict.fromkeys(problems))))

    # unreadable DICOM files join the plans of their folder, or stand alone as ERROR
    unassigned: list[dict] = []
    by_folder: dict[str, list[tuple[str, str, str]]] = {}
    for item in unreadable:
        by_folder.setdefault(os.path.dirname(item[1]), []).append(item)
    unit_folders = [{os.path.dirname(_relpath(f, root_abs)) for f in u.files}
                    for u in units] if by_folder else []
    for folder, items in sorted(by_folder.items()):
        idx = [i for i, folders in enumerate(unit_folders) if folder in folders]
        notes = [f"unreadable DICOM file in the plan's folder: {rel} ({why})"
                 for _, rel, why in items]
        if idx:
            for i in idx:
                u = units[i]
                units[i] = replace(u, files=u.files + tuple(a for a, _, _ in items),
                                   kinds=u.kinds + ("unreadable",) * len(items),
                                   uids=u.uids + ("",) * len(items),
                                   notes=u.notes + tuple(notes))
        else:
            key = _hash("unreadable", folder)
            label = "unreadable"
            units.append(PlanUnit(
                key=key, name=f"unreadable_{_safe(folder, 48)}_{key}", patient_id="",
                label=label, files=tuple(a for a, _, _ in items),
                kinds=("unreadable",) * len(items), uids=("",) * len(items),
                folders=(folder or ".",), notes=tuple(notes),
                problem=("DICOM file(s) whose header cannot be read, in a folder with no "
                         "readable plan: they may hide a plan — " + "; ".join(
                             f"{rel}: {why}" for _, rel, why in items))))
    for h in sorted(obj.values(), key=lambda h: h.rel):
        if h.path not in used and h.kind in ("RTSTRUCT", "RTPLAN", "RTDOSE"):
            unassigned.append({"path": h.rel, "kind": h.kind,
                               "reason": "no RTPLAN or RTDOSE of its patient uses it"})
    seen_series = set()
    for (pid, uid), hs in sorted(ct_series.items(), key=lambda kv: kv[1][0].rel):
        if any(h.path not in used for h in hs) and (pid, uid) not in seen_series:
            seen_series.add((pid, uid))
            unassigned.append({"path": hs[0].rel, "kind": "CT",
                               "reason": f"CT series of {len(hs)} slices that no plan uses"})
    units.sort(key=lambda u: (u.patient_id, u.label, u.key))
    return Discovery(root_abs, units, unassigned, n_files, len(headers))


# --- settings fingerprint ----------------------------------------------------------------

def settings_fingerprint(settings: CheckSettings) -> str:
    """SHA-256 over everything a plan's result depends on besides its files: rtqa
    version, the protocol and extra constraint files (content), the constraint library
    (content of every file), and the name maps. Raises ``RtqaError`` for a protocol or
    constraint file that cannot be loaded (so a typo stops the batch before it starts)."""
    from rtqa.constraints import load_constraint_file, load_protocol
    from rtqa.paths import constraints_dir

    protocol = load_protocol(settings.protocol)
    lib = constraints_dir().resolve()
    paths = [protocol.path] + [s.path for s in protocol.sets]
    paths += [load_constraint_file(c).path for c in settings.constraints]
    paths += sorted(p for p in lib.rglob("*") if p.is_file() and not p.name.startswith("."))
    files = set()
    for p in paths:
        if p is not None and Path(p).is_file():
            # by content and name within the library (the same on every machine)
            rp = Path(p).resolve()
            name = rp.relative_to(lib).as_posix() if rp.is_relative_to(lib) else rp.name
            files.add((name, sha256_file(rp)))
    doc = {"rtqa_version": __version__, "protocol": settings.protocol,
           "constraints": list(settings.constraints), "overrides": list(settings.overrides),
           "files": sorted(files)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# --- the worker --------------------------------------------------------------------------

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


def _fault(task: PlanTask) -> None:
    if not task.fault or ":" not in task.fault:
        return
    mode, _, text = task.fault.partition(":")
    if text and (text in task.name or any(text in f for f in task.files)):
        if mode == "exit":
            os._exit(_FAULT_EXIT_CODE)
        if mode == "raise":
            raise RuntimeError(f"test fault injected by {TEST_FAULT_ENV}")


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
    from rtqa.report_json import dumps
    text = dumps(report)
    try:
        from rtqa.report_html import render_html
        with _RENDER_LOCK:
            return text, render_html(report), ""
    except Exception as exc:  # noqa: BLE001 - the JSON report is still written
        return text, None, f"HTML report not written ({type(exc).__name__}: {exc})"


def check_plan(task: PlanTask) -> dict:
    """Check one plan as ``rtqa check`` would; never raises for a plan's own problems.

    Returns ``{"key", "json": text, "html": text | None, "note", "stats"}``; runs in a
    worker process (pool or Dask)."""
    global _TASKS_IN_PROCESS
    _TASKS_IN_PROCESS += 1
    t0, c0 = time.perf_counter(), time.process_time()
    from rtqa.pipeline import CheckOptions, run_check
    if task.problem:
        report = _error_report(task, task.problem, with_inputs=True)
    else:
        try:
            _fault(task)
            report = run_check(list(task.files), CheckOptions(
                task.settings.protocol, tuple(task.settings.constraints), None,
                dict(task.settings.overrides)))
        except RtqaError as exc:
            report = _error_report(task, str(exc), with_inputs=True)
        except MemoryError:
            report = _error_report(task, "out of memory while checking this plan",
                                   with_inputs=False)
        except Exception as exc:  # noqa: BLE001 - recorded, the batch goes on
            report = _error_report(task, f"internal error ({type(exc).__name__}: {exc})"
                                   f"{_where(exc)}; please report it", with_inputs=False)
    try:
        json_text, html_text, note = render_reports(report)
    except Exception as exc:  # noqa: BLE001 - an inconsistent report is an ERROR
        report = _error_report(task, f"internal error: the report cannot be written "
                               f"({type(exc).__name__}: {exc})", with_inputs=False)
        json_text, html_text, note = render_reports(report)
    return {"key": task.key, "json": json_text, "html": html_text, "note": note,
            "stats": {"pid": os.getpid(), "seconds": round(time.perf_counter() - t0, 3),
                      "cpu_s": round(time.process_time() - c0, 3),
                      "peak_rss_kb": _peak_rss_kb(), "rss_kb": _proc_status_kb("VmRSS"),
                      "tasks_in_process": _TASKS_IN_PROCESS}}


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


# --- local execution -------------------------------------------------------------------

# Worker processes are forked from a server that has imported these modules and filled
# the caches every plan uses (report template, ROI-name aliases), so a fresh worker per
# plan costs a fork, not an interpreter start and imports.
_PRELOAD = ["rtqa.pipeline", "rtqa.report_json", "rtqa.report_html", "rtqa.batch"]
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


# --- rows, summary, index ----------------------------------------------------------------

def _relpath(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root).replace(os.sep, "/")
    except ValueError:
        return path


def make_row(unit: PlanUnit, doc: dict, *, root: str, fingerprint: str, html: bool,
             resumed: bool, note: str = "") -> dict:
    """The summary row of one plan, from its JSON report (the same for a fresh, a resumed
    and a Dask result)."""
    checks = doc.get("checks") or []
    mandatory = [c for c in checks if c.get("priority") == "mandatory"]
    notes = list(unit.notes) + ([note] if note else [])
    return {
        "key": unit.key,
        "name": unit.name,
        "patient_id": unit.patient_id,
        "label": unit.label,
        "plans": list(unit.plan_labels),
        "plan_uids": list(unit.plan_uids),
        "rtstruct_uids": list(unit.rtstruct_uids),
        "frame_of_reference_uid": unit.frame_uid,
        "folders": list(unit.folders),
        "status": doc.get("status", "ERROR"),
        "failing_checks": [c["id"] for c in mandatory if c.get("status") == "FAIL"],
        "not_evaluated": [c["id"] for c in mandatory if c.get("status") == "NOT EVALUATED"],
        "errors": list(doc.get("errors") or []),
        "warnings": len(doc.get("warnings") or []),
        "notes": notes,
        "json": f"{PLANS_DIR}/{unit.name}.json",
        "html": f"{PLANS_DIR}/{unit.name}.html" if html else None,
        "inputs": _inputs_digest(doc.get("inputs") or [], root),
        "settings": fingerprint,
        "report_created": doc.get("created", ""),
        "resumed": resumed,
    }


def _inputs_digest(inputs: list[dict], root: str) -> dict:
    """The plan's input files in one line: how many, and a SHA-256 over the sorted
    "relative path NUL sha256" lines (the per-file list is in the plan's JSON report)."""
    lines = sorted(f"{_relpath(i['path'], root)}\x00{i['sha256']}" for i in inputs)
    return {"files": len(lines),
            "sha256": hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
            if lines else None}


def _reason(row: dict) -> str:
    if row["errors"]:
        return "; ".join(row["errors"])
    if row["not_evaluated"]:
        return "not evaluated: " + ", ".join(row["not_evaluated"])
    if row["failing_checks"]:
        return "failed: " + ", ".join(row["failing_checks"])
    return ""


def counts_of(rows: list[dict]) -> dict:
    out = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "ERROR")}
    out["total"] = len(rows)
    out["resumed"] = sum(bool(r.get("resumed")) for r in rows)
    return out


CSV_COLUMNS = ("patient_id", "label", "status", "failing_checks", "not_evaluated", "reason",
               "warnings", "folders", "html", "json", "key")


def _csv_cell(value) -> str:
    if isinstance(value, (list, tuple)):
        value = "; ".join(map(str, value))
    text = "" if value is None else str(value)
    # spreadsheet formula injection (OWASP): a cell must not start a formula
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


def summary_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([_csv_cell(_reason(r) if c == "reason" else r.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def index_html(summary: dict) -> str:
    import jinja2

    from rtqa.report_text import clean
    env = jinja2.Environment(loader=jinja2.PackageLoader("rtqa", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["clean"] = clean
    sections = []
    for status, title in (("ERROR", "Could not be evaluated (ERROR)"),
                          ("FAIL", "Failed (FAIL)"), ("PASS", "Passed (PASS)")):
        rows = [dict(r, reason=_reason(r)) for r in summary["plans"] if r["status"] == status]
        if rows:
            sections.append({"status": status, "title": title, "rows": rows})
    return env.get_template("batch_index.html.j2").render(s=summary, sections=sections)


def _load_previous(out: Path) -> dict:
    try:
        doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != SUMMARY_SCHEMA:
        return {}
    return {r["key"]: r for r in doc.get("plans", []) if isinstance(r, dict) and "key" in r}


def _up_to_date(unit: PlanUnit, prev: dict | None, out: Path, fingerprint: str,
                root: str) -> dict | None:
    """The JSON report of ``unit`` when it is up to date with the plan's files, else None."""
    if not prev or prev.get("settings") != fingerprint or unit.problem:
        return None
    try:
        doc = json.loads((out / PLANS_DIR / f"{unit.name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("created") != prev.get("report_created"):
        return None
    if prev.get("html") and not (out / PLANS_DIR / f"{unit.name}.html").is_file():
        return None
    inputs = doc.get("inputs") or []
    if not inputs:
        return None
    if (prev.get("inputs") or {}).get("sha256") != _inputs_digest(inputs, root)["sha256"]:
        return None
    recorded = {(i.get("path"), i.get("sha256")) for i in inputs}
    if {p for p, _ in recorded} != set(unit.files):
        return None
    try:
        current = {(p, sha256_file(p)) for p in unit.files}
    except OSError:
        return None
    return doc if current == recorded else None


# --- the batch ---------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_batch(root: str | os.PathLike, options: BatchOptions | None = None, *,
              progress: ProgressFn | None = None) -> BatchResult:
    """Discover, check and report every plan under ``root``; see the module docstring.

    ``progress(event, info)`` is called with ``"discovering"`` ({"files"}),
    ``"discovered"`` ({"plans", "files", "to_check", "resumed"}) and ``"plan"``
    ({"done", "total", "row", "counts"}). Raises ``RtqaError`` when ROOT is not a folder,
    the protocol cannot be loaded, the Dask scheduler cannot be used, or a report cannot
    be written."""
    options = options or BatchOptions()
    say = progress or (lambda _e, _i: None)
    started, t0 = _now(), time.perf_counter()
    settings = options.settings.resolved()
    fingerprint = settings_fingerprint(settings)
    out = Path(options.out).absolute()
    client = None
    if options.scheduler:   # connect first: a wrong address fails before discovery
        from rtqa.batch_dask import connect
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
    from rtqa.atomic import write_atomic

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
        from rtqa.batch_dask import run_dask
        results = run_dask(tasks, client)
        executor = f"dask {options.scheduler}"
    else:
        results = run_local(tasks, workers, options.max_tasks_per_child)
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
        summary = {
            "schema": SUMMARY_SCHEMA,
            "rtqa_version": __version__,
            "created": _now(),
            "root": disc.root,
            "complete": complete,
            "settings": {"protocol": settings.protocol,
                         "constraints": list(settings.constraints),
                         "maps": {k: v for k, v in settings.overrides},
                         "per_plan": options.per_plan, "fingerprint": fingerprint},
            "run": {"started": started, "finished": _now(), "seconds": round(seconds, 1),
                    "executor": executor,
                    "checked": sum(not r["resumed"] for r in ordered)},
            "counts": counts_of(ordered),
            "exit_code": code,
            "files": {"looked_at": disc.n_files, "dicom": disc.n_dicom},
            "plans": ordered,
            "not_checked": [u.key for u in disc.units if u.key not in rows],
            "unassigned": disc.unassigned,
        }
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
