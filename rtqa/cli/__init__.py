"""rtqa command line: ``rtqa COMMAND ...``.

Each subcommand lives in its own module of this package and is registered here.
Exit codes: 0 all checks pass, 1 a check fails, 2 input could not be checked.
"""

from __future__ import annotations

import importlib
import warnings

import click

from rtqa import __version__

# (module, attribute) of each subcommand, registered in this order.
_COMMANDS = [
    ("rtqa.cli.check", "check"),
    ("rtqa.cli.batch", "batch"),
    ("rtqa.cli.dvh", "dvh"),
    ("rtqa.cli.bed", "bed"),
    ("rtqa.cli.sample", "sample"),
    ("rtqa.cli.constraints", "constraints"),
    ("rtqa.cli.serve", "serve"),
    ("rtqa.cli.serve", "watch"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


for _module, _attr in _COMMANDS:
    main.add_command(getattr(importlib.import_module(_module), _attr))
