"""A DICOM file cut short anywhere is refused, never read as if whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rtqa.errors import DicomInputError
from rtqa.reading import load_export
from rtqa.reading.completeness import check_complete

SAMPLE = Path(__file__).resolve().parents[2] / "plans_sample" / "hcc_pass"


def _one(prefix: str) -> Path:
    return next(p for p in sorted(SAMPLE.iterdir()) if p.name.startswith(prefix))


@pytest.mark.parametrize("prefix", ["RD", "RS", "RP"])
def test_whole_files_are_complete(prefix):
    assert check_complete(_one(prefix).read_bytes()) is None


@pytest.mark.parametrize("prefix", ["RD", "RS"])
def test_every_cut_is_detected(prefix):
    data = _one(prefix).read_bytes()
    cuts = range(133, len(data), max(1, len(data) // 400))
    missed = [c for c in cuts if check_complete(data[:c]) is None]
    assert missed == []


@pytest.mark.parametrize("prefix", ["RD", "RS", "RP"])
def test_truncated_file_in_a_folder_is_an_error_naming_it(tmp_path, prefix):
    for p in SAMPLE.iterdir():
        if not p.name.startswith("CT"):
            shutil.copy(p, tmp_path / p.name)
    victim = tmp_path / _one(prefix).name
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    assert victim.name in str(err.value)


def _element_offset(data: bytes, group: int, element: int, vr: bytes, value: bytes) -> int:
    """Offset of an explicit-VR-little-endian short element with exactly this value."""
    head = group.to_bytes(2, "little") + element.to_bytes(2, "little") + vr \
        + len(value).to_bytes(2, "little")
    assert data.count(head + value) >= 1
    return data.index(head + value)


@pytest.mark.parametrize("encoding", ["undefined", "defined"])
def test_an_element_running_past_its_item_is_detected(tmp_path, encoding):
    """A flipped length bit inside a sequence item (DeliveryMaximumDose of the RTPLAN's
    first DoseReferenceSequence item claiming 518 bytes): the element swallows the
    TargetPrescriptionDose after it, yet the file's stream can still end in the right
    place, and pydicom reads it without complaint. Found by make fuzz (case 2234)."""
    import pydicom

    ds = pydicom.dcmread(_one("RP"))
    path = tmp_path / "rp.dcm"
    # pydicom writes sequences with undefined length; a defined-length encoding is
    # what other writers produce: test both
    if encoding == "defined":
        from pydicom.filewriter import dcmwrite
        for item in ds.DoseReferenceSequence:
            item.is_undefined_length_sequence_item = False
        ds["DoseReferenceSequence"].is_undefined_length = False
        dcmwrite(path, ds, enforce_file_format=True)
    else:
        ds.save_as(path, enforce_file_format=True)
    data = bytearray(path.read_bytes())
    assert check_complete(bytes(data)) is None
    value = str(ds.DoseReferenceSequence[0].DeliveryMaximumDose).encode()
    value += b" " * (len(value) % 2)
    at = _element_offset(bytes(data), 0x300A, 0x0023, b"DS", value)
    data[at + 7] |= 0x02  # length high byte: +512
    problem = check_complete(bytes(data))
    assert problem is not None and "(300A,0023)" in problem, problem
