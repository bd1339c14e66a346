"""The lock of an output folder: one ``rtqa batch`` at a time writes to one ``--out``.

``OUT/.rtqa-batch.lock`` is held with ``fcntl.flock`` (exclusive, non-blocking) for the
whole run; the operating system releases it when the process ends, however it ends
(kill -9 included), so a stale lock file never blocks the next run. The file holds the
holder's process id, host and start time, shown to a second batch, which stops at once
with one line and exit code 2 (before writing anything). Where ``fcntl`` does not exist
(Windows) the lock is the file itself, created with ``O_EXCL`` and removed at the end;
after a crash there, the message says which file to remove.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from rtqa.batch.model import now
from rtqa.errors import RtqaError

__all__ = ["LOCK_NAME", "OutputLock"]

LOCK_NAME = ".rtqa-batch.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class OutputLock:
    """``with OutputLock(out):`` holds ``out``'s lock; raises ``RtqaError`` when another
    batch holds it."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.fd: int | None = None

    def _holder(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return text or "another process"

    def acquire(self) -> OutputLock:
        me = f"pid {os.getpid()} on {socket.gethostname()}, started {now()}\n"
        if fcntl is None:  # pragma: no cover - Windows
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise RtqaError(f"is in use by another rtqa batch ({self._holder()}); if "
                                f"none is running, remove {self.path}", self.out) from None
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RtqaError(f"is in use by another rtqa batch ({self._holder()}): wait "
                                "for it to end or choose another --out", self.out) from None
            os.ftruncate(fd, 0)
        os.write(fd, me.encode("utf-8"))
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if fcntl is None:  # pragma: no cover - Windows
            os.close(fd)
            try:
                self.path.unlink()
            except OSError:
                pass
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
