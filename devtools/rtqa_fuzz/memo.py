"""Memos that keep the fuzzer fast without changing what rtqa computes.

``ReaderMemo`` memoises rtqa's per-file readers by (path, content digest, arguments);
``DvhMemo`` is a DVH cache injected into the check's dose service
(``CheckOptions(dvh_cache=memo)``, see ``rtqa.dvh.service.DvhCache``), keyed by a digest
of every field of the structure, the dose grid and the CT slice positions: no production
module is patched for it. A damaged file, and every DVH it changes, is a new key and
always goes through the real code; the ~85 untouched files and unchanged DVHs of a case
are not recomputed. Only RtqaError is cached (as a bare copy); any other exception propagates
and is never cached. The wrappers call the real function directly (no helper frame in
between), so a crash's traceback looks as it would without the memo.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np


def _bare(exc: BaseException) -> BaseException:
    """A copy of an exception without traceback or chained exceptions (a cached exception
    must not keep the frames, and their arrays, of the call that raised it)."""
    e = copy.copy(exc)
    e.__traceback__ = e.__context__ = e.__cause__ = None
    return e


class _LruCache:
    """The least-recently-used cache both memos share: ``_lookup`` (counts a hit or a
    miss) and ``_store``. An entry is ("ok", value) or ("error", bare RtqaError)."""

    def __init__(self, size: int):
        self.size = size
        self.cache: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    def _lookup(self, key):
        """The entry of ``key``, or None (a miss)."""
        if key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            return self.cache[key]
        self.misses += 1
        return None

    def _store(self, key, entry):
        self.cache[key] = entry
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)

    def cached(self, key, compute):
        """``compute()`` through the cache: a copy of the stored value, or the stored
        RtqaError raised again; other exceptions are never cached."""
        entry = self._lookup(key)
        if entry is not None:
            kind, value = entry
            if kind == "error":
                raise copy.copy(value)
            return copy.deepcopy(value)
        from rtqa.errors import RtqaError
        try:
            value = compute()
        except RtqaError as exc:
            self._store(key, ("error", _bare(exc)))
            raise
        self._store(key, ("ok", value))
        return copy.deepcopy(value)


class DvhMemo(_LruCache):
    """A ``rtqa.dvh.service.DvhCache``: DVHs by a digest of every field of the structure,
    the dose grid and the CT slice positions. Pass it as ``CheckOptions(dvh_cache=...)``."""

    def __init__(self, size: int = 800):
        super().__init__(size)
        self._digests = weakref.WeakKeyDictionary()

    def _digest_obj(self, obj) -> bytes:
        try:
            cached = self._digests.get(obj)
        except TypeError:
            cached = None
        if cached is not None:
            return cached
        d = self._digest_kw(obj)
        try:
            self._digests[obj] = d
        except TypeError:
            pass
        return d

    def _digest_kw(self, v) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        self._feed(h, v)
        return h.digest()

    def _feed(self, h, x):
        if isinstance(x, np.ndarray):
            h.update(f"nd{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            h.update(type(x).__qualname__.encode())
            for f in dataclasses.fields(x):
                h.update(f.name.encode())
                self._feed(h, getattr(x, f.name))
        elif isinstance(x, (tuple, list)):
            h.update(b"(%d" % len(x))
            for v in x:
                self._feed(h, v)
            h.update(b")")
        elif isinstance(x, (str, int, float, bool, type(None), Path)):
            h.update(repr(x).encode() + b"|")
        else:
            raise TypeError(type(x))

    def get(self, structure, grid, ct_z, compute):
        """``compute()`` (the DVH of ``structure`` on ``grid`` with ``ct_z``), memoised."""
        try:
            key = (self._digest_obj(structure), self._digest_obj(grid),
                   self._digest_kw(ct_z))
        except TypeError:
            self.misses += 1
            return compute()
        return self.cached(key, compute)


#: Reader arguments derived from the file's content (passed by the scan)
_DERIVED = frozenset({"dataset", "datasets", "pixel_data", "sha256"})


class ReaderMemo(_LruCache):
    """Memoise rtqa's per-file readers by (path, content digest, arguments): the file
    classification with its completeness check (rtqa.reading.scan.classify) and the four
    DICOM object readers. A damaged file is a new key, so it always goes through the real
    code; the ~85 untouched files of a case are not parsed again."""

    NAMES = (("rtqa.reading.export", "read_dose"), ("rtqa.reading.export", "read_plan"),
             ("rtqa.reading.export", "read_structure_set"),
             ("rtqa.reading.export", "read_ct_slice"), ("rtqa.reading.scan", "classify"))

    def __init__(self, size: int = 1200):
        super().__init__(size)
        self.originals: dict = {}

    def install(self):
        import importlib
        for module, name in self.NAMES:
            mod = importlib.import_module(module)
            fn = getattr(mod, name)
            if getattr(fn, "_rtqa_fuzz_memo", False):  # ours, from an earlier install
                fn = fn.__wrapped__                    # (never rtqa's own decorators)
            self.originals[(module, name)] = fn
            setattr(mod, name, self._wrap(name, fn))
        return self

    def uninstall(self):
        import importlib
        for (module, name), fn in self.originals.items():
            setattr(importlib.import_module(module), name, fn)

    def _wrap(self, name, fn):
        memo = self

        def reader(path, *args, **kwargs):
            try:
                data = Path(path).read_bytes()
            except OSError:
                return fn(path, *args, **kwargs)
            # what the scan already parsed from these bytes (data set, pixel position,
            # digest) is derived from the content: not part of the key
            key = (name, str(path), hashlib.blake2b(data, digest_size=20).digest(),
                   repr(args), repr(sorted((k, v) for k, v in kwargs.items()
                                           if k not in _DERIVED)))
            return memo.cached(key, lambda: fn(path, *args, **kwargs))
        reader.__wrapped__ = fn
        reader._rtqa_fuzz_memo = True
        return reader
