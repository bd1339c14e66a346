"""``rtqa --help`` and ``rtqa --version`` stay light: no numpy, scipy, matplotlib, pydicom,
shapely or jinja2 imported (subcommands are imported when they run)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rtqa.cli import _COMMANDS, main

HEAVY = ("numpy", "scipy", "matplotlib", "pydicom", "shapely", "jinja2")

PROBE = """
import json, sys
sys.argv = ["rtqa"] + {args!r}
import rtqa.cli
try:
    rtqa.cli.main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], []])
def test_help_and_version_import_no_heavy_module(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_import_rtqa_is_light():
    code = f"import json, sys, rtqa; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("name", list(_COMMANDS))
def test_listed_help_is_the_first_sentence_of_the_commands_help(name):
    module, attr, short = _COMMANDS[name]
    command = getattr(importlib.import_module(module), attr)
    assert command.name == name
    first = command.help.strip().split("\n\n")[0]
    assert short == " ".join(first.split())


def test_help_lists_every_command_in_order():
    out = CliRunner().invoke(main, ["--help"]).output
    section = out.split("Commands:")[1].splitlines()
    listed = [line.split()[0] for line in section if line.startswith("  ") and line[2] != " "]
    assert listed == list(_COMMANDS)


def test_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(main, ["chek"])
    assert res.exit_code == 2 and "No such command" in res.output
