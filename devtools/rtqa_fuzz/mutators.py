"""Mutations: random damage to the files of a sample export.

``Mutator.mutate`` picks a file (``_FILE_ODDS``) and an operation (``_OPS``, plus the
kind-specific ``_KIND_OPS``) and applies it. Byte-level operations (truncation, bit
flips, zeroed runs, pixel damage) and file-level ones (a file removed or duplicated) are
here; element-level edits are in ``edits``. Case *i* of seed *s* is defined by what these
functions draw from ``rng`` and in which order: a refactoring must not change either.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from . import edits
from .common import T, _read_ds, _set_raw, _write_ds, lenient_pydicom
from .edits import _Skip, _uid


@dataclass
class Mutation:
    file: str
    op: str
    detail: str


# --- byte-level ------------------------------------------------------------------------

def truncate(rng, name, kind, data, current):
    cut = rng.choice([rng.randrange(len(data)), len(data) - rng.randrange(1, 64),
                      rng.randrange(min(len(data), 4096))])
    return data[:cut], f"cut to {cut} of {len(data)} bytes"


def _header_end(data):
    i = data.rfind(b"\xe0\x7f\x10\x00")
    return i if i > 0 else len(data)


def flip(rng, name, kind, data, current):
    buf = bytearray(data)
    end = _header_end(data) if rng.random() < 0.85 else len(data)
    where = []
    for _ in range(rng.choice([1, 1, 1, 2, 4])):
        pos = rng.randrange(128 if end > 256 else 0, end)
        bit = rng.randrange(8)
        buf[pos] ^= 1 << bit
        where.append(f"{pos}.{bit}")
    return bytes(buf), "bit(s) " + ",".join(where)


def zero_run(rng, name, kind, data, current):
    buf = bytearray(data)
    end = _header_end(data)
    pos = rng.randrange(132, max(133, end))
    n = rng.choice([2, 4, 8, 64, 512])
    buf[pos:pos + n] = b"\x00" * len(buf[pos:pos + n])
    return bytes(buf), f"{n} bytes zeroed at {pos}"


def pixels(rng, name, kind, data, current):
    ds = _read_ds(data)
    arr = np.frombuffer(ds.PixelData, dtype="<u2").copy()
    mode = rng.choice(["voxel", "block", "frame_swap"])
    if mode == "voxel":
        i = rng.randrange(arr.size)
        arr[i] ^= 1 << rng.randrange(16)
        detail = f"voxel {i} bit flip"
    elif mode == "block":
        i = rng.randrange(arr.size)
        arr[i:i + 2000] = rng.choice([0, 65535])
        detail = f"2000 voxels from {i} set to a constant"
    else:
        frame = int(ds.Rows) * int(ds.Columns)
        a, b = rng.sample(range(int(ds.NumberOfFrames)), 2)
        fa = arr[a * frame:(a + 1) * frame].copy()
        arr[a * frame:(a + 1) * frame] = arr[b * frame:(b + 1) * frame]
        arr[b * frame:(b + 1) * frame] = fa
        detail = f"frames {a} and {b} swapped"
    ds.PixelData = arr.tobytes()
    return _write_ds(ds), detail


# --- file-level ------------------------------------------------------------------------

def file_level(rng, name, kind, data, current):
    """Remove the file, or add a copy (byte-identical, or with a new SOPInstanceUID);
    the file itself is left as it is."""
    mode = rng.choice(["remove", "duplicate", "duplicate_other_uid"])
    if mode == "remove":
        current[name] = None
        return data, "file removed"
    new = name.replace(".dcm", "") + ".copy.dcm"
    if mode == "duplicate":
        current[new] = data
        return data, f"byte-identical copy {new} added"
    ds = _read_ds(data)
    _set_raw(ds, T(8, 0x18), "UI", _uid(rng))
    current[new] = _write_ds(ds)
    return data, f"copy {new} with a new SOPInstanceUID added"


# --- the tables ------------------------------------------------------------------------

#: Which file is damaged: (upper bound of rng.random(), kind); above the last, a CT slice.
_FILE_ODDS = ((0.32, "RTDOSE"), (0.64, "RTSTRUCT"), (0.84, "RTPLAN"))

#: Operations and their weights, for every file, then the kind-specific ones (appended
#: in this order: the order is part of rng.choices).
_OPS = (("truncate", 8), ("flip", 22), ("zero_run", 5), ("delete_element", 14),
        ("corrupt_value", 30), ("edit_ids", 9), ("file_level", 4))
_KIND_OPS = {"RTSTRUCT": (("contour", 30), ("roi", 12)),
             "RTPLAN": (("plan_value", 25),),
             "RTDOSE": (("pixels", 6),)}

#: op name -> function (rng, name, kind, data, current) -> (new bytes, detail).
_OP_FUNCS = {
    "truncate": truncate, "flip": flip, "zero_run": zero_run, "pixels": pixels,
    "file_level": file_level, "delete_element": edits.delete_element,
    "corrupt_value": edits.corrupt_value, "plan_value": edits.plan_value,
    "contour": edits.contour, "roi": edits.roi, "edit_ids": edits.edit_ids,
}


class Mutator:
    """Applies random damage to the files of a sample export."""

    def __init__(self, files: dict[str, bytes], kinds: dict[str, str]):
        self.files, self.kinds = files, kinds
        self.ct = sorted(n for n, k in kinds.items() if k == "CT")
        self.rt = {k: n for n, k in kinds.items() if k != "CT"}

    def pick_file(self, rng: random.Random) -> str:
        r = rng.random()
        for limit, kind in _FILE_ODDS:
            if r < limit:
                return self.rt[kind]
        return rng.choice(self.ct)

    def mutate(self, rng: random.Random, current: dict[str, bytes | None]) -> Mutation:
        """Damage one file of ``current`` (file name -> bytes, None: removed) in place."""
        name = self.pick_file(rng)
        data = current[name]
        if data is None:
            name = self.rt["RTSTRUCT"]
            data = current[name]
        kind = self.kinds[name]
        ops = _OPS + _KIND_OPS.get(kind, ())
        op = rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        try:
            with lenient_pydicom():
                new, detail = _OP_FUNCS[op](rng, name, kind, data, current)
        except _Skip as exc:
            new, detail = data, f"no-op ({exc})"
        except Exception as exc:  # noqa: BLE001 - pydicom cannot edit an already damaged file
            new, detail = data, f"no-op (cannot edit: {type(exc).__name__})"
            op = "noop"
        if op != "file_level":
            current[name] = new
        return Mutation(name, op, detail)
