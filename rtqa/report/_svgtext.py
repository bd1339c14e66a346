"""The text of rtqa's SVG plots drawn by WeasyPrint as whole runs, not letter by letter.

Why: WeasyPrint (61 to 70) draws an SVG ``<text>`` one character at a time: for each
character a Pango layout, a text object and a position of its own (so that per-character
``x``/``y``/``dx``/``dy``/``rotate`` lists work). The PDF report's DVH plots have about 380
text nodes and 2,100 characters, so this was about 0.1 s of the PDF's CPU time (issue 16
item 3) for labels that are placed as whole strings anyway.

What: ``install()`` wraps WeasyPrint's SVG text drawer. A ``<text>`` node of one of our
plots (root ``<svg class="dvh-svg ...">``) with at most one ``x`` and one ``y`` value and
no ``dx``, ``dy``, ``rotate``, ``letter-spacing``, ``textLength`` or ``lengthAdjust`` is handed
to WeasyPrint's own drawer with its text as a string whose iteration yields the whole
string: the drawer's loop over "letters" then lays out and draws the run once. Colour,
weight, size, ``text-anchor``, the baseline and the text's bounding box stay WeasyPrint's
own code. The run is shaped by Pango as a whole, so it gets the font's kerning, which the
letter-by-letter drawing leaves out; otherwise the glyphs and their places are the same
(``tests/report/test_svgtext.py`` compares the word boxes of both drawings).

Safety: only for WeasyPrint versions whose SVG module was read for this (61 to 70: a
module-level ``text`` drawer, listed in ``TAGS`` and compared with it by identity in
``draw_node``, iterating ``node.text`` for its letters); with any other version, or any
other SVG document or node, WeasyPrint's drawer runs unchanged. Installed once per
process; the drawing of SVG documents other than rtqa's plots is not changed.
"""

from __future__ import annotations

__all__ = ["install"]

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
