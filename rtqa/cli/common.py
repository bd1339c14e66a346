"""Error handling shared by the rtqa subcommands: one line, exit 2, no traceback."""

from __future__ import annotations

import functools
import os
import sys
import traceback

import click

from rtqa.errors import RtqaError

EXIT_INPUT = 2


def debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    return bool(os.environ.get("RTQA_DEBUG")) or bool(root and (root.obj or {}).get("debug"))


def fail(message: str) -> None:
    click.echo(f"rtqa: error: {message}", err=True)
    raise SystemExit(EXIT_INPUT)


def handle_errors(func):
    """Turn RtqaError (and, as a last resort, any exception) into a one-line message and
    exit code 2. ``--debug`` (or RTQA_DEBUG=1) shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (SystemExit, click.exceptions.Exit, click.ClickException):
            raise
        except RtqaError as exc:
            if debug_enabled():
                traceback.print_exc()
            fail(str(exc))
        except MemoryError:
            fail("out of memory: the input is larger than rtqa can process here")
        except Exception as exc:  # noqa: BLE001 - the user gets a line, not a traceback
            if debug_enabled():
                traceback.print_exc()
            fail(f"internal error ({type(exc).__name__}: {exc}); run with --debug for "
                 "details and please report it")

    return wrapper


def parse_map(items) -> dict[str, str]:
    """``--map STANDARD=ROI`` options as {TG-263 name: plan ROI name} (last one wins)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"'{item}' is not STANDARD=ROI (e.g. SpinalCord=CORD_1)",
                                     param_hint="--map")
        std, roi = item.split("=", 1)
        out[std.strip()] = roi.strip()
    return out


def parse_pairs(items, option: str, form: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict (last one wins); names keep inner spaces."""
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"'{item}' is not {form}", param_hint=option)
        key, value = item.split("=", 1)
        if not key.strip() or not value.strip():
            raise click.BadParameter(f"'{item}' is not {form}", param_hint=option)
        out[key.strip()] = value.strip()
    return out


def progress(enabled: bool | None = None):
    """A progress callback writing to stderr when it is a terminal (or when forced)."""
    show = sys.stderr.isatty() if enabled is None else enabled

    def report(i: int, n: int, label: str) -> None:
        if show:
            sys.stderr.write(f"\r\033[K[{i}/{n}] {label}" if i < n else "\r\033[K")
            sys.stderr.flush()

    return report
