"""Find and classify DICOM files by SOP Class UID (never by file name).

Folder walks never follow symbolic links (so a link loop or a link out of the folder is
never entered) and stop at ``MAX_DEPTH`` levels. Files that are not DICOM are skipped and
listed; a file that claims to be DICOM (``.dcm`` name or ``DICM`` magic) but cannot be
read is an error, because a truncated export must never be checked as if complete.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from rtqa.errors import DicomInputError
from rtqa.reading.common import BARE_TRANSFER_SYNTAX, bare_encoding, bare_note, reader
from rtqa.reading.completeness import walk
from rtqa.reading.sopclass import KIND

MAX_DEPTH = 12
#: Files larger than this are refused before they are read (no clinical RT object comes
#: near it); override with the environment variable RTQA_MAX_FILE_MB.
MAX_FILE_BYTES = int(float(os.environ.get("RTQA_MAX_FILE_MB", 2048)) * 2**20)
_HEADER_TAGS = ["SOPClassUID", "SOPInstanceUID", "Modality"]


@dataclass(frozen=True)
class Scanned:
    """One classified file. ``kind`` is RTDOSE, RTSTRUCT, RTPLAN, CT, MR or OTHER."""

    path: Path
    kind: str
    sop_class_uid: str
    sop_instance_uid: str
    #: why the file is not a DICOM Part 10 file when it was read as a bare data set
    #: (no preamble / 'DICM' / File Meta Information); empty for a Part 10 file
    header_note: str = ""
    #: SHA-256 (hex) of the bytes classified, parsed and walked ("" when not known)
    sha256: str = field(default="", compare=False)
    #: (offset, length) in bytes of the native PixelData value of the data set (from
    #: the completeness walk), None when it has none or it is encapsulated
    pixel_data: tuple[int, int] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ScanResult:
    files: tuple[Scanned, ...]
    skipped: tuple[tuple[Path, str], ...]  # (path, reason) of non-DICOM files

    @property
    def warnings(self) -> tuple[str, ...]:
        """One warning per file read without its Part 10 header, naming the file."""
        return tuple(f"{f.path}: {f.header_note}" for f in self.files if f.header_note)


def looks_like_dicom(path: str | Path) -> bool:
    """A name ending .dcm/.dicom, or the DICM magic after the 128-byte preamble."""
    if str(path).lower().endswith((".dcm", ".dicom")):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    root_depth = len(root.parts)
    def refuse(err: OSError) -> None:
        raise DicomInputError(f"cannot be read ({err.strerror or err})", err.filename or root)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=refuse):
        if len(Path(dirpath).parts) - root_depth >= MAX_DEPTH:
            dirnames[:] = []
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not p.is_symlink():
                found.append(p)
    return found


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files named directly plus the files below each folder, in a stable order."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_symlink() and p.is_dir():
            raise DicomInputError("is a symbolic link to a folder; give the folder itself", p)
        if p.is_dir():
            out.extend(_walk(p))
        elif p.is_file():
            out.append(p)
        elif not p.exists():
            raise DicomInputError("no such file or folder", p)
        else:
            raise DicomInputError("not a regular file or folder", p)
    if len(paths) == 1 and not Path(paths[0]).is_file():
        return out  # one folder walk without links: every path once already
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _header(data: bytes, force: bool, bare: str | None):
    """The whole data set up to its PixelData (values converted lazily by pydicom), or
    None when pydicom cannot parse all of it (the classification then reads only the
    identifying tags, as before, and the reader parses the file itself)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=force)
    except Exception:  # noqa: BLE001 - pydicom raises many types; the reader reports it
        return None
    ds.buffer = None  # no deferred values: do not keep the file's bytes alive with it
    if bare and "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = BARE_TRANSFER_SYNTAX[bare]
    return ds


@reader("DICOM header")
def classify(path: Path, explicit: bool = False, datasets: dict | None = None
             ) -> Scanned | None:
    """Classify one file by its SOP Class UID.

    Returns None for a file that is not DICOM (unless it was named explicitly or looks
    like DICOM, in which case that is an error). A DICOM file that is incomplete (cut
    short) is an error: see rtqa.reading.completeness.

    ``datasets``: when given, the file's data set up to its PixelData, parsed here from
    the bytes classified and walked, is stored under ``path`` for the readers (so that
    each file is read and parsed once; ``rtqa.reading.export.load_export``).
    """
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DicomInputError(
                f"file of {size / 2**20:.0f} MiB is larger than the limit of "
                f"{MAX_FILE_BYTES / 2**20:.0f} MiB (set RTQA_MAX_FILE_MB to raise it)", path)
        data = path.read_bytes()
    except PermissionError:
        raise DicomInputError("cannot be read (permission denied)", path) from None
    except OSError as exc:
        raise DicomInputError(f"cannot be read ({exc.strerror or exc})", path) from None
    note = ""
    header = None
    try:
        if datasets is not None:
            header = _header(data, False, None)
        ds = header if header is not None else pydicom.dcmread(
            io.BytesIO(data), stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except InvalidDicomError:
        if bare_encoding(data[:132]) is None:
            if explicit or looks_like_dicom(path):
                raise DicomInputError(
                    "not a DICOM file (no Part 10 header, and it does not start like a "
                    "DICOM data set)", path) from None
            return None
        # a bare data set (Elekta Monaco): read it, with the same completeness check
        note = bare_note(data[:132])
        try:
            if datasets is not None:
                header = _header(data, True, bare_encoding(data[:132]))
            ds = header if header is not None else pydicom.dcmread(
                io.BytesIO(data), stop_before_pixels=True, specific_tags=_HEADER_TAGS,
                force=True)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types
            raise DicomInputError(f"unreadable DICOM data set without Part 10 header "
                                  f"({type(exc).__name__}: {exc})", path) from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken files
        raise DicomInputError(f"unreadable DICOM ({type(exc).__name__}: {exc})", path) from None
    problem, pixel_data = walk(data)
    claims = explicit or looks_like_dicom(path)
    if problem:
        if note and not claims:  # resembled a bare data set, but is not one: not DICOM
            return None
        raise DicomInputError(f"incomplete DICOM file ({problem})", path)
    sop_class = str(ds.get("SOPClassUID", "") or "")
    sop_inst = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_class:
        if claims:
            raise DicomInputError("DICOM file without SOPClassUID"
                                  + (f" ({note.split(':')[0]})" if note else ""), path)
        return None
    if note and not sop_inst:
        raise DicomInputError(f"DICOM data set without SOPInstanceUID ({note.split(':')[0]})",
                              path)
    kind = KIND.get(sop_class, "OTHER")
    if datasets is not None and header is not None and kind != "OTHER":
        datasets[path] = header
    return Scanned(path, kind, sop_class, sop_inst, note,
                   sha256=hashlib.sha256(data).hexdigest(), pixel_data=pixel_data)


def scan(paths: list[str | Path], datasets: dict | None = None) -> ScanResult:
    """Classify every file under ``paths``; raise DicomInputError on a broken DICOM file.
    ``datasets``: see :func:`classify`."""
    explicit = {Path(p).resolve() for p in paths if Path(p).is_file()}
    files, skipped = [], []
    for p in expand_paths(paths):
        named = bool(explicit) and p.resolve() in explicit
        if datasets is None:
            item = classify(p, explicit=named)
        else:
            item = classify(p, explicit=named, datasets=datasets)
        if item is None:
            skipped.append((p, "not DICOM"))
        else:
            files.append(item)
    return ScanResult(tuple(files), tuple(skipped))
