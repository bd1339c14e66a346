"""The PDF report of ``rtqa check --pdf``: the HTML report printed to A4 by WeasyPrint.

Why WeasyPrint: it is a maintained HTML/CSS-to-PDF renderer (BSD licence, pure Python on
top of Pango) that implements CSS Paged Media, so the one HTML report is also the printed
report: the same sections, tables and inline SVG DVH plots, with the patient, the plan and
"page N of M" on every page through ``@page`` margin boxes (see ``report.html.j2``).
It is an optional extra (``pip install 'rtqa[pdf]'``); it needs the Pango library of the
system (Debian: ``libpango-1.0-0 libpangoft2-1.0-0``; ``libharfbuzz-subset0`` too, for speed:
see below). Without it ``render_pdf`` raises
``RtqaError`` saying what to install, before anything is computed by the CLI
(``pdf_available``).

Speed (issue 16): WeasyPrint prints ``render_html(report, pdf=True)``, the page without
the parts the print CSS hides, with the inline SVG plots turned into ``<img>`` of the
same SVG (``_svg_as_images``); the print CSS lays the overview and the tables whose first
row sets their widths out as fixed tables. Where the rest of the time goes (WeasyPrint 70):
its import (~0.6-0.8 s: cffi parses the Pango declarations), layout of the check tables,
and the SVG text, which WeasyPrint lays out and draws letter by letter (for our plots'
labels: as whole runs, ``rtqa.report._svgtext``; ~0.1 s of drawing left). Fonts are
subsetted by HarfBuzz when the system has ``libharfbuzz-subset0`` (milliseconds); without
it WeasyPrint falls back to fontTools, ~1 s for the four DejaVu faces.

Deterministic: the PDF metadata carry no creation date other than the report's own
timestamp, so two renders of the same report are identical.
"""

from __future__ import annotations

import base64
import re
import sys

from rtqa.errors import RtqaError
from rtqa.report._svgtext import install, unanchored
from rtqa.results import Report

__all__ = ["render_pdf", "pdf_available", "INSTALL_HINT"]

INSTALL_HINT = ("PDF output needs WeasyPrint: pip install 'rtqa[pdf]' (and the Pango "
                "library, Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)")


def pdf_available() -> str | None:
    """None when a PDF can be written, else the reason (one line)."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the Pango library is missing
        return f"{INSTALL_HINT} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return None


def render_pdf(report: Report) -> bytes:
    """The PDF (A4) of the HTML report of ``report``.

    Raises ``RtqaError`` when WeasyPrint cannot be used and ``ValueError`` when the report
    is inconsistent (``rtqa.report.json_report.check_report``)."""
    from rtqa.report.html import render_html
    problem = pdf_available()
    if problem:
        raise RtqaError(problem)
    import logging

    import weasyprint
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # CSS it ignores is not news
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    html = _svg_as_images(render_html(report, pdf=True))
    document = weasyprint.HTML(string=html, base_url=None).render()
    return document.write_pdf()


_SVG = re.compile(r"<svg\b[^>]*>.*?</svg>", re.S)
_CLASS = re.compile(r'\bclass="([^"]*)"')
_XMLNS = 'xmlns="http://www.w3.org/2000/svg"'


def _svg_image(match: re.Match) -> str:
    svg = unanchored(match[0])
    if _XMLNS not in svg[:svg.index(">")]:
        svg = svg.replace("<svg", f"<svg {_XMLNS}", 1)
    cls = _CLASS.search(svg[:svg.index(">")])
    data = base64.b64encode(svg.encode()).decode("ascii")
    attrs = f' class="{cls[1]}"' if cls else ""
    return f'<img{attrs} src="data:image/svg+xml;base64,{data}">'


def _svg_as_images(html: str) -> str:
    """``html`` with each inline ``<svg>`` (the DVH plots, the line swatches) as an
    ``<img>`` of the same SVG (a ``data:`` URI) with the same class, its anchored texts
    placed by their start (``rtqa.report._svgtext.unanchored``: no PDF group a label).

    WeasyPrint draws the same picture either way (the SVG's own attributes style it; the
    page's CSS does not reach into it), but an inline SVG is also parsed as HTML and every
    element of it styled by the page's CSS cascade: about 40 % of the elements of the page
    for nothing. The SVG text is escaped (``rtqa.report.svgplot``), so no ``</svg>`` can
    occur inside one.

    When WeasyPrint is loaded (``render_pdf``), its SVG text drawer is also set to draw the
    plots' labels as whole runs instead of letter by letter (``rtqa.report._svgtext``:
    the same text, ~0.07 s less CPU a report)."""
    if "weasyprint" in sys.modules:
        install()
    return _SVG.sub(_svg_image, html)
