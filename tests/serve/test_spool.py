"""The durable spool and Engine.receive: whole files or nothing, failure statuses."""

from __future__ import annotations

import errno
import hashlib

import pytest

from rtqa.serve.engine import STATUS, Engine, EngineOptions, Refused
from rtqa.serve.spool import Spool
from serve_support import full_disk_spool


def test_write_is_content_addressed_and_whole(tmp_path):
    spool = Spool(tmp_path / "spool")
    data = b"x" * 100_000
    path, digest = spool.write(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert path.read_bytes() == data and path.parent.parent == spool.objects
    mtime = path.stat().st_mtime_ns
    assert spool.write(data) == (path, digest)      # the same bytes: the same file
    assert path.stat().st_mtime_ns == mtime
    assert list(spool.tmp.iterdir()) == []
    assert [p for p, _ in spool.files()] == [path]


def test_a_full_disk_leaves_no_partial_file(tmp_path):
    spool = full_disk_spool(tmp_path / "spool", after=1)
    first, _ = spool.write(b"a" * 5000)
    with pytest.raises(OSError) as info:
        spool.write(b"b" * 5000)
    assert info.value.errno == errno.ENOSPC
    assert [p for p, _ in spool.files()] == [first]
    assert list(spool.tmp.iterdir()) == []


def test_clean_tmp_removes_what_a_crash_left(tmp_path):
    spool = Spool(tmp_path / "spool")
    (spool.tmp / "abc.part").write_bytes(b"half")
    assert spool.clean_tmp() == 1
    assert list(spool.tmp.iterdir()) == []


@pytest.fixture
def engine(tmp_path):
    e = Engine(EngineOptions(out=str(tmp_path / "out")))
    yield e
    e.db.close()


def test_receive_stores_then_records(engine, sample_dir):
    data = (sample_dir / "hcc_fail" / "RP.SBRT_5fx_bad.dcm").read_bytes()
    inst = engine.receive(data, source="TPS")
    assert inst.kind == "RTPLAN" and inst.source == "TPS"
    assert open(inst.path, "rb").read() == data
    assert [i.sop_uid for i in engine.db.instances()] == [inst.sop_uid]


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.999])
def test_a_truncated_data_set_is_refused_and_not_stored(engine, sample_dir, cut):
    # cut inside the ROI sequences (a data set cut between two top-level elements is a
    # well-formed shorter data set: the network layer's last-fragment flag covers that)
    data = (sample_dir / "hcc_fail" / "RS.hcc_fail.dcm").read_bytes()
    cut = int(len(data) * cut)
    with pytest.raises(Refused) as info:
        engine.receive(data[:cut], source="TPS")
    assert info.value.status == STATUS["cannot_understand"] == 0xC000
    assert "corrupt data set" in info.value.reason
    assert list(engine.spool.files()) == [] and engine.db.instances() == []


def test_a_data_set_not_matching_the_request_is_refused(engine, sample_dir):
    data = (sample_dir / "hcc_fail" / "RP.SBRT_5fx_bad.dcm").read_bytes()
    with pytest.raises(Refused) as info:
        engine.receive(data, source="TPS", sop_class="1.2.840.10008.5.1.4.1.1.2")
    assert info.value.status == 0xA900
    with pytest.raises(Refused) as info:
        engine.receive(data, source="TPS", sop_uid="1.2.3")
    assert info.value.status == 0xA900
    assert list(engine.spool.files()) == []


def test_a_full_disk_gives_out_of_resources(tmp_path, sample_dir):
    out = tmp_path / "out"
    e = Engine(EngineOptions(out=str(out)), spool=full_disk_spool(out / "spool", after=0))
    try:
        data = (sample_dir / "hcc_fail" / "RP.SBRT_5fx_bad.dcm").read_bytes()
        with pytest.raises(Refused) as info:
            e.receive(data, source="TPS")
        assert info.value.status == STATUS["out_of_resources"] == 0xA700
        assert "No space left on device" in info.value.reason
        assert list(e.spool.files()) == [] and list(e.spool.tmp.iterdir()) == []
        assert e.db.instances() == []
    finally:
        e.db.close()


def test_recover_indexes_spool_files_the_database_lacks(tmp_path, sample_dir):
    out = tmp_path / "out"
    spool = Spool(out / "spool")
    data = (sample_dir / "hcc_fail" / "RD.SBRT_5fx_bad.dcm").read_bytes()
    path, digest = spool.write(data)            # a crash before the database insert
    (spool.tmp / "x.part").write_bytes(data[:100])
    e = Engine(EngineOptions(out=str(out)))
    try:
        assert e.recover() == 1
        (inst,) = e.db.instances()
        assert inst.sha256 == digest and inst.kind == "RTDOSE"
        assert list(spool.tmp.iterdir()) == []
        assert e.recover() == 0                  # idempotent
    finally:
        e.db.close()
