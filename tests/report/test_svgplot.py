"""DVH plots drawn as SVG (rtqa.report.svgplot): labels that do not overlap, axes that
hold every limit, failing marks highlighted, the overview of all structures, and no
matplotlib on the report path (issues 15 and 16)."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest

from report_fixtures import curve, hcc_report
from rtqa.report.svgplot import dvh_svg, nice_ticks, overview_styles, overview_svg, text_width
from rtqa.results import FAIL, PASS, Curve

TAG = 9.0


def _labels(svg: str) -> list[tuple[tuple[float, float, float, float], str]]:
    """(box, text) of every mark label: its numbered tag and text (see _tag/dvh_svg)."""
    out = []
    for m in re.finditer(r'<text x="([\d.]+)" y="([\d.]+)" font-size="8" fill="#\w+"'
                         r'( font-weight="bold")?>([^<]*)</text>', svg):
        x, y, bold, text = float(m[1]), float(m[2]), bool(m[3]), m[4]
        plain = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        x0, y0 = x - TAG - 2, y - TAG * 0.8
        out.append(((x0, y0, x + text_width(plain, 8, bold), y0 + TAG), plain))
    return out


def _tags(svg: str) -> list[tuple[float, float, float, float]]:
    return [(float(cx) - float(r), float(cy) - float(r), float(cx) + float(r),
             float(cy) + float(r))
            for cx, cy, r in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="(4\.5|5\.0|5)"',
                                        svg)]


def _overlap(a, b) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.01 and min(a[3], b[3]) - max(a[1], b[1]) > 0.01


def _crowded(n=8) -> Curve:
    base = curve("Cord", 15.7, 3.0, 2.5, 36.0)
    marks = tuple((33.0 + 0.3 * i, 2.0, f"D{i}cc[Gy] < {20 + i}", FAIL if i % 2 else PASS)
                  for i in range(n))
    objectives = tuple((20.0 + i, 2.0) for i in range(n))
    return Curve(base.name, base.dose_gy, base.volume_pct, base.volume_cc, marks, objectives)


def test_crowded_labels_do_not_overlap_and_every_mark_keeps_its_number():
    svg = str(dvh_svg(_crowded(8), 1))
    labels = _labels(svg)
    boxes = [b for b, _ in labels]
    tags = [t for t in _tags(svg) if not any(b[0] - 0.1 <= t[0] and t[2] <= b[0] + TAG + 0.1
                                             and b[1] - 0.1 <= t[1] for b in boxes)]
    for a, b in itertools.combinations(boxes + tags, 2):
        assert not _overlap(a, b), (a, b)
    for b in boxes + tags:                          # inside the figure
        assert b[0] >= 0 and b[1] >= 0 and b[2] <= 360 and b[3] <= 252
    numbers = re.findall(r'font-weight="bold" text-anchor="middle" fill="[^"]+">(\d+)</text>',
                         svg)
    assert sorted(map(int, numbers)) == list(range(1, 9))
    assert len(labels) >= 4                         # most labels still find room


def test_sample_cord_plot_places_all_its_labels(tmp_path):
    report = hcc_report()
    for i, c in enumerate(report.curves):
        svg = str(dvh_svg(c, i))
        placed = [t for _, t in _labels(svg)]
        assert sorted(placed) == sorted(m[2] for m in c.marks), c.name
        for a, b in itertools.combinations([b for b, _ in _labels(svg)], 2):
            assert not _overlap(a, b)


def test_axis_reaches_every_limit_and_point():
    c = curve("Heart", 386.0, 1.0, 1.0, 11.0, [(2.0, "D15cc < 32", PASS)])
    c = Curve(c.name, c.dose_gy, c.volume_pct, c.volume_cc, c.marks, ((38.0, 2.0),))
    svg = str(dvh_svg(c, 0))
    ticks = [float(t) for t in re.findall(r'text-anchor="middle">([\d.]+)</text>', svg)]
    assert max(ticks) >= 38.0 and 0.0 in ticks
    assert ">100<" in svg                           # volume axis to 100 %


def test_failing_mark_is_red_with_a_drop_line_and_a_red_title():
    c = curve("Duodenum", 61.5, 9.0, 7.0, 30.0, [(19.84, "D5cc < 18 Gy", FAIL)])
    svg = str(dvh_svg(c, 3))
    assert 'stroke="#cf222e" stroke-width="2"' in svg            # the cross
    assert 'stroke-dasharray="3 2"' in svg                        # drop line to the axis
    assert re.search(r'fill="#cf222e" font-weight="bold">Duodenum  \(61.50 cc\)</text>', svg)
    assert 'id="dvh3-plot"' in svg and svg.count(' id="') == 1


def test_nice_ticks():
    for top in (0.3, 1.0, 11.0, 38.0, 52.7, 99.0, 140.0, 1234.0):
        end, ticks = nice_ticks(top)
        step = ticks[1] - ticks[0]
        assert end >= top and ticks[0] == 0 and ticks[-1] == end
        assert 4 <= len(ticks) <= 8
        mantissa = step / 10 ** __import__("math").floor(__import__("math").log10(step))
        assert round(mantissa, 6) in (1, 2, 2.5, 5)


def test_text_width_follows_the_font():
    assert text_width("iiii", 10) < text_width("MMMM", 10)
    assert text_width("D95%[Gy]", 8, bold=True) > text_width("D95%[Gy]", 8)
    assert text_width("肝臓", 10) == 20.0


def test_overview_styles_targets_and_organs_apart():
    kinds = ["organ"] * 12 + ["target"] * 2 + ["other"]
    styles = overview_styles(kinds)
    organs = [(s["color"], s["dash"]) for s in styles[:12]]
    assert len(set(organs)) == 12                   # colours repeat with another dash
    assert all(s["square"] and s["width"] > 1.5 for s in styles[12:14])
    assert not any(s["square"] for s in styles[:12]) and styles[14]["dash"] == "2 2"


def test_overview_draws_and_numbers_every_structure():
    report = hcc_report()
    kinds = ["target" if c.name.startswith(("PTV", "GTV")) else "organ"
             for c in report.overview]
    svg = str(overview_svg(report.overview, kinds))
    styles = overview_styles(kinds)
    for c, st in zip(report.overview, styles):
        assert f'stroke="{st["color"]}" stroke-width="{st["width"]}"' in svg, c.name
    numbers = re.findall(r'text-anchor="middle" fill="[^"]+">(\d+)</text>', svg)
    assert sorted(map(int, numbers)) == list(range(1, len(report.overview) + 1))
    assert svg.count("<rect ") == kinds.count("target")   # square tags for targets


def test_report_path_imports_no_matplotlib():
    code = ("import sys; sys.path.insert(0, 'tests'); from report_fixtures import hcc_report;"
            "from rtqa.report.html import render_html; render_html(hcc_report());"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_marks_shown_by_number_only_are_listed_in_print():
    import dataclasses

    from rtqa.report.html import render_html
    crowded = _crowded(8)
    html = render_html(dataclasses.replace(hcc_report(), curves=(crowded,)))
    placed = len(_labels(str(dvh_svg(crowded, 0))))
    assert 0 < placed < 8
    assert '<ol class="off-plot">' in html                 # printed (the others are not)
    assert html.count('<li value=') == 8
    assert html.count('class="on-plot"') == placed
    plain = render_html(hcc_report())
    assert 'class="off-plot"' not in plain.split("</style>")[1]  # every label on its plot


def _distance_to_polyline(x, y, qx, qy):
    """Distance of each point (x, y) to the polyline through (qx, qy)."""
    import numpy as np
    best = np.full(x.shape, np.inf)
    for ax, ay, bx, by in zip(qx[:-1], qy[:-1], qx[1:], qy[1:]):
        dx, dy = bx - ax, by - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(x - (ax + t * dx), y - (ay + t * dy)))
    return best


@pytest.mark.parametrize("shape", ["dvh", "bend", "steps"])
def test_simplified_curves_stay_within_tolerance_of_every_point(shape):
    import numpy as np

    from rtqa.report.svgplot import _simplify
    t = np.linspace(0, 1, 2001)
    if shape == "dvh":      # a 100 % plateau, a fall and a tail: the usual DVH
        x, y = 34 + 314 * t, 224 - 204 * 0.5 * (1 + np.tanh((0.7 - t) * 25))
    elif shape == "bend":   # a long gentle bend: each point alone looks straight
        x, y = 34 + 314 * t, 120 + 0.4 * np.sin(t * np.pi)
    else:                   # plateaus and repeated points
        x, y = np.repeat(34 + 300 * t[::10], 2), np.repeat(np.round(200 * t[::10], 0), 2)
    sx, sy = _simplify(x, y)
    assert (sx[0], sy[0], sx[-1], sy[-1]) == (x[0], y[0], x[-1], y[-1])
    assert sx.size < x.size / 4
    assert _distance_to_polyline(x, y, sx, sy).max() <= 0.15 + 1e-9
    assert set(zip(sx.tolist(), sy.tolist())) <= set(zip(x.tolist(), y.tolist()))
    if shape == "bend":
        assert sx.size > 2  # the bend (0.4 units) is kept


def test_simplify_short_and_degenerate_input():
    import numpy as np

    from rtqa.report.svgplot import _simplify
    for n in (0, 1, 2):
        x = np.arange(n, dtype=float)
        sx, sy = _simplify(x, x)
        assert sx.tolist() == x.tolist() and sy.tolist() == x.tolist()
    same = np.full(5, 3.0)
    sx, sy = _simplify(same, same)  # one point repeated: its two ends
    assert sx.tolist() == [3.0, 3.0] and sy.tolist() == [3.0, 3.0]
