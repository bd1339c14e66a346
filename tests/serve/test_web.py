"""The read-only web view: newest first, badges, filters, links, escaping; headless
Chromium (skipped when absent)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser

import pytest

from rtqa.serve.db import Database
from rtqa.serve.web import CSP, render_index, start_web

HOSTILE = '<script>alert("x")</script>&<b>'


class _Rows(HTMLParser):
    """The table rows of the view: [(data-id, data-status, [cell texts], [links])]."""

    def __init__(self, html: str):
        super().__init__()
        self.rows, self.tags = [], []
        self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-id" in a:
            self.rows.append([a["data-id"], a["data-status"], [], []])
        elif tag == "td" and self.rows:
            self.rows[-1][2].append("")
            self._cell = True
        elif tag == "a" and self.rows and self._cell:
            self.rows[-1][3].append(a.get("href"))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._cell = None

    def handle_data(self, data):
        if self._cell and self.rows and self.rows[-1][2]:
            self.rows[-1][2][-1] += data


def _row(db, out, i, status, patient, label, finished_at, supersedes=None, failing=()):
    json_path = out / "plans" / f"p{i}.json"
    html_path = out / "plans" / f"p{i}.html"
    json_path.write_text('{"status": "%s"}' % status)
    html_path.write_text(f"<!DOCTYPE html><p>report {i}</p>")
    return db.add_check({
        "plan_key": f"1.2.{i}", "plan_label": label, "patient_id": patient, "study_uid": "",
        "frame_uid": "", "started": "", "finished": f"2026-01-0{i}T00:00:00+00:00",
        "finished_at": finished_at, "status": status, "reason": "complete",
        "failing": list(failing), "errors": [], "missing": [],
        "report_json": str(json_path), "report_html": str(html_path), "inputs": [],
        "max_seq": i, "last_received": 0.0, "supersedes": supersedes})


@pytest.fixture
def site(tmp_path):
    out = tmp_path / "out"
    (out / "plans").mkdir(parents=True)
    db = Database(out / "db.sqlite")
    a = _row(db, out, 1, "PASS", "PAT-A", "Plan A", 10.0)
    _row(db, out, 2, "FAIL", HOSTILE, HOSTILE, 20.0,
         failing=[{"id": HOSTILE, "value": 1.0, "unit": "Gy", "limit": "< 0.5",
                   "status": "FAIL"}])
    _row(db, out, 3, "ERROR", "PAT-A", "Plan A", 30.0, supersedes=a)
    outside = tmp_path / "secret.html"
    outside.write_text("secret")
    bad = _row(db, out, 4, "PASS", "PAT-B", "Plan B", 5.0)
    db._conn.execute("UPDATE checks SET report_html = ? WHERE id = ?", (str(outside), bad))
    db.close()
    server = start_web(out / "db.sqlite", out, "127.0.0.1", 0)
    yield out, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, dict(r.headers), r.read().decode("utf-8")


def test_newest_first_with_badges_and_links(site):
    out, base = site
    status, headers, html = _get(base + "/")
    assert status == 200 and headers["Content-Security-Policy"] == CSP
    rows = _Rows(html).rows
    assert [r[0] for r in rows] == ["3", "2", "1", "4"]          # newest first
    assert [r[1] for r in rows] == ["ERROR", "FAIL", "PASS", "PASS"]
    assert rows[0][3] == ["/reports/3.html", "/reports/3.json"]
    assert "supersedes #1" in rows[0][2][5] and "superseded by #3" in rows[2][2][5]
    assert 'class="badge FAIL"' in html


def test_everything_is_escaped_and_nothing_external(site):
    out, base = site
    _, _, html = _get(base + "/")
    assert "<script" not in html and "alert(&quot;x&quot;)" in html
    assert html.count("&lt;script&gt;") >= 3                     # patient, plan, failing row
    parser = _Rows(html)
    assert {"script", "img", "link", "iframe"}.isdisjoint(parser.tags)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_filters_by_verdict_and_patient(site):
    out, base = site
    rows = _Rows(_get(base + "/?verdict=PASS")[2]).rows
    assert [r[0] for r in rows] == ["1", "4"]
    rows = _Rows(_get(base + "/?patient=PAT-A")[2]).rows
    assert [r[0] for r in rows] == ["3", "1"]
    rows = _Rows(_get(base + "/?patient=PAT-A&verdict=ERROR")[2]).rows
    assert [r[0] for r in rows] == ["3"]
    from urllib.parse import quote
    rows = _Rows(_get(base + "/?patient=" + quote(HOSTILE))[2]).rows
    assert [r[0] for r in rows] == ["2"]
    rows = _Rows(_get(base + "/?all=0")[2]).rows
    assert [r[0] for r in rows] == ["3", "2", "4"]                # superseded hidden


def test_reports_are_served_by_id_only(site):
    out, base = site
    status, headers, body = _get(base + "/reports/2.html")
    assert status == 200 and body == "<!DOCTYPE html><p>report 2</p>"
    assert _get(base + "/reports/2.json")[2] == '{"status": "FAIL"}'
    for path in ("/reports/4.html", "/reports/99.html", "/reports/../db.sqlite",
                 "/plans/p1.html", "/reports/1.sqlite"):
        with pytest.raises(urllib.error.HTTPError) as info:
            _get(base + path)
        assert info.value.code == 404, path


def test_read_only(site):
    out, base = site
    req = urllib.request.Request(base + "/", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=60)
    assert info.value.code == 405


def test_without_a_database_the_view_is_empty(tmp_path):
    html = render_index(str(tmp_path / "missing.sqlite"))
    assert _Rows(html).rows == [] and "0 check(s)" in html


# --- headless Chromium -------------------------------------------------------------

def _chromium():
    forced = os.environ.get("RTQA_CHROMIUM")
    if forced:
        return forced
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()


def _browse(tmp_path, url, *args):
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", *args, url]
    proc = subprocess.run(cmd, capture_output=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found: `make browser`")
def test_in_headless_chromium(site, tmp_path):
    out, base = site
    dom = _browse(tmp_path, base + "/?verdict=FAIL", "--dump-dom").stdout.decode("utf-8")
    rows = _Rows(dom).rows
    assert [(r[0], r[1]) for r in rows] == [("2", "FAIL")]
    assert HOSTILE in rows[0][2][2]                 # shown as text, not run as markup
    assert "script" not in _Rows(dom).tags
    shot = tmp_path / "view.png"
    _browse(tmp_path, base + "/", f"--screenshot={shot}", "--window-size=1200,500")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plans_received_but_not_checked_are_listed(tmp_path, sample_dir):
    from rtqa.serve.engine import Engine, EngineOptions
    e = Engine(EngineOptions(out=str(tmp_path / "out")))
    try:
        for name in ("RP.SBRT_5fx_bad.dcm", "RD.SBRT_5fx_bad.dcm", "CT.001.dcm"):
            e.receive((sample_dir / "hcc_fail" / name).read_bytes(), source="TPS")
        html = render_index(e.db.path)
    finally:
        e.db.close()
    section = html.split('<table id="waiting">')[1].split("</table>")[0]
    assert section.count("<tr data-key=") == 1 and "SBRT_5fx_bad" in section
    assert "WAITING</span> incomplete" in section
    assert "RTSTRUCT 2.25." in section                 # what is missing, named
    assert '<table id="waiting">' not in render_index(e.db.path, "verdict=PASS")
