"""rtqa command line: ``rtqa COMMAND ...``.

Each subcommand lives in its own module of this package and is registered here.
Exit codes: 0 all checks pass, 1 a check fails, 2 input could not be checked.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

from rtqa import __version__, _command_env

# The command runs numpy's BLAS single-threaded and without transparent huge pages unless
# the user chose otherwise (see ``rtqa``'s docstring): set before anything imports numpy.
os.environ.update(_command_env())

import click  # noqa: E402

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


_DEBUG_HELP = "Show tracebacks for errors (for bug reports)."

#: Commands that end their process by :func:`_exit_now` (see there).
_ONE_SHOT = frozenset({"check"})


def _command_name(argv: list[str]) -> str | None:
    """The subcommand of a command line (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _exit_now(code) -> None:
    """End the process with ``code`` without tearing the interpreter down, when that is
    safe; else return (and the caller exits as usual).

    After ``rtqa check`` has written and fsynced its reports, Python's own exit would free
    every object of the process one by one (numpy, pydicom, WeasyPrint's modules and
    caches): ~0.06 s CPU of the ~0.45-1.5 s of a check of the bundled sample (issue 16;
    3 runs each: 1.493-1.527 s against 1.443-1.462 s with --pdf). Done here: the exit
    handlers (``atexit``: logging's flush, coverage's data, ...), then a flush of stdout
    and stderr, then ``os._exit``. Not done (the usual exit instead) when another thread
    runs, when the code is not an exit status, or when a flush fails (a closed pipe: the
    usual exit reports it)."""
    import atexit
    import threading
    if code is None:
        code = 0
    if not isinstance(code, int) or not 0 <= code <= 255 or threading.active_count() > 1:
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _quiet_warnings() -> None:
    # pydicom's value warnings would print before rtqa's own one-line error
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")
    # numpy overflow warnings on absurd values (1e308 ...) likewise; every value rtqa
    # uses is checked for finiteness and range, and refused with its own message
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"(numpy|rtqa)(\..*)?$")


def _late_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--debug`` given after the subcommand (``rtqa check --debug plan/``): the same as
    before it."""
    if not value:
        return
    root = ctx.find_root()
    root.obj = {**(root.obj or {}), "debug": True}
    # warnings shown again (the filters added first win)
    warnings.filterwarnings("default", module=r"pydicom(\..*)?$")
    warnings.filterwarnings("default", category=RuntimeWarning, module=r"(numpy|rtqa)(\..*)?$")


def _with_debug(cmd: click.Command) -> click.Command:
    """Give ``cmd`` (and the subcommands of a group) a ``--debug`` option, once."""
    if not any(p.name == "debug_late" for p in cmd.params):
        cmd.params.append(click.Option(["--debug", "debug_late"], is_flag=True,
                                       expose_value=False, callback=_late_debug,
                                       is_eager=True, help=_DEBUG_HELP))
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _with_debug(sub)
    return cmd


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use; every subcommand also
    takes ``--debug``; every error is one line ``rtqa: error: ...`` on stderr."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr, _ = _COMMANDS[name]
        return _with_debug(getattr(importlib.import_module(module), attr))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        """click's ``main``, with click's own errors (usage errors, bad option values) in
        the one format of rtqa's errors: ``rtqa: error: <message> (see 'rtqa CMD
        --help')``, exit code as click gives it (2 for usage errors)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except SystemExit as exc:
            # the process's own command line (not a caller's args, e.g. click's test
            # runner): a one-shot command ends the process at once
            if args is None and _command_name(sys.argv[1:]) in _ONE_SHOT:
                _exit_now(exc.code)
            raise
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if isinstance(
                exc, click.UsageError) and ctx is not None else ""
            click.echo(f"rtqa: error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("rtqa: error: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows, col_max=12)


def _print_version(ctx: click.Context) -> None:
    """``rtqa --version``: the version, then whether the compiled kernels are built
    (rtqa._native: they give the same numbers as the numpy ones, only faster)."""
    from rtqa import _native
    status = _native.built()
    built = sum(status.values())
    if not _native.enabled():
        kernels = "numpy only (RTQA_NATIVE=0)"
    elif built == len(status):
        kernels = f"compiled ({built} of {len(status)})"
    else:
        missing = ", ".join(name for name, ok in status.items() if not ok)
        kernels = f"numpy for {missing} (not built: no C compiler at install)"
    click.echo(f"rtqa, version {__version__}\nkernels: {kernels}")
    ctx.exit()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _, value: _print_version(ctx) if value else None,
              help="Show rtqa's version and which compiled kernels it runs, and exit.")
@click.option("--debug", is_flag=True,
              help=_DEBUG_HELP + " Also accepted after the subcommand (rtqa check --debug ...).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """rtqa: radiotherapy plan QA from DICOM RT exports.

    Units everywhere: dose in Gy, volume in cc (cm^3), distances in mm.
    Exit codes: 0 pass, 1 a check failed, 2 input that cannot be checked.
    """
    ctx.obj = {"debug": debug}
    if not debug:
        _quiet_warnings()


