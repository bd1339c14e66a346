"""Values read raw (rtqa.reading.raw, issue 16): the RTSTRUCT contour items and the CT
slice headers read without pydicom's data sets and value conversions give exactly what
the pydicom path gives (which still reads everything that is not plainly encoded), in
every encoding, and every unusual value still goes through pydicom."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

import rtqa.reading.ct as ct
import rtqa.reading.structures as structures
from rtqa.errors import DicomInputError
from rtqa.reading import raw


def _raw(item, tag, vr, value: bytes):
    """Put a value in a data set as pydicom reads it (not converted yet)."""
    item._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _undefined_lengths(ds):
    for e in ds:
        if e.VR == "SQ":
            e.is_undefined_length = True
            for item in e.value:
                item.is_undefined_length_sequence_item = True
                _undefined_lengths(item)
    return ds


def _contour(ds, r=1, c=1):
    return ds.ROIContourSequence[r].ContourSequence[c]


RS_VARIANTS = {
    "as is": (lambda ds: None, None),
    "implicit VR": (lambda ds: None, ImplicitVRLittleEndian),
    "big endian": (lambda ds: None, ExplicitVRBigEndian),
    "undefined lengths": (_undefined_lengths, None),
    "undefined lengths, implicit": (_undefined_lengths, ImplicitVRLittleEndian),
    "POINT and OPEN_PLANAR": (lambda ds: (setattr(_contour(ds, 1, 2), "ContourGeometricType",
                                                  "POINT"),
                                          setattr(_contour(ds, 2, 0), "ContourGeometricType",
                                                  "OPEN_PLANAR")), None),
    "lower-case type": (lambda ds: _raw(_contour(ds), 0x30060042, "CS", b"closed_planar "),
                        None),
    "two types": (lambda ds: _raw(_contour(ds), 0x30060042, "CS", b"CLOSED_PLANAR\\POINT "),
                  None),
    "no type": (lambda ds: delattr(_contour(ds), "ContourGeometricType"), None),
    "unknown type": (lambda ds: _raw(_contour(ds), 0x30060042, "CS", b"TRIANGLES "), None),
    "two points": (lambda ds: _raw(_contour(ds), 0x30060050, "DS", b"1\\2\\3\\4\\5\\3"), None),
    "not planar": (lambda ds: _raw(_contour(ds), 0x30060050, "DS",
                                   b"1\\2\\3\\4\\5\\3.5\\6\\7\\3 "), None),
    "exponent": (lambda ds: _raw(_contour(ds), 0x30060050, "DS", b"1e1\\2\\3\\4\\5\\3\\6\\7\\3 "),
                 None),
    "empty ContourData": (lambda ds: _raw(_contour(ds), 0x30060050, "DS", b""), None),
    "no ContourSequence": (lambda ds: delattr(ds.ROIContourSequence[1], "ContourSequence"),
                           None),
    "private element": (lambda ds: _contour(ds).add_new(0x30091001, "UN", b"\x01\x02"), None),
}


def _structure_set(tmp_path, sample_dir, name):
    change, syntax = RS_VARIANTS[name]
    ds = pydicom.dcmread(sample_dir / "hcc_pass" / "RS.hcc_pass.dcm")
    change(ds)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "RS.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(path, ds)
    return path


def _outcome(read, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ss = read(path)
        except DicomInputError as exc:
            return ("error", str(exc))
    out = []
    for s in ss.structures:
        out.append((s.roi_number, s.name, s.interpreted_type, s.warnings, s.n_open_contours,
                    s.points.tobytes(), tuple(o.tobytes() for o in s.open_contours),
                    tuple((z.hex(), tuple((p.shape, p.tobytes()) for p in polys))
                          for z, polys in s.planes)))
    return out


@pytest.mark.parametrize("name", sorted(RS_VARIANTS))
def test_structure_set_same_through_pydicom(tmp_path, sample_dir, monkeypatch, name):
    path = _structure_set(tmp_path, sample_dir, name)
    fast = _outcome(structures.read_structure_set, path)
    monkeypatch.setattr(structures, "_raw_contours", lambda rc: None)  # pydicom items
    monkeypatch.setattr(structures._Points, "of", classmethod(lambda cls, parsed: None))
    slow = _outcome(structures.read_structure_set, path)
    assert fast == slow
    if name == "as is":
        assert sum(len(p) for s in fast for _, p in s[7]) > 500


@pytest.mark.parametrize("name", ["as is", "implicit VR", "undefined lengths",
                                  "undefined lengths, implicit", "private element",
                                  "POINT and OPEN_PLANAR", "no type", "exponent"])
def test_plain_structure_sets_are_read_raw(tmp_path, sample_dir, monkeypatch, name):
    path = _structure_set(tmp_path, sample_dir, name)
    seen = []
    real = structures._raw_contours
    monkeypatch.setattr(structures, "_raw_contours", lambda rc: seen.append(real(rc)) or seen[-1])
    structures.read_structure_set(path)
    assert seen and all(s is not None for s in seen)


def test_unusual_contours_go_through_pydicom(tmp_path, sample_dir):
    for name in ("big endian", "lower-case type", "two types", "empty ContourData"):
        ds = pydicom.dcmread(_structure_set(tmp_path, sample_dir, name))
        found = [structures._raw_contours(rc) for rc in ds.ROIContourSequence]
        assert None in found, name


CT_VARIANTS = {
    "as is": lambda ds: None,
    "exponent": lambda ds: _raw(ds, 0x00200032, "DS", b"-2.5e2\\-250\\-100 "),
    "spaces": lambda ds: _raw(ds, 0x00200032, "DS", b" -250 \\ -250\\-100 "),
    "infinite": lambda ds: _raw(ds, 0x00200032, "DS", b"-2.5e999\\-250\\-100 "),
    "two values": lambda ds: _raw(ds, 0x00200032, "DS", b"-250\\-100"),
    "far away and bad thickness": lambda ds: (
        _raw(ds, 0x00200032, "DS", b"-2.5e9\\-250\\-100 "), _raw(ds, 0x00180050, "DS", b"x ")),
    "bad thickness": lambda ds: _raw(ds, 0x00180050, "DS", b"x "),
    "no thickness": lambda ds: delattr(ds, "SliceThickness"),
    "two thicknesses": lambda ds: _raw(ds, 0x00180050, "DS", b"2\\3 "),
    "Rows SS": lambda ds: _raw(ds, 0x00280010, "SS", b"\x00\x02"),
    "no Rows": lambda ds: delattr(ds, "Rows"),
    "Latin-1 PatientID": lambda ds: (setattr(ds, "SpecificCharacterSet", "ISO_IR 100"),
                                     _raw(ds, 0x00100020, "LO", "M\xfcller ".encode("latin-1"))),
    "PatientID with spaces": lambda ds: _raw(ds, 0x00100020, "LO", b" ab c "),
    "two PatientIDs": lambda ds: _raw(ds, 0x00100020, "LO", b"a\\b "),
    "UID with NUL": lambda ds: _raw(ds, 0x0020000E, "UI", b"1.2.3\x00"),
    "two UIDs": lambda ds: _raw(ds, 0x0020000E, "UI", b"1.2.3\\4.5"),
    "ImagePositionPatient LO": lambda ds: _raw(ds, 0x00200032, "LO", b"-250\\-250\\-100 "),
    "oblique": lambda ds: _raw(ds, 0x00200037, "DS", b"0.7071068\\0.7071068\\0\\0\\0\\1 "),
}


@pytest.mark.parametrize("name", sorted(CT_VARIANTS))
@pytest.mark.parametrize("syntax", [None, ImplicitVRLittleEndian])
def test_ct_slice_same_through_pydicom(tmp_path, sample_dir, monkeypatch, name, syntax):
    ds = pydicom.dcmread(sample_dir / "hcc_pass" / "CT.001.dcm")
    CT_VARIANTS[name](ds)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "CT.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(path, ds)

    def outcome():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return ct.read_ct_slice(path)
            except DicomInputError as exc:
                return str(exc)

    fast = outcome()
    monkeypatch.setattr(ct, "_plain_header", lambda ds: None)
    assert outcome() == fast


@pytest.mark.parametrize("value", [b"1.5", b"-250\\0\\+3.25 ", b" 7 ", b".5\\5.\\-0", b"1e-3",
                                   b"-2.5E+02\\1"])
def test_plain_ds_is_float_of_pydicom_value(value):
    elem = RawDataElement(Tag(0x00200032), "DS", len(value), value, 0, False, True)
    want = pydicom.dataelem.convert_raw_data_element(elem).value
    want = [float(v) for v in (want if isinstance(want, MultiValue) else [want])]
    got = raw.plain_ds(("DS", value))
    assert [np.float64(v).tobytes() for v in got] == [np.float64(v).tobytes() for v in want]


@pytest.mark.parametrize("value", [b"", b"x", b"1\\\\2", b"1e999", b"nan", b"12345678901234567",
                                   b"1 2"])
def test_unusual_ds_is_left_to_pydicom(value):
    assert raw.plain_ds(("DS", value)) is None


def _sequence_values(tmp_path, sample_dir):
    """The encoded ContourSequence values of the sample RTSTRUCT, explicit and implicit
    VR, with defined and undefined lengths: (bytes, implicit)."""
    out = []
    for name in ("as is", "implicit VR", "undefined lengths", "undefined lengths, implicit"):
        ds = pydicom.dcmread(_structure_set(tmp_path, sample_dir, name))
        for rc in ds.ROIContourSequence:
            e = rc.get_item(0x30060040, keep_deferred=True)
            if isinstance(e, RawDataElement) and isinstance(e.value, bytes):
                out.append((e.value, bool(e.is_implicit_VR)))
    return out


def _python_walk(value, implicit):
    try:
        return raw._items(value, 0, len(value), len(value), implicit)[0]
    except (raw._Unusual, __import__("struct").error):
        return None
    except RecursionError:
        return "recursion"


def test_compiled_walk_is_the_python_walk(tmp_path, sample_dir):
    """rtqa.reading._cdecimal.raw_items gives raw._items' items (or None where it finds
    the encoding unusual), or False (the Python walk decides), on whole sequence values
    and on values cut short or with bytes changed anywhere."""
    from rtqa import _native
    c = _native.load("rtqa.reading._cdecimal")
    if c is None:
        pytest.skip("rtqa.reading._cdecimal not built (or RTQA_NATIVE=0)")
    values = _sequence_values(tmp_path, sample_dir)
    assert values and {imp for _, imp in values} == {False, True}
    rng = np.random.default_rng(16)
    decided = 0
    for value, implicit in values:
        cases = [value, value[:-1], value[:len(value) // 2], b"", value + b"\x00" * 8]
        for _ in range(60):  # a byte changed: headers, lengths, delimiters, VRs
            b = bytearray(value)
            at = int(rng.integers(0, min(len(b), 400)))
            b[at] = int(rng.integers(0, 256))
            cases.append(bytes(b))
        for v in cases:
            got = c.raw_items(v, implicit, raw._VR_TABLE)
            if got is False:
                continue
            decided += 1
            assert got == _python_walk(v, implicit)
    assert decided > 100


def test_compiled_walk_leaves_deep_nesting_to_python():
    from rtqa import _native
    c = _native.load("rtqa.reading._cdecimal")
    if c is None:
        pytest.skip("rtqa.reading._cdecimal not built (or RTQA_NATIVE=0)")
    item_end = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    seq_end = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    inner = b""
    for _ in range(80):  # sequences of undefined length, nested 80 deep (explicit VR)
        inner = (b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\x06\x30\x40\x00SQ\x00\x00"
                 + b"\xff\xff\xff\xff" + inner + seq_end + item_end)
    value = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\x06\x30\x42\x00CS\x02\x00AB" + item_end
    assert c.raw_items(value, False, raw._VR_TABLE) == _python_walk(value, False)
    assert c.raw_items(inner, False, raw._VR_TABLE) is False
    # implicit VR, undefined length: the data dictionary's call
    imp = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\x06\x30\x40\x00\xff\xff\xff\xff" + seq_end \
        + item_end
    assert c.raw_items(imp, True, raw._VR_TABLE) is False
