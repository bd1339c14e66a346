"""``rtqa.report.pdf.render_pdf`` renders with Python's cyclic garbage collector paused
(``_gc_paused``, issue 16) and leaves it as it found it, also when rendering fails."""

from __future__ import annotations

import gc

import pytest

from rtqa.report import pdf


class _Stub:
    """A stand-in for the ``weasyprint`` module: records whether the collector was on."""

    def __init__(self, fail=False):
        self.seen = []
        self.fail = fail

    def HTML(self, string, base_url):  # noqa: N802 - WeasyPrint's name
        stub = self

        class _Doc:
            def render(self):
                stub.seen.append(gc.isenabled())
                return self

            def write_pdf(self):
                stub.seen.append(gc.isenabled())
                if stub.fail:
                    raise RuntimeError("broken renderer")
                return b"%PDF-stub"

        return _Doc()


@pytest.fixture
def stub(monkeypatch):
    def use(fail=False):
        s = _Stub(fail)
        monkeypatch.setattr(pdf, "pdf_available", lambda: None)
        monkeypatch.setattr(pdf, "_import_weasyprint", lambda: s)
        monkeypatch.setattr(pdf, "_svg_as_images", lambda html: html)
        import rtqa.report.html as html_mod
        monkeypatch.setattr(html_mod, "render_html", lambda report, pdf=False: "<p>x</p>")
        return s
    yield use
    gc.enable()


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_off_while_rendering_and_restored(stub, enabled):
    s = stub()
    (gc.enable if enabled else gc.disable)()
    assert pdf.render_pdf(object()) == b"%PDF-stub"
    assert s.seen == [False, False]
    assert gc.isenabled() is enabled


def test_restored_when_rendering_fails(stub):
    s = stub(fail=True)
    gc.enable()
    with pytest.raises(RuntimeError, match="broken renderer"):
        pdf.render_pdf(object())
    assert s.seen == [False, False] and gc.isenabled()
