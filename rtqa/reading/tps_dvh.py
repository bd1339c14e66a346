"""The planning system's own DVHs: RTDOSE ``DVHSequence`` (DICOM PS3.3 C.8.8.4).

Each item: ``DVHReferencedROISequence`` (ReferencedROINumber), ``DVHType`` (CUMULATIVE,
DIFFERENTIAL or NATURAL), ``DoseUnits`` (GY or RELATIVE), ``DVHDoseScaling``,
``DVHVolumeUnits`` (CM3, PERCENT or PER_U) and ``DVHData``: pairs (bin width, volume),
bin widths x DVHDoseScaling in DoseUnits. A CUMULATIVE volume is the volume receiving at
least the dose at the bin's lower edge; a DIFFERENTIAL volume is the volume in the bin.

What is read, and what is not trusted:

* Doses come from ``DVHData`` only. ``DVHMinimumDose``/``DVHMaximumDose``/``DVHMeanDose``
  are not used: Eclipse writes them in percent of the prescription while DoseUnits says
  GY (measured on its example plan: DVHMaximumDose 104.86 for a 14.68 Gy maximum).
* RELATIVE doses, NATURAL DVHs and PER_U volumes cannot be compared with Gy and cc: the
  item is kept with a ``problem`` (reported, never guessed).
* PERCENT volumes: dose metrics are compared, the volume is not.

The curve is piecewise linear between nodes (lower bin edges, then the upper edge of the
last bin at 0 volume), like rtqa's own (``rtqa.dvh.data``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from rtqa.reading.common import text


@dataclass(frozen=True, eq=False)
class TpsDvh:
    roi_number: int | None
    dose_gy: np.ndarray          # nodes, ascending (empty when ``problem``)
    cum: np.ndarray              # cumulative volume at the nodes (cc, or % of the ROI)
    volume_cc: float | None      # None when the TPS gives relative volumes only
    problem: str = ""            # why this DVH cannot be compared (empty: it can)

    @property
    def fractional(self) -> np.ndarray:
        return self.cum / self.cum[0] if self.cum.size and self.cum[0] > 0 else self.cum


def _bad(roi: int | None, why: str) -> TpsDvh:
    return TpsDvh(roi, np.zeros(0), np.zeros(0), None, why)


def _item(item) -> TpsDvh:
    roi = None
    for ref in item.get("DVHReferencedROISequence", []) or []:
        try:
            roi = int(ref.get("ReferencedROINumber"))
        except (TypeError, ValueError):
            pass
    kind = text(item, "DVHType").upper()
    units = text(item, "DoseUnits").upper()
    vunits = text(item, "DVHVolumeUnits").upper()
    if roi is None:
        return _bad(None, "DVH without a ReferencedROINumber")
    if kind not in ("CUMULATIVE", "DIFFERENTIAL"):
        return _bad(roi, f"DVHType {kind or 'absent'} (only CUMULATIVE and DIFFERENTIAL "
                         "are compared)")
    if units not in ("GY", "CGY"):
        return _bad(roi, f"DoseUnits {units or 'absent'}: not an absolute dose in Gy")
    if vunits not in ("CM3", "PERCENT"):
        return _bad(roi, f"DVHVolumeUnits {vunits or 'absent'}: neither cc nor %")
    try:
        scale = float(item.get("DVHDoseScaling", 1.0) or 1.0)
        data = np.asarray([float(v) for v in item.get("DVHData", []) or []], dtype=float)
    except (TypeError, ValueError):
        return _bad(roi, "DVHData or DVHDoseScaling is not numeric")
    if data.size < 2 or data.size % 2 or not np.all(np.isfinite(data)) or scale <= 0:
        return _bad(roi, "DVHData is empty, odd in length or not finite")
    widths = data[0::2] * scale * (0.01 if units == "CGY" else 1.0)
    vols = data[1::2]
    if np.any(widths <= 0) or np.any(vols < -1e-6 * max(float(np.max(vols)), 1e-9)):
        return _bad(roi, "DVHData has bin widths <= 0 or negative volumes")
    vols = np.clip(vols, 0.0, None)  # -3e-13 cc: rounding in the export (Eclipse)
    if kind == "DIFFERENTIAL":
        vols = np.cumsum(vols[::-1])[::-1]
    vols = np.minimum.accumulate(vols)  # rounding in the export: never increasing
    nodes = np.concatenate([[0.0], np.cumsum(widths)])
    cum = np.concatenate([vols, [0.0]])
    if cum[0] <= 0:
        return _bad(roi, "DVH of zero volume")
    return TpsDvh(roi, nodes, cum, float(cum[0]) if vunits == "CM3" else None)


def read_tps_dvhs(path: Path) -> list[TpsDvh]:
    """The DVHs of an RTDOSE file, by ROI number (empty when it carries none).

    The file was read and checked as an RTDOSE before; a DVHSequence that cannot be
    read gives items with a ``problem``, never an exception."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - the dose itself was read; the DVHs are secondary
        return [_bad(None, "DVHSequence cannot be read")]
    return tps_dvhs_of(ds)


def tps_dvhs_of(ds) -> list[TpsDvh]:
    """:func:`read_tps_dvhs` of an RTDOSE data set already parsed (the dose reader keeps
    them: ``rtqa.reading.dose.DoseGrid.tps_dvhs``)."""
    try:
        items = list(ds.get("DVHSequence", []) or [])
    except Exception:  # noqa: BLE001 - the dose itself was read; the DVHs are secondary
        return [_bad(None, "DVHSequence cannot be read")]
    out = []
    for item in items:
        try:
            out.append(_item(item))
        except Exception as exc:  # noqa: BLE001 - a malformed item is reported, not fatal
            out.append(_bad(None, f"malformed DVH item ({type(exc).__name__})"))
    return out
