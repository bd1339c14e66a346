"""``rtqa bed``: BED/EQD2 calculator (linear-quadratic model), forward and inverse."""

from __future__ import annotations

import math

import click
import numpy as np

from rtqa.dvh import radiobiology as rb


class _InputError(click.ClickException):
    """One line ``rtqa: error: ...`` on stderr (the format of every rtqa error), exit
    code 2 (input that cannot be checked)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"rtqa: error: {self.format_message()}", err=True)


class _OneLineErrors(click.Command):
    """Report click's own parse errors on one line with exit code 2, like ours."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _InputError(exc.format_message()) from None


def _num(x: float, decimals: int = 2) -> str:
    """At most ``decimals`` decimals, at least one: 150.0, 58.5, 146.67."""
    s = f"{x:.{decimals}f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def _ab(alpha_beta: float) -> str:
    return np.format_float_positional(alpha_beta, trim="-")


HELP = """Biologically effective dose (BED) and EQD2 of a fractionated course (LQ model).

\b
    BED  = n·d·(1 + d/(α/β)) = D·(1 + D/(n·α/β))
    EQD2 = BED / (1 + 2/(α/β))

D = DOSE, the total physical dose in Gy; n = fractions; d = D/n, the dose per
fraction in Gy; α/β in Gy. With --target BED (Gy) instead of DOSE, prints the total
dose that reaches that BED in n fractions, and the per-fraction dose rounded up to
0.01 Gy so that the delivered BED is not below the target.

α/β is 10 Gy (tumour) by default in this calculator only; use --alpha-beta 3 for
late-responding normal tissue and 2 for spinal cord. The LQ model is questioned at
high dose per fraction (SBRT): always quote the α/β used.

\b
Examples:
  rtqa bed 60 --fractions 4                BED10 = 150.0 Gy, EQD2 = 125.0 Gy
  rtqa bed 40 -n 5 --alpha-beta 3          BED3 = 146.67 Gy, EQD2 = 88.0 Gy
  rtqa bed --target 60 --fractions 5       dose for BED10 = 60 Gy in 5 fractions
"""


@click.command("bed", cls=_OneLineErrors, help=HELP,
               short_help="BED and EQD2 of a fractionation (LQ model), or the dose for a BED.",
               context_settings={"ignore_unknown_options": True})  # lets "-60" reach DOSE
@click.argument("dose", type=float, required=False, metavar="[DOSE]")
@click.option("-n", "--fractions", type=int, metavar="N",
              help="Number of fractions (a positive integer). Required.")
@click.option("-a", "--alpha-beta", "alpha_beta", type=float, default=10.0, show_default=True,
              metavar="GY", help="α/β in Gy.")
@click.option("-t", "--target", type=float, metavar="BED",
              help="Target BED in Gy: print the total dose that reaches it instead.")
def bed(dose: float | None, fractions: int | None, alpha_beta: float,
        target: float | None) -> None:
    if fractions is None:
        raise _InputError("--fractions N is required (number of fractions, e.g. --fractions 4)")
    if dose is None and target is None:
        raise _InputError("give the total DOSE in Gy (e.g. 'rtqa bed 60 --fractions 4') "
                          "or --target BED in Gy")
    if dose is not None and target is not None:
        raise _InputError("give either DOSE or --target, not both")
    ab = _ab(alpha_beta)
    try:
        if target is not None:
            total = rb.total_dose_for_bed(target, fractions, alpha_beta)
            d_up = math.ceil(total / fractions * 100 - 1e-9) / 100  # per fraction, 0.01 Gy up
            lines = [
                f"Target BED{ab} = {_num(target)} Gy in {fractions} fractions (α/β = {ab} Gy)",
                f"Dose = {_num(total, 3)} Gy in {fractions} fractions "
                f"({_num(total / fractions, 3)} Gy per fraction)",
                f"Rounded up: {fractions} x {d_up:.2f} Gy = {_num(fractions * d_up)} Gy gives "
                f"BED{ab} = {_num(rb.bed(fractions * d_up, fractions, alpha_beta))} Gy",
                f"EQD2(α/β={ab}) = {_num(rb.bed_to_eqd2(target, alpha_beta))} Gy",
            ]
        else:
            value = rb.bed(dose, fractions, alpha_beta)
            lines = [
                f"Dose = {_num(dose)} Gy in {fractions} fractions "
                f"({_num(dose / fractions)} Gy per fraction)",
                f"BED{ab} = {_num(value)} Gy (α/β = {ab} Gy)",
                f"EQD2(α/β={ab}) = {_num(rb.eqd2(dose, fractions, alpha_beta))} Gy",
            ]
    except ValueError as exc:
        raise _InputError(str(exc)) from None
    for line in lines:
        click.echo(line)
