"""Where rtqa finds its constraint library.

The library is the top-level ``constraints/`` folder of the source tree (rtqa is
installed editable, so the folder sits next to the ``rtqa`` package). Set the environment
variable ``RTQA_CONSTRAINTS_DIR`` to use another folder (same layout: constraint sets,
``names.toml`` and ``protocols/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from rtqa.errors import ConstraintFileError

__all__ = ["ENV_VAR", "constraints_dir", "protocols_dir"]

ENV_VAR = "RTQA_CONSTRAINTS_DIR"


def constraints_dir() -> Path:
    """The constraints folder; raises ``ConstraintFileError`` if it does not exist."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConstraintFileError(f"{ENV_VAR} does not name a folder", path)
        return path
    path = Path(__file__).resolve().parent.parent / "constraints"
    if not path.is_dir():
        raise ConstraintFileError("constraint library folder not found (install rtqa "
                                  f"editable from its source tree, or set {ENV_VAR})", path)
    return path


def protocols_dir() -> Path:
    """``constraints_dir() / "protocols"``."""
    return constraints_dir() / "protocols"
