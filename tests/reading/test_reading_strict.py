"""Corrupt values are refused, never replaced by a default (issue 6).

Each case edits one value of a bundled sample file with pydicom (written back as valid
DICOM, so only the value is wrong) and asserts that the reader raises DicomInputError
naming the file and the attribute — the cases ``make fuzz`` found crashing or passing:
lazy pydicom conversion errors (``IS 'Inf'``), empty Type 1 values, a missing
DoseGridScaling read as 1, a non-finite or zero prescription dropped, a CT slice placed
at a default position, orphan contours, duplicate ROI names, coordinates of 1e20 mm.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement

from rtqa.errors import DicomInputError
from rtqa.reading.ct import assemble_series, read_ct_slice
from rtqa.reading.dose import read_dose
from rtqa.reading.plan import read_plan
from rtqa.reading.structures import read_structure_set

SAMPLE = Path(__file__).resolve().parents[2] / "plans_sample" / "hcc_pass"
RD, RP, RS, CT = "RD.SBRT_5fx.dcm", "RP.SBRT_5fx.dcm", "RS.hcc_pass.dcm", "CT.010.dcm"
READERS = {RD: read_dose, RP: read_plan, RS: read_structure_set, CT: read_ct_slice}


#: Values pydicom would refuse to write are written as a placeholder and patched into the
#: file's bytes afterwards (tag, VR, length, value): keyword -> (placeholder, raw bytes).
_PATCHES: list[tuple[int, str, bytes, bytes]] = []


def _raw(ds, keyword: str, value: str, vr: str) -> None:
    """Give ``keyword`` the raw text ``value`` as a damaged file would carry it: pydicom
    converts it only when rtqa reads it."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    raw = value.encode() + (b" " if len(value) % 2 else b"")
    if not raw.strip():
        ds[tag] = DataElement(tag, vr, "")
        return
    placeholder = str(70000000 + len(_PATCHES))[: len(raw)].rjust(len(raw), "7")
    ds[tag] = DataElement(tag, vr, placeholder)
    _PATCHES.append((tag, vr, placeholder.encode(), raw))


def _save(ds, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    for tag, vr, placeholder, raw in _PATCHES:
        head = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little") \
            + vr.encode() + len(raw).to_bytes(2, "little")
        assert data.count(head + placeholder) == 1
        data = data.replace(head + placeholder, head + raw)
    _PATCHES.clear()
    path.write_bytes(data)


def _dose_no_scaling(ds):
    del ds.DoseGridScaling


def _dose_frames_inf(ds):
    _raw(ds, "NumberOfFrames", "Inf", "IS")


def _dose_frames_empty(ds):
    _raw(ds, "NumberOfFrames", "", "IS")


def _dose_far_away(ds):
    ds.ImagePositionPatient = [1e20, 0.0, 0.0]


def _rx(value: str):
    def edit(ds):
        _raw(ds.DoseReferenceSequence[0], "TargetPrescriptionDose", value, "DS")
    return edit


def _rx_roi_empty(ds):
    _raw(ds.DoseReferenceSequence[0], "ReferencedROINumber", "", "IS")


def _rx_roi_missing(ds):
    del ds.DoseReferenceSequence[0].ReferencedROINumber


def _fractions_inf(ds):
    _raw(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned", "-Inf", "IS")


def _beam_dose_nan(ds):
    _raw(ds.FractionGroupSequence[0].ReferencedBeamSequence[0], "BeamDose", "NaN", "DS")


def _ct_without(keyword: str):
    def edit(ds):
        delattr(ds, keyword)
    return edit


def _ct_iop_not_unit(ds):
    ds.ImageOrientationPatient = [2, 0, 0, 0, 1, 0]


def _ct_pixel_zero(ds):
    ds.PixelSpacing = [0, 0]


def _rs_duplicate_name(ds):
    ds.StructureSetROISequence[1].ROIName = ds.StructureSetROISequence[0].ROIName


def _rs_orphan_contours(ds):
    ds.ROIContourSequence[0].ReferencedROINumber = 999


def _rs_two_items_for_one_roi(ds):
    ds.ROIContourSequence[1].ReferencedROINumber = ds.ROIContourSequence[0].ReferencedROINumber


def _rs_roi_number_text(ds):
    _raw(ds.StructureSetROISequence[0], "ROINumber", "x", "IS")


def _rs_far_point(ds):
    c = ds.ROIContourSequence[0].ContourSequence[0]
    pts = [float(v) for v in c.ContourData]
    pts[0] = 1e20
    c.ContourData = pts


def _rs_series_uid_missing(ds):
    fr = ds.ReferencedFrameOfReferenceSequence[0]
    del fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID


CASES = {
    "dose_grid_scaling_missing": (RD, _dose_no_scaling, "DoseGridScaling"),
    "number_of_frames_inf": (RD, _dose_frames_inf, "NumberOfFrames"),
    "number_of_frames_empty": (RD, _dose_frames_empty, "NumberOfFrames"),
    "dose_position_1e20": (RD, _dose_far_away, "coordinates"),
    "prescription_zero": (RP, _rx("0"), "TargetPrescriptionDose"),
    "prescription_nan": (RP, _rx("NaN"), "TargetPrescriptionDose"),
    "prescription_negative": (RP, _rx("-50"), "TargetPrescriptionDose"),
    "prescription_text": (RP, _rx("fifty"), "TargetPrescriptionDose"),
    "prescription_empty": (RP, _rx(""), "TargetPrescriptionDose"),
    "prescription_1e308": (RP, _rx("1e308"), "TargetPrescriptionDose"),
    "prescription_roi_empty": (RP, _rx_roi_empty, "ReferencedROINumber"),
    "prescription_roi_missing": (RP, _rx_roi_missing, "ReferencedROINumber"),
    "fractions_minus_inf": (RP, _fractions_inf, "NumberOfFractionsPlanned"),
    "beam_dose_nan": (RP, _beam_dose_nan, "BeamDose"),
    "ct_without_position": (CT, _ct_without("ImagePositionPatient"), "ImagePositionPatient"),
    "ct_without_orientation": (CT, _ct_without("ImageOrientationPatient"),
                               "ImageOrientationPatient"),
    "ct_without_pixel_spacing": (CT, _ct_without("PixelSpacing"), "PixelSpacing"),
    "ct_orientation_not_unit": (CT, _ct_iop_not_unit, "ImageOrientationPatient"),
    "ct_pixel_spacing_zero": (CT, _ct_pixel_zero, "PixelSpacing"),
    "roi_name_twice": (RS, _rs_duplicate_name, "two ROIs are named"),
    "contours_of_undefined_roi": (RS, _rs_orphan_contours, "999"),
    "two_contour_items_for_one_roi": (RS, _rs_two_items_for_one_roi, "two items"),
    "roi_number_not_a_number": (RS, _rs_roi_number_text, "ROINumber"),
    "contour_point_1e20": (RS, _rs_far_point, "ContourData"),
    "referenced_series_uid_missing": (RS, _rs_series_uid_missing, "SeriesInstanceUID"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_corrupt_value_is_refused_naming_file_and_attribute(name, tmp_path):
    fname, edit, words = CASES[name]
    src = SAMPLE / fname
    ds = pydicom.dcmread(src)
    edit(ds)
    path = tmp_path / fname
    _save(ds, path)
    with pytest.raises(DicomInputError) as err:
        READERS[fname](path)
    msg = str(err.value)
    assert str(path) in msg and words in msg, msg
    assert "\n" not in msg.strip()


def test_the_unedited_files_read(tmp_path):
    """The edits above are what is refused: the same files unedited are read."""
    for fname, reader in READERS.items():
        shutil.copy(SAMPLE / fname, tmp_path / fname)
        assert reader(tmp_path / fname) is not None


def test_two_ct_slices_at_one_position_are_refused(tmp_path):
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    shutil.copy(SAMPLE / "CT.010.dcm", a)
    ds = pydicom.dcmread(SAMPLE / "CT.011.dcm")
    ds.ImagePositionPatient = pydicom.dcmread(a).ImagePositionPatient
    ds.save_as(b, enforce_file_format=True)
    with pytest.raises(DicomInputError, match="two slices at z"):
        assemble_series([read_ct_slice(a), read_ct_slice(b)])


def test_empty_type2_fraction_count_is_unknown_not_refused(tmp_path):
    """NumberOfFractionsPlanned is Type 2: empty means unknown (rtqa then needs
    --fractions), not a corrupt value."""
    ds = pydicom.dcmread(SAMPLE / RP)
    _raw(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned", "", "IS")
    _save(ds, tmp_path / RP)
    assert read_plan(tmp_path / RP).fractions is None


def test_file_meta_without_transfer_syntax_is_refused(tmp_path):
    """make fuzz seed 2 case 1276: bit flips in the file meta removed TransferSyntaxUID;
    pydicom guesses one and reads on. A Part 10 file must say how it is encoded."""
    from rtqa.reading.scan import classify
    data = bytearray((SAMPLE / RP).read_bytes())
    at = data.index(bytes.fromhex("02001000") + b"UI")  # (0002,0010) TransferSyntaxUID
    data[at + 2] = 0x11                                  # -> (0002,0011), a private-ish tag
    path = tmp_path / RP
    path.write_bytes(bytes(data))
    with pytest.raises(DicomInputError, match="TransferSyntaxUID"):
        classify(path)
