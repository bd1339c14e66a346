"""The engine shared by ``rtqa serve`` and ``rtqa watch``: receive, group, check, record.

* :meth:`Engine.receive` takes the encoded bytes of one instance (from the DICOM
  server or a watched file): it verifies the element stream is whole
  (:func:`rtqa.reading.completeness.check_complete`) and the header readable (and, from
  the network, that the SOP Class and Instance UIDs match the request), writes it to the
  spool durably, records the receipt in the database, and only then returns success.
  A data set that cannot be stored raises :class:`Refused` with a DIMSE status and the
  reason (nothing is half-written: see :mod:`rtqa.serve.spool`).
* A scheduler thread looks at the received plan sets (:mod:`rtqa.serve.grouping`)
  every ``tick`` seconds (and after every receipt and finished check) and hands every
  set that is due to one of ``workers`` checking threads; each runs the check in a
  worker process with the time limit (:mod:`rtqa.serve.worker`).
* A finished check writes ``OUT/plans/<patient>_<label>_<key>_c<N>.json`` and ``.html``
  (atomically) and then its database row (:mod:`rtqa.serve.db`); then, when WeasyPrint
  is installed (``EngineOptions.pdf``), its ``.pdf`` is printed from the HTML in a worker
  process and the row updated to link it (the verdict does not wait for the printing).
* With ``keep_days`` set, the spool is pruned after every recorded check and every
  ``prune_every`` seconds (:meth:`Engine.prune`).
* :meth:`Engine.start` first recovers: removes partial files from the spool's ``tmp/``,
  indexes spool files the database does not know (a crash after the spool write), and
  the scheduler then checks every set left unchecked (a crash before or while checking).

Re-sent plans: a set that was checked and then receives any of its instances again
(identical or changed) is checked again once due; the new report says which check it
supersedes, and the database row links to it.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rtqa.batch.model import DEFAULT_TIMEOUT_S, CheckSettings, _hash, _safe
from rtqa.reading.completeness import check_complete
from rtqa.serve.db import Database, is_url
from rtqa.serve.grouping import PlanSet, describe, due, plan_sets
from rtqa.serve.spool import Spool

__all__ = ["Engine", "EngineOptions", "Refused", "STATUS"]

log = logging.getLogger("rtqa.serve")

#: DIMSE C-STORE statuses used (PS3.4 B.2.3).
STATUS = {"success": 0x0000, "out_of_resources": 0xA700, "sop_class_mismatch": 0xA900,
          "cannot_understand": 0xC000}


class Refused(Exception):
    """An instance that is not stored: ``status`` (DIMSE) and the reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class EngineOptions:
    out: str
    spool: str | None = None            # default OUT/spool
    db: str | None = None               # default OUT/rtqa-serve.sqlite
    settings: CheckSettings = field(default_factory=CheckSettings)
    settle: float = 10.0                # seconds without new instances for the patient
    deadline: float = 600.0             # seconds: incomplete sets are checked anyway
    timeout: float | None = DEFAULT_TIMEOUT_S
    workers: int = 1
    tick: float = 0.5
    #: Spool retention in days (``--keep-days``; None: keep everything). See
    #: :meth:`Engine.prune`.
    keep_days: float | None = None
    #: Write a PDF report too when WeasyPrint is available (``--no-pdf``: never).
    pdf: bool = True
    #: Seconds between two prunes (a prune also follows every recorded check).
    prune_every: float = 3600.0


def _iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc) \
        .isoformat(timespec="seconds")


class Engine:
    """``spool``: the :class:`~rtqa.serve.spool.Spool` to store into (default: one on
    ``options.spool``); tests give one that fails as a full disk does."""

    def __init__(self, options: EngineOptions, *, spool: Spool | None = None):
        self.options = options
        self.out = Path(options.out).absolute()
        self.plans_dir = self.out / "plans"
        # a database server that cannot be used stops the start before anything is made
        db = Database(options.db) if options.db and is_url(options.db) else None
        self.plans_dir.mkdir(parents=True, exist_ok=True)
        self.spool = spool or Spool(options.spool or self.out / "spool")
        self.db = db or Database(options.db or self.out / "rtqa-serve.sqlite")
        self.settings = options.settings.resolved()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pdf_pool: ThreadPoolExecutor | None = None
        self._cache: tuple | None = None
        self._receive_lock = threading.Lock()   # receipts against pruning
        self._next_prune = 0.0                  # time.monotonic() of the next prune
        self.pdf_problem: str | None = None     # why PDF reports are not written

    # --- receiving -----------------------------------------------------------------
    def receive(self, data: bytes, *, source: str, sop_class: str | None = None,
                sop_uid: str | None = None, received: float | None = None):
        """Store one instance (see the module docstring); returns its
        :class:`~rtqa.serve.grouping.Instance`. Raises :class:`Refused`."""
        problem = check_complete(data)
        if problem:
            raise Refused(STATUS["cannot_understand"], f"corrupt data set ({problem})")
        try:
            header = describe(data)
        except ValueError as exc:
            raise Refused(STATUS["cannot_understand"], f"corrupt data set ({exc})") from None
        if sop_class is not None and header["sop_class"] != sop_class:
            raise Refused(STATUS["sop_class_mismatch"],
                          f"the data set's SOPClassUID {header['sop_class']} is not the "
                          f"request's {sop_class}")
        if sop_uid is not None and header["sop_uid"] != sop_uid:
            raise Refused(STATUS["sop_class_mismatch"],
                          f"the data set's SOPInstanceUID {header['sop_uid']} is not the "
                          f"request's {sop_uid}")
        with self._receive_lock:    # a prune never removes a file being acknowledged
            try:
                path, digest = self.spool.write(data)
            except OSError as exc:
                raise Refused(STATUS["out_of_resources"],
                              f"cannot be stored in the spool ({exc.strerror or exc})") \
                    from None
            try:
                inst = self.db.add_instance(
                    received=time.time() if received is None else received, source=source,
                    path=str(path), sha256=digest, **header)
            except Exception as exc:  # noqa: BLE001 - sqlite3.Error, disk full ...
                raise Refused(STATUS["out_of_resources"],
                              f"cannot be recorded in the database ({exc})") from None
        # the scheduler is not woken: a set is due only after the settle time, and a
        # look at every set after every instance would slow receiving down
        return inst

    # --- start-up and shutdown -----------------------------------------------------
    def recover(self) -> int:
        """Remove partial spool files and index spool files the database lacks;
        returns how many were indexed."""
        removed = self.spool.clean_tmp()
        if removed:
            log.warning("removed %d partial file(s) from %s", removed, self.spool.tmp)
        known = self.db.digests()
        gone = self.db.pruned_digests()
        n = 0
        for path, digest in self.spool.files():
            if digest in gone:          # pruned, then a crash before the file went
                path.unlink(missing_ok=True)
                continue
            if digest in known:
                continue
            data = path.read_bytes()
            try:
                if check_complete(data):
                    raise ValueError(check_complete(data))
                header = describe(data)
            except ValueError as exc:
                log.error("spool file %s cannot be indexed: %s", path, exc)
                continue
            self.db.add_instance(received=path.stat().st_mtime,
                                 source="spool (indexed at start-up)", path=str(path),
                                 sha256=digest, **header)
            n += 1
        if n:
            log.warning("indexed %d spool file(s) the database did not know", n)
        return n

    def start(self) -> None:
        self.recover()
        if self.options.pdf:
            from rtqa.report.pdf import pdf_available
            self.pdf_problem = pdf_available()
            if self.pdf_problem:
                log.warning("PDF reports are not written (JSON and HTML are): %s",
                            self.pdf_problem)
        else:
            self.pdf_problem = "--no-pdf"
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.options.workers),
                                        thread_name_prefix="rtqa-check")
        self._pdf_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtqa-pdf")
        self._thread = threading.Thread(target=self._loop, name="rtqa-scheduler",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._pdf_pool is not None:     # a PDF being printed is abandoned (logged)
            self._pdf_pool.shutdown(wait=True, cancel_futures=True)
        self.db.close()

    # --- scheduling ----------------------------------------------------------------
    def _sets(self) -> tuple[list[PlanSet], dict[str, float]]:
        """The plan sets and each patient's latest receipt time (recomputed only when
        an instance has arrived since the last call)."""
        n = self.db.count_instances()
        if self._cache is None or self._cache[0] != n:
            instances = self.db.instances()
            last_by_patient: dict[str, float] = {}
            for i in instances:
                last_by_patient[i.patient_id] = max(last_by_patient.get(i.patient_id, 0.0),
                                                    i.received)
            self._cache = (len(instances), plan_sets(instances), last_by_patient)
        return self._cache[1], self._cache[2]

    def _due_sets(self, now: float) -> list[tuple[PlanSet, str, dict | None]]:
        sets, last_by_patient = self._sets()
        last = self.db.last_checks()
        out = []
        for s in sets:
            prev = last.get(s.key)
            why = due(s, prev["max_seq"] if prev else 0, last_by_patient[s.patient_id], now,
                      self.options.settle, self.options.deadline)
            if why:
                out.append((s, why, prev))
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.options.tick)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if self.options.keep_days is not None and \
                        time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + self.options.prune_every
                    self.prune()
                for s, why, prev in self._due_sets(time.time()):
                    with self._lock:
                        if s.key in self._inflight:
                            continue
                        self._inflight.add(s.key)
                    self._pool.submit(self._check, s, why, prev)
            except Exception:  # noqa: BLE001 - logged; the server keeps receiving
                log.exception("scheduler error")

    def _check(self, s: PlanSet, why: str, prev: dict | None) -> None:
        try:
            self._check_inner(s, why, prev)
        except Exception:  # noqa: BLE001 - the plan stays pending; logged
            log.exception("checking plan %s failed", s.key)
            self._stop.wait(5)
        finally:
            with self._lock:
                self._inflight.discard(s.key)
            self._next_prune = 0.0      # prune what this check may have released
            self._wake.set()

    # --- spool retention -----------------------------------------------------------
    def prune(self, now: float | None = None) -> int:
        """Remove spool files no longer needed (``--keep-days``); returns how many.

        A plan set's files go once it is checked with nothing pending (no instance
        received since its last check, no check running) and its latest instance was
        received more than ``keep_days`` ago (0: as soon as its reports and database
        row are written). Until then a re-export that re-sends only some instances
        still finds the others, and its check supersedes the earlier one. Instances that
        no plan set uses (an older copy of a re-sent instance, images or structures whose
        plan has not arrived) go ``keep_days`` after their receipt, but never before the
        ``deadline``. A file shared with a set that is kept is kept. Reports and
        database rows are never removed: receipts of removed files are marked
        ``pruned`` (and then no longer grouped), so a plan that comes back later must
        be sent whole, else its check is ERROR at the deadline, naming what is missing.
        """
        keep = self.options.keep_days
        if keep is None:
            return 0
        now = time.time() if now is None else now
        horizon = now - keep * 86400.0
        loose = now - max(keep * 86400.0, self.options.deadline)
        with self._receive_lock:
            sets, _ = self._sets()
            last = self.db.last_checks()
            with self._lock:
                inflight = set(self._inflight)
            kept: set[str] = set()
            free: set[str] = set()
            grouped: set[int] = set()
            for s in sets:
                grouped.update(m.seq for m in s.members)
                prev = last.get(s.key)
                covered = prev["max_seq"] if prev else 0
                pending = s.key in inflight or any(m.seq > covered for m in s.members)
                if pending or max(m.received for m in s.members) > horizon:
                    kept.update(m.sha256 for m in s.members)
                else:
                    free.update(m.sha256 for m in s.members)
            for i in self.db.instances():
                if i.seq not in grouped:
                    (free if i.received <= loose else kept).add(i.sha256)
            gone = free - kept
            if not gone:
                return 0
            self.db.mark_pruned(gone, now)      # first the rows, then the files
            self._cache = None
            n = 0
            for digest in gone:
                try:
                    self.spool.path_for(digest).unlink()
                    n += 1
                except FileNotFoundError:
                    pass
        log.info("pruned %d spool file(s) (--keep-days %g)", n, keep)
        return n

    def _check_inner(self, s: PlanSet, why: str, prev: dict | None) -> None:
        from rtqa.report.atomic import write_atomic
        from rtqa.serve.worker import plan_task, run_check_process
        started = _iso()
        n = self.db.count_checks(s.key) + 1
        name = (f"{_safe(s.patient_id, 32)}_{_safe(s.label, 32)}_{_hash(s.patient_id, s.key)}"
                f"_c{n}")
        task = plan_task(s.key, name, s.patient_id, s.members, self.settings)
        errors = []
        if s.missing:
            errors.append(f"incomplete export: still missing {self.options.deadline:g} s "
                          "after the plan arrived (--deadline): " + "; ".join(s.missing))
        warnings = []
        if prev is not None:
            why_again = ("instances missing then have arrived" if prev["missing"]
                         else "instances of the plan were received again")
            warnings.append(f"this check supersedes check #{prev['id']} of {prev['finished']}"
                            f" ({prev['status']}, report {Path(prev['report_json']).name}): "
                            + why_again)
        warnings += s.changed
        sources = sorted({m.source for m in s.members})
        warnings.append(f"received by rtqa from {', '.join(sources[:5])}"
                        + (f" and {len(sources) - 5} more" if len(sources) > 5 else ""))
        log.info("checking %s (%s, %d instances%s)", name, why, len(s.members),
                 f", supersedes #{prev['id']}" if prev else "")
        result = run_check_process(task, errors, warnings, self.options.timeout, self._stop)
        if result is None:
            return      # shutting down: the plan stays pending
        import json
        doc = json.loads(result["json"])
        json_path = self.plans_dir / f"{name}.json"
        html_path = self.plans_dir / f"{name}.html"
        refuse = [m.path for m in s.members]
        write_atomic(json_path, result["json"], refuse=refuse)
        if result.get("html") is not None:
            write_atomic(html_path, result["html"], refuse=refuse)
        failing = [{k: c.get(k) for k in ("id", "structure", "metric", "value", "unit",
                                          "limit", "status", "source")}
                   for c in doc.get("checks", [])
                   if c.get("status") in ("FAIL", "NOT EVALUATED")
                   and c.get("priority") != "optimal"]   # the rows that decide the verdict
        check_id = self.db.add_check({
            "plan_key": s.key, "plan_label": s.label, "patient_id": s.patient_id,
            "study_uid": s.study_uid, "frame_uid": s.frame_uid, "started": started,
            "finished": _iso(), "finished_at": time.time(), "status": doc["status"],
            "reason": why, "failing": failing, "errors": list(doc.get("errors", [])),
            "missing": list(s.missing), "report_json": str(json_path),
            "report_html": str(html_path) if result.get("html") is not None else "",
            "inputs": doc.get("inputs") or [{"path": m.path, "kind": m.kind,
                                            "sop_instance_uid": m.sop_uid,
                                            "sha256": m.sha256} for m in s.members],
            "max_seq": s.max_seq, "last_received": max(m.received for m in s.members),
            "supersedes": prev["id"] if prev else None})
        log.info("check #%d %s: %s (%s)", check_id, name, doc["status"], json_path)
        if result.get("html") is not None and not self.pdf_problem \
                and self._pdf_pool is not None:
            # printed apart: the next plan's check does not wait for this PDF
            self._pdf_pool.submit(self._write_pdf, check_id, name, result["html"], refuse)

    def _write_pdf(self, check_id: int, name: str, html_text: str, refuse) -> None:
        try:
            self._write_pdf_inner(check_id, name, html_text, refuse)
        except Exception:  # noqa: BLE001 - the check stands without its PDF
            log.exception("check #%d: PDF report not written", check_id)

    def _write_pdf_inner(self, check_id: int, name: str, html_text: str, refuse) -> None:
        """The PDF of a recorded check, printed from its HTML report in a worker process
        (as ``rtqa check --pdf``), after the JSON/HTML reports and the row are written
        (printing takes seconds; the verdict does not wait for it); the row then links
        it. A PDF that cannot be made (or is interrupted by a stop: it is not printed
        again) is logged, and the check keeps its JSON and HTML reports."""
        from rtqa.report.atomic import write_atomic
        from rtqa.serve.worker import run_pdf_process
        pdf, problem = run_pdf_process(html_text, self.options.timeout, self._stop)
        if pdf is None:
            log.error("check #%d: PDF report not written (%s)", check_id,
                      problem or "rtqa stopped while printing it")
            return
        pdf_path = self.plans_dir / f"{name}.pdf"
        try:
            write_atomic(pdf_path, pdf, refuse=refuse)
            self.db.set_report_pdf(check_id, str(pdf_path))
        except Exception as exc:  # noqa: BLE001 - the check stands without its PDF
            log.error("check #%d: PDF report not written (%s)", check_id, exc)
