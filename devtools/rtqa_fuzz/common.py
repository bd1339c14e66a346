"""Constants and pydicom helpers shared by the fuzzer's modules.

The samples, the tolerances of the oracle, the SOP classes and transfer syntaxes the
fuzzer recognises, and the lenient pydicom reading and writing it uses for its own edits
(rtqa's pydicom settings are restored afterwards).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES = ROOT / "plans_sample"
BASES = ("hcc_pass", "hcc_fail")
REL_TOL, ABS_TOL = 0.005, 0.01
#: Contour points further apart than this in z are not in one axial plane (DICOM
#: CLOSED_PLANAR; rtqa drops such a contour with a warning).
PLANE_TOL_MM = 0.01
DEFAULT_CASES = 2500
DEFAULT_TIME_LIMIT = 540.0
HTML_EVERY, CLI_EVERY = 20, 25

RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
KIND_OF_CLASS = {RT_DOSE: "RTDOSE", RT_STRUCT: "RTSTRUCT", RT_PLAN: "RTPLAN", CT_IMAGE: "CT"}
IMPLICIT_LE, EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


def _tag(g: int, e: int) -> int:
    return (g << 16) | e


T = _tag
SOP_CLASS, SOP_UID, PATIENT, FRAME = T(8, 0x16), T(8, 0x18), T(0x10, 0x20), T(0x20, 0x52)


@contextlib.contextmanager
def lenient_pydicom():
    """pydicom with value validation off and its warnings silenced, for the fuzzer's own
    reading and writing; the settings rtqa runs with are restored afterwards."""
    from pydicom import config as pdconfig
    st = pdconfig.settings
    old = st.reading_validation_mode, st.writing_validation_mode
    st.reading_validation_mode = st.writing_validation_mode = pdconfig.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        st.reading_validation_mode, st.writing_validation_mode = old


def _read_ds(data: bytes):
    import pydicom
    with lenient_pydicom():
        return pydicom.dcmread(io.BytesIO(data))


def _write_ds(ds) -> bytes:
    buf = io.BytesIO()
    with lenient_pydicom():
        ds.save_as(buf)
    return buf.getvalue()


def _set_raw(ds, tag: int, vr: str, text: str) -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag
    raw = text.encode("latin-1", "replace")
    if len(raw) % 2:
        raw += b"\x00" if vr == "UI" else b" "
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, False, True)


def _raw_text(ds, tag: int) -> str:
    raw = ds.get_item(tag)
    value = raw.value if hasattr(raw, "value") else raw
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _kw(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _kind_of_bytes(data: bytes) -> str:
    ds = _read_ds(data)
    return KIND_OF_CLASS.get(str(ds.SOPClassUID), "OTHER")
