"""``rtqa.constraints.toml_reading.parse_toml``: tomllib's data and errors, parsed once
per text (this process and the user's cache folder); a damaged cache file is ignored."""

from __future__ import annotations

import tomllib

import pytest

import rtqa.constraints.toml_reading as tr
from rtqa.paths import constraints_dir


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(tr, "_PARSED", {})
    return tmp_path / "rtqa" / "toml"


def _library_texts():
    return [p.read_text(encoding="utf-8") for p in sorted(constraints_dir().rglob("*.toml"))]


def test_same_data_as_tomllib_fresh_cached_and_from_disk(cache):
    texts = _library_texts()
    assert texts
    for text in texts:
        expected = tomllib.loads(text)
        assert tr.parse_toml(text) == expected          # parsed, then stored
        assert tr.parse_toml(text) == expected          # this process's copy
    tr._PARSED.clear()
    assert len(list(cache.glob("*.marshal"))) == len(set(texts))
    for text in texts:
        assert tr.parse_toml(text) == tomllib.loads(text)   # from the cache folder


def test_each_call_gives_new_objects(cache):
    text = 'a = [1, 2.5, true]\n[t]\nk = "v"\n'
    first = tr.parse_toml(text)
    first["a"].append(99)
    first["t"]["k"] = "changed"
    assert tr.parse_toml(text) == {"a": [1, 2.5, True], "t": {"k": "v"}}


def test_damaged_cache_file_is_ignored(cache):
    text = 'limit = 12.5\nname = "x"\n'
    tr.parse_toml(text)
    (path,) = cache.glob("*.marshal")
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01        # one bit of the data: the digest no longer matches
    path.write_bytes(bytes(raw))
    tr._PARSED.clear()
    assert tr.parse_toml(text) == {"limit": 12.5, "name": "x"}
    path.write_bytes(b"garbage")
    tr._PARSED.clear()
    assert tr.parse_toml(text) == {"limit": 12.5, "name": "x"}


def test_dates_are_parsed_every_time_and_errors_are_tomllibs(cache):
    text = "d = 2024-01-02\n"
    assert tr.parse_toml(text) == tomllib.loads(text)
    assert not list(cache.glob("*.marshal"))
    with pytest.raises(tomllib.TOMLDecodeError):
        tr.parse_toml("a = [1,\n")


def test_unwritable_cache_folder_only_means_parsing(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(tr, "_PARSED", {})
    assert tr.parse_toml("x = 1\n") == {"x": 1}
