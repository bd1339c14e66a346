"""Reasons first (issue 15.1) and dose views labelled (15.2): the rows a verdict rests on
directly under it, the binding row of a structure and metric, PASS rows that only repeat
folded, EQD2/BED values carrying their label and α/β, whole numbers as whole numbers, and
80 columns kept."""

from __future__ import annotations

import dataclasses
import re

import pytest

from report_fixtures import hcc_report
from rtqa.report.formatting import (
    Folded, fmt_number, fold_passes, limit_excess, metric_label, reason_rows, view_label,
)
from rtqa.report.html import render_html
from rtqa.report.text import render_text
from rtqa.results import FAIL, NOT_EVALUATED, PASS, Check, DoseView, Reason, overall_status

SRC = "Marks et al. IJROBP 2010;76(3S):S10, Table 1"


def row(cid, status, value, limit, *, structure="SpinalCord", metric="D0.035cc[Gy]",
        view=DoseView.PHYSICAL, ab=None, note="", reason=None, category="organs at risk",
        source=SRC, priority="mandatory"):
    return Check(id=cid, category=category, status=status, source=source,
                 structure=structure, metric=metric, value=value, unit="Gy", limit=limit,
                 note=note, dose_view=view, alpha_beta=ab, reason=reason, priority=priority,
                 plans=("P",), fractions=(5,))


def report_of(checks):
    return dataclasses.replace(hcc_report(), checks=tuple(checks), lesions=(),
                               status=overall_status(checks), warnings=(), curves=())


# --- labels and numbers ------------------------------------------------------------

def test_view_labels_from_the_fields():
    assert view_label(DoseView.EQD2, 3.0) == "EQD2(α/β 3)"
    assert view_label(DoseView.BED, 10) == "BED(α/β 10)"
    assert view_label(DoseView.EQD2, 2.5) == "EQD2(α/β 2.5)"
    assert view_label(DoseView.EQD2, None) == "EQD2(α/β ?)"
    assert view_label(DoseView.PHYSICAL, None) == "" and view_label(DoseView.NONE, 3) == ""
    assert metric_label("Mean[Gy]", DoseView.EQD2, 3.0) == "EQD2(α/β 3) Mean[Gy]"
    assert metric_label("BED10 of D95%[Gy]", DoseView.BED, 10.0) == "BED(α/β 10) D95%[Gy]"
    assert metric_label("Mean[Gy]", DoseView.PHYSICAL, None) == "Mean[Gy]"


def test_a_note_never_makes_a_label():
    # the note says EQD2 but the field says physical: the field wins
    c = row("x", PASS, 3.0, "< 5", note="evaluated on EQD2 (α/β = 3 Gy)")
    assert "EQD2" not in render_text(report_of([c]), color=False).split("DETAILS")[1] \
        .split("[1]")[0].splitlines()[4]


@pytest.mark.parametrize("x, text", [(3.0, "3"), (50.0, "50"), (0.0, "0"), (3, "3"),
                                     (3.37, "3.37"), (66.2157, "66.22"), (0.0123, "0.0123"),
                                     (-2.0, "-2"), (None, "—"), (float("nan"), "n/a")])
def test_whole_numbers_print_as_whole_numbers(x, text):
    assert fmt_number(x) == text


def test_same_structure_two_views_are_told_apart_in_text_and_html():
    checks = [row("q", FAIL, 66.22, "< 28", structure="Liver - GTV", metric="Mean[Gy]",
                  view=DoseView.EQD2, ab=3.0),
              row("p", PASS, 29.64, "< 30", structure="Liver - GTV", metric="Mean[Gy]")]
    text = render_text(report_of(checks), color=False)
    assert re.search(r"FAIL +Liver - GTV +EQD2\(α/β 3\) Mean\[Gy\] +66\.22 Gy", text)
    assert re.search(r"PASS +Liver - GTV +Mean\[Gy\] +29\.64 Gy", text)
    html = render_html(report_of(checks))
    assert "EQD2(α/β 3) Mean[Gy]" in html and "<td class=\"nowrap\">EQD2, α/β 3 Gy</td>" in html


# --- reasons first -----------------------------------------------------------------

def test_binding_row_is_the_largest_relative_excess():
    rows = [row("quantec", FAIL, 78.48, "< 50", view=DoseView.EQD2, ab=2.0),
            row("tg101", FAIL, 34.93, "< 30"), row("hytec", FAIL, 34.93, "< 25.3"),
            row("other", FAIL, 16.14, "< 14.5", metric="D1.2cc[Gy]")]
    out = {r.check.id: r for r in reason_rows(rows)}
    # 78.48/50 - 1 = 0.57; 34.93/30 - 1 = 0.16; 34.93/25.3 - 1 = 0.38
    assert limit_excess(rows[0]) == pytest.approx(78.48 / 50 - 1)
    assert limit_excess(rows[2]) == pytest.approx(34.93 / 25.3 - 1)
    assert out["quantec"].binds is True and out["quantec"].group == 3
    assert out["tg101"].binds is False and out["hytec"].binds is False
    assert out["other"].binds is None  # alone on its structure and metric
    assert "57% over the limit" in out["quantec"].reason and "BINDS" in out["quantec"].reason


def test_an_informative_row_never_binds():
    """A conventional EQD2 row made informative (optimal) by an SBRT row for the same
    structure and metric does not decide the verdict, so the binding row is the mandatory
    row with the largest excess (hcc_fail's SpinalCord D0.035cc: HyTEC 25.3 Gy)."""
    rows = [dataclasses.replace(row("quantec", FAIL, 78.48, "< 50", view=DoseView.EQD2,
                                    ab=2.0), priority="optimal"),
            row("tg101", FAIL, 34.93, "< 30"), row("hytec", FAIL, 34.93, "< 25.3")]
    out = {r.check.id: r for r in reason_rows(rows)}
    assert out["quantec"].binds is None and "informative only" in out["quantec"].reason
    assert out["hytec"].binds is True and out["tg101"].binds is False
    assert out["hytec"].group == 3


def test_lower_limits_and_ranges():
    assert limit_excess(row("a", FAIL, 450.0, ">= 700")) == pytest.approx(250 / 700)
    assert limit_excess(row("b", FAIL, 60.0, "47.50-57.50")) == pytest.approx(2.5 / 57.5)
    assert limit_excess(row("c", PASS, 50.0, "47.50-57.50")) == 0
    assert limit_excess(row("d", PASS, None, "< 3")) is None
    assert limit_excess(row("e", PASS, 1.0, "APPROVED")) is None


def test_reasons_come_directly_under_the_verdict_in_text():
    report = hcc_report()
    lines = render_text(report, color=False).splitlines()
    status = next(i for i, x in enumerate(lines) if x.startswith("Status "))
    assert lines[status + 2].startswith("WHY FAIL: ")
    details = lines.index("DETAILS")
    why = lines[status:details]
    expected = [c for c in report.checks if c.status in (FAIL, NOT_EVALUATED)]
    for c in expected:  # every FAIL and NOT EVALUATED row, with its structure
        assert any(x.startswith(c.status) and c.structure in x for x in why), c.id
    assert sum(x.startswith(("FAIL ", "NOT EVALUATED ")) for x in why) == len(expected)
    first_fail = next(i for i, x in enumerate(lines) if x.startswith("FAIL "))
    assert first_fail < 20


def test_not_evaluated_reason_words_from_the_code():
    c = row("ne", NOT_EVALUATED, None, "< 18", reason=Reason.STRUCTURE_MISSING,
            note="No ROI matches Kidney_L")
    (r,) = reason_rows([c])
    assert r.reason.startswith("structure not in the plan: No ROI matches Kidney_L")


def test_html_lists_the_reasons_under_the_verdict():
    report = hcc_report()
    html = render_html(report)
    verdict, reasons, lesions = (html.index('id="verdict"'), html.index('id="reasons"'),
                                 html.index('id="lesions"'))
    assert verdict < reasons < lesions
    section = html[reasons:lesions]
    for c in report.checks:
        if c.status in (FAIL, NOT_EVALUATED):
            assert f'data-check="{c.id}"' in section
    assert section.count("data-check=") == sum(c.status in (FAIL, NOT_EVALUATED)
                                               for c in report.checks)


# --- folding -----------------------------------------------------------------------

def test_repeating_pass_rows_fold_into_one_line():
    cover = [row(f"integrity.coverage.{n}", PASS, 0.0, "= 0", structure=n,
                 metric="volume outside dose grid", category="plan integrity",
                 view=DoseView.NONE, source="AAPM TG-275")
             for n in ("PTV", "Liver", "Heart", "Stomach")]
    outside = dataclasses.replace(cover[1], id="integrity.coverage.Lung", structure="Lung",
                                  value=2.5, status=FAIL)
    folded = fold_passes(cover + [outside])
    assert isinstance(folded[0], Folded) and len(folded[0].checks) == 4
    assert folded[1] is outside  # a failing row never folds
    assert len(fold_passes(cover[:2])) == 2  # two rows are not folded
    text = render_text(report_of(cover + [outside]), color=False)
    assert re.search(r"PASS +4 structures +volume outside dose grid +0 Gy", text)
    assert "each of: PTV, Liver, Heart, Stomach" in text
    assert re.search(r"FAIL +Lung +volume outside dose grid +2\.50 Gy", text)


def test_rows_with_notes_do_not_fold():
    rows = [row(f"r{i}", PASS, 0.0, "= 0", structure=f"S{i}", note=f"n{i}") for i in range(4)]
    assert all(not isinstance(x, Folded) for x in fold_passes(rows))


# --- width -------------------------------------------------------------------------

def test_fits_80_columns():
    for make in (hcc_report,):
        text = render_text(make(), color=False, width=80)
        too_wide = [x for x in text.splitlines() if len(x) > 80]
        assert not too_wide, too_wide
