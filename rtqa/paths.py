"""Where rtqa finds its constraint library.

The library's source of truth is the top-level ``constraints/`` folder of the source tree.
It ships inside the wheel as the package data folder ``rtqa/constraint_library`` and is
found with :mod:`importlib.resources`, so an installed rtqa needs no checkout. In an
editable install from a checkout, the checkout's ``constraints/`` folder is used directly.
Set the environment variable ``RTQA_CONSTRAINTS_DIR`` to use another folder (same layout:
constraint sets, ``names.toml`` and ``protocols/``); it is read at each call, not at import.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from rtqa.errors import ConstraintFileError

__all__ = ["ENV_VAR", "constraints_dir", "protocols_dir", "user_cache_dir"]

ENV_VAR = "RTQA_CONSTRAINTS_DIR"


def _bundled() -> list[Path]:
    """Candidate folders of the bundled library: the wheel's package data, then the
    checkout's top-level ``constraints/`` (editable install)."""
    package = Path(str(resources.files("rtqa")))
    return [package / "constraint_library", package.parent / "constraints"]


def constraints_dir() -> Path:
    """The constraints folder; raises ``ConstraintFileError`` if it does not exist."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConstraintFileError(f"{ENV_VAR} does not name a folder", path)
        return path
    candidates = _bundled()
    for path in candidates:
        if (path / "protocols").is_dir():
            return path
    raise ConstraintFileError("constraint library folder not found (the rtqa installation is "
                              f"incomplete: reinstall rtqa, or set {ENV_VAR})", candidates[0])


def protocols_dir() -> Path:
    """``constraints_dir() / "protocols"``."""
    return constraints_dir() / "protocols"


def user_cache_dir(name: str) -> Path | None:
    """``rtqa/<name>`` in the user's cache folder (``$XDG_CACHE_HOME``, else ``~/.cache``;
    ``%LOCALAPPDATA%`` on Windows, ``~/Library/Caches`` on macOS), not created here;
    None when there is no home folder. rtqa keeps only what it can make again there
    (compiled report templates): deleting it is always safe."""
    import sys
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    if not base or base.startswith("~"):
        return None
    return Path(base) / "rtqa" / name
