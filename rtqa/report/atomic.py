"""Atomic report writing: a report file is either complete or absent, never half written.

``write_atomic`` writes to a temporary file in the destination's folder, flushes it to
disk and renames it over the destination with ``os.replace`` (atomic on POSIX and on
Windows within one file system). An interrupted run (exception, Ctrl-C, full disk) leaves
the previous file, if any, untouched and removes its temporary file.

``write_all`` writes several files all or none: every file is first written in full to a
temporary file beside its destination (so a full disk or a refused destination is found
while nothing has been replaced), and only then are the temporary files renamed over the
destinations, which cannot run out of space. If a temporary file cannot be written, the
other temporary files are removed and no destination is touched.

``check_destination`` is the early test of an output path (before any computation): its
folder exists and a file can be created there, it is not a folder, not an input.

It never writes over an input: the destination is compared with every path in
``refuse`` after resolving symbolic links and ``..``, and, when both exist, by device and
inode (hard links). A match raises ``RtqaError`` naming the path.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rtqa.errors import RtqaError

__all__ = ["check_destination", "refused", "write_all", "write_atomic"]


def refused(path: str | os.PathLike, refuse: Iterable[str | os.PathLike]) -> bool:
    """True when ``path`` is (or links to) one of the ``refuse`` files."""
    return _Refusal(refuse, expand=False).match(Path(path).resolve()) is not None


class _Refusal:
    """The ``refuse`` files resolved once (path and, when the file exists, device and
    inode), so that each destination is compared with all of them in one look-up: the
    same answer as comparing the resolved paths pair by pair, and, when both files
    exist, their device and inode (``os.path.samefile``)."""

    __slots__ = ("paths", "ids")

    def __init__(self, refuse: Iterable[str | os.PathLike], expand: bool = True):
        self.paths: dict[Path, Path] = {}
        self.ids: dict[tuple[int, int], Path] = {}
        folders: dict[Path, Path] = {}   # folder -> resolved (an export is one or a few)
        for item in refuse:
            given = Path(item).expanduser() if expand else Path(item)
            st = None
            if given.name not in ("", ".", ".."):
                try:
                    st = os.lstat(given)
                except OSError:
                    pass
            if st is not None and not stat.S_ISLNK(st.st_mode):
                # Path.resolve() of a file that is no link: its resolved folder + its name
                folder = given.parent
                if folder not in folders:
                    folders[folder] = folder.resolve()
                source = folders[folder] / given.name
            else:
                source = given.resolve()
                try:
                    st = os.stat(source)
                except OSError:   # does not exist (any more): compared by path only
                    st = None
            self.paths.setdefault(source, source)
            if st is not None:
                self.ids.setdefault((st.st_dev, st.st_ino), source)

    def match(self, target: Path) -> Path | None:
        """The refused file ``target`` (resolved) is, or None."""
        if target in self.paths:
            return self.paths[target]
        if not self.ids:
            return None
        try:
            st = os.stat(target)
        except OSError:
            return None
        return self.ids.get((st.st_dev, st.st_ino))


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


def _encode(data) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"write_atomic needs str or bytes, got {type(data).__name__}")


def _target(path: str | os.PathLike, refuse: Iterable[str | os.PathLike] | _Refusal) -> Path:
    """The resolved destination; RtqaError when it is an input file or a folder."""
    target = Path(path).expanduser().resolve()
    if not isinstance(refuse, _Refusal):
        refuse = _Refusal(refuse)
    source = refuse.match(target)
    if source is not None:
        given = Path(os.path.abspath(Path(path).expanduser()))
        what = "an input file" if given == source else f"the input file {source}"
        raise RtqaError(f"cannot write the report: refusing to overwrite {what}", path)
    if target.is_dir():
        raise RtqaError("cannot write the report: it is a folder, not a file name", path)
    return target


def _reason(exc: OSError) -> str:
    return f"cannot write the report ({exc.strerror or exc})"


def check_destination(path: str | os.PathLike, *,
                      refuse: Iterable[str | os.PathLike] = ()) -> Path:
    """Raise ``RtqaError`` (naming the path, one reason) unless a report can be written at
    ``path``: not an input file, not a folder, its folder exists and a file can be created
    in it (tested by creating and removing an empty temporary file). Nothing else is
    changed. Returns the resolved destination."""
    target = _target(path, refuse)
    if not target.parent.is_dir():
        what = "is not a folder" if target.parent.exists() else "does not exist"
        raise RtqaError(f"cannot write the report ({target.parent} {what})", path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise RtqaError(_reason(exc), path) from None
    os.close(fd)
    os.unlink(tmp_name)
    return target


class _Staged:
    """One destination written in full to a temporary file beside it, not yet renamed."""

    __slots__ = ("path", "target", "tmp", "mode")

    def __init__(self, path, data: bytes, refuse):
        self.path = path
        self.target = _target(path, refuse)
        self.mode = (self.target.stat().st_mode & 0o7777 if self.target.exists()
                     else 0o666 & ~_umask())
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp",
                                            dir=self.target.parent)
        except OSError as exc:
            raise RtqaError(_reason(exc), path) from None
        self.tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(self.tmp, self.mode)
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise RtqaError(_reason(exc), path) from None
            raise

    def discard(self) -> None:
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass

    def commit(self) -> None:
        try:
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.discard()
            raise RtqaError(_reason(exc), self.path) from None


def write_all(items: Iterable[tuple[str | os.PathLike, str | bytes]], *,
              refuse: Iterable[str | os.PathLike] = (),
              clear_first: bool = False) -> list[Path]:
    """Write every ``(path, data)`` all or none; return the paths written (links resolved).

    Every file is written in full to a temporary file in its destination's folder first;
    if one cannot be written (full disk, permission, a refused destination), the
    temporary files are removed, no destination is changed, and ``RtqaError`` names the
    path and the reason. Then the temporary files are renamed over the destinations
    (``os.replace``: no space needed, atomic per file). ``clear_first``: once every
    temporary file is written, remove the existing destinations before the first rename,
    so a process killed between two renames leaves some files missing, never an old file
    beside a new one that says otherwise.
    """
    encoded = [(path, _encode(data)) for path, data in items]
    refuse = _Refusal(refuse)   # resolved once for every destination
    staged: list[_Staged] = []
    try:
        for path, data in encoded:
            staged.append(_Staged(path, data, refuse))
        if clear_first:
            for item in staged:
                try:
                    item.target.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise RtqaError(_reason(exc), item.path) from None
        done = []
        for item in staged:
            item.commit()
            done.append(item.target)
    except BaseException:
        for item in staged:
            item.discard()
        raise
    for folder in dict.fromkeys(t.parent for t in done):
        _fsync_dir(folder)
    return done


def write_atomic(path: str | os.PathLike, data: str | bytes, *,
                 refuse: Iterable[str | os.PathLike] = ()) -> Path:
    """Write ``data`` (text is encoded as UTF-8) to ``path`` atomically; return the path
    written (symbolic links resolved).

    ``refuse``: paths that must never be overwritten (the input files of the run).
    Raises ``RtqaError`` naming the path when ``path`` is one of them, is a folder, or
    cannot be written; the destination is then unchanged and no temporary file remains.
    """
    return write_all([(path, data)], refuse=refuse)[0]


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
