"""Resource bounds (issue 6): inputs far larger than any clinical one are refused with a
clear one-line error *before* memory is spent on them, and every limit can be raised.

* dose grids: ``Rows x Columns x NumberOfFrames`` against ``RTQA_MAX_DOSE_VOXELS``
  (default 200 million), checked from the header before PixelData is decoded;
* structure sets: total contour points against ``RTQA_MAX_CONTOUR_POINTS`` (default
  50 million);
* any file: its size against ``RTQA_MAX_FILE_MB`` (default 2048 MiB), before it is read.

The limits are read when rtqa is imported, so the overrides are tested in a fresh process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pydicom
import pytest

from rtqa.errors import DicomInputError
from rtqa.reading.dose import MAX_DOSE_VOXELS, read_dose

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "plans_sample" / "hcc_pass"
RD = "RD.SBRT_5fx.dcm"
RS = "RS.hcc_pass.dcm"


@pytest.fixture
def export(tmp_path: Path) -> Path:
    dst = tmp_path / "plan"
    shutil.copytree(SAMPLE, dst)
    return dst


def _check(plan: Path, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("rtqa")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                           "from rtqa.cli import main; main()"]
    full = {k: v for k, v in os.environ.items() if not k.startswith("RTQA_")}
    full.update(env)
    return subprocess.run(cmd + ["check", str(plan), "-q"], capture_output=True, text=True,
                          timeout=300, env=full)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    (line,) = [x for x in proc.stderr.splitlines() if x.strip()]
    assert line.startswith("rtqa: error: ")
    return line


def test_huge_dose_header_is_refused_before_allocation(export: Path):
    """A header claiming 65535 x 65535 x 10000 voxels (4e13, ~340 TB as float64) with the
    sample's small PixelData: refused from the header, without decoding or allocating."""
    path = export / RD
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 10000
    ds.save_as(path)
    claimed = 65535 * 65535 * 10000
    assert claimed > MAX_DOSE_VOXELS
    tracemalloc.start()
    try:
        with pytest.raises(DicomInputError) as err:
            read_dose(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "exceeds the limit" in err.value.reason and "RTQA_MAX_DOSE_VOXELS" in err.value.reason
    assert str(path) in str(err.value)
    # The file itself is ~1 MB; nothing near the claimed grid was allocated.
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_dose_voxel_limit_can_be_lowered_and_names_the_file(export: Path):
    ds = pydicom.dcmread(export / RD, stop_before_pixels=True)
    voxels = int(ds.Rows) * int(ds.Columns) * int(ds.NumberOfFrames)
    line = _one_line(_check(export, RTQA_MAX_DOSE_VOXELS=str(voxels - 1)))
    assert RD in line and f"limit of {voxels - 1}" in line
    # At exactly the grid's size it is accepted (the limit is inclusive).
    assert _check(export, RTQA_MAX_DOSE_VOXELS=str(voxels)).returncode == 0


def test_contour_point_limit(export: Path):
    ds = pydicom.dcmread(export / RS)
    total = sum(len(c.ContourData) // 3 for rc in ds.ROIContourSequence
                for c in rc.get("ContourSequence", []))
    line = _one_line(_check(export, RTQA_MAX_CONTOUR_POINTS=str(total - 1)))
    assert RS in line and "contour points" in line and "RTQA_MAX_CONTOUR_POINTS" in line
    assert _check(export, RTQA_MAX_CONTOUR_POINTS=str(total)).returncode == 0


def test_file_size_limit(export: Path):
    """The RTSTRUCT is the largest file of the sample: a limit just below its size refuses
    it (and only it)."""
    sizes = {p.name: p.stat().st_size for p in export.iterdir()}
    assert max(sizes, key=sizes.get) == RS
    limit_mb = (sizes[RS] - 1) / 2**20
    line = _one_line(_check(export, RTQA_MAX_FILE_MB=repr(limit_mb)))
    assert RS in line and "RTQA_MAX_FILE_MB" in line
