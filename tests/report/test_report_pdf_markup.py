"""The page the PDF report prints (``render_html(report, pdf=True)`` and
``rtqa.report.pdf._svg_as_images``): it leaves out only what the print CSS hides, and its
plots are the same SVG documents as the HTML report's, as ``<img>`` (their anchored texts
placed by their start). Fast: no WeasyPrint
(the PDF itself is checked in test_report_pdf.py, with pdftotext)."""

from __future__ import annotations

import base64
import re
from collections import Counter

import pytest

from report_fixtures import curve, hcc_report, hostile_report, passing_report
from rtqa.report.html import render_html
from rtqa.report._svgtext import unanchored
from rtqa.report.pdf import _svg_as_images

SVG = re.compile(r"<svg\b[^>]*>.*?</svg>", re.S)
IMG = re.compile(r'<img( class="([^"]*)")? src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)">')


def _crowded_report():
    """The hcc report with one plot too crowded for every label: some marks are shown
    by number only and listed under the plot in print."""
    import dataclasses

    from rtqa.results import FAIL, PASS, Curve
    base = curve("Cord", 15.7, 3.0, 2.5, 36.0)  # as test_svgplot's crowded plot
    marks = tuple((33.0 + 0.3 * i, 2.0, f"D{i}cc[Gy] < {20 + i}", FAIL if i % 2 else PASS)
                  for i in range(8))
    crowded = Curve(base.name, base.dose_gy, base.volume_pct, base.volume_cc, marks,
                    tuple((20.0 + i, 2.0) for i in range(8)))
    return dataclasses.replace(hcc_report(), curves=(crowded,))


def _without_x(svg: str) -> str:
    """``svg`` without its texts' x positions and anchors."""
    return re.sub(r"<text\b[^>]*>", lambda m: re.sub(r' (x|text-anchor)="[^"]*"', "", m[0]), svg)


REPORTS = {"hcc": hcc_report, "passing": passing_report, "hostile": hostile_report,
           "crowded": _crowded_report}


def _rows(html: str) -> Counter:
    return Counter(re.findall(r'<tr [^>]*data-check="([^"]*)"', html))


def _without_lesion_checks(html: str) -> str:
    """The HTML report without its lesion-check table (hidden in print: the same values
    are in the lesion table above it)."""
    return re.sub(r'<h3 class="lesion-checks">.*?</div>\n', "", html, flags=re.S)


@pytest.mark.parametrize("name", REPORTS)
def test_plots_are_the_same_svg_documents_as_images(name):
    html = render_html(REPORTS[name](), pdf=True)
    svgs = SVG.findall(html)
    page = _svg_as_images(html)
    imgs = IMG.findall(page)
    assert "<svg" not in page and len(imgs) == len(svgs) == page.count("<img")
    assert any('class="dvh-svg"' in s for s in svgs)
    for svg, (_, cls, data) in zip(svgs, imgs):
        decoded = base64.b64decode(data).decode()
        # the same document; the line swatches gain the SVG namespace an <img> needs, and
        # the anchored texts are placed by their start (_svgtext.unanchored: WeasyPrint
        # would draw each into a PDF group of its own; test_svgtext checks the places)
        assert decoded.replace(' xmlns="http://www.w3.org/2000/svg"', "") == \
            unanchored(svg).replace(' xmlns="http://www.w3.org/2000/svg"', "")
        assert "text-anchor" not in decoded
        # ... and nothing else changes: no text, no style, no other element
        assert _without_x(decoded.replace(' xmlns="http://www.w3.org/2000/svg"', "")) == \
            _without_x(svg.replace(' xmlns="http://www.w3.org/2000/svg"', ""))
        assert decoded.startswith('<svg xmlns="http://www.w3.org/2000/svg"') or \
            'xmlns="http://www.w3.org/2000/svg"' in decoded[:decoded.index(">")]
        assert cls == re.search(r'class="([^"]*)"', svg)[1]
    # everything outside the plots is unchanged
    assert SVG.sub("", html) == IMG.sub("", page)


@pytest.mark.parametrize("name", REPORTS)
def test_pdf_page_leaves_out_only_what_print_hides(name):
    report = REPORTS[name]()
    screen, pdf = render_html(report), render_html(report, pdf=True)
    assert render_html(report, pdf=False) == screen
    # every check row of the printed sections, and every plot
    assert _rows(pdf) == _rows(_without_lesion_checks(screen))
    assert pdf.count('<figure class="plot') == screen.count('<figure class="plot')
    assert SVG.findall(pdf) == SVG.findall(screen)
    for hidden in ('id="summary"', "<footer", 'class="lesion-checks"', 'class="prov-plans"',
                   'class="src-more"', 'class="opt-long"', 'class="small rois"'):
        assert hidden not in pdf, hidden
    # the mark lists printed: those of plots with marks shown by number only, and in them
    # exactly the marks not labelled on the plot
    listed = 0
    for fig in re.findall(r'<figure class="plot.*?</figure>', screen, re.S):
        if '<ol class="off-plot">' in fig:
            off = re.findall(r'<li value="\d+">.*?</li>', fig)  # not class="on-plot"
            assert off and all(item in pdf for item in off)
            listed += len(off)
    assert pdf.count("<li value=") == listed
    assert 'class="on-plot"' not in pdf
    if name == "crowded":
        assert listed > 0


@pytest.mark.parametrize("name", REPORTS)
def test_fixed_tables_of_the_pdf_have_a_width_for_every_column(name):
    """The PDF lays the plan, structure and input tables out as fixed tables (issue 16):
    each has a print-only <colgroup> with one <col> per column; the HTML report has none."""
    report = REPORTS[name]()
    screen, pdf = render_html(report), render_html(report, pdf=True)
    css = pdf[pdf.index("<style>"):pdf.index("</style>")]
    fixed = re.search(r"\n(table\.plans, [^{]*)\{ table-layout: fixed; \}", css)[1]
    classes = re.findall(r"table\.([a-z-]+)", fixed)
    assert sorted(classes) == ["inputs", "plans", "structures"]
    seen = 0
    for cls in classes:
        for table in re.findall(rf'<table class="{cls}">.*?</table>', pdf, re.S):
            head = re.search(r"<thead><tr>(.*?)</tr></thead>", table)[1]
            cols = re.search(r"<colgroup>(.*?)</colgroup>", table)[1]
            widths = re.findall(r'<col(?: style="width:([\d.]+)(mm|%)")?>', cols)
            assert len(widths) == head.count("<th")
            assert sum(1 for w in widths if not w[0]) == 1  # the last takes the rest
            seen += 1
        for table in re.findall(rf'<table class="{cls}">.*?</table>', screen, re.S):
            assert "<colgroup>" not in table
    assert seen >= 3  # plans, structures, input files (and the dose files when any)
    assert fixed not in screen  # a browser printing the HTML report: automatic layout


@pytest.mark.parametrize("name", REPORTS)
def test_check_rows_of_the_pdf_grouped_as_the_screen_keeps_them(name):
    """In the PDF a check row with note rows is one <tbody class="keep"> (kept whole on a
    page, as on screen); runs of rows without one share a plain <tbody> (fewer boxes)."""
    report = REPORTS[name]()
    screen, pdf = render_html(report), render_html(report, pdf=True)
    groups = [(m[1], m[2]) for m in re.finditer(r'<tbody( class="keep")?>(.*?)</tbody>', pdf,
                                                re.S)]
    assert all(g.count("<tr") == g.count("</tr>") for _, g in groups)
    kept = [g for keep, g in groups if keep and 'data-check=' in g]
    for body in kept:  # one check row and its note rows
        assert body.count("data-check=") == 1 and "has-note" in body
        assert body.count("<tr") == 1 + body.count("note-row")
    for keep, body in groups:
        if not keep and "data-check=" in body:
            assert "note-row" not in body and "has-note" not in body
    # the same check rows, and as many kept groups as the screen's rows with notes
    screen_kept = re.findall(r'<tbody class="keep">(.*?)</tbody>',
                             _without_lesion_checks(screen), re.S)
    assert len(kept) == sum("has-note" in g for g in screen_kept)
    assert _rows(pdf) == _rows(_without_lesion_checks(screen))
    # the structure's name bold as on screen, by the cell's class
    assert '<td class="b">' in pdf and "td.b { font-weight: 700; }" in pdf
