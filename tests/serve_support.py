"""Helpers of the ``rtqa serve`` / ``rtqa watch`` tests (tests/serve/).

The independent DICOM client is dcmtk (``storescu``, ``echoscu``; Debian package
``dcmtk``, ``make dcmtk``): tests that need it skip when it is absent. Servers listen on
127.0.0.1 on ephemeral ports. Tests wait on events (rows in the database, files in the
spool) with a bounded timeout, never on wall-clock bounds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

STORESCU = shutil.which("storescu")
ECHOSCU = shutil.which("echoscu")
needs_dcmtk = pytest.mark.skipif(
    not (STORESCU and ECHOSCU),
    reason="dcmtk's storescu/echoscu not found: install it with `make dcmtk` "
           "(apt-get install -y dcmtk)")

#: A PostgreSQL database the tests may use (``.ci/run`` starts one:
#: devtools/start_postgres.sh); the PostgreSQL tests skip without it.
PG_URL = os.environ.get("RTQA_TEST_PG_URL", "")

WAIT_S = 600.0          # upper bound of every wait for an event (a hang, not a timing test)


def wait_for(predicate, what: str, timeout: float = WAIT_S, step: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(step)


def storescu(port: int, files, *, aet: str = "TPS", aec: str = "RTQA",
             timeout: float = WAIT_S) -> subprocess.CompletedProcess:
    """Send ``files`` (in this order, one association) with storescu -v."""
    cmd = [STORESCU, "-v", "-xr", "-aet", aet, "-aec", aec, "127.0.0.1", str(port),
           *[str(f) for f in files]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def storescu_popen(port: int, files, *, aet: str = "TPS", aec: str = "RTQA"):
    cmd = [STORESCU, "-v", "-xr", "-aet", aet, "-aec", aec, "127.0.0.1", str(port),
           *[str(f) for f in files]]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


_SENDING = re.compile(r"Sending file: (.+)$")
_RESPONSE = re.compile(r"Received Store Response(?: \((.*)\))?")


def store_responses(output: str) -> list[tuple[str, str]]:
    """(file, response text) of every file storescu -v got a C-STORE response for."""
    out, current = [], None
    for line in output.splitlines():
        m = _SENDING.search(line)
        if m:
            current = m.group(1).strip()
            continue
        m = _RESPONSE.search(line)
        if m and current is not None:
            out.append((current, (m.group(1) or "").strip()))
            current = None
    return out


def acked(output: str) -> list[str]:
    """Files storescu -v got Success for."""
    return [f for f, status in store_responses(output) if status == "Success"]


def sop_uid(path) -> str:
    import pydicom
    return str(pydicom.dcmread(path, stop_before_pixels=True,
                               specific_tags=["SOPInstanceUID"]).SOPInstanceUID)


def spool_uids(spool: Path) -> set[str]:
    return {sop_uid(p) for p in (spool / "objects").glob("*/*.dcm")}


def checks(db_path) -> list[dict]:
    """Rows of the checks table (read-only connection), oldest first."""
    from rtqa.serve.db import decode_check, open_readonly
    if "://" not in str(db_path) and not Path(db_path).exists():
        return []
    conn = open_readonly(db_path)
    try:
        return [decode_check(r) for r in conn.query("SELECT * FROM checks ORDER BY id")]
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return []
    finally:
        conn.close()


def full_disk_spool(root, after: int):
    """A spool whose first ``after`` writes succeed and every later one fails with
    ENOSPC after writing half its bytes (a disk that fills up), for
    ``Engine(..., spool=...)``: the fault lives here, not in the spool."""
    import errno

    from rtqa.serve.spool import Spool

    class FullDiskSpool(Spool):
        writes = 0

        def _write_all(self, fd, data):
            FullDiskSpool.writes += 1
            if FullDiskSpool.writes > after:
                os.write(fd, memoryview(data)[:len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + " (test fault)")
            super()._write_all(fd, data)

    return FullDiskSpool(root)


@contextmanager
def in_process_server(out: Path, *, settle: float = 0.5, deadline: float = 600,
                      allow=(), max_bytes: int = 2**30, max_associations: int = 4,
                      timeout: float | None = 900, spool=None, **options):
    """Engine + Storage SCP in this process on an ephemeral port; yields
    (engine, port). ``spool``: a Spool to inject (e.g. :func:`full_disk_spool`);
    ``options``: more EngineOptions."""
    from rtqa.serve.engine import Engine, EngineOptions
    from rtqa.serve.scp import ScpOptions, start_scp
    engine = Engine(EngineOptions(out=str(out), settle=settle, deadline=deadline,
                                  timeout=timeout, tick=0.1, **options), spool=spool)
    engine.start()
    server = start_scp(engine, ScpOptions(port=0, allow=tuple(allow), max_bytes=max_bytes,
                                          max_associations=max_associations))
    try:
        yield engine, server.server_address[1]
    finally:
        server.shutdown()
        engine.stop()


class ServerProcess:
    """``rtqa serve`` in a child process (for kill -9); the port is read from its log.
    ``store_delay``: seconds each C-STORE answer waits after the instance is stored, so
    a kill lands inside an association (injected by the test wrapper
    ``tests/slow_serve.py``, not by a hook in rtqa)."""

    def __init__(self, out: Path, *extra: str, env: dict | None = None,
                 store_delay: float = 0.0):
        self.log = out.parent / f"{out.name}-serve-{time.monotonic_ns()}.log"
        self.fh = open(self.log, "w")
        if store_delay:
            run = [str(Path(__file__).with_name("slow_serve.py")), str(store_delay)]
        else:
            run = ["-c", "from rtqa.cli import main; main()"]
        cmd = [sys.executable, *run, "serve", "--port", "0", "--out", str(out), *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.port = int(wait_for(self._port, "rtqa serve to listen", timeout=120))

    def _port(self):
        if self.proc.poll() is not None:
            pytest.fail(f"rtqa serve exited ({self.proc.returncode}): {self.text()}")
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.text())
        return m.group(1) if m else None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        self.proc.kill()          # SIGKILL
        self.proc.wait(60)
        self.fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(60)
        self.fh.close()


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose connections use a fresh schema of their own (dropped
    afterwards), from RTQA_TEST_PG_URL; skips when it is not set or SQLAlchemy/psycopg
    are not installed. A server that is set but does not answer fails the test."""
    if not PG_URL:
        pytest.skip("RTQA_TEST_PG_URL not set (no PostgreSQL server; .ci/run starts one)")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    import uuid
    from urllib.parse import quote
    schema = f"rtqa_t_{uuid.uuid4().hex[:12]}"
    url = sqlalchemy.engine.make_url(PG_URL).set(drivername="postgresql+psycopg")
    admin = sqlalchemy.create_engine(url)
    with admin.begin() as c:
        c.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as c:
            c.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
