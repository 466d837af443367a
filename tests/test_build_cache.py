"""The build cache in var/build/: what it keeps survives a round trip; a damaged file costs a cold build only."""

from __future__ import annotations

import logging
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from estate.config import load_config
from handbook import cache as build_cache
from handbook.build import build
from tests.conftest import TODAY


def _cache_file(root: Path) -> Path:
    return build_cache.cache_path(load_config(root), root / "site")


def test_parsed_results_survive_the_round_trip(mini: Path) -> None:
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()  # as a new process would: read the file
    saved = build_cache._read(_cache_file(mini))
    build_cache._MEMO.clear()
    fresh = build_cache.BuildCache()
    from handbook.discover import discover
    from handbook.sources import Expander, parse_sources

    parse_sources(discover(config), config, Expander.load(config), fresh, workers=1)
    assert saved.parsed.keys() == fresh.parsed.keys()
    for key, (item, problems) in fresh.parsed.items():
        loaded, loaded_problems = saved.parsed[key]
        assert loaded_problems == problems
        if item is None or isinstance(item, tuple):
            assert loaded == item
            continue
        assert type(loaded) is type(item)
        for f in fields(item):
            if f.name == "superseded_by":  # derived by the index step each build, not by parsing
                continue
            assert getattr(loaded, f.name) == getattr(item, f.name), (key, f.name)
    assert saved.pages and saved.signatures and saved.outputs


def test_a_rebuild_from_the_saved_cache_renders_nothing(mini: Path) -> None:
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    again = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert again.rendered == [] and again.parsed == 0


@pytest.mark.parametrize("damage", [b"", b"\x00garbage", b"not marshal at all" * 100], ids=["empty", "binary", "text"])
def test_a_damaged_cache_file_means_a_cold_build(mini: Path, damage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    first = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    _cache_file(mini).write_bytes(damage)
    with caplog.at_level(logging.WARNING):
        again = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert again.parsed == first.parsed  # everything parsed afresh
    assert (mini / "site/staff/procedures/t-001.html").is_file()
    if damage:
        assert "ignoring unreadable build cache" in caplog.text


def test_pickling_is_not_used_for_the_cache(mini: Path) -> None:
    """Pickling a str keeps a UTF-8 copy inside it for its whole life (see cache.py): a saved cache must not."""
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    item = next(v[0] for v in build_cache._MEMO[(mini / "site").resolve()].parsed.values() if hasattr(v[0], "html"))
    size = sys.getsizeof(item.html)
    build_cache.save(load_config(mini), mini / "site", build_cache._MEMO[(mini / "site").resolve()],
                     set(build_cache._MEMO[(mini / "site").resolve()].parsed), set())
    assert sys.getsizeof(item.html) == size
