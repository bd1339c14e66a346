"""``rtqa batch --scheduler tcp://HOST:PORT``: the same batch on a Dask distributed cluster.

Needs the optional extra ``pip install 'rtqa[dask]'`` (``dask[distributed]``) here and
on every worker, the same rtqa version and constraint library on the workers (checked
before any plan is sent: a mismatch stops the batch, because results would differ from
a local run), and the plan files and the protocol at the same paths on the workers (a
shared file system). Reports are rendered on the workers and written here, so only
this machine needs the output folder.

Each plan is one task running :func:`rtqa.batch.worker.check_plan`, the function the local
pool runs, so the results are identical to a local run. Tasks are submitted lazily (at
most 2 x the cluster's worker threads in flight). Recommended workers: one thread each
(``dask worker --nthreads 1``; memory per worker is then bounded by one plan); the
HTML rendering is serialised within a worker process. A plan whose worker process dies
is retried by the scheduler on another worker up to ``distributed.scheduler.
allowed-failures`` times (default 3) and then recorded as ERROR (``KilledWorker``).

Time limit (``--timeout``; Dask cannot interrupt a task running in a worker thread, so
this is done from here):

* Each task first imports the modules a check needs, then logs a start event (worker
  address, process id) on a topic this client subscribes to; the limit counts from the
  moment that event arrives here, so time spent queued on the cluster (and a fresh
  worker's imports) does not count. A plan that another worker starts again (its first
  worker died) gets the full time again.
* The client looks at the deadlines at least every ``POLL_S`` seconds. A plan still
  running ``timeout`` seconds after its start is recorded as ERROR ("timed out after N
  s (...): " plus what happened to its worker, with the worker's address; no inputs, so
  ``--resume`` checks it again), its future is cancelled (the scheduler forgets it; on
  the worker the thread runs on), and its worker is restarted with
  ``Client.restart_workers``: the worker's *nanny* kills the worker process (after about
  4 s of grace) and starts a fresh one, so the plan's CPU and memory are released. The
  batch waits for that restart (about 5 s, at most ``RESTART_TIMEOUT_S``) and goes on;
  meanwhile no other deadline is looked at, so another plan that times out then is
  stopped that much later (its reason still gives the limit, its ``stats`` the time). Other tasks
  running on that worker process (only with more than one thread per worker) are
  rescheduled by Dask and checked again elsewhere.
* Without a nanny (``dask worker --no-nanny``) the scheduler removes the worker from the
  cluster and tells it to close; nothing can kill the plan's thread, which may run on
  until the plan finishes, and the cluster has one worker fewer (unless a deployment
  system starts another). If no worker is left within ``CONNECT_TIMEOUT_S``, the batch stops
  (``RtqaError``; the summary of the plans done so far is written, ``complete: false``).
  When the restart fails or times out, the reason says that the plan may still be
  running on that worker.
* A plan whose start event never arrives (the event is lost, or logging it fails on
  the worker) has no time limit.

Bounded waits (the constants below): before the Dask client is made, :func:`probe`
connects to the address itself (``CONNECT_TIMEOUT_S``) and waits for the scheduler's
handshake (``HANDSHAKE_TIMEOUT_S``, asked once more with an HTTP request if silent), so
an address that accepts connections but never answers, a web server (HTTP) or another
protocol each give one line and exit 2 within about a minute, not a hang or a
MemoryError traceback from Dask's reader. The client's own connection then has
``CLIENT_TIMEOUT_S`` in all; the workers joining, the identity check, worker restarts
and closing each have their own bound; during the run the connection is looked at every
``IDLE_POLL_S`` and the batch stops (summary written, ``complete: false``) when the
scheduler stays unreachable for ``LOST_TIMEOUT_S``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator

from rtqa.batch.model import PlanTask, timeout_limit
from rtqa.batch.resume import settings_fingerprint
from rtqa.batch.worker import check_plan, crash_result, timeout_reason
from rtqa.errors import RtqaError

__all__ = ["connect", "probe", "run_dask", "worker_identity"]

# Every wait on the cluster is bounded (seconds):
CONNECT_TIMEOUT_S = 30   # TCP connection; a worker to join; the client's own connect
HANDSHAKE_TIMEOUT_S = 10 # the scheduler's handshake after the connection (see probe)
CLIENT_TIMEOUT_S = 90    # the whole Client() construction
CLOSE_TIMEOUT_S = 10     # closing the client
IDENTITY_TIMEOUT_S = 120 # the workers' rtqa version and fingerprint
RESTART_TIMEOUT_S = 60   # restart of the worker of a timed-out plan
LOST_TIMEOUT_S = 60      # how long the scheduler may stay unreachable during a run
POLL_S = 0.5             # with a time limit: how often deadlines are looked at
IDLE_POLL_S = 5.0        # without one: how often the connection is looked at
_MAX_HANDSHAKE_BYTES = 1 << 20


def worker_identity(settings) -> dict:
    """What a worker would use: rtqa version and settings fingerprint (runs on a worker)."""
    from rtqa import __version__
    try:
        fp = settings_fingerprint(settings)
    except Exception as exc:  # noqa: BLE001 - reported to the client
        fp = f"error: {type(exc).__name__}: {exc}"
    return {"rtqa_version": __version__, "fingerprint": fp}


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise RtqaError("--scheduler needs Dask: pip install 'rtqa[dask]' "
                        "(dask[distributed])") from None
    return distributed


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``tcp://HOST:PORT`` (or ``HOST:PORT``) address; None for other
    schemes (tls://, ucx://, ...), which are not probed. Raises ``RtqaError`` for an
    address that names no port."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme != "tcp":
        return None
    host, _, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RtqaError(f"--scheduler {address!r} is not a Dask scheduler address "
                        "(expected tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786)")
    return host, int(port)


def _recv(sock, n: int, deadline: float) -> bytes:
    """Up to ``n`` bytes, reading until ``deadline`` (monotonic) or the peer closes."""
    import socket
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(data))
        except (socket.timeout, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def probe(address: str) -> None:
    """Raise ``RtqaError`` (one line, within ``CONNECT_TIMEOUT_S + 2 x
    HANDSHAKE_TIMEOUT_S`` seconds) unless a Dask scheduler answers at ``address``.

    A Dask scheduler sends its handshake (an 8-byte frame length, then a small msgpack
    message naming ``python`` and ``pickle-protocol``) as soon as a connection is
    accepted. Anything else is told apart: a refused or unreachable address, a peer that
    accepts the connection but stays silent (asked once more with an HTTP request, so a
    web server shows itself), a peer that answers HTTP, one that speaks another
    protocol. Other schemes than tcp:// are not probed."""
    import socket
    import struct
    hp = _host_port(address)
    if hp is None:
        return
    try:
        sock = socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        reason = (f"no answer within {CONNECT_TIMEOUT_S} s"
                  if isinstance(exc, (TimeoutError, socket.timeout))
                  else exc.strerror or str(exc))
        raise RtqaError(f"cannot connect to the Dask scheduler at {address} ({reason})"
                        ) from None
    with sock:
        head = _recv(sock, 8, time.monotonic() + HANDSHAKE_TIMEOUT_S)
        if not head:
            try:   # silent: a web server answers an HTTP request
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            except OSError:
                pass
            head = _recv(sock, 8, time.monotonic() + HANDSHAKE_TIMEOUT_S)
            if not head:
                raise RtqaError(
                    f"{address} accepts connections but does not answer as a Dask "
                    f"scheduler (no handshake within {HANDSHAKE_TIMEOUT_S} s): is it the "
                    "scheduler's address and port (usually 8786)?")
        if head.startswith(b"HTTP/") or head[:1] == b"<":
            raise RtqaError(f"{address} answers HTTP, not the Dask protocol: give the "
                            "scheduler's port (usually 8786), not a web or dashboard port")
        if len(head) < 8:
            raise RtqaError(f"{address} is not a Dask scheduler (it closed the "
                            f"connection after {len(head)} byte(s))")
        (length,) = struct.unpack("<Q", head)
        body = (_recv(sock, length, time.monotonic() + HANDSHAKE_TIMEOUT_S)
                if 0 < length <= _MAX_HANDSHAKE_BYTES else b"")
        if len(body) != length or b"pickle-protocol" not in body or b"python" not in body:
            raise RtqaError(f"{address} is not a Dask scheduler (it answers in another "
                            "protocol): give the scheduler's address and port "
                            "(usually 8786)")


def connect(address: str, settings, fingerprint: str | None = None):
    """A Dask client for ``address`` whose workers are checked to give the local result
    (same rtqa version and constraint library); raises ``RtqaError`` otherwise, with one
    line, within bounded time: :func:`probe` first, then the client's own connection
    within ``CLIENT_TIMEOUT_S``."""
    distributed = _import_distributed()
    probe(address)
    import threading
    box: dict = {}

    def make() -> None:
        try:
            box["client"] = distributed.Client(address, timeout=CONNECT_TIMEOUT_S,
                                               set_as_default=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    maker = threading.Thread(target=make, name="rtqa-dask-connect", daemon=True)
    maker.start()
    maker.join(CLIENT_TIMEOUT_S)
    if maker.is_alive():   # the thread is left behind (daemon); nothing waits for it
        raise RtqaError(f"cannot connect to the Dask scheduler at {address} (the "
                        f"connection did not complete within {CLIENT_TIMEOUT_S} s)")
    if "error" in box:
        exc = box["error"]
        first = (str(exc).strip().splitlines() or [""])[0]
        raise RtqaError(f"cannot connect to the Dask scheduler at {address} "
                        f"({type(exc).__name__}{': ' + first if first else ''})") from None
    client = box["client"]
    try:
        _preflight(client, settings, fingerprint)
    except BaseException:
        client.close(timeout=CLOSE_TIMEOUT_S)
        raise
    return client


def _check_on_worker(task: PlanTask, topic: str, key: str, check=None) -> dict:
    """The Dask task of one plan: report its start on ``topic`` (worker address and
    process id, for the time limit), then :func:`rtqa.batch.worker.check_plan`. The
    modules a check needs are imported first: a fresh worker's imports do not count
    towards the plan's time limit (local workers have them preloaded too)."""
    import rtqa.checks.pipeline  # noqa: F401
    import rtqa.report.html  # noqa: F401
    if topic:
        try:
            from distributed import get_worker
            worker = get_worker()
            worker.log_event(topic, {"key": key, "worker": worker.address,
                                     "pid": os.getpid()})
        except Exception:  # noqa: BLE001 - no start event: no time limit for this plan
            pass
    return (check or check_plan)(task)


def _failure_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        first = str(exc).split(". ")[0]
        return ("the Dask worker processes checking this plan died "
                f"repeatedly (KilledWorker: {first})")
    return f"Dask could not check this plan ({name}: {exc})"


def _restart_note(worker: str, outcome: str | None) -> str:
    """What happened to the worker process of a timed-out plan, for its ERROR reason."""
    if outcome == "OK":
        return (f"the Dask worker running it ({worker}) was restarted through its nanny, "
                "which killed the process checking it")
    if outcome == "removed":
        return (f"the Dask worker running it ({worker}) has no nanny: it was removed from "
                "the cluster and told to close; the plan may run on there until it ends")
    if outcome == "timed out":
        return (f"the Dask worker running it ({worker}) did not restart within "
                f"{RESTART_TIMEOUT_S} s and was removed from the scheduler; the plan may "
                "still be running in that process")
    if outcome is None:
        return f"the Dask worker running it ({worker}) had already left the cluster"
    return (f"the Dask worker running it ({worker}) could not be restarted ({outcome}); "
            "the plan may still be running there until it finishes")


def _expire(client, inflight: dict, started: dict, limit: float) -> list:
    """Results of the plans running longer than ``limit`` (removed from ``inflight``):
    cancel them and restart their workers (see the module docstring)."""
    now = time.monotonic()
    late = [k for k in inflight if k in started and now >= started[k][0] + limit]
    if not late:
        return []
    alive = set(client.nthreads())
    for k in [k for k in late if started[k][1] not in alive]:
        started.pop(k)   # its worker left: Dask runs the plan again elsewhere (new start)
    late = [k for k in late if k in started]
    if not late:
        return []
    client.cancel([inflight[k][0] for k in late])
    workers = sorted({started[k][1] for k in late})
    for k in [k for k in started if k not in late and started[k][1] in workers]:
        started.pop(k)   # other plans on those workers are rescheduled: new start events
    try:
        outcome = client.restart_workers(workers, timeout=RESTART_TIMEOUT_S,
                                         raise_for_error=False)
    except Exception as exc:  # noqa: BLE001 - reported in the plans' reasons
        outcome = {w: f"{type(exc).__name__}: {exc}" for w in workers}
    results = []
    for k in late:
        fut, task = inflight.pop(k)
        t0, worker, pid = started.pop(k)
        fut.release()
        result = crash_result(task, timeout_reason(limit, _restart_note(worker,
                                                                        outcome.get(worker))))
        result["stats"] = {"pid": pid, "worker": worker, "seconds": round(now - t0, 3),
                           "timed_out": True, "restart": outcome.get(worker)}
        results.append((task, result))
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - TimeoutError and friends
            raise RtqaError("no Dask worker left after restarting the worker(s) of timed-out "
                            f"plans ({type(exc).__name__})") from None
    return results


def run_dask(tasks: Iterable[PlanTask], client, timeout: float | None = None, *,
             check=None) -> Iterator[tuple[PlanTask, dict]]:
    """Check ``tasks`` on the cluster of ``client`` (from :func:`connect`), yielding
    (task, result) as plans complete (like :func:`rtqa.batch.pool.run_local`);
    ``timeout``: seconds per plan from its start on a worker (None or 0: no limit);
    ``check``: what a worker runs per plan (default ``check_plan``). Closes the client at
    the end."""
    from distributed import wait
    limit = timeout_limit(timeout)
    try:
        it = iter(tasks)
        threads = sum(client.nthreads().values()) or 1
        cap = 2 * threads
        run_id = uuid.uuid4().hex[:8]
        topic = f"rtqa-batch-start-{run_id}" if limit else ""
        started: dict[str, tuple[float, str, int]] = {}   # key: (monotonic, worker, pid)
        if topic:
            def on_start(event) -> None:   # runs in the client's event loop thread
                msg = event[1]
                started[msg["key"]] = (time.monotonic(), msg["worker"], msg["pid"])
            client.subscribe_topic(topic, on_start)
        inflight: dict = {}

        def submit(task: PlanTask) -> None:
            key = f"rtqa-check-{task.key}-{run_id}"
            fut = client.submit(_check_on_worker, task, topic, key, check, pure=False,
                                retries=0, key=key)
            inflight[key] = (fut, task)

        for task in it:
            submit(task)
            if len(inflight) >= cap:
                break
        unreachable_since: float | None = None
        while inflight:
            wait_s = IDLE_POLL_S
            if limit:
                # wake up at the first deadline, and at least every POLL_S for the
                # deadlines of plans whose start event arrives meanwhile
                now = time.monotonic()
                ends = [started[k][0] + limit for k in inflight if k in started]
                wait_s = max(0.01, min([POLL_S] + [e - now for e in ends]))
            try:
                with client.as_current():   # distributed.wait uses the current client
                    done = wait([f for f, _ in inflight.values()], timeout=wait_s,
                                return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = set()
            if not done:   # is the scheduler still there? (bounded: LOST_TIMEOUT_S)
                if client.status == "running":
                    unreachable_since = None
                else:
                    unreachable_since = unreachable_since or time.monotonic()
                    if (client.status in ("closed", "closing", "failed")
                            or time.monotonic() - unreachable_since > LOST_TIMEOUT_S):
                        raise RtqaError(
                            "lost the connection to the Dask scheduler (client "
                            f"{client.status} for more than {LOST_TIMEOUT_S} s): the "
                            "plans not reported yet were not checked; run again with "
                            "--resume")
            finished = []
            for fut in done:
                _, task = inflight.pop(fut.key)
                started.pop(fut.key, None)
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker, lost connection ...
                    result = crash_result(task, _failure_reason(exc))
                finally:
                    fut.release()
                finished.append((task, result))
            if limit:
                finished += _expire(client, inflight, started, limit)
            for item in finished:
                yield item
                nxt = next(it, None)
                if nxt is not None:
                    submit(nxt)
    finally:
        client.close(timeout=CLOSE_TIMEOUT_S)


def _preflight(client, settings, fingerprint: str | None) -> None:
    """Stop before any plan is sent when the workers cannot give the local result."""
    from rtqa import __version__
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - TimeoutError and friends
            raise RtqaError(f"no Dask worker joined the scheduler within "
                            f"{CONNECT_TIMEOUT_S} s ({type(exc).__name__})") from None
    try:
        ident = client.submit(worker_identity, settings, pure=False).result(
            timeout=IDENTITY_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - e.g. rtqa not installed on the workers
        raise RtqaError("the Dask workers cannot run rtqa "
                        f"({type(exc).__name__}: {exc})") from None
    if ident["rtqa_version"] != __version__:
        raise RtqaError(f"the Dask workers run rtqa {ident['rtqa_version']}, this machine "
                        f"{__version__}: install the same version on both")
    if fingerprint and ident["fingerprint"] != fingerprint:
        raise RtqaError("the Dask workers see a different protocol or constraint library "
                        f"than this machine ({ident['fingerprint'][:60]}): results would "
                        "differ from a local run")
