"""``rtqa bed``: worked values of constraints.md, help text and one-line errors."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from rtqa.cli.bed import bed


def run(*args):
    return CliRunner().invoke(bed, list(args), prog_name="rtqa bed")


def test_forward_worked_value():
    result = run("60", "--fractions", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Dose = 60.0 Gy in 4 fractions (15.0 Gy per fraction)" in lines
    assert "BED10 = 150.0 Gy (α/β = 10 Gy)" in lines
    assert "EQD2(α/β=10) = 125.0 Gy" in lines
    assert result.stderr == ""


@pytest.mark.parametrize("dose, n, bed10", [
    ("30", "3", "60.0"), ("45", "15", "58.5"), ("50", "10", "75.0"), ("40", "5", "72.0"),
    ("24", "3", "43.2"), ("35", "5", "59.5"), ("54", "3", "151.2"),
])
def test_forward_bed10_table(dose, n, bed10):
    result = run(dose, "-n", n)
    assert result.exit_code == 0
    assert f"BED10 = {bed10} Gy (α/β = 10 Gy)" in result.stdout.splitlines()


@pytest.mark.parametrize("dose, n, bed3, eqd2", [("40", "5", "146.67", "88.0"),
                                                 ("30", "3", "130.0", "78.0")])
def test_forward_alpha_beta_3(dose, n, bed3, eqd2):
    result = run(dose, "--fractions", n, "--alpha-beta", "3")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert f"BED3 = {bed3} Gy (α/β = 3 Gy)" in lines
    assert f"EQD2(α/β=3) = {eqd2} Gy" in lines


def test_inverse_target():
    result = run("--target", "60", "--fractions", "5")
    assert result.exit_code == 0, result.output
    # D^2/(5*10) + D - 60 = 0  ->  D = 25 (sqrt(5.8) - 1) = 35.208 Gy, 7.042 Gy per fraction
    total = 25 * (math.sqrt(5.8) - 1)
    assert f"{total:.3f}" == "35.208"
    lines = result.stdout.splitlines()
    assert "Target BED10 = 60.0 Gy in 5 fractions (α/β = 10 Gy)" in lines
    assert "Dose = 35.208 Gy in 5 fractions (7.042 Gy per fraction)" in lines
    # 7.05 Gy x 5 = 35.25 Gy -> BED10 = 35.25 * 1.705 = 60.1 Gy, not below the target
    assert "Rounded up: 5 x 7.05 Gy = 35.25 Gy gives BED10 = 60.1 Gy" in lines
    assert "EQD2(α/β=10) = 50.0 Gy" in lines


def test_inverse_exact_worked_value():
    result = run("--target", "150", "-n", "4")
    assert result.exit_code == 0
    assert "Dose = 60.0 Gy in 4 fractions (15.0 Gy per fraction)" in result.stdout.splitlines()


def test_help_teaches():
    result = run("--help")
    assert result.exit_code == 0
    text = result.output
    for needle in ("BED  = n·d·(1 + d/(α/β))", "EQD2 = BED / (1 + 2/(α/β))", "Gy",
                   "rtqa bed 60 --fractions 4", "--target", "--alpha-beta", "spinal cord"):
        assert needle in text


@pytest.mark.parametrize("args, message", [
    (("60", "--fractions", "0"), "fractions must be a positive integer"),
    (("60", "--fractions", "-2"), "fractions must be a positive integer"),
    (("-60", "--fractions", "4"), "total dose must be >= 0 Gy"),
    (("--target", "-60", "--fractions", "4"), "target BED must be >= 0 Gy"),
    (("--fractions", "4"), "give the total DOSE"),
    ((), "--fractions N is required"),
    (("60",), "--fractions N is required"),
    (("60", "--fractions", "4", "--target", "60"), "either DOSE or --target"),
    (("60", "--fractions", "4", "--alpha-beta", "0"), "alpha_beta"),
    (("60", "--fractions", "4", "--alpha-beta", "nan"), "alpha_beta"),
    (("nan", "--fractions", "4"), "finite"),
    (("60", "--fractions", "4.5"), "not a valid integer"),
    (("sixty", "--fractions", "4"), "not a valid float"),
    (("60", "70", "--fractions", "4"), "unexpected extra argument"),
])
def test_bad_input_one_line_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr.strip()
    assert err.startswith("rtqa: error: ") and message in err
    assert "\n" not in err
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_registered_under_main():
    from rtqa.cli import main

    result = CliRunner().invoke(main, ["bed", "60", "--fractions", "4"])
    assert result.exit_code == 0, result.output
    assert "BED10 = 150.0 Gy (α/β = 10 Gy)" in result.stdout.splitlines()
    bad = CliRunner().invoke(main, ["bed", "60", "--fractions", "0"])
    assert bad.exit_code == 2
    assert bad.stderr.strip().count("\n") == 0
