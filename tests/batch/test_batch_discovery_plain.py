"""Discovery reads plainly encoded image headers without pydicom (issue 16 item 5):
``rtqa.batch.discovery._plain_header`` gives exactly what the pydicom path of
``read_header`` gives (the same Header, the same error, the same "not DICOM"), for every
encoding and every damaged file, because anything it is not sure of goes to pydicom."""

from __future__ import annotations

import random
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
                         ExplicitVRLittleEndian, ImplicitVRLittleEndian)

import rtqa.batch.discovery as discovery
from rtqa.errors import RtqaError


def _outcome(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ("header", discovery.read_header(str(path), "rel/x"))
        except RtqaError as exc:
            return ("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - pydicom's own, raised either way
            return ("raised", type(exc).__name__, str(exc))


def _both(path: Path, monkeypatch) -> tuple:
    """(outcome with the plain reader, outcome through pydicom only, plain Header or None)"""
    plain = discovery._plain_header(str(path), "rel/x")
    fast = _outcome(path)
    with monkeypatch.context() as m:
        m.setattr(discovery, "_plain_header", lambda p, r: None)
        slow = _outcome(path)
    return fast, slow, plain


def _raw(ds, tag, vr, value: bytes):
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _undefined_sequence(ds):
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    ds.ReferencedImageSequence = Sequence([item])
    ds["ReferencedImageSequence"].is_undefined_length = True
    item.is_undefined_length_sequence_item = True


def _private_sequence(ds):
    block = ds.private_block(0x0011, "RTQA TEST", create=True)
    item = Dataset()
    item.PatientID = "x"
    block.add_new(0x01, "SQ", Sequence([item]))
    ds[0x00111001].is_undefined_length = True


CT_VARIANTS = {
    "as is (RLE)": (lambda ds: None, None),
    "explicit VR": (lambda ds: None, ExplicitVRLittleEndian),
    "implicit VR": (lambda ds: None, ImplicitVRLittleEndian),
    "big endian": (lambda ds: None, ExplicitVRBigEndian),
    "deflated": (lambda ds: None, DeflatedExplicitVRLittleEndian),
    "private syntax": (lambda ds: None, "1.2.3.4.5"),
    "MR": (lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.4"), None),
    "other SOP class": (lambda ds: setattr(ds, "SOPClassUID", "1.2.3.4"), None),
    "RTPLAN class on a CT": (lambda ds: setattr(ds, "SOPClassUID",
                                                "1.2.840.10008.5.1.4.1.1.481.5"), None),
    "no SOPClassUID": (lambda ds: delattr(ds, "SOPClassUID"), None),
    "empty SOPClassUID": (lambda ds: _raw(ds, 0x00080016, "UI", b""), None),
    "no SOPInstanceUID": (lambda ds: delattr(ds, "SOPInstanceUID"), None),
    "no PatientID": (lambda ds: delattr(ds, "PatientID"), None),
    "empty PatientID": (lambda ds: _raw(ds, 0x00100020, "LO", b""), None),
    "PatientID with spaces": (lambda ds: _raw(ds, 0x00100020, "LO", b" ab c "), None),
    "Latin-1 PatientID": (lambda ds: _raw(ds, 0x00100020, "LO",
                                          "M\xfcller ".encode("latin-1")), None),
    "two PatientIDs": (lambda ds: _raw(ds, 0x00100020, "LO", b"a\\b "), None),
    "PatientID as SH": (lambda ds: _raw(ds, 0x00100020, "SH", b"abc "), None),
    "UID with NUL": (lambda ds: _raw(ds, 0x0020000E, "UI", b"1.2.3\x00"), None),
    "two UIDs": (lambda ds: _raw(ds, 0x0020000E, "UI", b"1.2.3\\4.5"), None),
    "UID with letters": (lambda ds: _raw(ds, 0x00200052, "UI", b"1.2.abc\x00"), None),
    "no frame of reference": (lambda ds: delattr(ds, "FrameOfReferenceUID"), None),
    "odd length": (lambda ds: _raw(ds, 0x00081030, "LO", b"abc"), None),
    "undefined-length sequence": (_undefined_sequence, None),
    "undefined-length sequence, implicit": (_undefined_sequence, ImplicitVRLittleEndian),
    "private undefined-length sequence": (_private_sequence, None),
    "private undefined-length sequence, implicit": (_private_sequence,
                                                    ImplicitVRLittleEndian),
    "header past the first read": (lambda ds: ds.add_new(0x00091010, "OB",
                                                         b"\x01" * 70_000), None),
}


def _write(ds, path: Path, syntax) -> Path:
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if syntax == "1.2.3.4.5":     # pydicom writes no unknown syntax: as explicit LE
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            pydicom.dcmwrite(path, ds)
            data = path.read_bytes().replace(b"1.2.840.10008.1.2.1\x00",
                                             b"1.2.3.4.5\x00" + b"\x00" * 10)
            path.write_bytes(data)
        else:
            pydicom.dcmwrite(path, ds)
    return path


def _ct(sample_dir, tmp_path, name) -> Path:
    change, syntax = CT_VARIANTS[name]
    ds = pydicom.dcmread(sample_dir / "hcc_pass" / "CT.001.dcm")
    if syntax is not None:      # uncompressed pixel data for the other syntaxes
        ds.PixelData = b"\x00\x00" * (ds.Rows * ds.Columns)
        ds["PixelData"].is_undefined_length = False
    change(ds)
    return _write(ds, tmp_path / "CT.dcm", syntax)


@pytest.mark.parametrize("name", sorted(CT_VARIANTS))
def test_plain_header_is_the_pydicom_header(sample_dir, tmp_path, monkeypatch, name):
    fast, slow, _ = _both(_ct(sample_dir, tmp_path, name), monkeypatch)
    assert fast == slow


@pytest.mark.parametrize("name", ["as is (RLE)", "explicit VR", "implicit VR", "MR",
                                  "other SOP class", "RTPLAN class on a CT", "no PatientID",
                                  "empty PatientID",
                                  "PatientID with spaces", "UID with NUL",
                                  "undefined-length sequence",
                                  "undefined-length sequence, implicit",
                                  "header past the first read"])
def test_plain_images_skip_pydicom(sample_dir, tmp_path, monkeypatch, name):
    fast, slow, plain = _both(_ct(sample_dir, tmp_path, name), monkeypatch)
    assert plain is not None and fast == ("header", plain)


@pytest.mark.parametrize("name", ["big endian", "deflated", "private syntax",
                                  "no SOPClassUID",
                                  "Latin-1 PatientID", "two PatientIDs", "PatientID as SH",
                                  "two UIDs", "UID with letters", "odd length",
                                  "private undefined-length sequence, implicit"])
def test_unusual_headers_go_through_pydicom(sample_dir, tmp_path, name):
    assert discovery._plain_header(str(_ct(sample_dir, tmp_path, name)), "x") is None


@pytest.mark.parametrize("case", ["hcc_pass", "hcc_fail"])
def test_rt_objects_and_the_sample_go_through_the_same_headers(sample_dir, monkeypatch,
                                                                case):
    for path in sorted((sample_dir / case).iterdir()):
        fast, slow, plain = _both(path, monkeypatch)
        assert fast == slow, path.name
        if path.suffix == ".dcm":
            assert plain is not None, path.name
        if path.name.startswith(("RS.", "RP.", "RD.")):
            assert plain.refs, path.name            # references read from the items


def _lengths_undefined(ds):
    for e in ds:
        if e.VR == "SQ":
            e.is_undefined_length = True
            for item in e.value:
                item.is_undefined_length_sequence_item = True
                _lengths_undefined(item)


def _series_item(ds):
    return (ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
            .RTReferencedSeriesSequence[0])


RT_VARIANTS = {
    "RS as is": ("RS.hcc_pass.dcm", lambda ds: None, None),
    "RS implicit": ("RS.hcc_pass.dcm", lambda ds: None, ImplicitVRLittleEndian),
    "RS undefined lengths": ("RS.hcc_pass.dcm", _lengths_undefined, None),
    "RS undefined lengths, implicit": ("RS.hcc_pass.dcm", _lengths_undefined,
                                       ImplicitVRLittleEndian),
    "RS big endian": ("RS.hcc_pass.dcm", lambda ds: None, ExplicitVRBigEndian),
    "RS no label": ("RS.hcc_pass.dcm", lambda ds: delattr(ds, "StructureSetLabel"), None),
    "RS Latin-1 label": ("RS.hcc_pass.dcm", lambda ds: _raw(ds, 0x30060002, "SH",
                                                            "K\xf6rper".encode("latin-1")),
                         None),
    "RS top-level frame": ("RS.hcc_pass.dcm",
                           lambda ds: setattr(ds, "FrameOfReferenceUID", "1.2.3"), None),
    "RS no frame in the item": ("RS.hcc_pass.dcm", lambda ds: delattr(
        ds.ReferencedFrameOfReferenceSequence[0], "FrameOfReferenceUID"), None),
    "RS two series UIDs": ("RS.hcc_pass.dcm", lambda ds: _raw(_series_item(ds), 0x0020000E,
                                                              "UI", b"1.2\\3.4"), None),
    "RS image UID with letters": ("RS.hcc_pass.dcm", lambda ds: _raw(
        _series_item(ds).ContourImageSequence[3], 0x00081155, "UI", b"1.2.x\x00"), None),
    "RS no study sequence": ("RS.hcc_pass.dcm", lambda ds: delattr(
        ds.ReferencedFrameOfReferenceSequence[0], "RTReferencedStudySequence"), None),
    "RS empty reference sequence": ("RS.hcc_pass.dcm", lambda ds: setattr(
        ds, "ReferencedFrameOfReferenceSequence", Sequence()), None),
    "RS reference sequence as UN": ("RS.hcc_pass.dcm", lambda ds: _raw(
        ds, 0x30060010, "UN", b"\x00\x00\x00\x00"), None),
    "RS private element in an item": ("RS.hcc_pass.dcm", lambda ds: _series_item(ds).add_new(
        0x30091001, "UN", b"\x01\x02"), None),
    "RP as is": ("RP.SBRT_5fx.dcm", lambda ds: None, None),
    "RP implicit": ("RP.SBRT_5fx.dcm", lambda ds: None, ImplicitVRLittleEndian),
    "RP undefined lengths": ("RP.SBRT_5fx.dcm", _lengths_undefined, None),
    "RP name, no label": ("RP.SBRT_5fx.dcm", lambda ds: (delattr(ds, "RTPlanLabel"),
                                                         setattr(ds, "RTPlanName", "P 1")),
                          None),
    "RP empty label": ("RP.SBRT_5fx.dcm", lambda ds: (_raw(ds, 0x300A0002, "SH", b""),
                                                      setattr(ds, "RTPlanName", "P 1")),
                       None),
    "RP no reference": ("RP.SBRT_5fx.dcm", lambda ds: delattr(
        ds, "ReferencedStructureSetSequence"), None),
    "RP reference without UID": ("RP.SBRT_5fx.dcm", lambda ds: delattr(
        ds.ReferencedStructureSetSequence[0], "ReferencedSOPInstanceUID"), None),
    "RP two references": ("RP.SBRT_5fx.dcm", lambda ds: ds.ReferencedStructureSetSequence
                          .append(ds.ReferencedStructureSetSequence[0]), None),
    "RD as is": ("RD.SBRT_5fx.dcm", lambda ds: None, None),
    "RD implicit": ("RD.SBRT_5fx.dcm", lambda ds: None, ImplicitVRLittleEndian),
    "RD no plan reference": ("RD.SBRT_5fx.dcm", lambda ds: delattr(
        ds, "ReferencedRTPlanSequence"), None),
    "RD plan UID twice": ("RD.SBRT_5fx.dcm", lambda ds: _raw(
        ds.ReferencedRTPlanSequence[0], 0x00081155, "UI", b"1.2\\1.3\x00"), None),
}


def _rt(sample_dir, tmp_path, name) -> Path:
    fname, change, syntax = RT_VARIANTS[name]
    ds = pydicom.dcmread(sample_dir / "hcc_pass" / fname)
    change(ds)
    return _write(ds, tmp_path / fname, syntax)


@pytest.mark.parametrize("name", sorted(RT_VARIANTS))
def test_rt_headers_are_the_pydicom_headers(sample_dir, tmp_path, monkeypatch, name):
    fast, slow, plain = _both(_rt(sample_dir, tmp_path, name), monkeypatch)
    assert fast == slow
    unusual = ("big endian", "Latin-1", "two series", "letters", "as UN", "twice")
    assert (plain is None) == any(u in name for u in unusual), plain


@pytest.mark.parametrize("name", ["RS as is", "RS undefined lengths, implicit", "RP as is",
                                  "RD implicit"])
def test_damaged_rt_headers_give_what_pydicom_gives(sample_dir, tmp_path, monkeypatch,
                                                    name):
    data = _rt(sample_dir, tmp_path, name).read_bytes()
    data = data[:60_000] if name.startswith("RS") else data   # the references come first
    seen = {"header": 0, "error": 0, "raised": 0, "plain": 0}
    for k, (what, mutant) in enumerate(_mutants(data, 7, 200)):
        path = tmp_path / (f"m{k}.dcm" if k % 2 else f"m{k}")
        path.write_bytes(mutant)
        fast, slow, plain = _both(path, monkeypatch)
        assert fast == slow, what
        seen[fast[0]] += 1
        seen["plain"] += plain is not None
        path.unlink()
    assert seen["error"] and seen["header"] and seen["plain"]


def _mutants(data: bytes, seed: int, n: int):
    rnd = random.Random(seed)
    end = data.find(b"\xe0\x7f\x10\x00") + 64       # up to just past the pixel data tag
    end = end if end > 64 else min(len(data), 4000)     # no pixel data: the first 4 kB
    for cut in list(range(0, end, 17)) + [end + 100, len(data) - 1]:
        yield f"cut at {cut}", data[:cut]
    for i in range(n):
        b = bytearray(data)
        for _ in range(rnd.choice((1, 1, 2, 3))):
            pos = rnd.randrange(128, end)
            b[pos] = rnd.choice((0, 0xFF, 0x20, 0x5C, rnd.randrange(256)))
        yield f"mutant {i}", bytes(b)
    for i in range(n // 4):                              # lengths made odd, huge or zero
        b = bytearray(data)
        pos = rnd.randrange(132, end - 4)
        b[pos:pos + 4] = struct.pack("<I", rnd.choice((0xFFFFFFFF, 1, 0, 0x7FFF, 3)))
        yield f"length {i}", bytes(b)


@pytest.mark.parametrize("syntax", [None, ImplicitVRLittleEndian])
def test_damaged_headers_give_what_pydicom_gives(sample_dir, tmp_path, monkeypatch, syntax):
    ds = pydicom.dcmread(sample_dir / "hcc_pass" / "CT.002.dcm")
    _undefined_sequence(ds)
    if syntax is not None:
        ds.PixelData = b"\x00\x00" * (ds.Rows * ds.Columns)
        ds["PixelData"].is_undefined_length = False
    data = _write(ds, tmp_path / "src.dcm", syntax).read_bytes()
    seen = {"header": 0, "error": 0, "raised": 0, "plain": 0}
    for k, (what, mutant) in enumerate(_mutants(data, 16 + bool(syntax), 400)):
        # half named .dcm (claims DICOM), half without a suffix
        path = tmp_path / (f"m{k}.dcm" if k % 2 else f"m{k}")
        path.write_bytes(mutant)
        fast, slow, plain = _both(path, monkeypatch)
        assert fast == slow, what
        seen[fast[0]] += 1
        seen["plain"] += plain is not None
        path.unlink()
    assert seen["error"] and seen["header"] and seen["plain"]


def test_not_dicom_and_empty_files(tmp_path, monkeypatch):
    for name, data in (("empty", b""), ("text.txt", b"hello\n" * 40),
                       ("short.dcm", b"\x00" * 128 + b"DICM"),
                       ("meta only.dcm", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI"
                        b"\x14\x001.2.840.10008.1.2.1\x00")):
        path = tmp_path / name
        path.write_bytes(data)
        fast, slow, plain = _both(path, monkeypatch)
        assert fast == slow and plain is None, name


def test_unknown_vr_in_a_link_field_is_an_unreadable_file(sample_dir, tmp_path):
    """A CT whose FrameOfReferenceUID has an unknown VR ('ZZ'): pydicom raises
    NotImplementedError when the value is read. That file is unreadable (RtqaError naming
    it), it does not stop discovery of the whole batch (before: the exception escaped)."""
    ct = sorted((sample_dir / "hcc_pass").glob("CT*"))[0].read_bytes()
    key = b"\x20\x00\x52\x00UI"
    assert ct.count(key) == 1
    path = tmp_path / "ct.dcm"
    path.write_bytes(ct.replace(key, b"\x20\x00\x52\x00ZZ"))
    with pytest.raises(RtqaError) as err:
        discovery.read_header(str(path), "rel/ct.dcm")
    assert "NotImplementedError" in str(err.value) and "rel/ct.dcm" in str(err.value)
