"""``rtqa batch --scheduler``: an address that is not a Dask scheduler gives one line and
exit 2 within the bounded timeouts of :mod:`rtqa.batch.dask_cluster`, never a hang or a
traceback.

Each case runs a tiny server on 127.0.0.1 in a thread: one that accepts connections and
never answers, one that answers HTTP, one that speaks another binary protocol. The
handshake timeout is shortened for the test; the tests wait on the servers' events (a
connection was accepted, a request was read) and on the bounded timeouts, never on a
wall-clock bound.
"""

from __future__ import annotations

import socket
import threading

import pytest
from click.testing import CliRunner

from rtqa.cli.batch import batch
from rtqa.errors import RtqaError

pytest.importorskip("distributed")
import rtqa.batch.dask_cluster as dc  # noqa: E402


class _Server:
    """A TCP server on 127.0.0.1 that runs ``handle(conn)`` for each connection."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = threading.Event()
        self.requested = threading.Event()
        self.conns: list[socket.socket] = []
        self.handle = handle
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()
            threading.Thread(target=self.handle, args=(self, conn), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def _silent(server, conn) -> None:
    """Accept and never answer (keep the connection open)."""


def _http(server, conn) -> None:
    """A minimal HTTP responder: answer whatever arrives with an HTTP 404."""
    try:
        data = conn.recv(65536)
    except OSError:
        return
    if data:
        server.requested.set()
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 9\r\nConnection: close\r\n\r\nnot found")


def _binary(server, conn) -> None:
    """Another protocol: a greeting that is not a Dask handshake."""
    conn.sendall(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"SSH-2.0-OpenSSH\r")


@pytest.fixture
def short_handshake(monkeypatch):
    monkeypatch.setattr(dc, "HANDSHAKE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(dc, "CONNECT_TIMEOUT_S", 5)


@pytest.fixture
def server():
    made = []

    def start(handle):
        s = _Server(handle)
        made.append(s)
        return s

    yield start
    for s in made:
        s.close()


def _run_cli(tmp_path, address):
    (tmp_path / "exports").mkdir(exist_ok=True)
    return CliRunner().invoke(batch, [str(tmp_path / "exports"), "--out",
                                      str(tmp_path / "out"), "--scheduler", address])


def _one_line(result) -> str:
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rtqa: error: ")
    return lines[0]


def test_a_silent_scheduler_fails_with_one_line(tmp_path, server, short_handshake):
    s = server(_silent)
    line = _one_line(_run_cli(tmp_path, s.address))
    assert s.accepted.is_set()             # it was reached, and answered nothing
    assert s.address in line
    assert "accepts connections but does not answer as a Dask scheduler" in line
    assert "no handshake within 0.5 s" in line
    # stopped before discovery: --out holds only its lock, released
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".rtqa-batch.lock"]


def test_an_http_port_fails_with_one_line(tmp_path, server, short_handshake):
    s = server(_http)
    line = _one_line(_run_cli(tmp_path, s.address))
    assert s.requested.is_set()
    assert f"{s.address} answers HTTP, not the Dask protocol" in line
    assert "MemoryError" not in line


def test_another_protocol_fails_with_one_line(tmp_path, server, short_handshake):
    s = server(_binary)
    line = _one_line(_run_cli(tmp_path, s.address))
    assert f"{s.address} is not a Dask scheduler (it answers in another protocol)" in line


def test_refused_and_malformed_addresses(tmp_path, short_handshake):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                            # nothing listens there now
    line = _one_line(_run_cli(tmp_path, f"tcp://127.0.0.1:{port}"))
    assert f"cannot connect to the Dask scheduler at tcp://127.0.0.1:{port}" in line
    with pytest.raises(RtqaError, match="not a Dask scheduler address"):
        dc.probe("tcp://no-port-here")


def test_the_client_connection_is_bounded_too(monkeypatch, server, short_handshake):
    """A peer that passes the probe but then stalls: the client's own connection is
    abandoned after CLIENT_TIMEOUT_S with one line (the probe is replaced by a no-op to
    reach the client; the silent server then stalls it)."""
    s = server(_silent)
    monkeypatch.setattr(dc, "probe", lambda address: None)
    monkeypatch.setattr(dc, "CLIENT_TIMEOUT_S", 1.0)
    from rtqa.batch.model import CheckSettings
    with pytest.raises(RtqaError, match=r"did not complete within 1\.0 s"):
        dc.connect(s.address, CheckSettings())
    assert s.accepted.is_set()
