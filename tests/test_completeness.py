"""A DICOM file cut short anywhere is refused, never read as if whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rtqa.errors import DicomInputError
from rtqa.reading import load_export
from rtqa.reading.completeness import check_complete

SAMPLE = Path(__file__).resolve().parents[1] / "plans_sample" / "hcc_pass"


def _one(prefix: str) -> Path:
    return next(p for p in sorted(SAMPLE.iterdir()) if p.name.startswith(prefix))


@pytest.mark.parametrize("prefix", ["RD", "RS", "RP"])
def test_whole_files_are_complete(prefix):
    assert check_complete(_one(prefix).read_bytes()) is None


@pytest.mark.parametrize("prefix", ["RD", "RS"])
def test_every_cut_is_detected(prefix):
    data = _one(prefix).read_bytes()
    cuts = range(133, len(data), max(1, len(data) // 400))
    missed = [c for c in cuts if check_complete(data[:c]) is None]
    assert missed == []


@pytest.mark.parametrize("prefix", ["RD", "RS", "RP"])
def test_truncated_file_in_a_folder_is_an_error_naming_it(tmp_path, prefix):
    for p in SAMPLE.iterdir():
        if not p.name.startswith("CT"):
            shutil.copy(p, tmp_path / p.name)
    victim = tmp_path / _one(prefix).name
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    assert victim.name in str(err.value)
