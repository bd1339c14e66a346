"""Package list for setuptools (the rest of the metadata is in pyproject.toml).

The constraint library lives in the top-level ``constraints/`` folder, the source of truth
that institutions read and edit; it is mapped into the wheel as the package data folder
``rtqa/constraint_library``. Development tools (``devtools/``, ``bench/``) never ship.
"""

import platform
import struct
import sys
from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup

# The compiled twins of rtqa's hot numpy kernels (rtqa/_native.py). optional=True: without
# a C compiler the install still succeeds, with the numpy kernels only. No fused
# multiply-add contraction and no fast-math: the C must round as numpy does, bit for bit.
# (MSVC: /fp:precise, which on x64 makes no contractions since Visual Studio 2022.)
_FLAGS = (["/fp:precise"] if sys.platform == "win32"
          else ["-O2", "-ffp-contract=off", "-fno-fast-math"])
# 32-bit x86 (gcc, clang): x87 arithmetic rounds to 80 bits, then again to 64 (not the
# numpy values); SSE2 rounds every double and float operation once, as IEEE 754 says.
# (A 32-bit interpreter on an x86 or x86-64 machine.)
if sys.platform != "win32" and struct.calcsize("P") == 4 and platform.machine().lower() in (
        "i386", "i486", "i586", "i686", "x86", "x86_64", "amd64"):
    _FLAGS += ["-msse2", "-mfpmath=sse"]
# Every rtqa/**/_c*.c is one extension module of the same dotted name (its list, with what
# each computes, is rtqa._native.KERNELS; a test checks the two agree).
_KERNELS = {".".join(p.with_suffix("").parts): p.as_posix()
            for p in sorted(Path("rtqa").rglob("_c*.c"))}

# the headers they share (a change rebuilds them; the sdist carries them)
_HEADERS = [p.as_posix() for p in sorted(Path("rtqa").rglob("*.h"))]

setup(
    # data folders (templates, schema) are namespace packages, so they are listed too
    packages=find_namespace_packages(include=["rtqa", "rtqa.*"], exclude=["*.__pycache__"])
    + ["rtqa.constraint_library", "rtqa.constraint_library.protocols"],
    package_dir={"rtqa.constraint_library": "constraints",
                 "rtqa.constraint_library.protocols": "constraints/protocols"},
    ext_modules=[Extension(name, [src], extra_compile_args=_FLAGS, optional=True,
                           depends=_HEADERS)
                 for name, src in _KERNELS.items()],
)
