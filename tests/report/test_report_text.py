"""Terminal report: sections, rows, colour only on request, summary line counts, width,
independence from the terminal, and safety of strings from the input files."""

from __future__ import annotations

import dataclasses
import re

import pytest

from report_fixtures import (
    CONTROL, NONASCII, SCRIPT, error_report, hcc_report, hostile_report, passing_report,
)
from rtqa.report.text import (
    clean, counts, fmt_limit, fmt_number, fmt_value, render_text, short_source, summary_line,
)
from rtqa.results import FAIL, NOT_EVALUATED, PASS, WARN

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(report=None, **kw):
    return render_text(report or hcc_report(), color=False, **kw)


# --- summary line ------------------------------------------------------------------

def test_summary_line_is_the_last_line():
    text = plain()
    assert text.endswith("\n")
    assert text.splitlines()[-1] == (
        "FAIL — 2 failed, 1 optimal not met, 2 not evaluated, 18 passed, 4 warnings "
        "(protocol oligo-hcc)")


@pytest.mark.parametrize("make", [hcc_report, passing_report, error_report, hostile_report])
def test_summary_counts_match_the_checks(make):
    report = make()
    checks = report.checks
    failed = sum(c.status == FAIL and c.priority == "mandatory" for c in checks)
    optimal = sum(c.status == FAIL and c.priority == "optimal" for c in checks)
    ne = sum(c.status == NOT_EVALUATED for c in checks)
    passed = sum(c.status == PASS for c in checks)
    warnings = sum(c.status == WARN for c in checks) + len(report.warnings)
    assert failed + optimal + ne + passed + sum(c.status == WARN for c in checks) == len(checks)
    line = summary_line(report)
    assert line.startswith(f"{report.status} — {failed} failed, ")
    assert f" {ne} not evaluated, {passed} passed, {warnings} warning" in line
    assert (f"{optimal} optimal not met" in line) == bool(optimal)
    assert (f"{len(report.errors)} error" in line) == bool(report.errors)
    assert line.endswith("(protocol oligo-hcc)")
    assert plain(report).splitlines()[-1] == line


def test_summary_of_error_and_pass_reports():
    assert summary_line(error_report()) == (
        "ERROR — 2 failed, 1 optimal not met, 3 not evaluated, 18 passed, 4 warnings, "
        "1 error (protocol oligo-hcc)")
    assert summary_line(passing_report()).startswith("PASS — 0 failed, 1 optimal not met, ")
    one = hcc_report(warnings=(), checks=tuple(c for c in hcc_report().checks
                                               if c.status != WARN or "Bowel" in c.id))
    assert summary_line(one).endswith("1 warning (protocol oligo-hcc)")


def test_counts_dictionary():
    n = counts(error_report())
    assert n == {"passed": 18, "failed": 2, "optimal_not_met": 1, "not_evaluated": 3,
                 "mandatory_not_evaluated": 1, "warn": 2, "warnings": 4, "errors": 1}


# --- colour ------------------------------------------------------------------------

def test_no_colour_means_no_escape_codes():
    for make in (hcc_report, error_report, hostile_report):
        assert "\x1b" not in plain(make())


def test_colour_codes_per_status():
    text = render_text(error_report(), color=True)
    assert "\x1b[32mPASS\x1b[0m" in text
    assert "\x1b[31mFAIL\x1b[0m" in text
    assert "\x1b[33mWARN\x1b[0m" in text
    assert "\x1b[35mNOT EVALUATED\x1b[0m" in text
    assert text.splitlines()[-1].startswith("\x1b[1;31mERROR\x1b[0m — ")


def test_colour_only_adds_escape_codes():
    for make in (hcc_report, error_report, passing_report):
        assert ANSI.sub("", render_text(make(), color=True)) == plain(make())


# --- layout ------------------------------------------------------------------------

def test_header():
    lines = plain().splitlines()
    assert lines[0].startswith("rtqa 0.1.0 — radiotherapy plan QA report")
    assert lines[0].endswith("2025-03-14T09:26:53+00:00")
    head = "\n".join(lines[:16])
    assert "Patient     Nguyen, Thi Lan  (ID HCC-0042)" in head
    assert "Protocol    oligo-hcc  (constraints/protocols/oligo-hcc.toml)" in head
    assert re.search(r"Plans +LIVER_SBRT +4 fx +60 Gy +APPROVED$", head, re.M)
    assert re.search(r"^ +APPROVED by Curie, Marie on 2025-03-13T16:05$", head, re.M)
    assert "name Liver SBRT 60 Gy/4" in head and "targets PTV_L1 60 Gy; PTV_L2 60 Gy" in head
    assert re.search(r" +PVTT_BOOST +5 fx +35 Gy +UNAPPROVED", head)
    assert "Status      FAIL" in head


def test_categories_in_order_with_counts():
    text = plain()
    heads = ["PLAN INTEGRITY (5)", "LESIONS (BED) (3)", "ORGANS AT RISK (11)", "PROTOCOL (6)",
             "WARNINGS (2)", "ERRORS (0)"]
    positions = [text.index("\n" + h + "\n") for h in heads]
    assert positions == sorted(positions)


def test_check_rows_and_indented_notes():
    everything = plain().splitlines()
    lines = everything[everything.index("DETAILS"):]
    row = next(i for i, x in enumerate(lines) if x.startswith("FAIL") and "Duodenum" in x)
    m = re.match(r"FAIL +Duodenum +D5cc\[Gy\] +19\.84 Gy +< 18 Gy +(?P<src>Benedict 2010, "
                 r"Table III|[a-z])$", lines[row])
    assert m
    if len(m["src"]) == 1:  # too narrow for the sources: a letter explained under the table
        assert f"{m['src']}: Benedict 2010, Table III" in lines
    assert lines[row + 1].startswith(" " * 8) and "Volume max dose" in lines[row + 1]
    ne = next(i for i, x in enumerate(lines) if x.startswith("NOT EVALUATED  Kidney_L"))
    below = " ".join(x.strip() for x in lines[ne + 1:ne + 5])
    assert "optimal: does not fail the plan" in below
    assert "ROIs: Kidney_R" in below and "reason: see WHY above" in below
    # the reason itself is printed once, in the WHY section under the verdict
    why = everything[:everything.index("DETAILS")]
    ne = next(i for i, x in enumerate(why) if x.startswith("NOT EVALUATED  Kidney_L"))
    assert "No ROI matches Kidney_L" in " ".join(x.strip() for x in why[ne + 1:ne + 6])
    m = re.match(r"PASS +Liver - GTV +CV15Gy\[cc\] +812\.40 cc +>= 700 cc +(?P<src>Pan 2010|[a-z])$",
                 next(x for x in lines if "CV15Gy" in x))
    assert m and (len(m["src"]) > 1 or f"{m['src']}: Pan 2010" in lines)


def test_lesion_table():
    text = plain()
    lines = text.splitlines()
    header = next(x for x in lines if x.startswith("Status  Lesion"))
    assert re.split(r"\s{2,}", header) == ["Status", "Lesion", "Organ", "Plans", "Fx", "Metric",
                                           "Dose", "α/β", "BED", "Required"]
    l1 = next(x for x in lines if "L1 segment VIII" in x)
    assert re.match(r"PASS +L1 segment VIII +Liver +LIVER_SBRT +4 +D95%\[Gy\] +50\.40 Gy "
                    r"+10 Gy +113\.90 Gy +≥ 60 Gy$", l1)
    l3 = next(x for x in lines if x.startswith("FAIL") and "L3 portal" in x)
    assert " 4+5 " in l3 and "58.71 Gy" in l3 and " — " in l3
    assert "Summed voxel-wise as BED over two plans" in text


def test_warnings_and_errors_listed():
    text = plain(error_report())
    assert "  ! BODY: 2.1 cc outside the dose grid" in text
    assert "ERRORS (1)\n  ✗ plan/RD.PVTT_BOOST.dcm: DoseType ERROR is refused" in text


@pytest.mark.parametrize("width", [80, 100, 132])
def test_tables_fit_the_width(width):
    lines = plain(width=width).splitlines()[:-1]   # the summary line is one line, any width
    too_wide = [x for x in lines if len(x) > width]
    assert not too_wide


def test_cut_cells_are_repeated_in_full():
    text = plain(width=80)
    assert "…" in text
    assert "Lesion: L3 portal vein thrombus" in text
    assert "Plans: LIVER_SBRT, PVTT_BOOST" in text


def test_independent_of_the_terminal(monkeypatch):
    reference = plain()
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("LINES", "10")
    assert plain() == reference
    assert plain(width=None) == reference


def test_unknown_values_and_empty_sections():
    r = hcc_report()
    report = dataclasses.replace(r, checks=tuple(
        dataclasses.replace(c, value=float("nan")) if c.id == "oar.tg101.Stomach.D10cc" else c
        for c in r.checks if c.category != "protocol"), lesions=(), warnings=())
    text = plain(report)
    assert re.search(r"PASS +Stomach +D10cc\[Gy\] +n/a +< 18 Gy", text)
    assert "PROTOCOL (0)\n  (none)" in text
    assert "WARNINGS (0)\n  (none)" in text


# --- strings from the input files --------------------------------------------------

def test_control_characters_are_escaped():
    text = plain(hostile_report(), width=140)
    assert "\x1b" not in text
    assert clean(CONTROL) == "Cord\\x1b[2J\\x0aPASS fake row"
    assert "Cord\\x1b[2J\\x0aPASS fake row" in text
    assert not any(line.startswith("PASS fake row") for line in text.splitlines())
    assert SCRIPT in text and NONASCII in text            # plain text: shown as written
    assert "<i>Åsa</i>/µ-001" in text
    assert clean("a\u202eb\u2028c") == "a\\u202eb\\u2028c"


def test_inconsistent_report_is_refused():
    with pytest.raises(ValueError):
        plain(hcc_report(status="PASS"))


# --- helpers -----------------------------------------------------------------------

@pytest.mark.parametrize("source, short", [
    ("Benedict et al. Med Phys 2010;37(8):4078, Table III", "Benedict 2010, Table III"),
    ("Marks et al. IJROBP 2010;76(3S):S10, Table 1", "Marks 2010, Table 1"),
    ("Pan et al. IJROBP 2010;76(3S):S94 (after Schefter et al. IJROBP 2005)", "Pan 2010"),
    ("DICOM PS3.3 C.8.8.16 Approval Module", "PS3.3 C.8.8.16"),
    ("NCT06261047 protocol (Ther Adv Med Oncol 2025;17): 1-5 lesions", "NCT06261047 protocol"),
    ("Institution protocol v3; approved 2024", "Institution protocol v3"),
    ("", ""),
])
def test_short_source(source, short):
    assert short_source(source) == short


def test_number_formatting():
    assert fmt_number(None) == "—"
    assert fmt_number(float("nan")) == "n/a" and fmt_number(float("-inf")) == "n/a"
    assert fmt_number(3) == "3" and fmt_number(0.0) == "0"
    assert fmt_number(19.844) == "19.84" and fmt_number(0.0569) == "0.0569"
    assert fmt_value(3.1, "%") == "3.10%" and fmt_value(None, "Gy") == "—"
    assert fmt_limit(">= 700", "cc") == ">= 700 cc" and fmt_limit("APPROVED", "") == "APPROVED"
    assert fmt_limit(None, "Gy") == "—"


def test_rois_section_groups_roles_with_hints():
    from rtqa.results import RoiInfo
    rois = (RoiInfo("PTV_L1", 4, "PTV", "target", "PTV", "name says PTV"),
            RoiInfo("PTV1_WALL", 9, "ORGAN", "helper", None, "helper name"),
            RoiInfo("ptv4", 10, "ISOCENTER", "ignored", None, "ISOCENTER"),
            RoiInfo("T10_PTV", 12, "ORGAN", "target-like", "PTV", "typed ORGAN",
                    "--roi-type 'T10_PTV'=PTV or --roi-type 'T10_PTV'=ORGAN"),
            RoiInfo("Herz", 11, "ORGAN", "unmatched", None, "no name", "--map Heart='Herz'"))
    text = render_text(hcc_report(rois=rois), color=False, width=100)
    section = text.split("ROIS (5)", 1)[1].split("WARNINGS", 1)[0]
    lines = [ln.strip() for ln in section.strip().splitlines()[1:]]
    assert lines == ["targets         PTV_L1 (PTV)",
                     "target-like     T10_PTV (PTV, ORGAN) [--roi-type 'T10_PTV'=PTV or "
                     "--roi-type 'T10_PTV'=ORGAN]",
                     "unmatched       Herz (ORGAN) [--map Heart='Herz']",
                     "helpers         PTV1_WALL",
                     "ignored by type ptv4 (ISOCENTER)"]
    assert "ROIS" not in render_text(hcc_report(), color=False, width=100)
