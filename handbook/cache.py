"""The incremental-build manifest: parsed sources by content hash, and each output page's fingerprint.

It lives in the estate's var/build/ (not in site/, so a USB copy of site/ carries nothing extra). A change of config, policy, templates, static assets or of
this code's CACHE_VERSION invalidates what depends on it; anything unreadable is simply a cold build.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from estate.config import CONFIG_FILE, EstateConfig
from render.jinja import assets_digest
from render.writer import atomic_file

log = logging.getLogger(__name__)

CACHE_VERSION = "2"
_MEMO: dict[Path, BuildCache] = {}   # watch mode keeps the cache in memory between builds
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-writer")  # one write at a time


@dataclass
class BuildCache:
    """What the last build knew."""

    parse_stamp: str = ""                    # config + policy + code: parsed results valid for it
    page_stamp: str = ""                     # parse_stamp + templates/static: page fingerprints valid for it
    parsed: dict[str, tuple] = field(default_factory=dict)     # digest+kind -> (item, problems)
    pages: dict[str, str] = field(default_factory=dict)        # tree/path -> fingerprint
    signatures: dict[str, tuple[str, str]] = field(default_factory=dict)  # tree/path -> (inputs, fingerprint)
    outputs: set[str] = field(default_factory=set)             # every file the last build wrote


def load(out: Path, config: EstateConfig, policy_digest: str) -> BuildCache:
    """Load the cache for OUT, dropping whatever the current config, policy or templates invalidate."""
    config_bytes = config.path(CONFIG_FILE).read_bytes()
    parse_stamp = hashlib.sha256(config_bytes + policy_digest.encode() + _code_digest().encode()).hexdigest()
    page_stamp = hashlib.sha256((parse_stamp + assets_digest()).encode()).hexdigest()
    cache = _MEMO.get(out.resolve()) or _read(cache_path(config, out))
    if cache.parse_stamp != parse_stamp:
        cache.parsed.clear()
    if cache.page_stamp != page_stamp:
        cache.pages.clear()
        cache.signatures.clear()
    cache.parse_stamp, cache.page_stamp = parse_stamp, page_stamp
    return cache


@cache
def _code_digest() -> str:
    """The builder's own code: upgrading Estate Desk must not reuse pages parsed by the old version."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for package in (Path(__file__).parent, Path(__file__).parent.parent / "render"):
        for path in sorted(package.glob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()


def folder(config: EstateConfig) -> Path:
    """The estate's var/build/: build caches, never part of site/."""
    return config.path(config.processor.var_dir) / "build"


def cache_path(config: EstateConfig, out: Path) -> Path:
    """One cache file per output folder, under the estate's var/build/."""
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return folder(config) / f"{key}.pickle"


def _read(path: Path) -> BuildCache:
    try:
        with path.open("rb") as fh:
            cache = pickle.load(fh)
        return cache if isinstance(cache, BuildCache) else BuildCache()
    except FileNotFoundError:
        return BuildCache()
    except Exception as exc:  # a damaged or old-format cache only costs a cold build
        log.warning("ignoring unreadable build cache %s: %s", path, exc)
        return BuildCache()


def save(config: EstateConfig, out: Path, cache: BuildCache, live: set[str], outputs: set[str],
         background: bool = False) -> None:
    """Keep only what this build used, and persist it (in BACKGROUND, watch mode does not wait for it).

    A cache file that lags behind only costs the next CLI build some re-rendering, never a wrong page.
    """
    cache.parsed = {k: v for k, v in cache.parsed.items() if k in live}
    cache.pages = {k: v for k, v in cache.pages.items() if k in outputs}
    cache.signatures = {k: v for k, v in cache.signatures.items() if k in outputs}
    cache.outputs = outputs
    _MEMO[out.resolve()] = cache
    path = cache_path(config, out)
    if background:
        _WRITER.submit(_dump, cache, path)
    else:
        _dump(cache, path)


def _dump(cache: BuildCache, path: Path) -> None:
    """Pickle straight into the new file: no second in-memory copy of a large cache."""
    with atomic_file(path) as fh:
        pickle.dump(cache, fh, protocol=pickle.HIGHEST_PROTOCOL)


def remove_stale(out: Path, cache: BuildCache, outputs: set[str]) -> int:
    """Delete pages the last build wrote that this build no longer produces (a removed procedure)."""
    removed = 0
    for rel in sorted(cache.outputs - outputs):
        path = out / rel
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def clean(out: Path) -> None:
    """Empty OUT (for --clean); only ever called after validation passed."""
    _MEMO.pop(out.resolve(), None)
    if out.is_dir():
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
