"""Atomic report writing: a report file is either complete or absent, never half written.

``write_atomic`` writes to a temporary file in the destination's folder, flushes it to
disk and renames it over the destination with ``os.replace`` (atomic on POSIX and on
Windows within one file system). An interrupted run (exception, Ctrl-C, full disk) leaves
the previous file, if any, untouched and removes its temporary file.

It never writes over an input: the destination is compared with every path in
``refuse`` after resolving symbolic links and ``..``, and, when both exist, by device and
inode (hard links). A match raises ``RtqaError`` naming the path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rtqa.errors import RtqaError

__all__ = ["write_atomic", "refused"]


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def refused(path: str | os.PathLike, refuse: Iterable[str | os.PathLike]) -> bool:
    """True when ``path`` is (or links to) one of the ``refuse`` files."""
    target = Path(path).resolve()
    return any(_same_file(target, Path(r).resolve()) for r in refuse)


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: str | bytes, *,
                 refuse: Iterable[str | os.PathLike] = ()) -> Path:
    """Write ``data`` (text is encoded as UTF-8) to ``path`` atomically; return the path
    written (symbolic links resolved).

    ``refuse``: paths that must never be overwritten (the input files of the run).
    Raises ``RtqaError`` naming the path when ``path`` is one of them, is a folder, or
    cannot be written; the destination is then unchanged and no temporary file remains.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_atomic needs str or bytes, got {type(data).__name__}")
    target = Path(path).expanduser().resolve()
    for item in refuse:
        if _same_file(target, Path(item).expanduser().resolve()):
            raise RtqaError("refusing to overwrite an input file with the report", path)
    if target.is_dir():
        raise RtqaError("is a folder, not a file name for the report", path)
    if target.exists():
        mode = target.stat().st_mode & 0o7777
    else:
        mode = 0o666 & ~_umask()

    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise RtqaError(f"cannot write the report ({exc.strerror or exc})", path) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise RtqaError(f"cannot write the report ({exc.strerror or exc})", path) from exc
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
