"""``rtqa constraints list``: what a protocol's constraint library applies to a plan."""

from __future__ import annotations

import math

import click

from rtqa.constraints import (DERIVATION_MAX_FRACTIONS, FORMAT_HELP, Constraint, Protocol,
                              SelectedRow, in_derivation_range, is_hypofractionated,
                              load_protocol)
from rtqa.errors import RtqaError

DEFAULT_PROTOCOL = "oligo-hcc"


class _InputError(click.ClickException):
    """One-line ``Error: ...`` on stderr, exit code 2 (input that cannot be checked)."""

    exit_code = 2


class _OneLine:
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _InputError(exc.format_message()) from None


class _Group(_OneLine, click.Group):
    pass


class _Command(_OneLine, click.Command):
    pass


HELP = f"""Sourced dose-constraint library: list what a protocol applies.

Constraint sets are TOML files in the constraints folder (the environment variable
RTQA_CONSTRAINTS_DIR names another one). A protocol (constraints/protocols/NAME.toml,
default {DEFAULT_PROTOCOL}) includes sets, adds its own rows and its settings. A
constraint set:

{FORMAT_HELP}

Every row carries its source and status; a malformed file is an error naming the file
and line, never a skipped row.
"""


@click.group("constraints", cls=_Group, help=HELP)
def constraints() -> None:
    pass


def _pos_int(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _InputError(f"{what} must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise _InputError(f"{what} must be a whole number >= 1, got {text!r}")
    return value


def _pos_float(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise _InputError(f"{what} must be a number > 0 (Gy), got {text!r}")
    return value


def _source(row: Constraint) -> str:
    return f"{row.source or 'NO SOURCE'} [{row.ref}]"


def _status(row: Constraint) -> str:
    return f"{row.priority:<9} {row.status or '?':<2}"


def _dose(entry: SelectedRow) -> str:
    if entry.dose_type in (None, "physical"):
        return "physical"
    return f"{entry.dose_type} α/β={entry.alpha_beta:g}"


def _row_line(label: str, middle: str, row: Constraint, off: str = "",
              width: int = 16) -> list[str]:
    lines = [f"  {off}{label:<24} {middle:<{width}} {_status(row)}  {_source(row)}"]
    if row.note and row.derivation is None:   # a derived row's note is its conversion note
        lines.append(f"      note: {row.note}")
    return lines


def _by_fraction(protocol: Protocol, n: int, dpf: float | None, show_all: bool) -> list[str]:
    out: list[str] = []
    current = None
    for entry in protocol.select(n, dose_per_fraction_gy=dpf):
        if entry.kind == "disabled" and not show_all:
            continue
        if entry.structure != current:
            current = entry.structure
            out.append("")
            out.append(current)
        if entry.kind == "none":
            out.append(f"  NO CONSTRAINT: {entry.reason}; a contoured {current} is NOT "
                       "EVALUATED (plan ERROR)")
            if entry.hint:
                out.append(f"      {entry.hint}")
            continue
        if entry.kind == "exempt":
            out.append(f"  NO LIMIT BY PROTOCOL: {entry.reason.removeprefix('no limit by protocol: ')}")
            continue
        row = entry.constraint
        off = ("[OFF] " if entry.kind == "disabled" else "[REPLACED] " if entry.replaced_by
               else "[INFO] " if entry.informative else "[LQ] " if entry.derived else "")
        middle = _dose(entry) if entry.applied or entry.replaced_by else "-"
        out.extend(_row_line(row.label, middle, row, off))
        if (entry.applied or entry.replaced_by) and entry.conversion_note:
            out.append(f"      {entry.conversion_note}")
        if entry.kind == "disabled":
            out.append(f"      {entry.reason}")
    return out


def _everything(protocol: Protocol, show_all: bool) -> list[str]:
    out: list[str] = []
    current = None
    for row in protocol.constraints:
        if not row.enabled and not show_all:
            continue
        if row.structure != current:
            current = row.structure
            out.append("")
            out.append(current)
        dose = "EQD2 if hypo" if row.conventional else (
            row.dose_type if row.dose_type == "physical" else
            f"{row.dose_type} α/β={row.alpha_beta:g}")
        middle = f"{row.fraction_label:<13} {dose}"
        out.extend(_row_line(row.label, middle, row, "" if row.enabled else "[OFF] ", 26))
    return out


def _settings(protocol: Protocol) -> list[str]:
    out = ["", "Protocol settings:"]
    les, oli, ct, ptv = (protocol.lesions, protocol.oligoprogression, protocol.planning_ct,
                         protocol.ptv_margin)
    out.append(f"  lesions: BED (α/β={les.alpha_beta:g} Gy) of {les.coverage_metric} on "
               f"{' else '.join(les.coverage_structures)} {les.bed_limit} Gy  [{les.source}]"
               if les else "  lesions: not defined by this protocol")
    out.append(f"  oligoprogression: <= {oli.max_lesions} lesions in <= {oli.max_organs} "
               f"organs  [{oli.source}]" if oli else "  oligoprogression: not defined")
    out.append(f"  planning CT: slice spacing <= {ct.max_slice_spacing_mm:g} mm, pixel size "
               f"<= {ct.max_pixel_size_mm:g} mm  [{ct.source}]" if ct else
               "  planning CT: not defined")
    out.append(f"  PTV margin: {ptv.min_mm:g}-{ptv.max_mm:g} mm around the CTV  "
               f"[{ptv.source}]" if ptv else "  PTV margin: not defined")
    lim = protocol.limits
    out.append("  limits: fraction counts without a sourced row get rows derived by LQ "
               "isoeffect from the nearest sourced schedule (α/β 3 Gy, 2 Gy CNS; the lower "
               f"limit when two are equally near), marked [LQ], for 1-{DERIVATION_MAX_FRACTIONS} "
               "fractions only" if lim.derive_lq else
               "  limits: no LQ derivation (derive_lq = false)")
    for rep in lim.replace:
        out.append(f"  replaced: derived rows of {rep.label}, marked [REPLACED]  "
                   f"[{rep.source}]")
    if lim.no_limit:
        out.append(f"  no limit by protocol: {', '.join(lim.no_limit)}  [{lim.no_limit_source}]")
    return out


@constraints.command("list", cls=_Command,
                     epilog="Constraint file format (see also rtqa constraints --help):\n\n"
                     + FORMAT_HELP)
@click.option("--fractions", "-n", "fractions", metavar="N",
              help="Show what applies to a plan of N fractions (default: every row with "
                   "its fraction spec).")
@click.option("--protocol", "-p", "protocol", default=DEFAULT_PROTOCOL, show_default=True,
              metavar="P", help="Protocol name (constraints/protocols/P.toml) or path.")
@click.option("--all", "-a", "show_all", is_flag=True,
              help="Also list disabled rows (status V2/U or enabled = false), marked [OFF].")
@click.option("--dose-per-fraction", "dpf", metavar="GY",
              help="Prescription dose per fraction (Gy); decides whether conventional rows "
                   "are converted to EQD2 (> 2 Gy). Default: by fraction count (< 25).")
def list_cmd(fractions: str | None, protocol: str, show_all: bool, dpf: str | None) -> None:
    """List a protocol's constraints, grouped by structure.

    Each row: metric and limit (Gy, cc or % as the metric's [unit]), dose type (physical,
    or EQD2/BED with α/β in Gy), priority, status (V verified, V2, U) and source
    [file:line]. With --fractions N: rows derived by LQ isoeffect for a fraction count
    no source tabulates are marked [LQ] with their reference ("derived (LQ) from
    <source>, <n> fx") and arithmetic; conventional rows that only inform because an
    SBRT row for the same structure and metric applies are marked [INFO] (optimal);
    derived rows the protocol replaces by its own rule ([[limits.replace]]) are marked
    [REPLACED] (not evaluated; the replacing row applies); structures the protocol gives no limit
    say NO LIMIT BY PROTOCOL with its reason; any other structure without a limit says
    NO CONSTRAINT (a contoured one is NOT EVALUATED, plan ERROR) and how to add a row.
    Limits are derived by LQ only for 1-8 fractions; from 9 fractions on the
    conventional rows apply.
    """
    n = _pos_int(fractions, "--fractions")
    d = _pos_float(dpf, "--dose-per-fraction")
    if d is not None and n is None:
        raise _InputError("--dose-per-fraction needs --fractions")
    try:
        proto = load_protocol(protocol)
    except RtqaError as exc:
        raise _InputError(str(exc)) from None
    head = [f"Protocol {proto.name} ({proto.path})"]
    if proto.source:
        head.append(f"  source: {proto.source}")
    if n is None:
        head.append("  all fraction counts" + ("" if show_all else " (enabled rows; --all "
                                                                  "adds disabled rows)"))
        head.append("  sourced rows only: rows derived by LQ for counts no source tabulates "
                    "are listed with --fractions N")
        body = _everything(proto, show_all)
    else:
        hypo = is_hypofractionated(n, d)
        how = (f"dose per fraction {d:g} Gy" if d is not None else f"{n} fraction"
               + ("s" if n != 1 else ""))
        head.append(f"  {n} fraction{'s' if n != 1 else ''}: " + (
            f"hypofractionated ({how}): conventional rows evaluated on voxel-wise EQD2 = "
            f"D·(D/{n} + α/β)/(2 + α/β)" if hypo else
            f"conventionally fractionated ({how}): conventional rows on physical dose"))
        head.append(
            f"  SBRT range (1-{DERIVATION_MAX_FRACTIONS} fx): fraction-specific rows, gaps "
            "filled by LQ derivation [LQ]" if in_derivation_range(n) else
            f"  beyond the SBRT range (1-{DERIVATION_MAX_FRACTIONS} fx): no LQ derivation; "
            "conventional rows, rows for any count and rows for this count apply")
        body = _by_fraction(proto, n, d, show_all)
    click.echo("\n".join(head + body + _settings(proto)))
