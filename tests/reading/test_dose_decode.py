"""The dose decode and scale of rtqa.reading.dose without temporary copies: the same
values, bit for bit, as pydicom's pixel_array cast to float64 and scaled."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rtqa.reading.dose import _scaled_frames, _stored_values

try:
    import phantoms as ph
except ImportError:  # tests collected as a package
    from tests import phantoms as ph


@settings(max_examples=60, deadline=None)
@given(arr=hnp.arrays(st.sampled_from([np.uint16, np.uint32, np.int16, np.int32]),
                      hnp.array_shapes(min_dims=3, max_dims=3, max_side=6),
                      elements=st.integers(0, 30000)),
       scaling=st.floats(1e-9, 1e3, allow_nan=False, allow_infinity=False),
       transpose=st.booleans(), flip_x=st.booleans(), flip_y=st.booleans(),
       data=st.data())
def test_scaled_frames_equal_cast_then_multiply(arr, scaling, transpose, flip_x, flip_y,
                                                data):
    n = arr.shape[0]
    kind = data.draw(st.sampled_from(["identity", "reversed", "permuted"]))
    order = {"identity": np.arange(n), "reversed": np.arange(n)[::-1],
             "permuted": np.asarray(data.draw(st.permutations(list(range(n)))), int)}[kind]
    # the whole stored array transformed as the reader did before reading frame by frame
    view = arr.transpose(0, 2, 1) if transpose else arr
    view = view[:, :, ::-1] if flip_x else view
    view = view[:, ::-1, :] if flip_y else view
    want = view[order].astype(np.float64) * scaling
    got, low, top = _scaled_frames(iter(arr), order, view.shape[1:], scaling, transpose,
                                   flip_x, flip_y)
    assert got.flags.c_contiguous and got.dtype == np.float64
    assert np.array_equal(got, want)
    assert (low, top) == (min(0, int(arr.min())), max(0, int(arr.max())))


def test_scaled_frames_analytic():
    arr = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    got, _, top = _scaled_frames(iter(arr), np.array([1, 0]), (3, 4), 0.5)
    assert got[0, 0, 0] == 6.0 and got[1, 2, 3] == 5.5 and top == 23


def test_scaled_frames_refuses_missing_frames():
    arr = np.zeros((2, 3, 4), dtype=np.uint16)
    with pytest.raises(ValueError):
        _scaled_frames(iter(arr[:1]), np.array([0, 1]), (3, 4), 1.0)


@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian,
                                    pydicom.uid.ImplicitVRLittleEndian])
def test_stored_values_read_in_place_equal_pixel_array(tmp_path, bits, syntax):
    f = ph.write_dose(tmp_path / "RD.dcm", lambda x, y, z: 40.0 + x - 0.5 * y + 0.2 * z,
                      study=ph.Study(), ipp=(-20.0, -10.0, 0.0), rows=7, cols=9,
                      offsets=[0.0, 2.0, 4.0], bits=bits)
    ds = pydicom.dcmread(f.path)
    if ds.file_meta.TransferSyntaxUID != syntax:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(tmp_path / "RD2.dcm", enforce_file_format=True)
        ds = pydicom.dcmread(tmp_path / "RD2.dcm")
    got = _stored_values(ds, tmp_path / "RD.dcm", 3, 7, 9)
    want = ds.pixel_array.reshape(3, 7, 9)
    assert np.shares_memory(got, np.frombuffer(ds.PixelData, np.uint8))  # no copy
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert got.max() > 0


@pytest.mark.parametrize("keyword,value", [("SamplesPerPixel", None), ("SamplesPerPixel", 3),
                                           ("PhotometricInterpretation", None)])
def test_incomplete_pixel_description_is_refused_not_guessed(tmp_path, sample_dir, keyword,
                                                             value):
    """The in-place fast path reads PixelData only when every element of the pixel
    description is present and as RT Dose requires; otherwise pydicom decodes, and refuses
    what it cannot decode. Found by make fuzz (seed 1, cases 323, 1269): a deleted
    SamplesPerPixel was taken as 1 and the damaged plan PASSed."""
    from rtqa.errors import DicomInputError
    from rtqa.reading.dose import read_dose
    ds = pydicom.dcmread(sample_dir / "hcc_pass" / "RD.SBRT_5fx.dcm")
    if value is None:
        del ds[keyword]
    else:
        setattr(ds, keyword, value)
    path = tmp_path / "RD.dcm"
    ds.save_as(path)
    with pytest.raises(DicomInputError) as err:
        read_dose(path)
    assert str(path) in str(err.value)
