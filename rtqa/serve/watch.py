"""``rtqa watch DIR``: the same pipeline as ``rtqa serve`` for a folder a planning system
exports into.

Every ``poll`` seconds the folder is walked (symbolic links never followed, at most 12
levels; the output folder is skipped). A file is taken when it is *complete*:

1. its size, modification time and inode have not changed for ``stable`` seconds;
2. it is read once into memory, and its size and modification time are the same after
   the read as before (else it is still being written: wait);
3. those bytes pass the completeness walk of :mod:`rtqa.reading.completeness` (the
   element stream ends exactly where its lengths say) and their header is readable.

Only then are *those bytes* handed to the engine, which copies them into the spool: the
check reads the spool copy, never the watched file again, so a file rewritten later
cannot change a check half-way. A file that is stable but fails the walk (cut short) is
not taken; it is logged once and taken when it changes and becomes whole. A file written
again (new size or time) is taken again: its plan is checked again and the new report
supersedes the earlier one. Files that are not DICOM are ignored.

What is DICOM: a PS3.10 file (``DICM`` after the preamble) or a file named ``.dcm`` /
``.dicom``, and, whatever its name, a data set written without the Part 10 header
(no preamble, 'DICM' or File Meta, as Elekta Monaco writes) whose first element shows
its encoding (:func:`rtqa.reading.common.bare_encoding`, the test ``rtqa check``
uses). Such a file is read as ``rtqa check`` reads it; one that only resembles a data
set (not whole, or no SOP UIDs) is ignored without an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from rtqa.reading.common import bare_encoding
from rtqa.reading.completeness import check_complete
from rtqa.serve.engine import Engine, Refused

__all__ = ["Watcher"]

log = logging.getLogger("rtqa.serve")

_MAX_DEPTH = 12


class Watcher:
    def __init__(self, engine: Engine, folder: str | os.PathLike, *, poll: float = 1.0,
                 stable: float = 2.0, exclude=()):
        self.engine = engine
        self.folder = Path(folder).absolute()
        self.poll = poll
        self.stable = stable
        self.exclude = {os.path.realpath(e) for e in exclude}
        self._seen: dict[str, tuple[tuple, float]] = {}    # path -> (signature, since)
        self._done: dict[str, tuple] = {}                   # path -> signature taken/skipped
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _walk(self):
        depth0 = str(self.folder).rstrip(os.sep).count(os.sep)
        for dirpath, dirnames, filenames in os.walk(self.folder, followlinks=False):
            if dirpath.count(os.sep) - depth0 >= _MAX_DEPTH:
                dirnames[:] = []
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                 and os.path.realpath(os.path.join(dirpath, d))
                                 not in self.exclude)
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield os.path.join(dirpath, name)

    def scan_once(self, now: float | None = None) -> int:
        """One pass over the folder; returns how many files were taken."""
        now = time.time() if now is None else now
        taken = 0
        present = set()
        for path in self._walk():
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not os.path.stat.S_ISREG(st.st_mode):
                continue
            present.add(path)
            sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            if self._done.get(path) == sig:
                continue
            prev = self._seen.get(path)
            if prev is None or prev[0] != sig:
                self._seen[path] = (sig, now)
                continue
            if now - prev[1] < self.stable:
                continue
            if self._take(path, sig):
                taken += 1
        for path in list(self._seen):
            if path not in present:
                self._seen.pop(path, None)
                self._done.pop(path, None)
        return taken

    def _take(self, path: str, sig: tuple) -> bool:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
                st = os.fstat(fh.fileno())
        except OSError as exc:
            log.warning("%s: cannot be read (%s); trying again", path, exc.strerror or exc)
            return False
        if (st.st_size, st.st_mtime_ns, st.st_ino) != sig or len(data) != sig[0]:
            self._seen.pop(path, None)        # changed while read: still being written
            return False
        claims = len(data) >= 132 and data[128:132] == b"DICM" or \
            path.lower().endswith((".dcm", ".dicom"))
        bare = not claims and bare_encoding(data[:132]) is not None
        if not claims and not bare:
            self._done[path] = sig            # not DICOM: ignored
            return False
        problem = check_complete(data)
        if problem:
            # a file that only resembles a data set without header is no DICOM to report
            (log.warning if claims else log.debug)(
                "%s: size stable but the file is not whole (%s); waiting for it to "
                "change", path, problem)
            self._done[path] = sig
            return False
        try:
            self.engine.receive(data, source=os.path.relpath(path, self.folder),
                                received=time.time())
        except Refused as exc:
            if bare and exc.status == 0xC000:  # resembled a bare data set, but is none
                log.debug("%s: not taken: %s", path, exc.reason)
                self._done[path] = sig
                return False
            log.error("%s: not taken: %s", path, exc.reason)
            if exc.status != 0xA700:          # a full disk is retried, corrupt is not
                self._done[path] = sig
            return False
        self._done[path] = sig
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rtqa-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except Exception:  # noqa: BLE001 - logged; the watch goes on
                log.exception("watching %s", self.folder)
            self._stop.wait(self.poll)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
