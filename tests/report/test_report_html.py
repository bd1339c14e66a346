"""HTML report: self-contained, escaped, deterministic; and rendered in headless Chromium
(DOM, screenshot, A4 PDF). The browser tests are skipped when Chromium is absent:
install it with ``apt-get install -y chromium`` (Debian) or set RTQA_CHROMIUM."""

from __future__ import annotations

import dataclasses
import os
import hashlib
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest

from report_fixtures import (
    MATHTEXT, NONASCII, SCRIPT, error_report, hcc_report, hostile_report, passing_report,
)
from rtqa.report.html import alpha_beta_used, dvh_svg, render_html
from rtqa.results import Curve

ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


class Page(HTMLParser):
    """Elements, ids and text of an HTML document (as a browser's parser sees them)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag, **attrs):
        return sum(t == tag and all(a.get(k) == v for k, v in attrs.items())
                   for t, a in self.tags)

    @property
    def all_text(self):
        return "".join(self.text)


@pytest.fixture(scope="module")
def hostile_html():
    return render_html(hostile_report())


# --- content -----------------------------------------------------------------------

def test_header_verdict_and_sections():
    html = render_html(hcc_report())
    page = Page(html)
    text = page.all_text
    assert html.startswith("<!DOCTYPE html>")
    assert "HCC-0042" in text and "LIVER_SBRT" in text and "PVTT_BOOST" in text
    assert "2025-03-14T09:26:53+00:00" in text and "rtqa version" in text and "0.1.0" in text
    assert re.search(r'<section class="verdict fail" id="verdict">\s*<div class="verdict-status">'
                     r'FAIL</div>', html)
    assert "2 mandatory checks failed; 1 lesion below the required BED." in text
    for section in ("lesions", "organs-at-risk", "plan-integrity", "protocol", "dvh",
                    "structures", "provenance", "signoff"):
        assert page.count("section", id=section) == 1, section
    order = [html.index(f'id="{s}"') for s in ("verdict", "lesions", "organs-at-risk",
                                                "plan-integrity", "protocol", "dvh",
                                                "provenance", "signoff")]
    assert order == sorted(order)
    for name in ("L1 segment VIII", "L2 segment IVa", "L3 portal vein thrombus"):
        assert name in text
    for c in hcc_report().checks:
        assert c.source in text and (c.note in text)


def test_verdict_colours():
    assert 'class="verdict pass"' in render_html(passing_report())
    assert 'class="verdict error"' in render_html(error_report())
    assert "The plan could not be fully checked: 1 error, 1 mandatory check not evaluated." \
        in Page(render_html(error_report())).all_text


def test_provenance_and_signoff():
    report = hcc_report()
    text = Page(render_html(report)).all_text
    ct = sorted((f for f in report.inputs if f.kind == "CT"), key=lambda f: f.path)
    for f in report.inputs:
        if f.kind != "CT":
            assert f.sha256 in text and f.path in text
            assert (f.sop_instance_uid or "—") in text
    # the CT series is one line: first … last path, count, digest of the digests
    series = hashlib.sha256("".join(f.sha256 + "\n" for f in ct).encode()).hexdigest()
    assert f"{ct[0].path} … {ct[-1].path.rsplit('/', 1)[-1]}" in text and series in text
    assert f"CT ({len(ct)} files)" in text and ct[1].sha256 not in text
    for p in report.plans:
        assert p.sop_instance_uid in text
    assert "constraints/protocols/oligo-hcc.toml" in text and "KROG 20-04" in text
    for key, value in report.conventions.items():
        assert key in text and value in text
    for role in ("Dosimetrist", "Medical physicist", "Radiation oncologist"):
        assert role in text
    assert re.search(r"<th>Role</th><th>Reviewed by</th><th>Signature</th><th>Date</th>",
                     render_html(report))


def test_alpha_beta_values_used():
    used = dict(alpha_beta_used(hcc_report()))
    assert set(used) == {"3 Gy", "10 Gy"}
    assert "BED of lesion L1 segment VIII" in used["10 Gy"]
    assert "Liver - GTV Mean[Gy] on EQD2" in used["3 Gy"]
    assert any("Lungs - GTV V20Gy[%] on EQD2" in u for u in used["3 Gy"])
    # read from the rows' fields, never from note or convention text
    assert not any("convention" in u for uses in used.values() for u in uses)


def test_print_layout_css():
    html = render_html(hcc_report())
    assert "@page { size: A4; margin:" in html
    assert "@top-left { content: string(running)" in html and "counter(pages)" in html
    assert '<div class="running">Nguyen, Thi Lan (ID HCC-0042) · plan LIVER_SBRT, PVTT_BOOST' in html
    assert "break-inside: avoid" in html and "page-break-inside: avoid" in html


# --- self-contained, deterministic -------------------------------------------------

def test_self_contained_no_scripts_no_network():
    html = render_html(hcc_report())
    assert "<script" not in html.lower()
    assert not re.search(r"\s(src|srcset|action|formaction)=", html)
    assert not re.search(r"""href=["'](?!#)""", html)
    assert "@import" not in html and "<link" not in html and "<iframe" not in html
    assert not re.search(r"url\((?!#)", html)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_one_svg_per_curve_with_unique_ids():
    report = hcc_report()
    html = render_html(report)
    page = Page(html)
    assert page.count("svg", **{"class": "dvh-svg"}) == len(report.curves) == 6
    assert page.count("svg", **{"class": "dvh-svg overview-svg"}) == 1   # all structures
    assert page.count("svg", **{"class": "swatch"}) == len(report.overview) == 11
    assert page.count("svg") == 6 + 1 + 11
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids)), "duplicate element ids"
    for ref in re.findall(r'(?:url\(#|xlink:href="#)([^)"]+)', html):
        assert ref in ids


def test_render_is_deterministic():
    assert render_html(hcc_report()) == render_html(hcc_report())


def test_inconsistent_report_is_refused():
    with pytest.raises(ValueError, match="imply FAIL"):
        render_html(hcc_report(status="PASS"))


# --- escaping ----------------------------------------------------------------------

def test_markup_from_dicom_is_escaped(hostile_html):
    html = hostile_html
    page = Page(html)
    assert "<script" not in html.lower()
    assert page.count("script") == 0
    assert html.count(ESCAPED_SCRIPT) >= 5                 # table, ROIs, note, structure, plot
    assert SCRIPT in page.all_text                          # shown as text
    assert "&lt;i&gt;Åsa&lt;/i&gt;/µ-001" in html and "<i>Åsa" not in html
    assert "&lt;b&gt;PLAN&lt;/b&gt; &amp; Å" in html and "<b>PLAN</b>" not in html
    assert page.count("i") == 0 and sum(t == "b" and not a for t, a in page.tags) > 0
    assert NONASCII in page.all_text and "µ" in html        # UTF-8 kept as characters
    assert "Cord\\x1b[2J\\x0aPASS fake row" in page.all_text and "\x1b" not in html


def test_svg_text_is_escaped_and_mathtext_is_off(hostile_html):
    svgs = re.findall(r"<svg .*?</svg>", hostile_html, flags=re.S)
    script_svg = next(s for s in svgs if "Cumulative DVH of &lt;script&gt;" in s)
    assert "<script" not in script_svg
    assert f">{ESCAPED_SCRIPT}  (30 cc)<" in script_svg       # title
    assert f">{ESCAPED_SCRIPT}<" in script_svg                   # mark label
    math_svg = next(s for s in svgs if "$\\alpha$ 50$ cord" in s)
    assert ">$\\alpha$ 50$ cord  (40 cc)<" in math_svg         # as typed, no mathtext
    assert MATHTEXT in Page(hostile_html).all_text
    assert "CV15Gy ≥ 700 cc Å/µ" in hostile_html


def test_dvh_svg_marks_failing_points_red():
    report = hcc_report()
    svg = str(dvh_svg(report.curves[3], 3))                      # Duodenum: FAIL and PASS
    assert svg.startswith('<svg class="dvh-svg" role="img" aria-label="Cumulative DVH of Duodenum"')
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    assert "#cf222e" in svg and "#1a7f37" in svg                 # red fail, green pass
    assert "D5cc &lt; 18 Gy" in svg and "D0.035cc &lt; 32 Gy" in svg
    assert 'id="dvh3-' in svg and not re.search(r'id="(?!dvh3-)', svg)
    assert "#cf222e" not in str(dvh_svg(report.curves[0], 0))    # PTV_L1: all pass


def test_dvh_svg_without_data():
    empty = Curve(name="Empty", dose_gy=(), volume_pct=(), volume_cc=float("nan"),
                  marks=((float("nan"), 1.0, "lost", "FAIL"),))
    svg = str(dvh_svg(empty))
    assert "no DVH data" in svg and "Empty<" in svg
    broken = Curve(name="Holes", dose_gy=(0.0, 1.0, float("nan"), 3.0),
                   volume_pct=(100.0, float("inf"), 50.0, 0.0), volume_cc=10.0)
    assert "<path" in str(dvh_svg(broken))


def test_report_without_curves_or_lesions():
    html = render_html(dataclasses.replace(hcc_report(), curves=(), lesions=()))
    assert "No DVH curves in this report." in html and "No lesions." in html
    assert Page(html).count("svg", **{"class": "dvh-svg"}) == 0
    html = render_html(dataclasses.replace(hcc_report(), curves=(), overview=()))
    assert Page(html).count("svg") == 0 and 'id="overview-caption"' not in html


# --- headless Chromium -------------------------------------------------------------

def _chromium() -> str | None:
    forced = os.environ.get("RTQA_CHROMIUM")
    if forced:
        return forced
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found: install it with `apt-get install -y chromium` "
           "(Debian) or set RTQA_CHROMIUM to its path")


def _browser(tmp_path, html_file, *args, timeout=120) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", *args, html_file.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    report = hostile_report()
    path = folder / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return folder, path, report


@needs_chromium
def test_browser_dom(rendered):
    folder, path, report = rendered
    dom = _browser(folder, path, "--dump-dom").stdout.decode("utf-8")
    page = Page(dom)
    text = page.all_text
    assert "FAIL" in text and "mandatory checks failed" in text
    verdict = re.search(r'<div class="verdict-status">(.*?)</div>', dom)
    assert verdict and verdict[1] == "FAIL"
    for lesion in report.lesions:
        assert lesion.name in text
    assert page.count("script") == 0                       # the ROI name made no element
    assert SCRIPT in text and ESCAPED_SCRIPT in dom        # ... it is text
    assert "<i>Åsa</i>/µ-001" in text and page.count("i") == 0
    assert NONASCII in text
    assert page.count("svg", **{"class": "dvh-svg"}) == len(report.curves)
    assert page.count("svg", **{"class": "dvh-svg overview-svg"}) == 1
    assert page.count("svg") == len(report.curves) + 1 + len(report.overview)


@needs_chromium
def test_browser_screenshot(rendered):
    folder, path, _ = rendered
    png = folder / "report.png"
    _browser(folder, path, f"--screenshot={png}", "--window-size=1000,1400",
             "--hide-scrollbars")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 1400)
    assert len(data) > 20_000                                # not a blank page


@needs_chromium
def test_browser_print_to_pdf_a4(rendered):
    folder, path, _ = rendered
    pdf = folder / "report.pdf"
    _browser(folder, path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", data)
    assert len(pages) >= 1
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert boxes and len(boxes) == len(pages)
    for w, h in boxes:                                       # A4 = 595.28 x 841.89 pt
        assert abs(float(w) - 595.28) < 2 and abs(float(h) - 841.89) < 2


def test_compiled_template_cache_gives_the_same_page_and_survives_damage(tmp_path, monkeypatch):
    """The compiled template is cached in the user's cache folder; a cached, a damaged
    and an unwritable cache all give the page of a fresh compilation."""
    import rtqa.report.html as html_mod
    import rtqa.report.jinja_env as jinja_env

    def render_with(cache_dir):
        monkeypatch.setattr(jinja_env, "_cache_dir", lambda: cache_dir)
        html_mod._environment.cache_clear()
        try:
            return render_html(passing_report())
        finally:
            html_mod._environment.cache_clear()

    uncached = render_with(None)
    cache = tmp_path / "cache" / "rtqa" / "jinja2"
    assert render_with(cache) == uncached          # compiles and writes the cache
    files = list(cache.glob("rtqa-*.cache"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert render_with(cache) == uncached          # from the cache
    files[0].write_bytes(files[0].read_bytes()[:40])
    assert render_with(cache) == uncached          # damaged: compiled again
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert render_with(blocked / "jinja2") == uncached   # cannot be created: no cache
