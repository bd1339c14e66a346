"""``rtqa._preload``: the check's modules imported with the collector off, then frozen
(issue 16). Runs in fresh interpreters: freezing is for a whole process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROBE = textwrap.dedent("""
    import gc, json, sys
    from rtqa._preload import CHECK_MODULES, frozen_imports
    before = set(sys.modules)
    states = []
    {enabled}
    try:
        with frozen_imports(CHECK_MODULES):
            states.append(gc.isenabled())
            {body}
    except RuntimeError:
        pass
    print(json.dumps({{"inside": states, "after": gc.isenabled(),
                      "frozen": gc.get_freeze_count(),
                      "missing": [m for m in CHECK_MODULES if m not in sys.modules]}}))
""")


def _probe(enabled="gc.enable()", body="pass"):
    code = _PROBE.format(enabled=enabled, body=body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_imports_with_the_collector_off_then_freezes_and_restores():
    got = _probe()
    assert got["inside"] == [False] and got["after"] is True
    assert got["missing"] == []
    # what the imports made is frozen: numpy, pydicom, rtqa ... (far more than 10,000)
    assert got["frozen"] > 10_000


def test_collector_left_off_when_it_was_off():
    assert _probe(enabled="gc.disable()")["after"] is False


def test_restored_when_the_block_fails():
    got = _probe(body='raise RuntimeError("x")')
    assert got["inside"] == [False] and got["after"] is True and got["frozen"] > 10_000


def test_the_batch_fork_server_preloads_them():
    from rtqa._preload import CHECK_MODULES
    from rtqa.batch.pool import _PRELOAD
    assert set(CHECK_MODULES) <= set(_PRELOAD)
