"""A small deterministic slice of ``python -m rtqa_fuzz`` (the full run is ``make fuzz``),
and unit tests of the fuzzer's oracle, which decides what a false pass is.

The slice: SLICE_CASES cases of seed SLICE_SEED in this process (one job, DVH memo on).
It must run every case, classify every outcome, and find no crash and no false pass.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import rtqa_fuzz as fuzz

pytestmark = pytest.mark.slow

SLICE_SEED = 1
SLICE_CASES = 40


@pytest.fixture(scope="module")
def slice_summary():
    t0 = time.perf_counter()
    summary = fuzz.run(cases=SLICE_CASES, seed=SLICE_SEED, time_limit=300, jobs=1)
    summary.wall = time.perf_counter() - t0
    return summary


def test_slice_runs_every_case(slice_summary):
    s = slice_summary
    assert s.run == SLICE_CASES and not s.stopped_by_time
    assert [r.index for r in s.results] == list(range(SLICE_CASES))
    for r in s.results:
        assert r.outcome in ("refused", "ERROR", "FAIL", "PASS", "crash"), r
        assert r.category in ("ok", "crash", "false_pass", "warned", "inert", "immaterial",
                              "silent_drift"), r
        if r.outcome == "PASS":
            assert r.verdict != "not judged", r  # every PASS is judged by the oracle
    # both samples and every kind of file are exercised
    assert {r.base for r in s.results} == set(fuzz.BASES)
    files = {f.split(".")[0] for r in s.results for f, _, _ in r.mutations}
    assert {"RD", "RS", "RP", "CT"} <= files
    text = fuzz.format_summary(s, SLICE_SEED, 1, 300)
    assert f"cases run:     {SLICE_CASES}" in text


def test_slice_no_crash_no_false_pass(slice_summary):
    s = slice_summary
    detail = fuzz.format_summary(s, SLICE_SEED, 1, 300)
    assert not s.crashes, detail
    assert not s.false_passes, detail


def test_slice_is_deterministic(slice_summary):
    """Case i of seed s is the same case whatever ran before it (reproduction with
    --only i): the damage is regenerated identically and rtqa's outcome is the same."""
    tmp = Path(tempfile.mkdtemp(prefix="rtqa-fuzz-test-"))
    fuzz.prepare(tmp)
    fz = fuzz.Fuzzer(tmp, SLICE_SEED, memo=False)
    try:
        for i in (3, 17, 29):
            a, b = fz.generate(i), fz.generate(i)
            assert a[0] == b[0] and a[1] == b[1]
            assert [m.detail for m in a[2]] == [m.detail for m in b[2]]
        # one case that rtqa read to the end, run again in a fresh fuzzer (cold memo)
        first = next(r for r in reversed(slice_summary.results)
                     if r.outcome in ("FAIL", "PASS"))
        fz.set_baselines(slice_summary.baselines)
        r = fz.run_case(first.index)
        assert (r.outcome, r.category, r.mutations, round(r.drift, 9)) == \
            (first.outcome, first.category, first.mutations, round(first.drift, 9))
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


# --- the oracle -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pristine():
    d = fuzz.SAMPLES / "hcc_pass"
    files = {p.name: p.read_bytes() for p in sorted(d.iterdir())}
    kinds = {n: fuzz._kind_of_bytes(b) for n, b in files.items()}
    contents = {n: fuzz.read_content(b, kinds[n]) for n, b in files.items()}
    return files, kinds, contents


CHECKED = {"PTV_Liver", "Liver", "SpinalCord", "GTV_Liver"}


def _judge(pristine, name, data):
    files, kinds, contents = pristine
    now = dict(contents)
    now[name] = None if data is None else fuzz.read_content(data, kinds[name])
    return fuzz.judge(now, contents, CHECKED)


def test_oracle_reads_every_pristine_file(pristine):
    files, kinds, contents = pristine
    assert all(c.unreadable is None and c.damaged is None for c in contents.values())
    assert fuzz.judge(dict(contents), contents, CHECKED).category == "inert"
    assert sorted(set(kinds.values())) == ["CT", "RTDOSE", "RTPLAN", "RTSTRUCT"]


@pytest.mark.parametrize("cut", [0.3, 0.999])
def test_oracle_truncation_is_unreadable(pristine, cut):
    files, _, _ = pristine
    for name in ("RD.SBRT_5fx.dcm", "RS.hcc_pass.dcm", "RP.SBRT_5fx.dcm", "CT.040.dcm"):
        data = files[name]
        v = _judge(pristine, name, data[:int(len(data) * cut)])
        assert v.category == "unreadable", (name, v)


def _ds_edit(data: bytes, change) -> bytes:
    ds = fuzz._read_ds(data)
    with fuzz.lenient_pydicom():
        change(ds)
    return fuzz._write_ds(ds)


@pytest.mark.parametrize("value,category", [("NaN", "invalid"), ("0", "invalid"),
                                            ("-1", "invalid"), ("abc", "invalid"),
                                            ("0.000804672", "inert"),
                                            ("0.0008", "changed")])
def test_oracle_dose_grid_scaling(pristine, value, category):
    files, _, _ = pristine
    data = _ds_edit(files["RD.SBRT_5fx.dcm"],
                    lambda ds: fuzz._set_raw(ds, fuzz.T(0x3004, 0xE), "DS", value))
    assert _judge(pristine, "RD.SBRT_5fx.dcm", data).category == category


def test_oracle_contour_damage(pristine):
    files, _, _ = pristine
    rs = "RS.hcc_pass.dcm"

    def two_points(roi):
        def change(ds):
            num = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == roi)
            rc = next(c for c in ds.ROIContourSequence if c.ReferencedROINumber == num)
            c = rc.ContourSequence[len(rc.ContourSequence) // 2]
            fuzz._set_raw(c, fuzz.T(0x3006, 0x50), "DS",
                          "\\".join(str(v) for v in list(c.ContourData)[:6]))
        return change
    v = _judge(pristine, rs, _ds_edit(files[rs], two_points("PTV_Liver")))
    assert v.category == "tolerated" and v.tolerated_rois == ("PTV_Liver",)
    # an ROI no check uses: a change, not a damage that must be reported
    assert _judge(pristine, rs, _ds_edit(files[rs], two_points("opt_avoid"))).category == \
        "changed"


def test_oracle_links_and_patients(pristine):
    files, _, _ = pristine
    v = _judge(pristine, "CT.040.dcm",
               _ds_edit(files["CT.040.dcm"], lambda ds: setattr(ds, "PatientID", "X")))
    assert v.category == "invalid" and any("PatientID" in r for r in v.reasons)
    v = _judge(pristine, "RD.SBRT_5fx.dcm", _ds_edit(
        files["RD.SBRT_5fx.dcm"], lambda ds: setattr(
            ds.ReferencedRTPlanSequence[0], "ReferencedSOPInstanceUID", "1.2.3")))
    assert v.category == "invalid" and any("RTPLAN" in r for r in v.reasons)
    assert _judge(pristine, "RD.SBRT_5fx.dcm", None).category == "invalid"


def test_oracle_flip_in_a_description_is_inert(pristine):
    files, _, _ = pristine
    data = bytearray(files["RP.SBRT_5fx.dcm"])
    i = bytes(data).find(b"Liver field 1")  # a BeamDescription
    data[i] ^= 0x01
    assert _judge(pristine, "RP.SBRT_5fx.dcm", bytes(data)).category == "inert"


def test_drift():
    base = {"check:a": 10.0, "check:b": 0.0, "lesion:L:bed_gy": 100.0}
    assert fuzz.drift(base, dict(base)) == (0.0, "", 0, 0)
    assert fuzz.drift(base, {**base, "check:a": 10.04})[0] == 0.0  # within 0.5% + 0.01
    d, key, _, _ = fuzz.drift(base, {**base, "lesion:L:bed_gy": 99.0})
    assert key == "lesion:L:bed_gy" and d == pytest.approx(0.01)
    assert fuzz.drift(base, {"check:a": 10.0, "lesion:L:bed_gy": 100.0})[2] == 1
    assert math.isinf(fuzz.drift(base, {**base, "check:b": float("nan")})[0])


def test_memo_is_transparent():
    """The DVH memo, injected into the dose service, returns what compute_dvh returns,
    computes a changed structure afresh, and patches no rtqa module."""
    import dataclasses

    from rtqa import dvh as dvh_mod
    from rtqa.dvh.service import DoseService
    from rtqa.reading import load_export
    original = dvh_mod.compute_dvh
    export = load_export([fuzz.SAMPLES / "hcc_pass"])
    ss, courses = export.structure_sets[0], export.courses
    s = ss.by_name("GTV_Lung")
    plain = dvh_mod.compute_dvh(s, courses[0].grid)
    memo = fuzz.DvhMemo()
    a = DoseService(courses, cache=memo).dvh(s)
    b = DoseService(courses, cache=memo).dvh(s)  # a new check: a memo hit
    assert memo.hits == 1 and memo.misses == 1
    for d in (a, b):
        assert np.array_equal(d.cum_cc, plain.cum_cc) and d.mean_gy == plain.mean_gy
    moved = dataclasses.replace(s, planes=tuple((z + 3.0, p) for z, p in s.planes))
    c = DoseService(courses, cache=memo).dvh(moved)
    assert memo.misses == 2 and c.mean_gy != plain.mean_gy
    assert dvh_mod.compute_dvh is original


def test_mutations_are_reproducible():
    rng_a, rng_b = random.Random("x"), random.Random("x")
    assert fuzz._corrupt_text(rng_a, "1\\2\\3") == fuzz._corrupt_text(rng_b, "1\\2\\3")
