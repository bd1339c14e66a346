"""``rtqa._command_env``: the environment the ``rtqa`` command and the workers of ``rtqa
batch`` run numpy in (single-threaded BLAS, no transparent huge pages), each unless the
user chose otherwise; ``import rtqa`` alone leaves the process alone."""

import doctest
import json
import os
import subprocess
import sys

import pytest

import rtqa
from rtqa.batch import pool

_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS",
         "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMPY_MADVISE_HUGEPAGE")


def test_doctests():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(rtqa._command_env, "_command_env", globs=vars(rtqa)):
        runner.run(test)
    assert runner.summarize(verbose=False) == (0, 2)


def test_each_user_choice_stands_alone():
    assert rtqa._command_env({"NUMPY_MADVISE_HUGEPAGE": "1"}) == {
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # an empty value is no choice (numpy's import would fail on int("")): it is replaced
    assert rtqa._command_env({"NUMPY_MADVISE_HUGEPAGE": ""})["NUMPY_MADVISE_HUGEPAGE"] == "0"
    assert rtqa._command_env({"BLIS_NUM_THREADS": "4"}) == {"NUMPY_MADVISE_HUGEPAGE": "0"}


# What numpy decided in a process: _set_madvise_hugepage returns the previous setting.
_HUGE = ("import numpy\ntry:\n    from numpy._core import multiarray as m\n"
         "except ImportError:  # numpy 1\n    from numpy.core import multiarray as m\n"
         "print(m._set_madvise_hugepage(False))")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in _VARS}
    env.update(extra)
    return env


def _run(code, **extra):
    return subprocess.run([sys.executable, "-c", code], env=_clean_env(**extra),
                          capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(sys.platform != "linux", reason="numpy uses madvise huge pages on Linux")
def test_the_command_process_asks_numpy_for_no_huge_pages():
    # the control: plain numpy on this Linux asks for huge pages (kernel >= 4.6)
    assert _run(_HUGE) == ["True"]
    # the rtqa command's module sets the variable before numpy is imported
    assert _run("import rtqa.cli\n" + _HUGE) == ["False"]
    assert _run("import rtqa.cli\n" + _HUGE, NUMPY_MADVISE_HUGEPAGE="1") == ["True"]
    # the library alone leaves the process alone
    assert _run("import rtqa\n" + _HUGE) == ["True"]


def test_the_command_process_runs_blas_single_threaded():
    code = "import os, rtqa.cli; print(os.environ.get('OMP_NUM_THREADS'))"
    assert _run(code) == ["1"]
    assert _run(code, OMP_NUM_THREADS="3") == ["3"]


_WORKER = """
import json, os
from functools import partial
from rtqa.batch import pool
from rtqa.batch.model import CheckSettings, PlanTask
task = PlanTask("k", "n", "P", (), (), (), CheckSettings().resolved())
[(_, got)] = list(pool.run_local([task], 1, check=partial(os.getenv, "NUMPY_MADVISE_HUGEPAGE")))
print(json.dumps(got if isinstance(got, str) else "unset"))
"""


def test_batch_workers_get_the_command_env():
    if "forkserver" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("no forkserver start method here")
    assert json.loads(_run(_WORKER)[-1]) == "0"
    assert json.loads(_run(_WORKER, NUMPY_MADVISE_HUGEPAGE="1")[-1]) == "1"
    assert pool._fork_server_env().get("NUMPY_MADVISE_HUGEPAGE") == (
        None if os.environ.get("NUMPY_MADVISE_HUGEPAGE") else "0")
