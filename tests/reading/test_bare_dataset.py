"""DICOM data sets written without the PS3.10 header (preamble, 'DICM', File Meta), as
Elekta Monaco writes its RT objects: read with a warning naming the file, checked for
completeness like any other file; anything that merely resembles one is still refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from rtqa.dvh import compute_dvh
from rtqa.errors import DicomInputError
from rtqa.reading import load_export
from rtqa.reading.common import bare_encoding

try:
    import phantoms as ph
except ImportError:  # tests collected as a package
    from tests import phantoms as ph


def _dose(x, y, z):
    return 20.0 + 0.3 * x - 0.2 * y + 0.1 * z


def _export(folder: Path) -> Path:
    study = ph.Study()
    c = (0.0, 0.0, 0.0)
    roi = ph.Roi(1, "Sphere", ph.sphere_contours(c, 6.0, np.arange(-5.0, 6.0, 1.0)), "PTV")
    ss = ph.write_struct(folder / "RS.dcm", [roi], study=study)
    ph.write_plan(folder / "RP.dcm", study=study, fractions=3, structure_set_uid=ss)
    ph.write_dose(folder / "RD.dcm", _dose, study=study, ipp=(-10.0, -12.0, -8.0), rows=9,
                  cols=11, pixel_spacing=(3.0, 2.0), offsets=ph.regular_offsets(7, 2.5))
    return folder


def _strip(path: Path, implicit: bool = True) -> bytes:
    """The file's data set alone, re-encoded (implicit or explicit VR little endian)."""
    ds = dcmread(path)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    data = fp.getvalue()
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("implicit", [True, False])
def test_bare_data_sets_are_read_with_a_warning(tmp_path, implicit):
    ref = load_export([_export(tmp_path / "part10")])
    bare = _export(tmp_path / "bare")
    for name in ("RS.dcm", "RP.dcm", "RD.dcm"):
        head = _strip(bare / name, implicit)
        assert head[128:132] != b"DICM"
        assert bare_encoding(head[:132]) == ("implicit" if implicit else "explicit")
    ex = load_export([bare])
    assert sorted(f.kind for f in ex.scanned.files) == ["RTDOSE", "RTPLAN", "RTSTRUCT"]
    # one warning per file, naming it and what is missing
    assert len(ex.warnings) == 3
    for name in ("RS.dcm", "RP.dcm", "RD.dcm"):
        w = next(w for w in ex.warnings if str(bare / name) in w)
        assert "preamble, 'DICM' prefix and File Meta Information missing" in w
        assert ("implicit" if implicit else "explicit") + " VR little endian" in w
    # the same plan, read the same way: fractions, dose, structures, DVH
    assert ex.plans[0].fractions == ref.plans[0].fractions == 3
    np.testing.assert_array_equal(ex.courses[0].grid.dose, ref.courses[0].grid.dose)
    a = compute_dvh(ex.structure_sets[0].structures[0], ex.courses[0].grid)
    b = compute_dvh(ref.structure_sets[0].structures[0], ref.courses[0].grid)
    assert a.total_volume_cc == b.total_volume_cc and a.mean_gy == b.mean_gy
    assert not ref.warnings or all("Part 10" not in w for w in ref.warnings)


def test_truncated_bare_data_set_is_refused(tmp_path):
    bare = _export(tmp_path)
    data = _strip(bare / "RD.dcm")
    (bare / "RD.dcm").write_bytes(data[:-1000])
    with pytest.raises(DicomInputError) as err:
        load_export([bare])
    assert "incomplete DICOM file" in str(err.value) and "RD.dcm" in str(err.value)


def test_bare_data_set_without_sop_class(tmp_path):
    bare = _export(tmp_path)
    ds = dcmread(bare / "RP.dcm")
    del ds.SOPClassUID
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    # not named as DICOM: skipped and listed, like any file that is not DICOM
    (bare / "notes.bin").write_bytes(fp.getvalue())
    ex = load_export([bare])
    assert [p.name for p, _ in ex.scanned.skipped] == ["notes.bin"]
    # named .dcm: it claims to be DICOM, and is refused with the reason
    (bare / "notes.bin").rename(bare / "RP2.dcm")
    with pytest.raises(DicomInputError) as err:
        load_export([bare])
    assert "without SOPClassUID" in str(err.value) and "RP2.dcm" in str(err.value)


def test_truncated_bare_data_set_not_named_dicom_is_not_read(tmp_path):
    bare = _export(tmp_path)
    data = _strip(bare / "RD.dcm")
    (bare / "RD.dcm").unlink()
    (bare / "dose.raw").write_bytes(data[:-1000])
    ex = load_export([bare])  # no dose read from it: the check then has no RTDOSE
    assert [p.name for p, _ in ex.scanned.skipped] == ["dose.raw"] and not ex.doses


def test_files_that_only_resemble_a_data_set_are_not_read_on_a_guess(tmp_path):
    bare = _export(tmp_path)
    # a text file and a binary file whose first bytes are not a group 0002/0008 element
    (bare / "README.txt").write_text("plan notes\n")
    (bare / "blob.bin").write_bytes(b"\x10\x00\x10\x00" + b"\xff" * 200)
    ex = load_export([bare])
    assert {p.name for p, _ in ex.scanned.skipped} == {"README.txt", "blob.bin"}
    assert bare_encoding(b"\x08\x00\x05\x00\xff\xff\xff\xff") is None  # absurd length
    # named .dcm, it claims to be DICOM: refused with the reason
    (bare / "broken.dcm").write_bytes(b"\x10\x00\x10\x00" + b"\xff" * 200)
    with pytest.raises(DicomInputError) as err:
        load_export([bare])
    assert "broken.dcm" in str(err.value) and "not a DICOM file" in str(err.value)
