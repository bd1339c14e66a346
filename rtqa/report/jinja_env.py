"""The jinja2 environment of rtqa's HTML pages (``rtqa/report/templates``), with the
compiled templates kept in the user's cache folder (``_TemplateCache``): compiling the
report template costs about 0.08 s CPU, loading it from the cache about 1 ms. Without a
writable cache folder every process compiles the templates again, nothing else changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jinja2

import rtqa

__all__ = ["template_environment"]


def _cache_dir() -> Path | None:
    """The folder of rtqa's compiled templates (``rtqa.paths.user_cache_dir``)."""
    from rtqa.paths import user_cache_dir
    return user_cache_dir("jinja2")


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """jinja2's file bytecode cache (the compiled template, written once, ~0.08 s CPU
    saved per report after that), failing soft: a folder that cannot be created or
    written, or an unreadable or damaged file, only means compiling the template again.
    A file is used only for the same template text (jinja2 compares its SHA-1), jinja2
    bytecode format and Python version (jinja2 checks both); the file name also holds
    rtqa's and jinja2's versions and a digest of the environment options."""

    def __init__(self, directory: Path, options: dict):
        tag = hashlib.sha1(repr((sorted(options.items()), rtqa.__version__,
                                 getattr(jinja2, "__version__", ""))).encode()).hexdigest()
        super().__init__(str(directory), f"rtqa-{tag[:16]}-%s.cache")
        self._ready = False

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - damaged or foreign file: compile again
            bucket.reset()

    def dump_bytecode(self, bucket) -> None:
        try:
            if not self._ready:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                self._ready = True
            super().dump_bytecode(bucket)
        except Exception:  # noqa: BLE001 - no cache: the next run compiles again
            pass


def template_environment(**options) -> jinja2.Environment:
    """A jinja2 environment on rtqa's templates (``rtqa/report/templates``) with
    ``options`` (all but ``undefined=StrictUndefined``) and the compiled-template cache."""
    cache_dir = _cache_dir()
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rtqa.report", "templates"),
        undefined=jinja2.StrictUndefined,
        bytecode_cache=_TemplateCache(cache_dir, options) if cache_dir is not None else None,
        **options,
    )
