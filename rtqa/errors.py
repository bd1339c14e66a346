"""Errors rtqa reports to the user.

Every error that reaches the CLI is an ``RtqaError``: it names the file (when one is
involved) and the reason in one line, and maps to exit code 2 (input that cannot be
checked). Anything else escaping is a bug; the CLI still turns it into exit 2.
"""

from __future__ import annotations

from pathlib import Path


class RtqaError(Exception):
    """Input that cannot be checked. ``str(err)`` is a one-line message."""

    def __init__(self, reason: str, path: str | Path | None = None):
        self.reason = reason
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class DicomInputError(RtqaError):
    """A DICOM file is unreadable, malformed or unsupported."""


class MetricSyntaxError(RtqaError, ValueError):
    """A DVH metric string does not follow the TG-263 syntax rtqa understands."""


class ConstraintFileError(RtqaError):
    """A constraint or protocol file is malformed (names the file and line)."""
