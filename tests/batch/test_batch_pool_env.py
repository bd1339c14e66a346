"""What the fork server of ``rtqa batch`` (and so every local worker) runs with
(issue 16 item 5): malloc keeps freed memory for reuse unless the user tuned malloc, and
the warm-up fills the check options of the default settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rtqa.batch import pool
from rtqa.batch.model import CheckSettings, PlanTask


def test_malloc_settings_unless_the_user_set_any():
    assert pool._malloc_env({}) == {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                                    "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
    for name in pool._MALLOC_TUNABLES:
        assert pool._malloc_env({name: "1"}) == {}, name
    assert pool._malloc_env({"PATH": "/bin"}) == pool._malloc_env({})


def test_fork_server_env_has_the_malloc_settings():
    env = pool._fork_server_env()
    for k, v in pool._malloc_env().items():
        assert env[k] == v
    # only the fork server gets them: this process is left alone
    before = {k: os.environ.get(k) for k in pool._MALLOC}
    pool._mp_context()
    assert {k: os.environ.get(k) for k in pool._MALLOC} == before


_PROBE = """
import json, os
from functools import partial
from rtqa.batch import pool
from rtqa.batch.model import CheckSettings, PlanTask
task = PlanTask("k", "n", "P", (), (), (), CheckSettings().resolved())
out = {}
for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
    # os.getenv(name, task) in the worker: its value there, or the task when unset
    [(_, got)] = list(pool.run_local([task], 1, check=partial(os.getenv, name)))
    out[name] = got if isinstance(got, str) else "unset"
print(json.dumps(out))
"""


def _worker_env(extra: dict[str, str]) -> dict:
    """The malloc variables a local worker sees, from a fresh process (the fork server
    starts once per process, with the environment of that moment: in this test process an
    earlier test, e.g. Dask's, may already have started it or changed os.environ)."""
    env = {k: v for k, v in os.environ.items() if k not in pool._MALLOC_TUNABLES}
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_workers_run_with_the_fork_server_env():
    if "forkserver" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("no forkserver start method here")
    assert _worker_env({}) == pool._MALLOC
    # the user's own malloc setting stands: none of ours is added
    assert _worker_env({"MALLOC_ARENA_MAX": "2"}) == {"MALLOC_MMAP_THRESHOLD_": "unset",
                                                      "MALLOC_TRIM_THRESHOLD_": "unset"}
    assert _worker_env({"MALLOC_TRIM_THRESHOLD_": "1000"})["MALLOC_TRIM_THRESHOLD_"] == "1000"


def test_warm_up_fills_the_default_check_options(monkeypatch):
    calls = []
    real = CheckSettings.options
    monkeypatch.setattr(CheckSettings, "options",
                        lambda self, **kw: calls.append(self) or real(self, **kw))
    pool._warm_up()
    assert calls == [CheckSettings().resolved()]
