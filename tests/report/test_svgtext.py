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
    """A PDF of one DVH plot printed as the report prints it, the number of Pango
    layouts made while drawing it, and the plot's SVG."""
    from weasyprint.text import line_break

    from rtqa.report.pdf import _svg_as_images
    monkeypatch.setattr(_svgtext, "_whole_run",
                        WHOLE_RUN if whole_runs else lambda svg, node: False)
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
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is absent")
    (tmp_path / "runs.pdf").write_bytes(runs)
    (tmp_path / "letters.pdf").write_bytes(letters)
    new, old = _words(tmp_path / "runs.pdf"), _words(tmp_path / "letters.pdf")
    assert [w[0] for w in new] == [w[0] for w in old]
    for word in ("Dose", "(Gy)", "Volume", "(%)", "SpinalCord", "Dmax[Gy]", "100"):
        assert word in [w[0] for w in new], word
    # the same places: kerning moves a glyph by a small fraction of a point at most
    for a, b in zip(new, old):
        assert all(abs(p - q) < 0.6 for p, q in zip(a[1:], b[1:])), (a, b)
