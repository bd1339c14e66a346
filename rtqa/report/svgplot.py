"""DVH plots of the HTML and PDF reports, drawn directly as inline SVG (no matplotlib).

Why not matplotlib: the plots are simple (one or a few polylines, tick marks, points and
labels) and matplotlib cost about 0.5 s to import plus 70-120 ms a figure, which was more
than the whole check of a plan. Here numpy gives the coordinates and the SVG is written
as text: about 1 ms a plot. It also gives full control over where labels go.

``dvh_svg(curve, index)``: one cumulative DVH (volume % against dose Gy) with its
constraint marks. Each mark is numbered; its achieved point is a dot (a red cross when it
fails, with a dashed drop line to the dose axis), its limit is drawn as the objective (an
open diamond joined to the achieved point by a dotted line). The numbers refer to the list
under the plot; the label text is placed next to its point where it fits (see below), so
that a crowded plot keeps its numbers and loses no information.

``overview_svg(curves, kinds)``: the physical DVHs of all structures on one plot; targets
as thick solid warm-coloured lines with square tags, organs as thinner cool-coloured lines
(dashed patterns when colours repeat) with round tags, other ROIs (external, helpers) as
thin grey lines. Each curve carries its number (the structure table next to the plot is
the legend) and, where it fits, its name.

Label placement: labels are placed one after the other (failing marks first) at the
candidate position of lowest cost around their point: a candidate overlapping a label
already placed, the plot frame or another mark's symbol is refused; the cost counts the
curve points under the label and the distance from the point (a leader line joins a
distant label to its point). When no candidate is free the label is left out and only
its number stays (placed the same way). Text widths are estimated from the advance widths
of DejaVu Sans (the font asked for; the wider fallback fonts make labels shorter, never
longer, than estimated within a few per cent).

Axes: the dose axis runs to a round number at or beyond every curve point, every achieved
point and every limit; the volume axis from 0 to 105 %. Everything is deterministic, text
is escaped (``markupsafe.escape``; strings from the input files also pass through
``clean``), and the root element carries the only id (``dvh<index>-plot``).
"""

from __future__ import annotations

import math

import numpy as np
from markupsafe import Markup, escape

from rtqa.report.formatting import clean, fmt_number, fmt_value
from rtqa.results import FAIL, NOT_EVALUATED, PASS, WARN, Curve

__all__ = ["dvh_svg", "dvh_plot", "overview_svg", "text_width", "nice_ticks", "STATUS_COLORS",
           "CURVE_COLOR", "overview_styles"]

STATUS_COLORS = {PASS: "#1a7f37", FAIL: "#cf222e", WARN: "#b35900",
                 NOT_EVALUATED: "#8250df", "ERROR": "#a0126b"}
CURVE_COLOR = "#1f4e79"
_GRID = "#d0d7de"
_AXIS = "#57606a"
_FONT = "DejaVu Sans, Verdana, Arial, sans-serif"

# advance widths of DejaVu Sans (regular, bold) for ASCII 32..126, in 1/1000 em
_ADV = (
    [318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636,
     636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698,
     770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695, 635, 611, 732,
     684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635,
     634, 278, 278, 579, 278, 974, 634, 612, 635, 635, 411, 521, 392, 634, 592, 818, 592, 592,
     525, 636, 337, 636, 838],
    [348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696,
     696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580, 1000, 774, 762, 734,
     830, 683, 683, 821, 837, 372, 372, 775, 637, 995, 837, 850, 733, 850, 770, 720, 682, 812,
     774, 1103, 771, 724, 725, 457, 365, 457, 838, 500, 500, 675, 716, 593, 716, 678, 435, 716,
     712, 343, 343, 665, 343, 1042, 712, 687, 716, 716, 493, 595, 478, 712, 652, 924, 645, 652,
     582, 712, 365, 712, 838])
_WIDE = {"—": 1000, "…": 1000, "≤": 838, "≥": 838, "α": 687, "β": 716, "–": 500, "·": 380,
         "µ": 716, "Å": 774}


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Estimated width of ``text`` at font size ``size`` (user units) in DejaVu Sans."""
    table = _ADV[1 if bold else 0]
    total = 0
    for ch in text:
        o = ord(ch)
        if 32 <= o < 127:
            total += table[o - 32]
        elif ch in _WIDE:
            total += _WIDE[ch]
        elif o >= 0x1100 and (0x2E80 <= o <= 0xA4CF or 0xAC00 <= o <= 0xD7A3
                              or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFF60
                              or 0x1100 <= o <= 0x115F):
            total += 1000
        else:
            total += 800
    return total * size / 1000.0


def nice_ticks(top: float, target: int = 6) -> tuple[float, list[float]]:
    """(axis end, ticks): ticks at a step of 1, 2, 2.5 or 5 x 10^k from 0 to the first tick
    at or beyond ``top`` (about ``target`` ticks)."""
    top = float(top) if top and math.isfinite(top) and top > 0 else 1.0
    raw = top / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return n * step, [i * step for i in range(n + 1)]


def _tick_text(v: float) -> str:
    return fmt_number(round(v, 6))


def _num(v: float) -> str:
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _bold(on: bool) -> str:
    return ' font-weight="bold"' if on else ""


def _finite(xs, ys) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray([np.nan if v is None else v for v in xs], dtype=float)
    y = np.asarray([np.nan if v is None else v for v in ys], dtype=float)
    n = min(x.size, y.size)
    x, y = x[:n], y[:n]
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _simplify(px: np.ndarray, py: np.ndarray, tol: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """The polyline through (px, py) with the points it can do without: repeated points,
    then (Ramer-Douglas-Peucker) every point within ``tol`` user units of the line through
    the points kept around it. Every point dropped stays within ``tol`` of the line drawn
    (a tenth of a pixel on screen at 1 unit a pixel), so a long gentle bend keeps its
    shape; a DVH keeps about a quarter of its points. Fewer points are a smaller page and
    less to parse: WeasyPrint reads SVG path data point by point in Python (issue 16)."""
    if px.size <= 2:
        return px, py
    keep = np.ones(px.size, dtype=bool)
    same = (np.abs(np.diff(px)) < 0.05) & (np.abs(np.diff(py)) < 0.05)
    keep[1:][same] = False
    keep[-1] = True
    px, py = px[keep], py[keep]
    if px.size <= 2:
        return px, py
    keep = np.zeros(px.size, dtype=bool)
    keep[0] = keep[-1] = True
    spans = [(0, px.size - 1)]
    while spans:
        a, b = spans.pop()
        if b - a < 2:
            continue
        ax, ay = px[a], py[a]
        dx, dy = px[b] - ax, py[b] - ay
        cx, cy = px[a + 1:b], py[a + 1:b]
        seg = math.hypot(dx, dy)
        if seg > 0:
            dist = np.abs(dx * (cy - ay) - dy * (cx - ax)) / seg
        else:
            dist = np.hypot(cx - ax, cy - ay)
        i = int(np.argmax(dist))
        if dist[i] > tol:
            m = a + 1 + i
            keep[m] = True
            spans.append((m, b))
            spans.append((a, m))
    return px[keep], py[keep]


def _path(px: np.ndarray, py: np.ndarray) -> str:
    parts = [f"{x:.1f} {y:.1f}" for x, y in zip(px.tolist(), py.tolist())]
    return "M" + " L".join(parts)


class _Frame:
    """The plot area of one figure in SVG user units, and the data -> SVG mapping."""

    def __init__(self, width, height, left, right, top, bottom, xmax, ymax=105.0):
        self.w, self.h = width, height
        self.x0, self.x1 = left, width - right
        self.y0, self.y1 = top, height - bottom
        self.xmax, self.ymax = xmax, ymax

    def x(self, d):
        return self.x0 + (np.asarray(d, dtype=float) / self.xmax) * (self.x1 - self.x0)

    def y(self, v):
        return self.y1 - (np.asarray(v, dtype=float) / self.ymax) * (self.y1 - self.y0)


def _axes(out: list[str], f: _Frame, xticks, yticks, size: float,
          xlabel="Dose (Gy)", ylabel="Volume (%)") -> None:
    grid = []
    for t in xticks:
        x = float(f.x(t))
        grid.append(f"M{x:.1f} {f.y0:.1f}V{f.y1:.1f}")
    for t in yticks:
        y = float(f.y(t))
        grid.append(f"M{f.x0:.1f} {y:.1f}H{f.x1:.1f}")
    out.append(f'<path d="{"".join(grid)}" stroke="{_GRID}" stroke-width="0.5" fill="none"/>')
    out.append(f'<path d="M{f.x0:.1f} {f.y0:.1f}V{f.y1:.1f}H{f.x1:.1f}" stroke="{_AXIS}" '
               'stroke-width="0.8" fill="none"/>')
    ticks = "".join(f"M{float(f.x(t)):.1f} {f.y1:.1f}v3" for t in xticks)
    ticks += "".join(f"M{f.x0:.1f} {float(f.y(t)):.1f}h-3" for t in yticks)
    out.append(f'<path d="{ticks}" stroke="{_AXIS}" stroke-width="0.8" fill="none"/>')
    labels = []
    for t in xticks:
        labels.append(f'<text x="{_num(float(f.x(t)))}" y="{_num(f.y1 + 4 + size)}" '
                      f'text-anchor="middle">{_tick_text(t)}</text>')
    for t in yticks:
        labels.append(f'<text x="{_num(f.x0 - 5)}" y="{_num(float(f.y(t)) + size * 0.35)}" '
                      f'text-anchor="end">{_tick_text(t)}</text>')
    out.append(f'<g font-size="{_num(size)}" fill="#1f2328">' + "".join(labels) + "</g>")
    mid_x = (f.x0 + f.x1) / 2
    mid_y = (f.y0 + f.y1) / 2
    out.append(f'<text x="{_num(mid_x)}" y="{_num(f.h - 3)}" font-size="{_num(size)}" '
               f'text-anchor="middle" fill="#1f2328">{xlabel}</text>')
    out.append(f'<text transform="translate({_num(size + 1)} {_num(mid_y)}) rotate(-90)" '
               f'font-size="{_num(size)}" text-anchor="middle" fill="#1f2328">{ylabel}</text>')


def _fit_title(text: str, width: float, size: float, minimum: float) -> tuple[str, float]:
    """The title at the largest size from ``size`` down to ``minimum`` that fits
    ``width``; cut with an ellipsis when even the smallest does not fit."""
    s = size
    while s > minimum and text_width(text, s) > width:
        s -= 0.5
    if text_width(text, s) <= width:
        return text, s
    while text and text_width(text + "…", s) > width:
        text = text[:-1]
    return text.rstrip() + "…", s


# --- label placement ----------------------------------------------------------------

class _Placer:
    """Greedy placement of rectangular labels inside a frame without overlaps."""

    def __init__(self, bounds, curve_pts: np.ndarray):
        self.bounds = bounds             # (x0, y0, x1, y1) labels must stay inside
        self.placed: list[tuple] = []    # boxes of labels placed
        self.symbols: list[tuple] = []   # boxes of point symbols
        self.pts = curve_pts             # (n, 2) curve samples in SVG units
        self._sat = None

    @staticmethod
    def _overlap(a, b) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    def _curve_hits(self, box) -> int:
        """Curve samples inside ``box``, from a summed-area table of the samples on a
        1-unit raster (four look-ups a box)."""
        if self.pts.size == 0:
            return 0
        if self._sat is None:
            w = int(math.ceil(self.bounds[2])) + 2
            h = int(math.ceil(self.bounds[3])) + 2
            ix = np.clip(np.floor(self.pts[:, 0]).astype(int), 0, w - 1)
            iy = np.clip(np.floor(self.pts[:, 1]).astype(int), 0, h - 1)
            grid = np.zeros((h + 1, w + 1), dtype=np.int32)
            np.add.at(grid, (iy + 1, ix + 1), 1)
            np.cumsum(grid, axis=0, out=grid)   # in place: counts fit in int32
            np.cumsum(grid, axis=1, out=grid)
            self._sat = grid
        sat = self._sat
        hmax, wmax = sat.shape[0] - 1, sat.shape[1] - 1
        x0 = min(max(int(math.floor(box[0])), 0), wmax)
        x1 = min(max(int(math.floor(box[2])) + 1, 0), wmax)
        y0 = min(max(int(math.floor(box[1])), 0), hmax)
        y1 = min(max(int(math.floor(box[3])) + 1, 0), hmax)
        return int(sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0])

    def place(self, px, py, w, h, own=None, steps=(5, 12, 20, 30, 42, 56)):
        """The best box (x0, y0, x1, y1) of size w x h near (px, py), or None."""
        b = self.bounds
        best, best_cost = None, math.inf
        for k, d in enumerate(steps):
            for dx, dy in ((1, -1), (1, 1), (-1, -1), (-1, 1), (0, -1), (0, 1), (1, 0),
                           (-1, 0)):
                x = px + dx * d * (0.8 if dy else 1.0)
                y = py + dy * d * (0.8 if dx else 1.0)
                x0 = x if dx > 0 else x - w if dx < 0 else x - w / 2
                y0 = y if dy > 0 else y - h if dy < 0 else y - h / 2
                box = (x0, y0, x0 + w, y0 + h)
                if box[0] < b[0] or box[1] < b[1] or box[2] > b[2] or box[3] > b[3]:
                    continue
                if any(self._overlap(box, q) for q in self.placed):
                    continue
                sym = sum(self._overlap(box, s) for s in self.symbols if s is not own)
                if sym > 0:
                    continue
                cost = 6.0 * self._curve_hits(box) + d + (0.5 if dx < 0 else 0)
                if cost < best_cost:
                    best, best_cost = box, cost
            if best is not None and best_cost < steps[min(k + 1, len(steps) - 1)]:
                break  # nothing further out can be cheaper
        if best is not None:
            self.placed.append(best)
        return best

    def anywhere(self, px, py, w, h):
        """The free box nearest to (px, py) on a 4-unit raster of the whole frame (a
        leader line joins it to its point), or None when the frame is full."""
        b = self.bounds
        xs = np.arange(b[0], b[2] - w + 1e-9, 4.0)
        ys = np.arange(b[1], b[3] - h + 1e-9, 4.0)
        if xs.size == 0 or ys.size == 0:
            return None
        gx, gy = np.meshgrid(xs, ys)
        x0, y0 = gx.ravel(), gy.ravel()
        free = np.ones(x0.size, dtype=bool)
        for q in self.placed + self.symbols:
            free &= ~((np.minimum(x0 + w, q[2]) - np.maximum(x0, q[0]) > 0)
                      & (np.minimum(y0 + h, q[3]) - np.maximum(y0, q[1]) > 0))
        if not free.any():
            return None
        cx, cy = x0 + w / 2, y0 + h / 2
        dist = np.where(free, np.hypot(cx - px, cy - py), np.inf)
        i = int(np.argmin(dist))
        box = (float(x0[i]), float(y0[i]), float(x0[i] + w), float(y0[i] + h))
        self.placed.append(box)
        return box

    def force(self, px, py, w, h):
        """A box next to (px, py) even when it overlaps (the least overlap)."""
        b = self.bounds
        best, best_cost = None, math.inf
        for d in (5, 12, 20):
            for dx, dy in ((1, -1), (1, 1), (-1, -1), (-1, 1)):
                x0 = px + dx * d if dx > 0 else px - d - w
                y0 = py + dy * d if dy > 0 else py - d - h
                x0 = min(max(x0, b[0]), b[2] - w)
                y0 = min(max(y0, b[1]), b[3] - h)
                box = (x0, y0, x0 + w, y0 + h)
                cost = sum(self._overlap(box, q) for q in self.placed) + d
                if cost < best_cost:
                    best, best_cost = box, cost
        self.placed.append(best)
        return best


def _leader(out, px, py, box, color):
    """A thin line from a point to the nearest edge of its label when it is far."""
    cx = min(max(px, box[0]), box[2])
    cy = min(max(py, box[1]), box[3])
    if math.hypot(cx - px, cy - py) > 7:
        out.append(f'<path d="M{px:.1f} {py:.1f}L{cx:.1f} {cy:.1f}" stroke="{color}" '
                   'stroke-width="0.5" fill="none"/>')


def _tag(out, box, number: str, color: str, size: float, filled: bool, square: bool):
    """A numbered tag (circle or square) filling ``box``'s left square."""
    r = (box[3] - box[1]) / 2
    cx, cy = box[0] + r, box[1] + r
    fill, ink = (color, "#fff") if filled else ("#fff", color)
    if square:
        out.append(f'<rect x="{cx - r:.1f}" y="{cy - r:.1f}" width="{2 * r:.1f}" '
                   f'height="{2 * r:.1f}" rx="1" fill="{fill}" stroke="{color}" '
                   'stroke-width="0.8"/>')
    else:
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{fill}" '
                   f'stroke="{color}" stroke-width="0.8"/>')
    out.append(f'<text x="{cx:.1f}" y="{cy + size * 0.36:.1f}" font-size="{_num(size)}" '
               f'font-weight="bold" text-anchor="middle" fill="{ink}">{number}</text>')


# --- one DVH with its constraint marks ----------------------------------------------

_W, _H = 360.0, 252.0


def _curve_samples(px, py, step=3.0) -> np.ndarray:
    """Points along the drawn curve at most ``step`` units apart (for label costs)."""
    if px.size == 0:
        return np.zeros((0, 2))
    if px.size == 1:
        return np.stack([px, py], axis=1)
    seg = np.hypot(np.diff(px), np.diff(py))
    n = np.maximum(1, np.ceil(seg / step)).astype(int)
    i = np.repeat(np.arange(seg.size), n)
    start = np.cumsum(n) - n
    t = (np.arange(int(n.sum())) - start[i]) / n[i]
    xs = px[i] + t * (px[i + 1] - px[i])
    ys = py[i] + t * (py[i + 1] - py[i])
    return np.stack([np.append(xs, px[-1]), np.append(ys, py[-1])], axis=1)


def _marks_of(curve: Curve):
    """[(number, dose, vol, label, status, objective | None)] of the drawable marks,
    numbered in the order of ``curve.marks`` (the list under the plot)."""
    objectives = list(curve.objectives or ()) + [None] * len(curve.marks)
    out = []
    for k, (mark, goal) in enumerate(zip(curve.marks, objectives), 1):
        dose, vol, label, status = mark
        if dose is None or vol is None or not (math.isfinite(dose) and math.isfinite(vol)):
            continue
        if goal is not None and not all(v is not None and math.isfinite(v) for v in goal):
            goal = None
        out.append((k, float(dose), float(vol), clean(label), str(status), goal))
    return out


def dvh_svg(curve: Curve, index: int = 0) -> Markup:
    """An inline ``<svg>`` element of one cumulative DVH with its constraint marks.

    ``index`` makes the root id unique on the page (``dvh<index>-plot``). The numbers
    of the marks are their positions in ``curve.marks`` (1-based)."""
    return dvh_plot(curve, index)[0]


def dvh_plot(curve: Curve, index: int = 0) -> tuple[Markup, frozenset[int]]:
    """``dvh_svg`` and the numbers of the marks whose label text is on the plot (the
    others show their number only: the report lists them under the plot)."""
    size = 9.0
    labelled: set[int] = set()
    dose, vol = _finite(curve.dose_gy, curve.volume_pct)
    marks = _marks_of(curve)
    top = max([float(dose.max()) if dose.size else 0.0] + [m[1] for m in marks]
              + [m[5][0] for m in marks if m[5]] + [1.0])
    xmax, xticks = nice_ticks(top * 1.02)
    f = _Frame(_W, _H, left=34, right=12, top=20, bottom=28, xmax=xmax)
    title = clean(curve.name)
    vol_cc = fmt_value(curve.volume_cc, "cc")
    if vol_cc not in ("—", "n/a"):
        title = f"{title}  ({vol_cc})"
    shown, tsize = _fit_title(title, _W - 8, 11.0, 8.0)
    failing = any(m[4] == FAIL for m in marks)
    label = escape(f"Cumulative DVH of {clean(curve.name)}")
    out = [f'<svg class="dvh-svg" role="img" aria-label="{label}" id="dvh{index}-plot" '
           f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(_W)} {_num(_H)}" '
           f'font-family="{_FONT}">',
           f"<title>{escape(title)}</title>",
           f'<text x="4" y="{_num(4 + tsize)}" font-size="{_num(tsize)}" '
           f'fill="{STATUS_COLORS[FAIL] if failing else "#1f2328"}"{_bold(failing)}>'
           f'{escape(shown)}</text>']
    _axes(out, f, xticks, [0, 20, 40, 60, 80, 100], size)
    px, py = f.x(dose), f.y(vol)
    if dose.size:
        sx, sy = _simplify(px, py)
        out.append(f'<path d="{_path(sx, sy)}" stroke="{CURVE_COLOR}" stroke-width="1.4" '
                   'fill="none" stroke-linejoin="round"/>')
    else:
        out.append(f'<text x="{_num((f.x0 + f.x1) / 2)}" y="{_num((f.y0 + f.y1) / 2)}" '
                   f'font-size="10" text-anchor="middle" fill="#8250df">no DVH data</text>')
    # marks: drop lines and objectives under the points, points, then labels
    symbols: list[tuple] = []
    lines = [_curve_samples(px, py)]
    pts = []
    for k, d, v, text, status, goal in marks:
        color = STATUS_COLORS.get(status, "#555555")
        x, y = float(f.x(d)), float(f.y(v))
        pts.append((k, x, y, text, status, color))
        symbols.append((x - 4, y - 4, x + 4, y + 4))
        if status == FAIL:
            lines.append(_curve_samples(np.array([x, x]), np.array([f.y1, y])))
            out.append(f'<path d="M{x:.1f} {f.y1:.1f}V{y:.1f}" stroke="{color}" '
                       'stroke-width="0.8" stroke-dasharray="3 2" fill="none"/>')
        if goal is not None:
            gx, gy = float(f.x(goal[0])), float(f.y(goal[1]))
            symbols.append((gx - 3.5, gy - 3.5, gx + 3.5, gy + 3.5))
            lines.append(_curve_samples(np.array([gx, x]), np.array([gy, y])))
            out.append(f'<path d="M{gx:.1f} {gy:.1f}L{x:.1f} {y:.1f}" stroke="{color}" '
                       'stroke-width="0.7" stroke-dasharray="1 1.5" fill="none"/>')
            out.append(f'<path d="M{gx:.1f} {gy - 3.5:.1f}l3.5 3.5l-3.5 3.5l-3.5 -3.5z" '
                       f'fill="#fff" stroke="{color}" stroke-width="1"/>')
    placer = _Placer((f.x0 + 1, 1.0, _W - 1, f.y1 - 1), np.concatenate(lines))
    placer.symbols = symbols
    for k, x, y, text, status, color in pts:
        if status == FAIL:
            out.append(f'<path d="M{x - 3.5:.1f} {y - 3.5:.1f}l7 7m0 -7l-7 7" stroke="#7a0010" '
                       f'stroke-width="3.2" fill="none"/><path d="M{x - 3.5:.1f} {y - 3.5:.1f}'
                       f'l7 7m0 -7l-7 7" stroke="{color}" stroke-width="2" fill="none"/>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.8" fill="{color}" '
                       'stroke="#fff" stroke-width="0.6"/>')
    order = sorted(range(len(pts)), key=lambda i: (pts[i][4] != FAIL, pts[i][1]))
    lsize, tag = 8.0, 9.0
    for i in order:
        k, x, y, text, status, color = pts[i]
        bold = status == FAIL
        w = tag + 2 + text_width(text, lsize, bold)
        box = placer.place(x, y, w, tag)
        if box is not None:
            labelled.add(k)
            _leader(out, x, y, box, color)
            _tag(out, box, str(k), color, 6.5, filled=bold, square=False)
            out.append(f'<text x="{box[0] + tag + 2:.1f}" y="{box[1] + tag * 0.8:.1f}" '
                       f'font-size="{_num(lsize)}" fill="{color}"{_bold(bold)}>'
                       f'{escape(text)}</text>')
            continue
        box = placer.place(x, y, tag, tag, None, steps=(4, 9, 15, 22)) \
            or placer.anywhere(x, y, tag, tag) or placer.force(x, y, tag, tag)
        _leader(out, x, y, box, color)
        _tag(out, box, str(k), color, 6.5, filled=bold, square=False)
    out.append("</svg>")
    return Markup("".join(out)), frozenset(labelled)


# --- overview: all structures -------------------------------------------------------

_TARGET_COLORS = ("#cf222e", "#e36209", "#bf3989", "#9a6700", "#8a1c1c", "#d4581e")
_ORGAN_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#1f4e79",
                 "#6f7f00", "#006d5b", "#6639ba", "#0a3069")
_DASHES = ("", "5 2", "1.5 1.5", "6 2 1.5 2")
_OTHER = "#8c959f"


def overview_styles(kinds) -> list[dict]:
    """Per curve: colour, dash pattern, line width and tag shape, from its kind
    ("target", "organ" or "other")."""
    styles, nt, no = [], 0, 0
    for kind in kinds:
        if kind == "target":
            c = _TARGET_COLORS[nt % len(_TARGET_COLORS)]
            dash = _DASHES[(nt // len(_TARGET_COLORS)) % len(_DASHES)]
            styles.append({"color": c, "dash": dash, "width": 1.8, "square": True})
            nt += 1
        elif kind == "organ":
            c = _ORGAN_COLORS[no % len(_ORGAN_COLORS)]
            dash = _DASHES[(no // len(_ORGAN_COLORS)) % len(_DASHES)]
            styles.append({"color": c, "dash": dash, "width": 1.1, "square": False})
            no += 1
        else:
            styles.append({"color": _OTHER, "dash": "2 2", "width": 0.9, "square": False})
    return styles


_OW, _OH = 380.0, 300.0


def overview_svg(curves, kinds, index: int = 0) -> Markup:
    """One plot of the physical cumulative DVHs of ``curves`` (structures), styled by
    ``kinds`` ("target", "organ", "other"), each numbered 1..n in the given order and
    named on the plot where its name fits."""
    size = 9.0
    data = [_finite(c.dose_gy, c.volume_pct) for c in curves]
    top = max([float(d.max()) for d, _ in data if d.size] + [1.0])
    xmax, xticks = nice_ticks(top * 1.02, target=8)
    f = _Frame(_OW, _OH, left=34, right=12, top=8, bottom=28, xmax=xmax)
    styles = overview_styles(kinds)
    out = [f'<svg class="dvh-svg overview-svg" role="img" '
           f'aria-label="Cumulative DVHs of all {len(curves)} structures (physical dose)" '
           f'id="overview{index}-plot" xmlns="http://www.w3.org/2000/svg" '
           f'viewBox="0 0 {_num(_OW)} {_num(_OH)}" font-family="{_FONT}">',
           "<title>Cumulative DVHs of all structures (physical dose)</title>"]
    _axes(out, f, xticks, [0, 20, 40, 60, 80, 100], size)
    drawn = []
    allpts = []
    # organs and others first, targets on top
    order = sorted(range(len(curves)), key=lambda i: kinds[i] == "target")
    for i in order:
        d, v = data[i]
        if not d.size:
            continue
        px, py = f.x(d), f.y(v)
        sx, sy = _simplify(px, py)
        st = styles[i]
        dash = f' stroke-dasharray="{st["dash"]}"' if st["dash"] else ""
        out.append(f'<path d="{_path(sx, sy)}" stroke="{st["color"]}" '
                   f'stroke-width="{st["width"]}" fill="none" stroke-linejoin="round"{dash}/>')
        samples = _curve_samples(px, py, step=4.0)
        drawn.append((i, samples))
        allpts.append(samples)
    pts = np.concatenate(allpts) if allpts else np.zeros((0, 2))
    placer = _Placer((f.x0 + 1, f.y0, f.x1, f.y1 - 1), pts)
    tag, lsize = 10.0, 8.0
    # tags: targets first, then by volume at mid-dose so that curves far apart get theirs
    for i, samples in sorted(drawn, key=lambda t: (kinds[t[0]] != "target", t[0])):
        st = styles[i]
        name = clean(curves[i].name)
        # candidate anchors along the curve where it is between 15 % and 90 % volume,
        # from its shoulder down; then anywhere on it
        vols = f.y1 - samples[:, 1]
        span = (vols > 0.15 * (f.y1 - f.y0)) & (vols < 0.9 * (f.y1 - f.y0))
        cand = samples[span] if span.any() else samples
        picks = cand[np.unique(np.linspace(0, len(cand) - 1, min(len(cand), 9)).astype(int))]
        w = tag + 2 + text_width(name, lsize)
        box, anchor = None, picks[len(picks) // 2]
        for x, y in picks:
            box = placer.place(float(x), float(y), w, tag, None, steps=(3, 8, 14))
            if box is not None:
                anchor = (x, y)
                break
        named = box is not None
        if box is None:
            for x, y in picks:
                box = placer.place(float(x), float(y), tag, tag, None, steps=(2, 6, 11))
                if box is not None:
                    anchor = (x, y)
                    break
        if box is None:
            box = placer.anywhere(float(anchor[0]), float(anchor[1]), tag, tag) \
                or placer.force(float(anchor[0]), float(anchor[1]), tag, tag)
        _leader(out, float(anchor[0]), float(anchor[1]), box, st["color"])
        _tag(out, box, str(i + 1), st["color"], 6.5, filled=st["square"], square=st["square"])
        if named:
            out.append(f'<text x="{box[0] + tag + 2:.1f}" y="{box[1] + tag * 0.8:.1f}" '
                       f'font-size="{_num(lsize)}" fill="{st["color"]}">{escape(name)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
