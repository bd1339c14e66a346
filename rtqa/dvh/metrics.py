"""TG-263 DVH metrics: strict parsing and exact evaluation on a cumulative DVH.

Syntax (AAPM Report 263, section 9): ``<type><value><unit>[<result unit>]``.

* ``D``: minimum dose to the hottest x (x in cc or % of volume): ``D95%[Gy]``, ``D2cc[cGy]``
* ``DC``: maximum dose to the coldest x (cc or % of volume): ``DC700cc[Gy]``, ``DC50%[Gy]``
* ``V``: volume receiving >= the dose (Gy, cGy or % of prescription): ``V20Gy[%]``,
  ``V2000cGy[cc]``, ``V95%[cc]``
* ``CV``: volume receiving < the dose (the spared volume): ``CV15Gy[cc]``, ``CV15Gy[%]``
* ``Mean``, ``Max``, ``Min``: the structure's statistics: ``Mean[Gy]``, ``Max[cGy]``

The result unit in brackets is required. Units and types are case-sensitive; anything
else is rejected with ``MetricSyntaxError`` (never guessed: ``V2cc`` is not V2Gy).

Evaluation treats the cumulative DVH as piecewise linear between its dose nodes (see
``rtqa.dvh.data``) and interpolates; it never reads the nearest bin. Boundary convention:
V counts dose >= x, CV counts dose < x (the model has no point masses, so CV = total - V).
A D/DC request for more volume than the structure has raises ``RtqaError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rtqa.dvh.data import DVHData
from rtqa.errors import MetricSyntaxError, RtqaError

__all__ = [
    "Metric", "parse_metric", "evaluate", "metric_unit_label", "describe",
    "volume_at_least", "volume_below", "dose_at_volume", "cold_dose_at_volume",
]

KINDS = ("D", "V", "CV", "DC", "Mean", "Max", "Min")
DOSE_UNITS = ("Gy", "cGy")
VOLUME_UNITS = ("%", "cc")
_STATS = ("Mean", "Max", "Min")
_REL_TOL = 1e-9  # relative slack when a requested volume equals the whole volume

_EXAMPLES = "D95%[Gy], D2cc[Gy], V20Gy[%], V95%[cc], CV15Gy[cc], DC700cc[Gy], Mean[Gy]"
_SHAPE = re.compile(r"(?P<body>[^\[\]]*)\[(?P<unit>[^\[\]]*)\]")
_BODY = re.compile(r"(?P<kind>DC|CV|D|V)(?P<rest>.*)")
_VALUE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>%|cc|cGy|Gy)")


@dataclass(frozen=True)
class Metric:
    """A parsed TG-263 metric. ``str(metric)`` is the canonical text.

    ``value``/``value_unit``: the x of D/DC (``%`` of volume or ``cc``) or of V/CV (``Gy``,
    ``cGy`` or ``%`` of prescription); None for Mean/Max/Min. ``result_unit``: unit of
    ``evaluate``'s result (Gy/cGy for dose metrics, %/cc for volume metrics).
    """

    text: str = field(compare=False)  # as given (surrounding whitespace removed)
    kind: str
    value: float | None
    value_unit: str | None
    result_unit: str

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.kind}[{self.result_unit}]"
        num = np.format_float_positional(self.value, trim="-")
        return f"{self.kind}{num}{self.value_unit}[{self.result_unit}]"

    @property
    def is_dose(self) -> bool:
        """True when the result is a dose (Gy/cGy), False for a volume (%/cc)."""
        return self.result_unit in DOSE_UNITS

    @property
    def needs_prescription(self) -> bool:
        """True for V/CV with the dose given as % of prescription (``V95%[%]``)."""
        return self.kind in ("V", "CV") and self.value_unit == "%"


def _fail(text: str, why: str) -> MetricSyntaxError:
    return MetricSyntaxError(f"invalid DVH metric {text!r}: {why}. Valid forms look like "
                             f"{_EXAMPLES}")


def parse_metric(text: str) -> Metric:
    """Parse a TG-263 metric string strictly; raise ``MetricSyntaxError`` if invalid."""
    if not isinstance(text, str):
        raise MetricSyntaxError(f"a DVH metric must be text, got {text!r}. Valid forms look "
                                f"like {_EXAMPLES}")
    s = text.strip()
    if not s:
        raise _fail(text, "empty metric")
    shape = _SHAPE.fullmatch(s)
    if shape is None:
        raise _fail(s, "expected <type><value><unit>[<result unit>] with the result unit "
                       "in square brackets at the end")
    body, unit = shape["body"], shape["unit"]
    if unit not in DOSE_UNITS + VOLUME_UNITS:
        raise _fail(s, f"result unit [{unit}] is not one of [Gy], [cGy], [%], [cc] "
                       "(units are case-sensitive)")
    if body in _STATS:
        if unit not in DOSE_UNITS:
            raise _fail(s, f"{body} is a dose and returns [Gy] or [cGy], not [{unit}]")
        return Metric(s, body, None, None, unit)
    m = _BODY.fullmatch(body)
    if m is None:
        raise _fail(s, f"{body!r} does not start with a metric type D, V, CV or DC and is "
                       "not Mean, Max or Min (case-sensitive)")
    kind, rest = m["kind"], m["rest"]
    if rest.startswith("-"):
        raise _fail(s, "the value must not be negative")
    v = _VALUE.fullmatch(rest)
    if v is None:
        raise _fail(s, f"{kind} must be followed by a number and a unit (%, cc, Gy or cGy; "
                       f"case-sensitive), got {rest!r}")
    value, vunit = float(v["num"]), v["unit"]
    if not np.isfinite(value):
        raise _fail(s, "the value is too large")
    if kind in ("D", "DC"):
        if vunit not in VOLUME_UNITS:
            raise _fail(s, f"{kind} needs a volume (% or cc) after {kind}, not a dose "
                           f"({vunit}); e.g. {kind}2cc[Gy]")
        if unit not in DOSE_UNITS:
            raise _fail(s, f"{kind} is a dose metric and returns [Gy] or [cGy], not [{unit}]")
        if vunit == "%" and value > 100:
            raise _fail(s, f"a volume percentage must be <= 100%, got {v['num']}%")
    else:
        if vunit not in DOSE_UNITS + ("%",):
            raise _fail(s, f"{kind} needs a dose (Gy, cGy or % of prescription) after "
                           f"{kind}, not a volume ({vunit}); e.g. {kind}20Gy[cc]")
        if unit not in VOLUME_UNITS:
            raise _fail(s, f"{kind} is a volume metric and returns [%] or [cc], not [{unit}]")
    return Metric(s, kind, value, vunit, unit)


def metric_unit_label(metric: Metric) -> str:
    """Unit of the metric's result, for reports: "Gy", "cGy", "%" or "cc"."""
    return metric.result_unit


def describe(metric: Metric) -> str:
    """Plain-English meaning, e.g. "minimum dose to the hottest 2 cc"."""
    if metric.value is None:
        return {"Mean": "mean dose", "Max": "maximum dose", "Min": "minimum dose"}[metric.kind]
    num = np.format_float_positional(metric.value, trim="-")
    if metric.value_unit == "%":
        x = f"{num}% of the {'prescription' if metric.needs_prescription else 'volume'}"
    else:
        x = f"{num} {metric.value_unit}"
    return {
        "D": f"minimum dose to the hottest {x}",
        "DC": f"maximum dose to the coldest {x}",
        "V": f"volume receiving at least {x}",
        "CV": f"volume receiving less than {x}",
    }[metric.kind]


# --- exact evaluation on arrays --------------------------------------------------------

def _checked(edges, cum) -> tuple[np.ndarray, np.ndarray]:
    """Validate a cumulative DVH (see rtqa.dvh.data) and return float arrays."""
    e = np.asarray(edges, dtype=float)
    c = np.asarray(cum, dtype=float)
    if e.ndim != 1 or c.shape != e.shape or e.size < 2:
        raise ValueError("edges and cum must be 1-D arrays of the same length (>= 2)")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(c))):
        raise ValueError("DVH arrays contain NaN or infinite values")
    if np.any(np.diff(e) <= 0):
        raise ValueError("DVH dose nodes must be strictly ascending")
    tol = _REL_TOL * max(c[0], 1.0)
    if np.any(c < -tol) or np.any(np.diff(c) > tol):
        raise ValueError("cumulative DVH volumes must be >= 0 and non-increasing")
    if c[-1] > tol:
        raise ValueError("cumulative DVH must reach 0 cc at its last dose node")
    c = np.minimum.accumulate(np.clip(c, 0.0, None))
    c[-1] = 0.0
    return e, c


def _scalar(x):
    return float(x) if np.ndim(x) == 0 else x


def _interp_dose(e, c, i, level):
    """Dose where the segment [e[i], e[i+1]] crosses volume ``level`` (c[i] >= level >= c[i+1])."""
    drop = c[i] - c[i + 1]
    frac = np.divide(c[i] - level, drop, out=np.zeros_like(drop), where=drop > 0)
    return e[i] + frac * (e[i + 1] - e[i])


def _v(e, c, dose_gy) -> np.ndarray:
    d = np.asarray(dose_gy, dtype=float)
    if not np.all(np.isfinite(d)):
        raise ValueError("requested dose must be finite (Gy)")
    return np.interp(d, e, c, left=c[0], right=0.0)


def volume_at_least(edges, cum, dose_gy):
    """V: volume (cc) receiving >= ``dose_gy`` (Gy); linear between nodes.

    The whole volume at or below the first node (0 Gy); 0 cc above the last node.
    """
    e, c = _checked(edges, cum)
    return _scalar(_v(e, c, dose_gy))


def volume_below(edges, cum, dose_gy):
    """CV: volume (cc) receiving < ``dose_gy`` (Gy): the total volume minus V."""
    e, c = _checked(edges, cum)
    return _scalar(c[0] - _v(e, c, dose_gy))


def _volumes(c, volume_cc) -> np.ndarray:
    v = np.asarray(volume_cc, dtype=float)
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("requested volume must be finite and >= 0 cc")
    if np.any(v > c[0] * (1 + _REL_TOL)):
        raise ValueError(f"requested volume {np.max(v):g} cc exceeds the structure's "
                         f"{c[0]:g} cc")
    return np.minimum(v, c[0])


def dose_at_volume(edges, cum, volume_cc):
    """D: minimum dose (Gy) to the hottest ``volume_cc``: the largest D with V(D) >= volume.

    On a plateau of V (a dose gap) this is the plateau's upper end. D0 is the maximum
    dose (where V first reaches 0). Raises ``ValueError`` if volume > total volume.
    """
    e, c = _checked(edges, cum)
    v = _volumes(c, volume_cc)
    # number of nodes with c >= v (c > v for v == 0); the crossing is after the last one
    n_ge = np.where(v > 0, np.searchsorted(-c, -v, side="right"),
                    np.searchsorted(-c, -v, side="left"))
    i = np.clip(n_ge - 1, 0, e.size - 2)
    return _scalar(_interp_dose(e, c, i, v))


def cold_dose_at_volume(edges, cum, volume_cc):
    """DC: maximum dose (Gy) to the coldest ``volume_cc``: the smallest D with CV(D) >= volume.

    On a plateau of V (a dose gap) this is the plateau's lower end. DC0 is the minimum
    dose (end of the full-volume plateau). Raises ``ValueError`` if volume > total volume.
    """
    e, c = _checked(edges, cum)
    x = _volumes(c, volume_cc)
    level = c[0] - x  # V(D) at the answer
    # first node with c <= level (c < level when x is 0 or lost in c[0] - x); the
    # crossing is just before it
    n_gt = np.where(level < c[0], np.searchsorted(-c, -level, side="left"),
                    np.searchsorted(-c, -level, side="right"))
    i = np.clip(n_gt - 1, 0, e.size - 2)
    return _scalar(_interp_dose(e, c, i, level))


# --- metric on a DVHData ---------------------------------------------------------------

def evaluate(metric: Metric, dvh: DVHData, prescription_gy: float | None = None) -> float:
    """Value of ``metric`` on ``dvh``, in ``metric.result_unit``.

    Percent volumes are relative to ``dvh.volume_cc`` (the part inside the dose grid);
    ``V95%``/``CV95%`` need ``prescription_gy`` (Gy). Mean/Max/Min come from the DVHData
    statistics (they include the structure's surface). Raises ``RtqaError`` for an empty
    structure, a D/DC volume larger than the structure, a missing prescription or an
    inconsistent DVH.
    """
    where = f"{metric} on {dvh.name!r}"
    vol = float(dvh.volume_cc)
    if not np.isfinite(vol) or vol <= 0:
        raise RtqaError(f"{where}: structure has no volume in the dose grid ({vol} cc)")
    scale = 100.0 if metric.result_unit == "cGy" else 1.0
    if metric.kind in _STATS:
        stat = {"Mean": dvh.mean_gy, "Max": dvh.max_gy, "Min": dvh.min_gy}[metric.kind]
        if stat is None or not np.isfinite(stat):
            raise RtqaError(f"{where}: {metric.kind.lower()} dose is not available ({stat})")
        return float(stat) * scale
    edges = np.asarray(dvh.edges_gy, dtype=float)
    cum = np.asarray(dvh.cum_cc, dtype=float)
    if cum.size == 0 or abs(cum[0] - vol) > 1e-6 * vol:
        raise RtqaError(f"{where}: inconsistent DVH (volume_cc {vol} cc but the cumulative "
                        f"DVH starts at {cum[0] if cum.size else 'nothing'} cc)")
    try:
        if metric.kind in ("D", "DC"):
            x = metric.value * vol / 100.0 if metric.value_unit == "%" else metric.value
            if x > vol * (1 + _REL_TOL):
                outside = (f"; {dvh.outside_cc:g} cc more lie outside the dose grid"
                           if dvh.outside_cc else "")
                raise RtqaError(f"{where}: asks for {x:g} cc but the structure has only "
                                f"{vol:g} cc{outside}; the metric cannot be evaluated")
            fn = dose_at_volume if metric.kind == "D" else cold_dose_at_volume
            return float(fn(edges, cum, min(x, cum[0]))) * scale
        dose = metric.value
        if metric.value_unit == "cGy":
            dose = dose / 100.0
        elif metric.value_unit == "%":
            if prescription_gy is None:
                raise RtqaError(f"{where}: dose given as % of prescription but no "
                                "prescription dose was given")
            rx = float(prescription_gy)
            if not np.isfinite(rx) or rx <= 0:
                raise RtqaError(f"{where}: prescription dose must be > 0 Gy, got {rx}")
            dose = dose * rx / 100.0
        fn = volume_at_least if metric.kind == "V" else volume_below
        cc = float(fn(edges, cum, dose))
    except ValueError as exc:
        raise RtqaError(f"{where}: {exc}") from None
    return cc * 100.0 / vol if metric.result_unit == "%" else cc
