"""``rtqa.constraints.toml_reading.parse_toml``: tomllib's data and errors, parsed once
per text in this process, never kept on disk."""

from __future__ import annotations

import tomllib

import pytest

import rtqa.constraints.toml_reading as tr
from rtqa.paths import constraints_dir


@pytest.fixture()
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(tr, "_PARSED", {})
    return tmp_path


def _library_texts():
    return [p.read_text(encoding="utf-8") for p in sorted(constraints_dir().rglob("*.toml"))]


def test_same_data_as_tomllib_fresh_and_cached(fresh):
    texts = _library_texts()
    assert texts
    for text in texts:
        expected = tomllib.loads(text)
        assert tr.parse_toml(text) == expected          # parsed, then kept
        assert tr.parse_toml(text) == expected          # this process's copy
    assert len(tr._PARSED) == len(set(texts))
    assert not any(fresh.rglob("*")), "nothing is written to the cache folder"


def test_each_call_gives_new_objects(fresh):
    text = 'a = [1, 2.5, true]\n[t]\nk = "v"\n'
    first = tr.parse_toml(text)
    first["a"].append(99)
    first["t"]["k"] = "changed"
    assert tr.parse_toml(text) == {"a": [1, 2.5, True], "t": {"k": "v"}}


def test_dates_are_parsed_every_time_and_errors_are_tomllibs(fresh):
    text = "d = 2024-01-02\n"
    assert tr.parse_toml(text) == tomllib.loads(text)
    assert not tr._PARSED
    with pytest.raises(tomllib.TOMLDecodeError):
        tr.parse_toml("a = [1,\n")
