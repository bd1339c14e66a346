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


def _variants():
    """Sample files as stored (explicit VR little endian), with undefined lengths, and
    big endian: (data, start of the data set, little)."""
    import io
    import warnings

    import pydicom
    from pydicom.uid import ExplicitVRBigEndian
    out = []
    for prefix in ("RS", "RP", "RD"):
        data = _one(prefix).read_bytes()
        out.append(data)
        ds = pydicom.dcmread(io.BytesIO(data))
        for e in ds.iterall():
            if e.VR == "SQ":
                e.is_undefined_length = True
                for item in e.value:
                    item.is_undefined_length_sequence_item = True
        if prefix != "RD":  # (a dose's pixels: not written big endian by pydicom)
            ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmwrite(buf, ds)
        out.append(buf.getvalue())
    return out


def test_compiled_walk_is_the_python_walk():
    """rtqa.reading._cdecimal.walk_body: where it decides, the end and PixelData of the
    Python walk; where the Python walk raises (cut short, a byte changed in a header,
    length or delimiter), None (the Python walk then gives the reason)."""
    import struct

    import numpy as np

    from rtqa import _native
    from rtqa.reading import completeness as C
    c = _native.load("rtqa.reading._cdecimal")
    if c is None:
        pytest.skip("rtqa.reading._cdecimal not built (or RTQA_NATIVE=0)")
    rng = np.random.default_rng(7)
    decided = refused = 0
    for data in _variants():
        ts_at = data.index(b"1.2.840.10008.1.2.")
        little = not data[ts_at:ts_at + 22].startswith(b"1.2.840.10008.1.2.2\x00") \
            and not data[ts_at:ts_at + 20] == b"1.2.840.10008.1.2.2"
        pos = 132 + 12 + struct.unpack_from("<I", data, 140)[0]  # after group 0002
        cases = [data, data[:-1], data[:len(data) // 3]]
        for delim in (0xE000, 0xE00D, 0xE0DD):  # a stray delimiter between elements
            tag = (b"\xfe\xff" + delim.to_bytes(2, "little")) if little \
                else (b"\xff\xfe" + delim.to_bytes(2, "big"))
            cases.append(data[:pos] + tag + b"\0\0\0\0" + data[pos:])
        for _ in range(150):
            b = bytearray(data)
            at = int(rng.integers(pos, min(len(b), pos + 6000)))
            b[at] = int(rng.integers(0, 256))
            cases.append(bytes(b))
        for v in cases:
            got = c.walk_body(v, pos, little)
            w = C._Walker(v, True, little)
            try:
                want = (w.elements(pos, len(v), None, top=True), w.pixel_data)
            except (C.Incomplete, struct.error):
                want = None
            if got is None:
                refused += 1
                assert want is None
            else:
                decided += 1
                assert got == want
    assert decided > 50 and refused > 50
