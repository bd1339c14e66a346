"""Protocol rules that are not dose limits (category "protocol" of the report).

* Oligoprogression: at most ``max_lesions`` lesions in at most ``max_organs`` organs
  (``rtqa.checks.bed.oligoprogression_checks``; each GTV counts as a lesion).
* PTV margin: the PTV's distance around the lesion's CTV (ITV) within the protocol's
  bounds (``rtqa.checks.integrity.ptv_margin``), for every lesion with both; a lesion
  with a PTV and GTV(s) but no CTV: PTV - GTV at least the lower bound (the upper bound
  cannot be judged from the GTV).

Rows carry ``dose_view`` none (counts and lengths); a count that cannot be made carries a
``reason`` code.
"""

from __future__ import annotations

from rtqa.checks.bed import oligoprogression_checks
from rtqa.checks.context import Evaluation
from rtqa.checks.integrity import ptv_margin

__all__ = ["evaluate"]


def _ctv_ptv(lesion):
    inner = next((t.structure for cls in ("CTV", "ITV") for t in lesion.of_class(cls)), None)
    ptv = next((t.structure for t in lesion.of_class("PTV")), None)
    return inner, ptv


def evaluate(ctx) -> Evaluation:
    """The protocol family on a plan context (``rtqa.checks.context``)."""
    protocol = ctx.protocol
    rows = list(oligoprogression_checks(ctx.lesions, protocol.oligoprogression))
    m = protocol.ptv_margin
    if m:
        for les in ctx.lesions:
            ctv, ptv = _ctv_ptv(les)
            if ctv is not None and ptv is not None:
                rows.append(ptv_margin(ctv, ptv, m.min_mm, m.max_mm, m.source))
            elif ptv is not None and les.of_class("GTV"):  # no CTV: lower bound from GTV
                rows.append(ptv_margin([t.structure for t in les.of_class("GTV")], ptv,
                                       m.min_mm, m.max_mm, m.source, inner_is_gtv=True))
    return Evaluation(tuple(rows))
