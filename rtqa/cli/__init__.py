"""rtqa command line: ``rtqa COMMAND ...``.

Each subcommand lives in its own module of this package and is registered here.
Exit codes: 0 all checks pass, 1 a check fails, 2 input could not be checked.
"""

from __future__ import annotations

import importlib
import warnings

import click

from rtqa import __version__

# name -> (module, attribute, one-line help) of each subcommand, listed in this order.
# The modules are imported only when their command runs (or shows its own --help), so
# ``rtqa --help`` and ``rtqa --version`` import no numpy, scipy, matplotlib or pydicom.
# tests/cli/test_startup.py checks that each line is the first sentence of the command's help.
_COMMANDS = {
    "check": ("rtqa.cli.check", "check",
              "Check the plan export in PLAN_DIR against a protocol and report PASS/FAIL."),
    "batch": ("rtqa.cli.batch", "batch",
              "Check every plan export under ROOT and write one report per plan plus an index."),
    "dvh": ("rtqa.cli.dvh", "dvh",
            "Compute DVHs for every structure in PATHS (files and folders in any mix)."),
    "bed": ("rtqa.cli.bed", "bed",
            "Biologically effective dose (BED) and EQD2 of a fractionated course (LQ model)."),
    "sample": ("rtqa.cli.sample", "sample", "Write a synthetic DICOM RT export into OUTDIR."),
    "constraints": ("rtqa.cli.constraints", "constraints",
                    "Sourced dose-constraint library: list what a protocol applies."),
    "serve": ("rtqa.cli.serve", "serve",
              "Run a DICOM node that checks every plan sent to it (Storage SCP)."),
    "watch": ("rtqa.cli.serve", "watch",
              "Check every plan exported into FOLDER (a planning system's export folder)."),
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr, _ = _COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows, col_max=12)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rtqa")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (for bug reports).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """rtqa: radiotherapy plan QA from DICOM RT exports.

    Units everywhere: dose in Gy, volume in cc (cm^3), distances in mm.
    Exit codes: 0 pass, 1 a check failed, 2 input that cannot be checked.
    """
    ctx.obj = {"debug": debug}
    if not debug:
        # pydicom's value warnings would print before rtqa's own one-line error
        warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")
        # numpy overflow warnings on absurd values (1e308 ...) likewise; every value rtqa
        # uses is checked for finiteness and range, and refused with its own message
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"(numpy|rtqa)(\..*)?$")


