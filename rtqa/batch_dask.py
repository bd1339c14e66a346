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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from rtqa.batch.model import PlanTask
from rtqa.batch.resume import settings_fingerprint
from rtqa.batch.worker import check_plan, crash_result
from rtqa.errors import RtqaError

__all__ = ["connect", "run_dask", "worker_identity"]

CONNECT_TIMEOUT_S = 30


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


def connect(address: str, settings, fingerprint: str | None = None):
    """A Dask client for ``address`` whose workers are checked to give the local result
    (same rtqa version and constraint library); raises ``RtqaError`` otherwise."""
    distributed = _import_distributed()
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S,
                                    set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError ...
        raise RtqaError(f"cannot connect to the Dask scheduler at {address} "
                        f"({type(exc).__name__}: {exc})") from None
    try:
        _preflight(client, settings, fingerprint)
    except BaseException:
        client.close()
        raise
    return client


def run_dask(tasks: Iterable[PlanTask], client) -> Iterator[tuple[PlanTask, dict]]:
    """Check ``tasks`` on the cluster of ``client`` (from :func:`connect`), yielding
    (task, result) as plans complete (like :func:`rtqa.batch.pool.run_local`); closes the
    client at the end."""
    from distributed import as_completed
    try:
        it = iter(tasks)
        threads = sum(client.nthreads().values()) or 1
        cap = 2 * threads
        run_id = uuid.uuid4().hex[:8]
        inflight: dict = {}
        ac = as_completed(loop=client.loop)

        def submit(task: PlanTask) -> None:
            fut = client.submit(check_plan, task, pure=False, retries=0,
                                key=f"rtqa-check-{task.key}-{run_id}")
            inflight[fut.key] = (fut, task)
            ac.add(fut)

        for task in it:
            submit(task)
            if len(inflight) >= cap:
                break
        if not inflight:
            return
        for fut in ac:
            _, task = inflight.pop(fut.key)
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, lost connection ...
                name = type(exc).__name__
                if name == "KilledWorker":
                    first = str(exc).split(". ")[0]
                    reason = ("the Dask worker processes checking this plan died "
                              f"repeatedly (KilledWorker: {first})")
                else:
                    reason = f"Dask could not check this plan ({name}: {exc})"
                result = crash_result(task, reason)
            finally:
                fut.release()
            yield task, result
            nxt = next(it, None)
            if nxt is not None:
                submit(nxt)
    finally:
        client.close()


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
        ident = client.submit(worker_identity, settings, pure=False).result(timeout=120)
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
