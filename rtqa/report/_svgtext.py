"""The text of rtqa's SVG plots drawn by WeasyPrint as whole runs, not letter by letter.

Why: WeasyPrint (61 to 70) draws an SVG ``<text>`` one character at a time: for each
character a Pango layout, a text object and a position of its own (so that per-character
``x``/``y``/``dx``/``dy``/``rotate`` lists work). The PDF report's DVH plots have about 380
text nodes and 2,100 characters: drawn as runs, the whole PDF check takes ~0.07 s less
CPU (issue 16 item 3), for labels that are placed as whole strings anyway.

What: ``install()`` wraps WeasyPrint's SVG text drawer. A ``<text>`` node of one of our
plots (root ``<svg class="dvh-svg ...">``) with at most one ``x`` and one ``y`` value and
no ``dx``, ``dy``, ``rotate``, ``letter-spacing``, ``textLength`` or ``lengthAdjust`` is handed
to WeasyPrint's own drawer with its text as a string whose iteration yields the whole
string: the drawer's loop over "letters" then lays out and draws the run once. Colour,
weight, size, ``text-anchor``, the baseline and the text's bounding box stay WeasyPrint's
own code. The run is shaped by Pango as a whole, so it gets the font's kerning, which the
letter-by-letter drawing leaves out; otherwise the glyphs and their places are the same
(``tests/report/test_svgtext.py`` compares the word boxes of both drawings).

``unanchored(svg)``: the same SVG with every ``text-anchor="middle"``/``"end"`` text moved
to its start (``x`` less its whole or half width, from the DejaVu Sans advance widths of
``svgplot.text_width``, the widths the labels were placed by). WeasyPrint draws each
anchored text into a PDF group of its own to shift it once measured: 310 groups in the
report's plots, half the bytes of its PDF and ~0.02 s of CPU. The numbers are all
advance widths of equal digits, so tick labels end where they ended; the axis titles may
move by a fraction of their kerning (< 0.3 pt on paper). With a font other than DejaVu
Sans the shift is the estimate's error, a few per cent of a label's width.

Safety: only for WeasyPrint versions whose SVG module was read for this (61 to 70: a
module-level ``text`` drawer, listed in ``TAGS`` and compared with it by identity in
``draw_node``, iterating ``node.text`` for its letters); with any other version, or any
other SVG document or node, WeasyPrint's drawer runs unchanged. Installed once per
process; the drawing of SVG documents other than rtqa's plots is not changed.
"""

from __future__ import annotations

import html
import re

__all__ = ["install", "unanchored"]

#: WeasyPrint major versions whose ``weasyprint/svg/text.py`` and ``svg/__init__.py`` were
#: read for this (the same structure in all of them; 70 is the one tested here).
TESTED_MAJOR = range(61, 71)
#: Attributes that position or stretch single characters: such nodes are drawn unchanged.
_PER_CHAR = ("dx", "dy", "rotate", "letter-spacing", "textLength", "lengthAdjust")
#: The class on the root ``<svg>`` of every plot of ``rtqa.report.svgplot``.
PLOT_CLASS = "dvh-svg"

_installed: bool | None = None


class _Run(str):
    """A string that iterates as one item: itself (as a plain ``str``)."""

    __slots__ = ()

    def __iter__(self):
        yield str(self)


def _one_value(value) -> bool:
    return value is None or len(str(value).replace(",", " ").split()) <= 1


def _whole_run(svg, node) -> bool:
    """True when ``node`` may be drawn as one run: a ``<text>`` of one of our plots
    without per-character positions."""
    if node.tag != "text":
        return False
    root = getattr(svg, "tree", None)
    if root is None or PLOT_CLASS not in str(root.get("class") or "").split():
        return False
    if any(node.get(attr) is not None for attr in _PER_CHAR):
        return False
    return _one_value(node.get("x")) and _one_value(node.get("y"))


def _wrap(original):
    """WeasyPrint's SVG text drawer ``original`` drawing our plots' labels as runs."""

    def text(svg, node, font_size):
        element = getattr(node, "_etree_node", None)
        chars = getattr(element, "text", None)
        if not chars or len(chars) < 2 or not _whole_run(svg, node):
            return original(svg, node, font_size)
        element.text = _Run(chars)
        try:
            return original(svg, node, font_size)
        finally:
            element.text = chars

    text.__wrapped__ = original
    text.__doc__ = original.__doc__
    return text


def install() -> bool:
    """Wrap WeasyPrint's SVG text drawer (once per process). True when the wrapper is
    active, False when WeasyPrint is missing or not a version it was made for."""
    global _installed
    if _installed is not None:
        return _installed
    _installed = False
    try:
        import weasyprint
        import weasyprint.svg as wsvg
        major = int(str(weasyprint.__version__).split(".")[0])
    except (ImportError, OSError, ValueError, AttributeError):
        return False
    original = getattr(wsvg, "text", None)
    tags = getattr(wsvg, "TAGS", None)
    if (major not in TESTED_MAJOR or not callable(original) or not isinstance(tags, dict)
            or tags.get("text") is not original):
        return False
    wrapped = _wrap(original)
    # draw_node tells text nodes by ``TAGS.get(node.tag) == text`` (the module global):
    # both must be the wrapper
    for tag, drawer in list(tags.items()):
        if drawer is original:
            tags[tag] = wrapped
    wsvg.text = wrapped
    _installed = True
    return True


_TOKEN = re.compile(r'<g\b([^>]*)>|</g>|<text\b([^>]*)>([^<]*)</text>')
_ATTR = re.compile(r'\s([\w:-]+)="([^"]*)"')
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _fmt(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def unanchored(svg: str) -> str:
    """``svg`` with its ``text-anchor="middle"`` and ``"end"`` texts (plain text content,
    one ``x`` value, a font size in user units on the node or an enclosing ``<g>``)
    placed by their start instead: the same picture without a PDF group a label."""
    from rtqa.report.svgplot import text_width
    stack: list[tuple[str | None, bool]] = [(None, False)]

    def sub(m: re.Match) -> str:
        if m[0] == "</g>":
            if len(stack) > 1:
                stack.pop()
            return m[0]
        if m[1] is not None:  # <g ...>: font size and weight its texts inherit
            attrs = dict(_ATTR.findall(m[1]))
            size, bold = stack[-1]
            stack.append((attrs.get("font-size", size),
                          attrs["font-weight"] in ("bold", "700") if "font-weight" in attrs
                          else bold))
            return m[0]
        attrs = dict(_ATTR.findall(m[2]))
        anchor = attrs.get("text-anchor")
        size = attrs.get("font-size", stack[-1][0])
        x = attrs.get("x", "0")
        if (anchor not in ("middle", "end") or size is None or not _NUMBER.fullmatch(size)
                or not _NUMBER.fullmatch(x) or attrs.get("direction", "ltr") != "ltr"
                or any(a in attrs for a in _PER_CHAR)):
            return m[0]
        bold = (attrs["font-weight"] in ("bold", "700") if "font-weight" in attrs
                else stack[-1][1])
        chars = re.sub(" +", " ", html.unescape(m[3])).strip(" ")
        width = text_width(chars, float(size), bold)
        start = float(x) - (width / 2 if anchor == "middle" else width)
        tag = m[2].replace(f' text-anchor="{anchor}"', "")
        tag = re.sub(r'(\sx=")[^"]*"', lambda t: f'{t[1]}{_fmt(start)}"', tag) \
            if "x" in attrs else f' x="{_fmt(start)}"' + tag
        return f"<text{tag}>{m[3]}</text>"

    return _TOKEN.sub(sub, svg)
