"""The durable spool: every received instance, written whole before success is returned.

Layout under the spool folder::

    objects/ab/<sha256>.dcm   one file per distinct content (content-addressed, immutable)
    tmp/                      files being written (removed at start-up: never indexed)

:meth:`Spool.write` writes the bytes to ``tmp/`` (exclusive create), flushes and
``fsync``s them, renames the file into ``objects/`` and ``fsync``s the folder, and only
then returns; any failure (a full disk, a read-only folder) removes the temporary file
and raises ``OSError``: the caller answers with a failure status, and the spool holds
the complete file or nothing. An instance received again with the same bytes maps to the
same file (nothing is rewritten); a changed copy is a new file. Files in ``objects/`` are
never modified, so a check reads exactly the bytes that were acknowledged.

Nothing here reads the environment: tests inject faults (a full disk) with a subclass
that overrides :meth:`Spool._write_all`, given to the engine
(``Engine(options, spool=...)``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Spool"]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A folder of received instances (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        for d in (self.root, self.objects, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._counter = 0

    def clean_tmp(self) -> int:
        """Remove what an interrupted write left in ``tmp/`` (call at start-up, before
        receiving); returns how many files were removed."""
        n = 0
        for p in self.tmp.iterdir():
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
        return n

    def path_for(self, digest: str) -> Path:
        return self.objects / digest[:2] / f"{digest}.dcm"

    def write(self, data: bytes) -> tuple[Path, str]:
        """Store ``data`` durably; returns (path, sha256). Raises OSError (nothing is
        left behind) when it cannot be stored."""
        digest = hashlib.sha256(data).hexdigest()
        dest = self.path_for(digest)
        try:
            if dest.stat().st_size == len(data):
                return dest, digest          # the same bytes are already stored durably
        except FileNotFoundError:
            pass
        with self._lock:
            self._counter += 1
            n = self._counter
        tmp = self.tmp / f"{digest}.{os.getpid()}.{threading.get_ident()}.{n}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                self._write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            new_dir = not dest.parent.exists()
            dest.parent.mkdir(exist_ok=True)
            if new_dir:
                _fsync_dir(self.objects)
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        except BaseException:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            raise
        return dest, digest

    def _write_all(self, fd: int, data: bytes) -> None:
        """Write every byte of ``data`` to ``fd`` (raises OSError, e.g. ENOSPC)."""
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def files(self) -> Iterator[tuple[Path, str]]:
        """(path, sha256 from the name) of every stored instance."""
        for sub in sorted(self.objects.iterdir()):
            if sub.is_dir():
                for p in sorted(sub.glob("*.dcm")):
                    yield p, p.stem
