"""Each file of an export is read and parsed once (issue 16 item 3), and the dose is read
frame by frame from the file into the float64 grid (item 4), with the same values as
the stored values x DoseGridScaling and the scan's digest enforced."""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest

from rtqa.errors import DicomInputError
from rtqa.reading import load_export
from rtqa.reading.completeness import walk
from rtqa.reading.dose import read_dose
from rtqa.reading.scan import scan

try:
    import phantoms as ph
except ImportError:  # tests collected as a package
    from tests import phantoms as ph

IOPS = [ph.IOP_HFS, (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
        (0.0, 1.0, 0.0, 1.0, 0.0, 0.0)]


def _dose_file(folder, iop=ph.IOP_HFS, bits=16, syntax=None):
    folder.mkdir(parents=True, exist_ok=True)
    f = ph.write_dose(folder / "RD.dcm", lambda x, y, z: 80.0 + x - 0.5 * y + 0.2 * z,
                      study=ph.Study(), ipp=(-20.0, -10.0, 6.0), rows=7, cols=9,
                      pixel_spacing=(2.0, 3.0), offsets=[0.0, 2.0, 5.0, 6.0], iop=iop,
                      bits=bits)
    if syntax is not None:
        ds = pydicom.dcmread(f.path)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(f.path, enforce_file_format=True)
    return f


@pytest.mark.parametrize("iop", IOPS)
@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("syntax", [None, pydicom.uid.ImplicitVRLittleEndian])
def test_dose_read_by_frames_is_every_stored_voxel_times_scaling(tmp_path, iop, bits,
                                                                 syntax):
    f = _dose_file(tmp_path / "plan", iop, bits, syntax)
    grid = load_export([tmp_path / "plan"]).doses[0]
    assert grid.dose.flags.c_contiguous and grid.dose.dtype == np.float64
    assert np.all(np.diff(grid.x) > 0) and np.all(np.diff(grid.y) > 0)
    assert np.all(np.diff(grid.z) > 0)
    # independent truth: every voxel of the file, placed by its patient coordinates
    i = np.abs(grid.x[None, :] - f.px.reshape(-1, 1)).argmin(axis=1)
    j = np.abs(grid.y[None, :] - f.py.reshape(-1, 1)).argmin(axis=1)
    k = np.abs(grid.z[None, :] - f.pz.reshape(-1, 1)).argmin(axis=1)
    assert np.allclose(grid.x[i], f.px.ravel()) and np.allclose(grid.y[j], f.py.ravel())
    assert np.allclose(grid.z[k], f.pz.ravel())
    assert np.array_equal(grid.dose[k, j, i], f.dose.ravel())
    # and bit for bit what the whole-file path (pydicom's PixelData) gives
    assert np.array_equal(grid.dose, read_dose(f.path).dose)


def test_every_file_is_parsed_once(tmp_path, sample_dir, monkeypatch):
    calls: list[str] = []
    real = pydicom.dcmread

    def counting(fp, *args, **kwargs):
        calls.append(getattr(fp, "name", None) or "bytes")
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    export = load_export([sample_dir / "hcc_pass"])
    n_files = len(export.scanned.files)
    assert n_files == 86 and len(calls) == n_files
    # the digests recorded are those of the files' bytes
    for f in export.scanned.files[:3] + export.scanned.files[-3:]:
        assert f.sha256 == hashlib.sha256(f.path.read_bytes()).hexdigest()


def test_walk_locates_the_pixel_data_value(tmp_path):
    f = _dose_file(tmp_path / "plan", bits=32)
    data = f.path.read_bytes()
    problem, span = walk(data)
    assert problem is None
    offset, length = span
    assert data[offset:offset + length] == pydicom.dcmread(f.path).PixelData


def test_dose_changed_after_the_scan_is_refused(tmp_path):
    f = _dose_file(tmp_path / "plan")
    datasets: dict = {}
    item = scan([tmp_path / "plan"], datasets=datasets).files[0]
    data = bytearray(f.path.read_bytes())
    offset, length = item.pixel_data
    data[offset + length - 2] ^= 0x01   # one stored value changes, same size
    f.path.write_bytes(bytes(data))
    with pytest.raises(DicomInputError, match="changed while being read") as err:
        read_dose(item.path, dataset=datasets[item.path], pixel_data=item.pixel_data,
                  sha256=item.sha256)
    assert str(f.path) in str(err.value)


def test_dose_cut_after_the_scan_is_refused(tmp_path):
    f = _dose_file(tmp_path / "plan")
    datasets: dict = {}
    item = scan([tmp_path / "plan"], datasets=datasets).files[0]
    f.path.write_bytes(f.path.read_bytes()[:item.pixel_data[0] + 10])
    with pytest.raises(DicomInputError, match="changed while being read"):
        read_dose(item.path, dataset=datasets[item.path], pixel_data=item.pixel_data,
                  sha256=item.sha256)
