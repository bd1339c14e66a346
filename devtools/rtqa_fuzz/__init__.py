"""``python -m rtqa_fuzz``: mutate the sample plans and check that rtqa never crashes and
never passes a plan it did not really check (issue 6).

Each case starts from one of the two bundled samples (``plans_sample/hcc_pass``, verdict
PASS, and ``plans_sample/hcc_fail``, verdict FAIL), applies one to three mutations to its
RTDOSE, RTSTRUCT, RTPLAN or a CT slice (truncation, bit flips, byte runs zeroed, element
deletion, corruption of numeric values such as DoseGridScaling, ContourData,
NumberOfFractionsPlanned, ImagePositionPatient, PixelSpacing, GridFrameOffsetVector,
UID and ROI edits, a duplicated or missing file) and runs ``rtqa.checks.pipeline.run_check``
in-process. Case *i* of seed *s* is fully determined by (*s*, *i*), whatever the number of
worker processes: ``--only i`` reproduces it, ``--keep DIR`` writes the damaged export.

Invariants (a violation makes the run exit 1):

crash
    an exception other than RtqaError escapes ``run_check`` or a report renderer, an
    RtqaError message is empty, or the CLI (run in-process on a sample of cases) exits
    with a code other than 0/1/2 or one that does not match the verdict.

false pass
    verdict PASS where the truth is not PASS. The truth comes from an *oracle* that reads
    the damaged files without rtqa (its own element-stream walk plus pydicom, raw values
    only) and compares what a DVH-based QA depends on with the pristine sample:

    1. base hcc_fail: any PASS. Its three failures (T10 under-dosed, liver and cord
       over-dosed) pull in opposite directions; no single damage can fix all three.
    2. the damaged file is *unreadable* (its element stream runs past the end of the
       file, i.e. it is cut short, which rtqa's policy never checks as complete; or
       pydicom cannot parse it) or *invalid* (a value rtqa uses is missing, non-numeric,
       non-finite, out of range, the wrong count, an oblique or non-axial orientation,
       duplicate ROI numbers, a broken UID link between the objects, two patients, a CT
       series with repeated slice positions, a broken element stream from which other
       QA-relevant values are read ...): PASS is never right. A stream broken only in
       content no check uses (a beam's control points, say) is judged as rule 4.
    3. *tolerated* damage (a closed contour of fewer than 3 points or not in one plane,
       which rtqa's documented policy drops with a warning): PASS is right only when the
       report names every checked ROI so damaged (its warnings or a check note).
    4. *inert* damage (nothing the QA depends on changed, e.g. a flip inside a
       description, or a byte-identical duplicate file): PASS is right only with the
       baseline's numbers; a dose- or contour-derived value (lesion dose and BED, every
       check value, structure volume and min/mean/max dose, uncovered volume) that moved
       by more than 0.5% (+0.01 absolute), or a check, lesion or structure row that
       appeared or vanished, means rtqa read the same data differently (e.g. counted a
       duplicate twice).

    What is *not* a false pass: a PASS on damage that leaves a valid DICOM object with a
    plausible different value (a voxel of the dose, a contour vertex moved, a DS digit
    changed, a whole contour plane removed). No reader can tell such a value from a real
    one (DICOM carries no checksum); those cases are counted as "silent drift" (numbers
    moved > 0.5%) or "immaterial" and listed, not failed. This is why rule 1 matters:
    on the failing sample, every PASS is wrong whatever the damage.

Only PASS verdicts need the oracle (any other verdict is safe); ``--judge-all`` runs it
on every case for statistics. A sample of the cases also goes through the CLI in-process
(exit code against the verdict) and the HTML report.

Speed: rtqa's per-file readers (``rtqa.reading.scan.classify`` with its completeness
check, ``read_dose``, ``read_plan``, ``read_structure_set``, ``read_ct_slice``) are
memoised by (path, content digest), and DVHs by a digest of every field of the
structure, dose grid and CT slice positions (``DvhMemo``, injected into each check's dose
service through ``CheckOptions(dvh_cache=...)``; the CLI runs are not memoised): the
damaged file, and every DVH it changes, always go through
the real code; the ~85 untouched files and unchanged DVHs of a case are not recomputed.
``--no-memo`` switches this off; multi-process runs (and ``--verify-memo``) first check
that the memoised baseline reports equal the plain ones. Files are hard-linked, never
copied.

Usage: ``python -m rtqa_fuzz [--cases N] [--seed S] [--time-limit SEC] [--jobs J]
[--only I] [--keep DIR] [--no-memo] [--verify-memo] [--results FILE] [--judge-all]
[--quiet]``. The run stops at the time limit
(the summary says so). Exit 0: no crash, no false pass; 1: some; 2: the fuzzer itself
could not run.

Modules:

``common``      constants (samples, tolerances, SOP classes) and pydicom helpers
``stream``      the oracle's strict walk of the DICOM element stream
``content``     the oracle's reader: QA-relevant values as raw bytes
``oracle``      the validity rules and ``judge``
``mutators``    ``Mutator``: file and operation choice, byte- and file-level damage
``edits``       element-level edits (values, contours, ROIs, UIDs, codes)
``values``      report numbers, drift from the baseline, mentions of damaged ROIs
``memo``        ``ReaderMemo`` and ``DvhMemo``
``runner``      ``Fuzzer``: one case generated, run, judged and classified
``driver``      ``run``: a session, in-process or on a worker pool
``summary``     ``Summary`` and ``format_summary``
``cli``         ``main`` (argparse); ``__main__`` runs it
"""

from __future__ import annotations

from .cli import main
from .common import (ABS_TOL, BASES, CLI_EVERY, CT_IMAGE, DEFAULT_CASES, DEFAULT_TIME_LIMIT,
                     DEFLATED, EXPLICIT_BE, FRAME, HTML_EVERY, IMPLICIT_LE, KIND_OF_CLASS,
                     PATIENT, PLANE_TOL_MM, REL_TOL, ROOT, RT_DOSE, RT_PLAN, RT_STRUCT,
                     SAMPLES, SOP_CLASS, SOP_UID, T, _kind_of_bytes, _read_ds, _set_raw, _tag,
                     _write_ds, lenient_pydicom)
from .content import Content, read_content
from .driver import prepare, run
from .edits import _corrupt_text
from .memo import DvhMemo, ReaderMemo
from .mutators import Mutation, Mutator
from .oracle import Verdict, judge
from .runner import CaseResult, Fuzzer, crash_site
from .stream import stream_problem
from .summary import Summary, format_summary
from .values import checked_rois, drift, mentions, report_values

__all__ = [
    "ABS_TOL", "BASES", "CLI_EVERY", "CT_IMAGE", "DEFAULT_CASES", "DEFAULT_TIME_LIMIT",
    "DEFLATED", "EXPLICIT_BE", "FRAME", "HTML_EVERY", "IMPLICIT_LE", "KIND_OF_CLASS",
    "PATIENT", "PLANE_TOL_MM", "REL_TOL", "ROOT", "RT_DOSE", "RT_PLAN", "RT_STRUCT",
    "SAMPLES", "SOP_CLASS", "SOP_UID", "T", "CaseResult", "Content", "DvhMemo",
    "Fuzzer", "Mutation", "Mutator", "ReaderMemo", "Summary", "Verdict", "checked_rois",
    "crash_site", "drift", "format_summary", "judge", "lenient_pydicom", "main",
    "mentions", "prepare", "read_content", "report_values", "run", "stream_problem",
]
