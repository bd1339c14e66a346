"""rtqa._native: the switch between the numpy kernels and their compiled twins."""

from __future__ import annotations

import importlib.util
import os

import pytest

from rtqa import _native


def test_switch_off_gives_numpy(monkeypatch):
    monkeypatch.setenv("RTQA_NATIVE", "0")
    assert not _native.enabled()
    assert all(_native.load(name) is None for name in _native.KERNELS)
    assert _native.status() == {name: False for name in _native.KERNELS}


def test_missing_module_is_none():
    assert _native.load("rtqa.reading._no_such_kernel") is None


@pytest.mark.skipif(os.environ.get("RTQA_REQUIRE_NATIVE") != "1",
                    reason="RTQA_REQUIRE_NATIVE=1 (set by CI) asks every kernel to be built")
def test_every_kernel_is_built(monkeypatch):
    """CI builds with a C compiler: a kernel that failed to compile (setup.py's
    optional=True only warns) must not go unnoticed."""
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    assert _native.status() == {name: True for name in _native.KERNELS}


def test_every_c_source_is_listed():
    """setup.py builds every rtqa/**/_c*.c; rtqa._native.KERNELS names them all."""
    from conftest import REPO
    found = {".".join(p.relative_to(REPO).with_suffix("").parts)
             for p in (REPO / "rtqa").rglob("_c*.c")}
    assert found == set(_native.KERNELS)


def test_built_agrees_with_import():
    """``built()`` (by file, for rtqa --version) says what ``load`` finds."""
    assert _native.built() == {name: importlib.util.find_spec(name) is not None
                               for name in _native.KERNELS}


def test_version_says_which_kernels_run(monkeypatch):
    from click.testing import CliRunner

    from rtqa.cli import main
    monkeypatch.setenv("RTQA_NATIVE", "0")
    out = CliRunner().invoke(main, ["--version"]).output
    assert out.splitlines() == ["rtqa, version 0.1.0", "kernels: numpy only (RTQA_NATIVE=0)"]
    monkeypatch.delenv("RTQA_NATIVE")
    line = CliRunner().invoke(main, ["--version"]).output.splitlines()[1]
    n = len(_native.KERNELS)
    if all(_native.built().values()):
        assert line == f"kernels: compiled ({n} of {n})"
    else:
        assert line.startswith("kernels: numpy for ") and "no C compiler" in line
