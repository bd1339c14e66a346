"""Plan sets: grouping by patient and UID links, completeness, settle time and deadline
(:mod:`rtqa.serve.grouping`), on the headers of the bundled samples."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pydicom
import pytest

from rtqa.serve.grouping import Instance, describe, due, plan_sets


def _instances(folder: Path, t0: float = 1000.0, seq0: int = 1) -> list[Instance]:
    out = []
    for i, p in enumerate(sorted(folder.glob("*.dcm"))):
        out.append(Instance(seq=seq0 + i, sha256=f"{folder.name}{i}", path=str(p),
                            received=t0 + i, source="TEST", **describe(p.read_bytes())))
    return out


@pytest.fixture(scope="module")
def fail_set(sample_dir):
    return _instances(sample_dir / "hcc_fail")


@pytest.fixture(scope="module")
def pass_set(sample_dir):
    return _instances(sample_dir / "hcc_pass", t0=5000.0, seq0=1000)


def test_describe_reads_the_links(sample_dir):
    folder = sample_dir / "hcc_fail"
    rs = pydicom.dcmread(folder / "RS.hcc_fail.dcm")
    rp = pydicom.dcmread(folder / "RP.SBRT_5fx_bad.dcm")
    rd = pydicom.dcmread(folder / "RD.SBRT_5fx_bad.dcm", stop_before_pixels=True)
    h_rs = describe((folder / "RS.hcc_fail.dcm").read_bytes())
    h_rp = describe((folder / "RP.SBRT_5fx_bad.dcm").read_bytes())
    h_rd = describe((folder / "RD.SBRT_5fx_bad.dcm").read_bytes())
    series = rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0] \
        .RTReferencedSeriesSequence[0]
    assert h_rs["kind"] == "RTSTRUCT" and h_rs["refs"] == (series.SeriesInstanceUID,)
    assert h_rs["images"] == tuple(i.ReferencedSOPInstanceUID
                                   for i in series.ContourImageSequence)
    assert len(h_rs["images"]) == 83
    assert h_rp["kind"] == "RTPLAN" and h_rp["label"] == rp.RTPlanLabel
    assert h_rp["refs"] == (rs.SOPInstanceUID,)
    assert h_rd["kind"] == "RTDOSE" and h_rd["refs"] == (rp.SOPInstanceUID,)
    assert h_rd["patient_id"] == rd.PatientID == "RTQA-HCC-001"


def test_describe_refuses_what_is_not_dicom():
    with pytest.raises(ValueError):
        describe(b"\x00" * 200)


def test_two_complete_plans_of_one_patient(fail_set, pass_set):
    sets = {s.label: s for s in plan_sets(fail_set + pass_set)}
    assert set(sets) == {"SBRT_5fx", "SBRT_5fx_bad"}
    for s in sets.values():
        assert s.complete, s.missing
        assert len(s.members) == 86          # RTPLAN, RTDOSE, RTSTRUCT, 83 CT images
        assert [m.kind for m in s.members[:3]] == ["RTPLAN", "RTDOSE", "RTSTRUCT"]
    # each plan takes only its own CT series (the two samples have different series)
    a, b = sets["SBRT_5fx"], sets["SBRT_5fx_bad"]
    assert not {m.sop_uid for m in a.members} & {m.sop_uid for m in b.members}
    assert a.frame_uid != b.frame_uid


@pytest.mark.parametrize("drop, expected", [
    ("CT.040.dcm", "1 of 83 CT images listed by the RTSTRUCT"),
    ("RD.SBRT_5fx_bad.dcm", "RTDOSE referencing the RTPLAN"),
    ("RS.hcc_fail.dcm", "RTSTRUCT"),
])
def test_missing_members_are_named(fail_set, drop, expected):
    kept = [i for i in fail_set if not i.path.endswith(drop)]
    (s,) = plan_sets(kept)
    assert not s.complete
    assert any(expected in m for m in s.missing), s.missing


def test_dose_without_its_plan_is_a_set_missing_the_plan(fail_set):
    plan = next(i for i in fail_set if i.kind == "RTPLAN")
    (s,) = plan_sets([i for i in fail_set if i.kind != "RTPLAN"])
    assert s.key == plan.sop_uid
    assert s.missing == [f"RTPLAN {plan.sop_uid} (referenced by the RTDOSE)"]
    assert [m.kind for m in s.members] == ["RTDOSE"]


def test_settle_time_and_deadline(fail_set):
    (s,) = plan_sets(fail_set)
    last = max(i.received for i in fail_set)
    assert due(s, 0, last, last + 9.9, settle=10, deadline=600) is None
    assert due(s, 0, last, last + 10, settle=10, deadline=600) == "complete"
    incomplete = [i for i in fail_set if not i.path.endswith("CT.010.dcm")]
    (s2,) = plan_sets(incomplete)
    anchor = min(i.received for i in incomplete if i.kind in ("RTPLAN", "RTDOSE"))
    assert due(s2, 0, last, anchor + 599, settle=10, deadline=600) is None
    assert due(s2, 0, last, anchor + 600, settle=10, deadline=600) == "deadline"


def test_a_resent_instance_makes_a_checked_plan_pending_again(fail_set):
    (s,) = plan_sets(fail_set)
    covered = s.max_seq
    now = max(i.received for i in fail_set) + 100
    assert due(s, covered, now - 100, now, settle=10, deadline=600) is None
    plan = next(i for i in fail_set if i.kind == "RTPLAN")
    again = replace(plan, seq=covered + 1, received=now)      # the same bytes, re-sent
    (s2,) = plan_sets(fail_set + [again])
    assert s2.max_seq == covered + 1 and not s2.changed
    assert due(s2, covered, now, now + 10, settle=10, deadline=600) == "complete"
    changed = replace(plan, seq=covered + 2, received=now, sha256="other")
    (s3,) = plan_sets(fail_set + [again, changed])
    assert s3.members[0].sha256 == "other"                     # the latest copy is used
    assert any("2 different contents" in c for c in s3.changed)
