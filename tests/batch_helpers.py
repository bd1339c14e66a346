"""Small plans and worker hooks for the ``rtqa batch`` tests.

The hooks replace what a worker runs for a plan (``BatchOptions.check``, a picklable
``functools.partial`` of a function here): the faults live in the tests, not in the
worker. This module is importable by worker processes (``tests/`` is on ``sys.path`` via
pytest's ``pythonpath``, which spawned and fork-server processes inherit).
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

KEEP = ("External", "Liver", "SpinalCord")
LESIONS = ("Liver", "T10")


def small(case, name: str, patient_id: str, grid_mm: float = 6.0):
    """A ~1 s variant of a sample case with its own UIDs (name and seed) and patient."""
    plans = tuple(replace(p, grid=replace(p.grid, spacing_mm=(grid_mm,) * 3),
                          targets=tuple(t for t in p.targets if t.lesion in LESIONS))
                  for p in case.plans)
    return replace(case, name=name, seed=name, patient_id=patient_id,
                   ct=case.ct, plans=plans,  # full image: contours inside it
                   contour_spacing_mm=4.0, min_contour_points=12,
                   structures=tuple(s for s in case.structures if s.name in KEEP),
                   lesions=tuple(les for les in case.lesions if les.name in LESIONS))


def _hit(text: str, task) -> bool:
    return text in task.name or any(text in f for f in task.files)


def _check(task):
    from rtqa.batch.worker import check_plan
    return check_plan(task)


def crash_on(text: str, task):
    """The worker process checking a plan matching ``text`` dies (exit code 70)."""
    if _hit(text, task):
        os._exit(70)
    return _check(task)


def raise_on(text: str, task):
    """The check of a plan matching ``text`` raises inside ``check_plan``."""
    from rtqa.batch.worker import check_plan

    def broken(files, options):
        raise RuntimeError("test fault injected by the test")

    return check_plan(task, run=broken) if _hit(text, task) else check_plan(task)


def hang_on(text: str, marker_dir: str, task):
    """A plan matching ``text`` never ends: the worker writes ``<marker_dir>/<pid>`` (its
    process id, so a test can wait for the process to be gone) and blocks, using no CPU,
    until it is killed."""
    if _hit(text, task):
        tmp = Path(marker_dir) / f".{os.getpid()}.tmp"
        tmp.write_text(str(os.getpid()))
        tmp.rename(Path(marker_dir) / str(os.getpid()))   # appears complete
        threading.Event().wait()
    return _check(task)


def replace_during_check(text: str, path: str, data_path: str, task):
    """For a plan matching ``text``: the first check reads the plan, then ``path`` is
    replaced by the content of ``data_path`` before the check ends (an RTDOSE replaced
    while the plan is being checked)."""
    from rtqa.batch.worker import check_plan
    from rtqa.checks.pipeline import run_check
    done = []

    def run(files, options):
        report = run_check(files, options)
        if not done:
            done.append(True)
            tmp = Path(path).with_suffix(".replacing")
            tmp.write_bytes(Path(data_path).read_bytes())
            os.replace(tmp, path)
        return report

    return check_plan(task, run=run) if _hit(text, task) else check_plan(task)


def always_changing(text: str, path: str, task):
    """For a plan matching ``text``: the DICOM file ``path`` (an RTPLAN) is edited (its
    RTPlanDescription) during every check."""
    from rtqa.batch.worker import check_plan
    from rtqa.checks.pipeline import run_check

    def run(files, options):
        import pydicom
        report = run_check(files, options)
        ds = pydicom.dcmread(path)
        ds.RTPlanDescription = f"edited during check {os.getpid()}-{len(edits)}"
        edits.append(path)
        ds.save_as(path)
        return report

    edits: list[str] = []

    return check_plan(task, run=run) if _hit(text, task) else check_plan(task)


def bare_dataset(path, implicit: bool = True) -> bytes:
    """The encoded data set of DICOM file ``path`` alone, as written without the Part 10
    header (no preamble, 'DICM' or File Meta: Elekta Monaco), implicit or explicit VR
    little endian."""
    from pydicom import dcmread
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, dcmread(path))
    return fp.getvalue()
