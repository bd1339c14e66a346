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
row sets their widths out as fixed tables, and the PDF-only CSS and markup of
``render_html(pdf=True)`` the plan, structure and input-file tables too (print-only column
widths), the header and verdict without grid or flex layout, and the check rows with fewer
boxes. Where the rest of the time goes (WeasyPrint 70):
its import (~0.2 s: cffi parses the Pango declarations; the library look-ups it
would start processes for are skipped, ``_import_weasyprint``), layout of the check tables,
and the SVG text, which WeasyPrint lays out and draws letter by letter (for our plots'
labels: as whole runs, ``rtqa.report._svgtext``; ~0.1 s of drawing left). Fonts are
subsetted by HarfBuzz when the system has ``libharfbuzz-subset0`` (milliseconds); without
it WeasyPrint falls back to fontTools, ~1 s for the four DejaVu faces.

Deterministic: the PDF metadata carry no creation date other than the report's own
timestamp, so two renders of the same report are identical.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import re
import sys
import threading

from rtqa.errors import RtqaError
from rtqa.report._svgtext import install, unanchored
from rtqa.results import Report

__all__ = ["render_pdf", "pdf_available", "INSTALL_HINT"]

INSTALL_HINT = ("PDF output needs WeasyPrint: pip install 'rtqa[pdf]' (and the Pango "
                "library, Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)")


def pdf_available() -> str | None:
    """None when a PDF can be written, else the reason (one line)."""
    try:
        _import_weasyprint()
    except (ImportError, OSError) as exc:  # OSError: the Pango library is missing
        return f"{INSTALL_HINT} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return None


def _import_weasyprint():
    """``import weasyprint``, on Linux without the ~0.1-0.15 s CPU (issue 16) of the
    subprocesses that ``ctypes.util.find_library`` starts on the way.

    WeasyPrint loads each system library (GObject, Pango, HarfBuzz, fontconfig, ...) by
    trying a list of names with cffi's ``dlopen``; for a name that is not a file name
    cffi asks ``ctypes.util.find_library``, which on Linux runs ``ldconfig -p``, ``gcc``
    and ``ld``: about 50 processes before the name that loads, the soname
    (``libpango-1.0.so.0``), which cffi opens directly without that look-up. So while
    this thread imports WeasyPrint the look-up answers "not found" at once (other
    threads still get the real one), and the sonames load as before. Should that import
    fail (a system where only the look-up finds a library), it is done again with the
    real look-up, so what loads, or the error, is WeasyPrint's own. One thread at a time
    (``_IMPORT_LOCK``), so that the real look-up is always the one put back."""
    import sys
    if "weasyprint" in sys.modules or not sys.platform.startswith("linux"):
        import weasyprint
        return weasyprint
    import ctypes.util

    with _IMPORT_LOCK:
        real = ctypes.util.find_library
        me = threading.get_ident()

        def find_library(name):
            return None if threading.get_ident() == me else real(name)

        ctypes.util.find_library = find_library
        try:
            import weasyprint
            return weasyprint
        except OSError:
            pass
        finally:
            ctypes.util.find_library = real
        import weasyprint  # again, with the real look-up: its library or its error
        return weasyprint


_IMPORT_LOCK = threading.Lock()


def render_pdf(report: Report) -> bytes:
    """The PDF (A4) of the HTML report of ``report``.

    Raises ``RtqaError`` when WeasyPrint cannot be used and ``ValueError`` when the report
    is inconsistent (``rtqa.report.json_report.check_report``)."""
    from rtqa.report.html import render_html
    problem = pdf_available()
    if problem:
        raise RtqaError(problem)
    import logging

    weasyprint = _import_weasyprint()
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # CSS it ignores is not news
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    html = _svg_as_images(render_html(report, pdf=True))
    with _gc_paused():
        document = weasyprint.HTML(string=html, base_url=None).render()
        return document.write_pdf()


@contextlib.contextmanager
def _gc_paused():
    """Python's cyclic garbage collector off for the block (then as it was).

    WeasyPrint builds ~150,000 objects (boxes, styles, layouts) for the report and most
    live until the PDF is written, so the collector's passes over them find little: with
    it off, rendering the bundled sample's report takes ~0.1 s (11 %) less CPU and the
    process's peak RSS ~2 MB more (issue 16, measured in 3 interleaved runs: 0.817-0.822
    s against 0.918-0.935 s). Memory freed by reference counting is freed as before;
    only cycles wait for the next collection after the block."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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
