"""``rtqa check`` ends its process without the interpreter's teardown
(``rtqa.cli._exit_now``, issue 16), after the exit handlers and with its reports and
output complete; the usual exit when another thread runs; callers' args (click's test
runner) are never ended."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtqa.cli import _command_name, _exit_now, main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "plans_sample"

_PROBE = textwrap.dedent("""
    import atexit, sys, threading, time

    class Teardown:  # its __del__ runs only when the interpreter is torn down
        def __del__(self):
            print("teardown", flush=True)

    KEEP = Teardown()
    atexit.register(lambda: print("atexit", flush=True))
    if {thread!r}:
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    sys.argv = ["rtqa", *{argv!r}]
    print("x" * 100000)   # buffered output still to be written
    from rtqa.cli import main
    main()
""")


def _run(argv, thread=False):
    code = _PROBE.format(argv=[str(a) for a in argv], thread=thread)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO)
    return p.returncode, p.stdout.splitlines()


@pytest.mark.parametrize("plan, status, code", [("hcc_pass", "PASS", 0),
                                                ("hcc_fail", "FAIL", 1)])
def test_check_ends_at_once_with_its_report_and_output(tmp_path, plan, status, code):
    out = tmp_path / "r.json"
    rc, lines = _run(["check", SAMPLE / plan, "--json", out, "-q"])
    assert rc == code
    assert lines[0] == "x" * 100000
    assert "atexit" in lines          # the exit handlers ran
    assert "teardown" not in lines    # the interpreter was not torn down
    assert json.loads(out.read_text())["status"] == status


def test_error_exit_code(tmp_path):
    rc, lines = _run(["check", tmp_path / "missing", "-q"])
    assert rc == 2 and "atexit" in lines and "teardown" not in lines


def test_usual_exit_when_another_thread_runs(tmp_path):
    out = tmp_path / "r.json"
    rc, lines = _run(["check", SAMPLE / "hcc_fail", "--json", out, "-q"], thread=True)
    assert rc == 1 and "atexit" in lines and "teardown" in lines
    assert json.loads(out.read_text())["status"] == "FAIL"


def test_other_commands_exit_as_usual():
    rc, lines = _run(["bed", "50", "--fractions", "5"])
    assert rc == 0 and "atexit" in lines and "teardown" in lines


def test_a_callers_args_are_not_ended(tmp_path):
    # CliRunner passes args: the test process goes on and gets the exit code
    result = CliRunner().invoke(main, ["check", str(tmp_path / "missing"), "-q"])
    assert result.exit_code == 2


def test_command_name():
    assert _command_name(["--debug", "check", "plan/"]) == "check"
    assert _command_name(["-h"]) is None
    assert _command_name([]) is None


@pytest.mark.parametrize("code", ["text", 256, -1, 1.5])
def test_not_an_exit_status_returns(code):
    assert _exit_now(code) is None   # returned: this process is still here
