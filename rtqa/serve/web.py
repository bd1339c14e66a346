"""The read-only web view of ``rtqa serve --http PORT`` / ``rtqa watch --http PORT``.

``GET /`` lists the plans received but not checked yet (incomplete: with what is
missing; or settling) and then the checks, newest first, with a status badge, patient, plan,
time, why the check ran, what failed or is missing, which check it supersedes (or is
superseded by) and links to its reports; ``?verdict=PASS|FAIL|ERROR`` and
``?patient=ID`` filter it (both can be combined; ``?all=0`` hides superseded checks).
``GET /reports/<id>.html``, ``.json`` and ``.pdf`` serve the reports of check ``id``
(looked up in the database, never a path from the request).

Read-only: only GET and HEAD are answered (others: 405), the database is opened
read-only. No external resources and no scripts: one page with inline CSS, sent with a
Content-Security-Policy that forbids everything else. Every value from the database
(which holds strings from DICOM files) is HTML-escaped. Listens on localhost unless told
otherwise.
"""

from __future__ import annotations

import html
import logging
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from rtqa.serve.db import decode_check, open_readonly

__all__ = ["start_web", "render_index"]

log = logging.getLogger("rtqa.serve")

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; " \
      "form-action 'self'; frame-ancestors 'none'"
_VERDICTS = ("PASS", "FAIL", "ERROR")
_TYPES = {"html": "text/html; charset=utf-8", "json": "application/json; charset=utf-8",
          "pdf": "application/pdf"}
_LIMIT = 500

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .6em}h2{font-size:1.1em}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.badge{display:inline-block;padding:.1em .55em;border-radius:.8em;color:#fff;font-weight:600;
font-size:.85em}
.WAIT{background:#757575}.PASS{background:#2e7d32}.FAIL{background:#c62828}.ERROR{background:#6a1b9a}
.old{color:#888}.old .badge{opacity:.55}
form{margin:0 0 1em}form *{margin-right:.5em}
.small{font-size:.85em;color:#555}
ul{margin:0;padding-left:1.1em;font-size:.9em}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def _rows(db_path: str, verdict: str, patient: str, show_old: bool) -> list[dict]:
    conn = open_readonly(db_path)
    try:
        sql = "SELECT * FROM checks"
        where, args = [], {"n": _LIMIT}
        if verdict in _VERDICTS:
            where.append("status = :verdict")
            args["verdict"] = verdict
        if patient:
            where.append("patient_id = :patient")
            args["patient"] = patient
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY finished_at DESC, id DESC LIMIT :n"
        rows = [decode_check(r) for r in conn.query(sql, args)]
        later = {r["supersedes"]: r["id"] for r in conn.query(
            "SELECT supersedes, id FROM checks WHERE supersedes IS NOT NULL")}
        patients = [r["patient_id"] for r in conn.query(
            "SELECT DISTINCT patient_id FROM checks ORDER BY patient_id")]
    finally:
        conn.close()
    for r in rows:
        r["superseded_by"] = later.get(r["id"])
    if not show_old:
        rows = [r for r in rows if r["superseded_by"] is None]
    return rows, patients


def _waiting(db_path: str, patient: str) -> list[dict]:
    """Plans received and not checked since (incomplete, settling or being checked)."""
    from rtqa.serve.db import _INSTANCE_COLS, _instance
    from rtqa.serve.grouping import plan_sets
    conn = open_readonly(db_path)
    try:
        instances = [_instance(r) for r in conn.query(
            f"SELECT {', '.join(_INSTANCE_COLS)} FROM instances WHERE pruned IS NULL "
            "ORDER BY seq")]
        covered = {r["plan_key"]: r["m"] for r in conn.query(
            "SELECT plan_key, MAX(max_seq) AS m FROM checks GROUP BY plan_key")}
    finally:
        conn.close()
    out = []
    for s in plan_sets(instances):
        if patient and s.patient_id != patient:
            continue
        new = [m for m in s.members if m.seq > covered.get(s.key, 0)]
        if new:
            out.append({"key": s.key, "label": s.label, "patient": s.patient_id,
                        "received": max(m.received for m in new), "n": len(s.members),
                        "missing": s.missing})
    return sorted(out, key=lambda w: -w["received"])


def render_index(db_path: str, query: str = "") -> str:
    """The page for ``GET /?query``."""
    q = parse_qs(query)
    verdict = (q.get("verdict", [""])[0] or "").upper()
    patient = q.get("patient", [""])[0] or ""
    show_old = q.get("all", ["1"])[0] != "0"
    try:
        rows, patients = _rows(db_path, verdict, patient, show_old)
    except Exception as exc:  # noqa: BLE001 - e.g. no database yet
        rows, patients = [], []
        log.warning("web view: %s", exc)
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<title>rtqa: received plans</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>rtqa: received plans (newest first)</h1>",
           "<form method=\"get\" action=\"/\"><label>Verdict <select name=\"verdict\">",
           "<option value=\"\">any</option>"]
    for v in _VERDICTS:
        sel = " selected" if v == verdict else ""
        out.append(f"<option value=\"{v}\"{sel}>{v}</option>")
    out.append("</select></label><label>Patient <select name=\"patient\">"
               "<option value=\"\">any</option>")
    for p in patients:
        sel = " selected" if p == patient else ""
        out.append(f"<option value=\"{_e(p)}\"{sel}>{_e(p) or '(none)'}</option>")
    out.append("</select></label><label>Superseded <select name=\"all\">"
               f"<option value=\"1\"{'' if not show_old else ' selected'}>shown</option>"
               f"<option value=\"0\"{' selected' if not show_old else ''}>hidden</option>"
               "</select></label><button type=\"submit\">Filter</button>"
               "<a href=\"/\">clear</a></form>")
    try:
        waiting = [] if verdict in _VERDICTS else _waiting(db_path, patient)
    except Exception as exc:  # noqa: BLE001 - e.g. no database yet
        waiting = []
        log.warning("web view: %s", exc)
    if waiting:
        out.append("<h2>Received, not checked yet</h2><table id=\"waiting\"><thead><tr>"
                   "<th>State</th><th>Patient</th><th>Plan</th><th>Last received (UTC)</th>"
                   "<th>Instances</th><th>Missing</th></tr></thead><tbody>")
        for w in waiting:
            when = datetime.fromtimestamp(w["received"], timezone.utc) \
                .isoformat(timespec="seconds")
            state = "incomplete" if w["missing"] else "complete, settling or being checked"
            missing = "".join(f"<li>{_e(m)}</li>" for m in w["missing"])
            out.append(f"<tr data-key=\"{_e(w['key'])}\"><td><span class=\"badge WAIT\">"
                       f"WAITING</span> {_e(state)}</td><td>{_e(w['patient'])}</td>"
                       f"<td>{_e(w['label'])}<div class=\"small\">{_e(w['key'])}</div></td>"
                       f"<td>{_e(when)}</td><td>{int(w['n'])}</td>"
                       f"<td>{f'<ul>{missing}</ul>' if missing else ''}</td></tr>")
        out.append("</tbody></table><h2>Checks</h2>")
    out.append(f"<p class=\"small\" id=\"count\">{len(rows)} check(s)"
               + (f" with verdict {_e(verdict)}" if verdict in _VERDICTS else "")
               + (f" for patient {_e(patient)}" if patient else "") + "</p>")
    out.append("<table id=\"checks\"><thead><tr><th>#</th><th>Verdict</th><th>Patient</th>"
               "<th>Plan</th><th>Checked (UTC)</th><th>Why</th><th>Failing / missing</th>"
               "<th>Reports</th></tr></thead><tbody>")
    for r in rows:
        cls = " class=\"old\"" if r["superseded_by"] else ""
        status = r["status"] if r["status"] in _VERDICTS else "ERROR"
        items = [f"{_e(f.get('id'))}: {_e(_num(f.get('value')))} {_e(f.get('unit') or '')} "
                 f"(limit {_e(f.get('limit'))}) {_e(f.get('status'))}"
                 for f in r["failing"][:8]]
        if len(r["failing"]) > 8:
            items.append(f"… and {len(r['failing']) - 8} more")
        items += [f"missing: {_e(m)}" for m in r["missing"]]
        items += [f"error: {_e(m)}" for m in r["errors"][:3] if not r["missing"]]
        notes = []
        if r["supersedes"]:
            notes.append(f"supersedes #{int(r['supersedes'])}")
        if r["superseded_by"]:
            notes.append(f"superseded by #{int(r['superseded_by'])}")
        links = []
        if r["report_html"]:
            links.append(f"<a href=\"/reports/{int(r['id'])}.html\">HTML</a>")
        if r["report_json"]:
            links.append(f"<a href=\"/reports/{int(r['id'])}.json\">JSON</a>")
        if r.get("report_pdf"):
            links.append(f"<a href=\"/reports/{int(r['id'])}.pdf\">PDF</a>")
        out.append(
            f"<tr{cls} data-id=\"{int(r['id'])}\" data-status=\"{_e(status)}\">"
            f"<td>{int(r['id'])}</td><td><span class=\"badge {status}\">{_e(status)}</span>"
            f"</td><td>{_e(r['patient_id'])}</td><td>{_e(r['plan_label'])}"
            f"<div class=\"small\">{_e(r['plan_key'])}</div></td>"
            f"<td>{_e(r['finished'])}</td><td>{_e(r['reason'])}"
            + (f"<div class=\"small\">{'; '.join(notes)}</div>" if notes else "")
            + "</td><td>" + (f"<ul>{''.join(f'<li>{i}</li>' for i in items)}</ul>"
                             if items else "") + f"</td><td>{' '.join(links)}</td></tr>")
    out.append("</tbody></table></body></html>")
    return "\n".join(out)


def _report_path(db_path: str, check_id: int, ext: str, out: Path) -> Path | None:
    conn = open_readonly(db_path)
    try:
        rows = conn.query("SELECT report_json, report_html, report_pdf FROM checks "
                          "WHERE id = :id", {"id": check_id})
    finally:
        conn.close()
    if not rows:
        return None
    p = rows[0][f"report_{ext}"]
    if not p:
        return None
    path = Path(p).resolve()
    if out not in path.parents:
        return None
    return path


class _Handler(BaseHTTPRequestHandler):
    server_version = "rtqa"
    sys_version = ""
    db_path = ""
    out = Path("/")

    def log_message(self, fmt, *args):  # noqa: D401 - quieter than stderr per request
        log.debug("web: " + fmt, *args)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/":
            body = render_index(self.db_path, url.query).encode("utf-8")
            return self._send(200, body, "text/html; charset=utf-8")
        parts = url.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "reports" and "." in parts[1]:
            stem, ext = parts[1].rsplit(".", 1)
            if stem.isdigit() and ext in _TYPES:
                path = _report_path(self.db_path, int(stem), ext, self.out)
                if path is not None and path.is_file():
                    ctype = _TYPES[ext]
                    return self._send(200, path.read_bytes(), ctype)
        self._send(404, b"not found\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET

    def _refuse(self):
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse


def start_web(db_path: str | Path, out: str | Path, host: str = "127.0.0.1",
              port: int = 0) -> ThreadingHTTPServer:
    """Serve the view in a daemon thread; returns the server (``.server_address``,
    ``.shutdown()``)."""
    handler = type("RtqaHandler", (_Handler,), {"db_path": str(db_path),
                                                "out": Path(out).resolve()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rtqa-web", daemon=True).start()
    return server
