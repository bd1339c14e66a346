"""Reading constraint and protocol TOML files, with line numbers for error messages.

``_read_toml`` gives the text lines and the parsed data, or a ``ConstraintFileError``
naming the file (and the line and column of a TOML syntax error). ``_header_lines`` and
``_key_line`` find the line of a table header or of a key, so that a validation error can
name it. ``_text`` and ``_number`` read and check one value and raise ``_RowError`` (with
the offending key), which the callers turn into a ``ConstraintFileError``. Units are the
callers' (Gy, cc, % or mm); ``_number`` only checks the sign and the type.
"""

from __future__ import annotations

import difflib
import hashlib
import marshal
import math
import re
import tomllib
from pathlib import Path
from typing import Iterable

from rtqa.errors import ConstraintFileError


class _RowError(Exception):
    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _read_toml(path: Path) -> tuple[list[str], dict]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConstraintFileError("file not found", path) from None
    except OSError as exc:
        raise ConstraintFileError(f"cannot read file ({exc.strerror or exc})", path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConstraintFileError("not UTF-8 text", path) from None
    try:
        data = parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"line {m[1]}, column {m[2]}: " if m else ""
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        raise ConstraintFileError(f"{where}TOML syntax error: {msg}", path) from None
    return text.splitlines(), data


#: Parsed TOML by the SHA-256 of its text (marshal bytes), for this process only: a batch
#: or a server checks many plans against the same library. Never kept on disk: the
#: limits a check applies always come from the library files the report cites.
_PARSED: dict[str, bytes] = {}


def parse_toml(text: str) -> dict:
    """``tomllib.loads(text)`` (the same data, the same errors), parsed once per text in
    this process (tomllib is pure Python: ~0.03 s CPU for the default protocol and its
    sets). Data that marshal cannot hold (TOML dates and times) is parsed every time.
    Each call returns new objects."""
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    blob = _PARSED.get(key)
    if blob is not None:
        return marshal.loads(blob)
    data = tomllib.loads(text)
    try:
        _PARSED[key] = marshal.dumps(data)
    except ValueError:   # dates, times: parsed every time
        pass
    return data


_HEADER = re.compile(r"^\s*\[")


def _header_lines(lines: list[str], table: str, array: bool) -> list[int]:
    key = rf"\s*\"?{re.escape(table)}\"?\s*"
    pat = re.compile(rf"^\s*\[\[{key}\]\]" if array else rf"^\s*\[{key}\](?!\])")
    return [i + 1 for i, line in enumerate(lines) if pat.match(line)]


def _key_line(lines: list[str], start: int | None, key: str) -> int | None:
    """Line (1-based) of ``key = ...`` in the table whose header is on line ``start``;
    ``start`` 0 means the top level (before the first table)."""
    if start is None:
        return None
    pat = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    for i in range(start, len(lines)):
        if _HEADER.match(lines[i]):
            break
        if pat.match(lines[i]):
            return i + 1
    return None


def _unknown_keys(table: dict, allowed: Iterable[str]) -> str | None:
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}"
    return None


def _text(table: dict, key: str, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise _RowError(f"missing required key {key!r}", key)
        return None
    if not isinstance(value, str) or not value.strip():
        raise _RowError(f"{key!r} must be non-empty text, got {value!r}", key)
    return value.strip()


def _number(table: dict, key: str, *, positive: bool = True, integer: bool = False,
            required: bool = True) -> float | int | None:
    value = table.get(key)
    if value is None:
        if required:
            raise _RowError(f"missing required key {key!r}", key)
        return None
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
        kind = "a whole number" if integer else "a number"
        raise _RowError(f"{key!r} must be {kind}, got {value!r}", key)
    if value < 0 or (positive and value == 0):
        raise _RowError(f"{key!r} must be {'> 0' if positive else '>= 0'}, got {value!r}", key)
    return value if integer else float(value)


def _top_level(data: dict, lines: list[str], path: Path, allowed: Iterable[str]) -> None:
    problem = _unknown_keys(data, allowed)
    if problem:
        key = next(k for k in data if k not in allowed)
        line = _key_line(lines, 0, key) or next(iter(_header_lines(lines, key, False)
                                                   + _header_lines(lines, key, True)), None)
        raise ConstraintFileError(f"{'line %d: ' % line if line else ''}{problem}", path)
