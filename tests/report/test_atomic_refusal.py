"""``rtqa.report.atomic`` refuses to write over an input file: the one-pass comparison
(``_Refusal``) gives the answer of the pair-by-pair one (resolved paths equal, or the
same device and inode when both exist) for plain files, symbolic links to files and to
folders, hard links, ``..`` in paths and files that do not exist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rtqa.errors import RtqaError
from rtqa.report.atomic import _Refusal, refused, write_all


def _pairwise(target: Path, refuse) -> bool:
    target = target.resolve()
    for r in refuse:
        source = Path(r).expanduser().resolve()
        if target == source:
            return True
        try:
            if os.path.samefile(target, source):
                return True
        except OSError:
            pass
    return False


@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "plan").mkdir()
    for name in ("CT.1.dcm", "RD.dcm", "RS.dcm"):
        (tmp_path / "plan" / name).write_bytes(b"x" * 10)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "free.json").write_text("{}")
    os.symlink(tmp_path / "plan" / "RD.dcm", tmp_path / "other" / "link_to_rd")
    os.symlink(tmp_path / "plan", tmp_path / "plan_link")
    os.link(tmp_path / "plan" / "RS.dcm", tmp_path / "other" / "hard_rs")
    return tmp_path


def test_one_pass_equals_pair_by_pair(tree, monkeypatch):
    monkeypatch.chdir(tree / "other")
    refuse_lists = [
        sorted((tree / "plan").iterdir()),
        [tree / "plan_link" / "RD.dcm", "../plan/RS.dcm", tree / "plan" / "gone.dcm"],
        [tree / "other" / "link_to_rd", Path("..") / "plan_link" / ".." / "plan" / "CT.1.dcm"],
        [],
    ]
    targets = [tree / "plan" / "RD.dcm", tree / "other" / "link_to_rd",
               tree / "other" / "hard_rs", tree / "plan_link" / "CT.1.dcm",
               tree / "other" / "free.json", tree / "other" / "new.json",
               tree / "plan" / "gone.dcm", Path("../plan/RS.dcm"), Path("new2.json")]
    for refuse in refuse_lists:
        one = _Refusal(refuse)
        for t in targets:
            expected = _pairwise(t, refuse)
            assert (one.match(t.resolve()) is not None) == expected, (t, refuse)
            assert refused(t, refuse) == expected


def test_write_all_refuses_an_input_reached_through_a_link(tree):
    refuse = sorted((tree / "plan").iterdir())
    with pytest.raises(RtqaError, match="refusing to overwrite"):
        write_all([(tree / "other" / "ok.json", "{}"), (tree / "other" / "hard_rs", "{}")],
                  refuse=refuse)
    assert not (tree / "other" / "ok.json").exists()
    assert (tree / "plan" / "RS.dcm").read_bytes() == b"x" * 10
    assert write_all([(tree / "other" / "ok.json", "{}")], refuse=refuse) == [
        (tree / "other" / "ok.json").resolve()]
