"""Session fixtures shared by the test modules.

Layout: the test folders mirror the package (``reading/``, ``dvh/``, ``checks/``,
``report/``, ``batch/``, ``cli/``); ``acceptance/`` holds the end-to-end, fail-closed and
fuzz tests. Helper modules (``phantoms``, ``corpus``, ``e2e_cases``, ``report_fixtures``)
sit in this folder. Long tests carry the ``slow`` marker: ``pytest -m "not slow"`` is the
quick loop, ``make test`` runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "plans_sample"
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The committed sample plans (``plans_sample/``): ``hcc_pass`` and ``hcc_fail``."""
    return SAMPLES


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests that need it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture(scope="session")
def pass_dir(tmp_path_factory) -> Path:
    """hcc_pass written once per session by ``rtqa sample`` (the CLI a user runs)."""
    from click.testing import CliRunner

    from rtqa.cli import main
    out = tmp_path_factory.mktemp("hcc_pass")
    res = CliRunner().invoke(main, ["sample", str(out), "--case", "hcc_pass", "--force"])
    assert res.exit_code == 0, res.output
    assert "RS.hcc_pass.dcm" in res.output and "PASS" in res.output
    return out


@pytest.fixture(scope="session")
def fail_dir(tmp_path_factory) -> Path:
    """hcc_fail written once per session."""
    from rtqa.sample import hcc_fail, write_case
    out = tmp_path_factory.mktemp("hcc_fail")
    write_case(hcc_fail(), out)
    return out


@pytest.fixture(params=["numpy", "native"])
def kernels(request, monkeypatch) -> str:
    """Run a test once with rtqa's numpy kernels (``RTQA_NATIVE=0``) and once with the
    compiled ones (rtqa._native; skipped when this installation has none built)."""
    from rtqa import _native
    if request.param == "numpy":
        monkeypatch.setenv("RTQA_NATIVE", "0")
    else:
        monkeypatch.delenv("RTQA_NATIVE", raising=False)
        missing = [name for name, ok in _native.status().items() if not ok]
        if missing:
            pytest.skip(f"compiled kernels not built: {', '.join(missing)}")
    return request.param
