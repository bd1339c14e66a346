"""The Storage SCP: C-ECHO, allow-list, limits and refused data sets (in-process server
on 127.0.0.1, dcmtk and pynetdicom as clients)."""

from __future__ import annotations

import subprocess

import pytest

from serve_support import (ECHOSCU, wait_for, in_process_server, needs_dcmtk, spool_uids, storescu,
                           store_responses)

pytest.importorskip("pynetdicom")


def _echo(port: int, aet: str = "TPS") -> subprocess.CompletedProcess:
    return subprocess.run([ECHOSCU, "-v", "-aet", aet, "-aec", "RTQA", "127.0.0.1",
                           str(port)], capture_output=True, text=True, timeout=120)


@needs_dcmtk
def test_echo_and_allow_list(tmp_path, sample_dir):
    with in_process_server(tmp_path / "out", allow=("TPS",)) as (engine, port):
        ok = _echo(port, "TPS")
        assert ok.returncode == 0, ok.stderr
        assert "Received Echo Response (Success)" in ok.stdout + ok.stderr
        bad = _echo(port, "INTRUDER")
        assert bad.returncode != 0
        assert "Association Rejected" in bad.stdout + bad.stderr
        sent = storescu(port, [sample_dir / "hcc_fail" / "RP.SBRT_5fx_bad.dcm"],
                        aet="INTRUDER")
        assert sent.returncode != 0
        assert "Association Rejected" in sent.stdout + sent.stderr
        assert engine.db.count_instances() == 0
        assert spool_uids(engine.spool.root) == set()


@needs_dcmtk
def test_data_set_over_the_size_limit_is_refused(tmp_path, sample_dir):
    rp = sample_dir / "hcc_fail" / "RP.SBRT_5fx_bad.dcm"
    ct = sample_dir / "hcc_fail" / "CT.001.dcm"
    limit = (rp.stat().st_size + ct.stat().st_size) // 2
    assert ct.stat().st_size < limit < rp.stat().st_size
    with in_process_server(tmp_path / "out", max_bytes=limit) as (engine, port):
        res = storescu(port, [ct, rp])
        responses = dict(store_responses(res.stdout + res.stderr))
        assert responses[str(ct)] == "Success"
        assert responses[str(rp)] == "Refused: OutOfResources", responses
        (only,) = engine.db.instances()
        assert only.kind == "CT"


def test_association_limit(tmp_path):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    with in_process_server(tmp_path / "out", max_associations=1) as (engine, port):
        ae = AE(ae_title="TPS")
        ae.add_requested_context(Verification)
        first = ae.associate("127.0.0.1", port, ae_title="RTQA")
        assert first.is_established
        try:
            second = ae.associate("127.0.0.1", port, ae_title="RTQA")
            assert second.is_rejected
        finally:
            first.release()
        # once the first association has ended on the server side, a new one is accepted

        def established():
            a = ae.associate("127.0.0.1", port, ae_title="RTQA")
            if a.is_established:
                a.release()
                return True
            return False
        wait_for(established, "an association after the first one ended", step=0.2)


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_corrupt_data_set_is_refused(tmp_path, sample_dir, cut, monkeypatch):
    """A data set whose element stream is cut inside a sequence, sent as raw bytes
    (pynetdicom streams the file as it is: storescu would refuse to read it)."""
    from pynetdicom import AE, _config
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    whole = (sample_dir / "hcc_fail" / "RS.hcc_fail.dcm").read_bytes()
    broken = tmp_path / "RS.broken.dcm"
    broken.write_bytes(whole[:int(len(whole) * cut)])
    with in_process_server(tmp_path / "out") as (engine, port):
        ae = AE(ae_title="TPS")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.1.2.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="RTQA")
        assert assoc.is_established
        try:
            status = assoc.send_c_store(broken)
            assert status.Status == 0xC000
            assert "corrupt data set" in status.ErrorComment
            ok = assoc.send_c_store(sample_dir / "hcc_fail" / "RS.hcc_fail.dcm")
            assert ok.Status == 0x0000          # the association goes on
        finally:
            assoc.release()
        (inst,) = engine.db.instances()
        assert open(inst.path, "rb").read().endswith(whole[-2000:])
        assert len(list(engine.spool.files())) == 1


@needs_dcmtk
def test_an_oversized_message_aborts_the_association(tmp_path, sample_dir):
    """A data set more than 1 MiB over the limit is not even buffered: the association
    is aborted while it arrives."""
    rd = sample_dir / "hcc_fail" / "RD.SBRT_5fx_bad.dcm"
    assert rd.stat().st_size > 2**20 + 1000
    with in_process_server(tmp_path / "out", max_bytes=1000) as (engine, port):
        res = storescu(port, [rd])
        assert res.returncode != 0
        assert store_responses(res.stdout + res.stderr) == []     # no response at all
        assert engine.db.count_instances() == 0
        assert list(engine.spool.files()) == []
        assert _echo(port).returncode == 0                          # the server goes on
