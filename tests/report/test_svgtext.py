"""rtqa.report._svgtext: WeasyPrint draws the text of rtqa's plots as whole runs (issue 16
item 3), only that text, and the PDF shows the same words at the same places as with
WeasyPrint's letter-by-letter drawing."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest

from report_fixtures import curve
from rtqa.report import _svgtext
from rtqa.report.svgplot import dvh_svg
from rtqa.results import FAIL, PASS

SVG_NS = "{http://www.w3.org/2000/svg}"
WHOLE_RUN = _svgtext._whole_run


class _Element:
    def __init__(self, tag, text):
        self.tag, self.text = tag, text


class _Node:
    """What the drawer reads of a WeasyPrint SVG node."""

    def __init__(self, text, tag="text", **attrib):
        self._etree_node = _Element(SVG_NS + tag, text)
        self.attrib = {k.replace("_", "-"): v for k, v in attrib.items()}

    @property
    def tag(self):
        return self._etree_node.tag.split("}", 1)[-1]

    def get(self, key, default=None):
        return self.attrib.get(key, default)


class _Svg:
    def __init__(self, cls="dvh-svg"):
        self.tree = _Node("", tag="svg", **({"class": cls} if cls else {}))


def _letters_seen(svg, node):
    """The "letters" the wrapped drawer iterates, and the node's text after the call."""
    seen = []
    drawer = _svgtext._wrap(lambda s, n, size: seen.append(list(n._etree_node.text)))
    drawer(svg, node, 9.0)
    return seen[0], node._etree_node.text


@pytest.mark.parametrize("attrib", [{}, {"x": "10.5", "y": "3"}, {"x": "4"},
                                    {"text_anchor": "middle", "font_weight": "bold"},
                                    {"transform": "translate(10 126) rotate(-90)"}])
def test_a_plot_label_is_one_run(attrib):
    node = _Node("Dose (Gy)", **attrib)
    letters, after = _letters_seen(_Svg(), node)
    assert letters == ["Dose (Gy)"] and type(letters[0]) is str
    assert after == "Dose (Gy)" and type(after) is str  # the node is given back as it was


@pytest.mark.parametrize("node,svg", [
    (_Node("Dose", x="1 2 3 4"), _Svg()),          # a position per character
    (_Node("Dose", y="1,2"), _Svg()),
    (_Node("Dose", dx="1"), _Svg()),
    (_Node("Dose", dy="0 1"), _Svg()),
    (_Node("Dose", rotate="10"), _Svg()),
    (_Node("Dose", letter_spacing="2"), _Svg()),
    (_Node("Dose", textLength="40"), _Svg()),
    (_Node("Dose", tag="tspan"), _Svg()),            # only <text> nodes
    (_Node("Dose", tag="textPath"), _Svg()),
    (_Node("Dose"), _Svg("swatch")),                 # only rtqa's plots
    (_Node("Dose"), _Svg(None)),
])
def test_other_text_is_drawn_letter_by_letter(node, svg):
    letters, after = _letters_seen(svg, node)
    assert letters == ["D", "o", "s", "e"] and after == "Dose"


def test_empty_and_single_characters_go_straight_through():
    for text in ("", None, "7"):
        seen = []
        drawer = _svgtext._wrap(lambda s, n, size: seen.append(n._etree_node.text))
        drawer(_Svg(), _Node(text), 9.0)
        assert seen == [text]


def test_an_error_in_the_drawer_still_gives_the_text_back():
    def fails(svg, node, size):
        raise RuntimeError("drawing failed")
    node = _Node("Volume (%)")
    with pytest.raises(RuntimeError):
        _svgtext._wrap(fails)(_Svg(), node, 9.0)
    assert node._etree_node.text == "Volume (%)" and type(node._etree_node.text) is str


# --- unanchored ------------------------------------------------------------------------

def test_anchored_texts_start_where_the_anchor_put_them():
    from rtqa.report._svgtext import unanchored
    from rtqa.report.svgplot import text_width
    svg = ('<svg class="dvh-svg"><g font-size="9" fill="#1f2328">'
           '<text x="100" y="237" text-anchor="middle">10</text>'
           '<text x="29" y="188.3" text-anchor="end">100</text></g>'
           '<text x="191" y="249" font-size="9" text-anchor="middle">Dose (Gy)</text>'
           '<text transform="translate(10 122) rotate(-90)" font-size="9" '
           'text-anchor="middle">Volume (%)</text>'
           '<text x="50" y="20" font-size="6.5" font-weight="bold" text-anchor="middle" '
           'fill="#fff">12</text>'
           '<text x="4" y="15" font-size="11">Cord  (15.70 cc)</text></svg>')
    out = unanchored(svg)
    assert "text-anchor" not in out
    xs = [float(v) for v in re.findall(r'<text x="([-\d.]+)"', out)]
    assert xs[0] == pytest.approx(100 - text_width("10", 9) / 2, abs=0.006)
    assert xs[1] == pytest.approx(29 - text_width("100", 9), abs=0.006)
    assert xs[2] == pytest.approx(191 - text_width("Dose (Gy)", 9) / 2, abs=0.006)
    # the rotated title: its x in its own (rotated) coordinates
    assert xs[3] == pytest.approx(-text_width("Volume (%)", 9) / 2, abs=0.006)
    assert 'transform="translate(10 122) rotate(-90)"' in out
    assert xs[4] == pytest.approx(50 - text_width("12", 6.5, bold=True) / 2, abs=0.006)
    assert '<text x="4" y="15" font-size="11">Cord  (15.70 cc)</text>' in out  # not anchored
    assert out.count("<text") == svg.count("<text") and "fill=\"#fff\">12</text>" in out


def test_texts_whose_width_is_not_known_keep_their_anchor():
    from rtqa.report._svgtext import unanchored
    kept = ['<text x="10" y="5" font-size="9" text-anchor="start">a</text>',
            '<text x="10" y="5" text-anchor="middle">no size</text>',      # size unknown
            '<text x="10" y="5" font-size="1em" text-anchor="middle">em</text>',
            '<text x="10 20" y="5" font-size="9" text-anchor="middle">ab</text>',
            '<text x="10" y="5" font-size="9" dx="2" text-anchor="end">dx</text>',
            '<text x="10" y="5" font-size="9" direction="rtl" text-anchor="end">r</text>',
            '<text x="10" y="5" font-size="9" text-anchor="middle">a<tspan>b</tspan></text>']
    for text in kept:
        svg = f"<svg>{text}</svg>"
        assert unanchored(svg) == svg, text


def test_entities_spaces_and_inherited_weight_are_measured_as_drawn():
    from rtqa.report._svgtext import unanchored
    from rtqa.report.svgplot import text_width
    svg = ('<svg><g font-size="8" font-weight="bold"><g>'
           '<text x="100" y="5" text-anchor="end">a &lt;  b</text></g></g>'
           '<text x="100" y="5" font-size="8" text-anchor="end">a</text></svg>')
    out = unanchored(svg)
    xs = [float(v) for v in re.findall(r'<text x="([-\d.]+)"', out)]
    assert xs[0] == pytest.approx(100 - text_width("a < b", 8, bold=True), abs=0.006)
    assert xs[1] == pytest.approx(100 - text_width("a", 8), abs=0.006)  # the <g> closed
    assert ">a &lt;  b</text>" in out
    assert unanchored(out) == out


def test_no_svg_of_the_reports_keeps_an_anchor():
    from report_fixtures import hcc_report
    from rtqa.report._svgtext import unanchored
    from rtqa.report.html import render_html
    page = render_html(hcc_report(), pdf=True)
    assert page.count('text-anchor="') > 20
    assert 'text-anchor="' not in unanchored(page)


# --- with WeasyPrint -----------------------------------------------------------------

def _weasyprint():
    from rtqa.report.pdf import pdf_available
    problem = pdf_available()
    if problem:
        pytest.skip(problem)
    import weasyprint
    return weasyprint


def test_install_wraps_the_drawer_draw_node_tells_text_by():
    weasyprint = _weasyprint()
    import weasyprint.svg as wsvg
    if int(weasyprint.__version__.split(".")[0]) not in _svgtext.TESTED_MAJOR:
        assert _svgtext.install() is False
        return
    assert _svgtext.install() is True and _svgtext.install() is True  # once
    original = wsvg.text.__wrapped__
    assert not hasattr(original, "__wrapped__")  # not wrapped twice
    # draw_node compares TAGS.get(node.tag) with the module's ``text``: the same object
    for tag in ("text", "tspan", "textPath"):
        assert wsvg.TAGS[tag] is wsvg.text


def _plot_pdf(weasyprint, whole_runs: bool, monkeypatch) -> tuple[bytes, int, str]:
    """A PDF of one DVH plot printed as the report prints it (``whole_runs``) or as
    before (letter by letter, anchored by WeasyPrint), the number of Pango layouts made
    while drawing it, and the plot's SVG."""
    from weasyprint.text import line_break

    from rtqa.report.pdf import _svg_as_images
    import rtqa.report.pdf as pdf_module
    monkeypatch.setattr(_svgtext, "_whole_run",
                        WHOLE_RUN if whole_runs else lambda svg, node: False)
    monkeypatch.setattr(pdf_module, "unanchored",
                        _svgtext.unanchored if whole_runs else lambda svg: svg)
    marks = ((20.0, "D2cc[Gy] < 24 (BED 40.1 Gy)", PASS), (33.0, "Dmax[Gy] < 30", FAIL),
             (10.0, "V10Gy[%] < 35", PASS))
    svg = str(dvh_svg(curve("SpinalCord", 15.7, 12.0, 4.0, 36.0, marks)))
    page = _svg_as_images(f"<html><body>{svg}</body></html>")
    assert _svgtext._installed
    document = weasyprint.HTML(string=page, base_url=None).render()
    layouts = []
    split = line_break.split_first_line
    monkeypatch.setattr(line_break, "split_first_line",
                        lambda *a, **k: layouts.append(1) or split(*a, **k))
    pdf = document.write_pdf()
    monkeypatch.setattr(line_break, "split_first_line", split)
    return pdf, len(layouts), svg


def _words(path) -> list[tuple[str, float, float, float, float]]:
    out = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True,
                         text=True, check=True).stdout
    return [(m[5], float(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in re.finditer(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
        out)]


def test_the_pdf_shows_the_same_words_at_the_same_places(monkeypatch, tmp_path):
    weasyprint = _weasyprint()
    if not _svgtext.install():
        pytest.skip("WeasyPrint version not wrapped")
    runs, n_runs, svg = _plot_pdf(weasyprint, True, monkeypatch)
    letters, n_letters, _ = _plot_pdf(weasyprint, False, monkeypatch)
    # the texts as WeasyPrint reads them: entities decoded, runs of spaces collapsed
    texts = [re.sub(" +", " ", html.unescape(t))
             for t in re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)]
    chars = sum(len(t) for t in texts)
    assert len(texts) > 15 and chars > 100
    # one layout per character and one per node before; two per node now (the drawer
    # measures the node's text, then lays out its one "letter")
    assert n_letters == len(texts) + chars
    assert n_runs == 2 * len(texts)
    assert runs == _plot_pdf(weasyprint, True, monkeypatch)[0]  # deterministic
    assert len(runs) < 0.75 * len(letters)  # no PDF group a label
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is absent")
    (tmp_path / "runs.pdf").write_bytes(runs)
    (tmp_path / "letters.pdf").write_bytes(letters)
    new, old = _words(tmp_path / "runs.pdf"), _words(tmp_path / "letters.pdf")
    assert [w[0] for w in new] == [w[0] for w in old]
    for word in ("Dose", "(Gy)", "Volume", "(%)", "SpinalCord", "Dmax[Gy]", "100"):
        assert word in [w[0] for w in new], word
    # the same places: each word's box within its kerning of where it was (the runs are
    # kerned: "Vo" of "Volume" is ~0.13 em closer, 0.9 pt in this 9-unit
    # text printed at 6.75 pt; the letter-by-letter drawing had no kerning)
    for a, b in zip(new, old):
        assert all(abs(p - q) < 1.0 for p, q in zip(a[1:], b[1:])), (a, b)
    worst = max(max(abs(p - q) for p, q in zip(a[1:], b[1:])) for a, b in zip(new, old))
    assert worst > 0  # the comparison is of two different drawings
