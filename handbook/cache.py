"""The incremental-build manifest: parsed sources by content hash, and each output page's fingerprint.

It lives in the estate's var/build/ (not in site/, so a USB copy of site/ carries nothing extra). A change of
config, policy, templates, static assets or of this code invalidates what depends on it; anything unreadable
is simply a cold build.

The file is plain data written with marshal, not a pickle: pickling a str makes CPython keep a UTF-8 copy
inside the string for as long as it lives, +150% for every Chinese page body and section text the builder
holds (~55 MB at 5,000 procedures in --watch). marshal encodes without that copy, is faster, and a damaged
or planted file in var/ cannot run code: people who may edit procedures must not be able to make the build
run theirs. (For the same reason compiled templates are not cached there.)
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import shutil
import struct
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import date
from functools import cache, partial
from pathlib import Path
from typing import Any

from estate.config import CONFIG_FILE, EstateConfig
from handbook.discover import UNTRUSTED
from handbook.models import (
    TREES,
    BuildProblem,
    Heading,
    Intro,
    Lazy,
    Notice,
    Packed,
    Procedure,
    Section,
    SourceFile,
    Unparsed,
)
from render.jinja import assets_digest
from render.writer import atomic_file

log = logging.getLogger(__name__)

_MEMO: dict[Path, BuildCache] = {}   # watch mode keeps the cache in memory between builds
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-writer")  # one write at a time


@dataclass
class BuildCache:
    """What the last build knew."""

    parse_stamp: str = ""                    # config + policy + code: parsed results valid for it
    page_stamp: str = ""                     # parse_stamp + templates/static: page fingerprints valid for it
    pages: dict[str, str] = field(default_factory=dict)        # tree/path -> fingerprint
    signatures: dict[str, str] = field(default_factory=dict)   # tree/path -> what a procedure page showed
    outputs: set[str] = field(default_factory=set)             # every file the last build wrote
    # digest+kind -> the source (as _encode_field writes it) of each saved result that has an item: read from
    # the file's head, so that a one-off build knows which files changed before it decodes any result
    sources: dict[str, tuple] = field(default_factory=dict)
    _results: dict[str, tuple] = field(default_factory=dict, repr=False)
    _rest: Callable[[], dict[str, tuple]] | None = field(default=None, repr=False)  # decodes the file's results
    # a one-off build's loaded batches of results, as written: the next save copies those still valid
    saved: list[SavedBatch] = field(default_factory=list, repr=False)
    restamped: bool = field(default=False, repr=False)  # the parse stamp changed: nothing parsed before is reused

    @property
    def parsed(self) -> dict[str, tuple]:
        """digest+kind -> (item, problems). A loaded file's results are decoded when first asked for: a
        one-off rebuild asks while its changed files are parsed in another process (see parse_sources)."""
        if self._rest is not None:
            rest, self._rest = self._rest, None
            self._results.update(rest())
        return self._results

    @parsed.setter
    def parsed(self, results: dict[str, tuple]) -> None:
        self._results, self._rest = results, None

    def reusable(self, src: SourceFile) -> bool:
        """Is there a result parsed from SRC's content at SRC's path (two identical files are two procedures)?
        Answered from the file's head while the results are not decoded yet."""
        key = src.digest + src.kind
        if self._rest is not None:
            saved = self.sources.get(key)
            return saved is not None and saved[1] == src.rel
        hit = self._results.get(key)
        return hit is not None and hit[0] is not None and hit[0].source.rel == src.rel


@dataclass(frozen=True)
class SavedBatch:
    """A batch of parsed results as the cache file holds it: the bytes of its two frames, and what they
    decoded to (key, result, the item's source then). Saved again as those bytes while every result is
    still live and untouched: re-encoding 1,000 unchanged results cost ~40 ms of a one-page rebuild."""

    frames: memoryview
    results: tuple[tuple[str, tuple, SourceFile | None], ...]

    def unchanged_in(self, live: dict[str, tuple]) -> bool:
        """Is each result still the one saved (not dropped, not parsed again, its file not restamped)?"""
        return all(live.get(key) is result and (result[0] is None or result[0].source is source)
                   for key, result, source in self.results)


_HEAD = ("parse_stamp", "page_stamp", "pages", "signatures", "outputs", "sources")  # saved first, read at once


def load(out: Path, config: EstateConfig, policy_digest: str, lazy: bool = True) -> BuildCache:
    """Load the cache for OUT, dropping whatever the current config, policy or templates invalidate.

    LAZY (one-off builds) leaves pages' HTML, headings and section text as bytes of the file until read; --watch,
    which lives on, decodes them at once rather than keep the whole file's bytes for a few of them.
    """
    config_bytes = config.path(CONFIG_FILE).read_bytes()
    parse_stamp = hashlib.sha256(config_bytes + policy_digest.encode() + code_digest().encode()).hexdigest()
    page_stamp = hashlib.sha256((parse_stamp + assets_digest()).encode()).hexdigest()
    cache = _MEMO.get(out.resolve())
    cut_short = False
    if cache is None:  # (--watch keeps its cache in memory, which knows what it wrote; its save may still run)
        cache = _read(cache_path(config, out), lazy)
        cut_short = _cut_short(config, out, cache)
    cache.restamped = cache.parse_stamp != parse_stamp
    if cache.restamped:
        cache.parsed, cache.sources = {}, {}
    if cache.page_stamp != page_stamp or cut_short:
        cache.pages.clear()
        cache.signatures.clear()
    cache.parse_stamp, cache.page_stamp = parse_stamp, page_stamp
    return cache


# A build writes pages first and its cache last. One cut short in between (killed, a full disk) leaves
# pages the cache knows nothing of: a marker beside the cache says so until the cache is saved.

def _writing_marker(config: EstateConfig, out: Path) -> Path:
    return cache_path(config, out).with_suffix(".writing")


def start_writing(config: EstateConfig, out: Path) -> None:
    """Called before the first page is written."""
    marker = _writing_marker(config, out)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError as exc:  # var/ not writable: the build goes on; its cache will not be saved either
        log.warning("build cache folder not writable (%s): %s", marker.parent, exc)


def _cut_short(config: EstateConfig, out: Path, cache: BuildCache) -> bool:
    """Did the last build stop between writing pages and saving the cache? Then no page on disk is known:
    every page is rendered again, and every file in the trees counts as written by the last build, so
    that one whose source is gone since is removed."""
    if not _writing_marker(config, out).exists():
        return False
    log.info("the last build into %s was cut short: every page is rendered again", out)
    cache.outputs |= {p.relative_to(out).as_posix() for tree in TREES if (out / tree).is_dir()
                      for p in (out / tree).rglob("*") if p.is_file()}
    return True


@cache
def code_digest() -> str:
    """The builder's own code: upgrading Estate Desk must not reuse pages parsed by the old version."""
    h = hashlib.sha256(f"{sys.version} marshal {marshal.version}".encode())
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
    return folder(config) / f"{key}.cache"


MAGIC = b"estate-desk build cache 6\n"   # a file in an older layout is a cold build, silently
# Each frame is preceded by its length and CRC-32: a damaged file is a cold build, not a page built from a
# flipped byte. After the head, each batch of parsed results is two frames: the results as marshal data,
# whose Lazy fields (a page's HTML, headings, section text) are numbers into the next frame, a table of marshal
# blobs. Those are kept as slices of the file's bytes until read (models.Lazy), never copied one by one:
# copying 11 MB into 2,000 new objects cost ~20 ms of a one-page rebuild, in page faults alone.
_FRAME = struct.Struct("<QI")
_COUNT = struct.Struct("<I")


def _read(path: Path, lazy: bool = True) -> BuildCache:
    """The cache saved at PATH: its head now, its parsed results when first asked for (BuildCache.parsed).
    LAZY leaves each page's HTML, headings and section text undecoded until read."""
    try:
        data = memoryview(path.read_bytes())
    except FileNotFoundError:
        return BuildCache()
    except OSError as exc:  # unreadable: a cold build
        log.warning("ignoring unreadable build cache %s: %s", path, exc)
        return BuildCache()
    if data[:len(MAGIC)] != MAGIC:
        log.debug("build cache %s is in an older layout: building cold", path)
        return BuildCache(outputs=_older_outputs(data))
    try:
        (_, head), *results = _frames(data, len(MAGIC))  # every frame's CRC is checked here
        cache = BuildCache(**{name: value for name, value in marshal.loads(head).items() if name in _HEAD})
        if not all(_is_source(key, source) for key, source in cache.sources.items()):
            raise ValueError("a saved source is not (path, rel, kind, digest, shown, stamp)")
    except Exception as exc:  # a damaged cache only costs a cold build
        log.warning("ignoring unreadable build cache %s: %s", path, exc)
        return BuildCache()
    cache._rest = partial(_decode_results, path, data, results, lazy, cache.saved)
    return cache


def _is_source(key: object, source: object) -> bool:
    """A head entry as _dump writes it (the file may have been planted: it must not crash a build)."""
    return type(source) is tuple and len(source) == 6 and all(type(s) is str for s in source[:5]) and \
        key == source[3] + source[2] and type(source[5]) is tuple and all(type(n) is int for n in source[5])


def _decode_results(path: Path, data: memoryview, frames: list[tuple[slice, memoryview]], lazy: bool,
                    saved: list[SavedBatch]) -> dict[str, tuple]:
    """The parsed results of a cache file's frames (pairs: results, then their blob table).

    A LAZY (one-off) build also puts each batch's bytes and results in SAVED, for its save to copy: it
    keeps DATA anyway, where its results' page HTML etc. wait undecoded. --watch keeps no bytes of the file.
    """
    parsed: dict[str, tuple] = {}
    batches: list[SavedBatch] = []
    try:
        for (span, results), (end, table) in zip(frames[::2], frames[1::2], strict=True):
            batch = _batch(data[span.start:end.stop], results, table, lazy)
            parsed.update((key, result) for key, result, _ in batch.results)
            batches.append(batch)
    except Exception as exc:  # the files these were parsed from are parsed again (see parse_sources)
        log.warning("ignoring unreadable build cache %s: %s", path, exc)
        return {}
    if lazy:
        saved += batches
    return parsed


def _batch(frames: memoryview, results: memoryview, table: memoryview, lazy: bool) -> SavedBatch:
    """The batch whose two FRAMES are RESULTS and its blob TABLE."""
    blobs = _blob_table(table)
    decoded = [(key, _decode(value, blobs, lazy)) for key, value in marshal.loads(results)]
    return SavedBatch(frames, tuple((key, result, result[0] and result[0].source) for key, result in decoded))


def encode_batch(results: list[tuple[str, tuple]]) -> bytes:
    """RESULTS (digest+kind, (item, problems)) as a batch of the cache file: a frame of the results as plain
    data, a frame of their blob table. Parse workers hand their results over in this form (decode_batch):
    the parent then neither unpickles each page's HTML and section text (~0.25 s of its CPU while the
    workers parse 1,000 procedures) nor encodes them again to save them (~0.09 s at the end of the build).

    Raises ValueError for a value marshal cannot hold. None is known (YAML dates stay text, and front matter
    nested past 20 levels is refused by the parser); callers still fall back rather than fail the build.
    """
    blobs: list[bytes] = []
    plain = marshal.dumps([(key, _encode(result, blobs)) for key, result in results])
    table = _table_frame(blobs)
    return b"".join((_FRAME.pack(len(plain), zlib.crc32(plain)), plain, _FRAME.pack(len(table), zlib.crc32(table)), table))


def decode_batch(frames: bytes, lazy: bool) -> SavedBatch:
    """What encode_batch encoded; LAZY leaves each page's HTML, headings and section text undecoded until read."""
    (_, results), (_, table) = _frames(memoryview(frames), 0)
    return _batch(memoryview(frames), results, table, lazy)


def _blob_table(frame: memoryview) -> list[memoryview]:
    """The blobs of a table frame: their count, their lengths, then the blobs one after the other."""
    (count,) = _COUNT.unpack_from(frame)
    lengths = struct.unpack_from(f"<{count}I", frame, _COUNT.size)
    blobs, at = [], _COUNT.size + 4 * count
    for length in lengths:
        blobs.append(frame[at:at + length])
        at += length
    if at != len(frame):
        raise ValueError("blob table does not add up")
    return blobs


def _table_frame(blobs: list[bytes]) -> bytes:
    return b"".join([_COUNT.pack(len(blobs)), struct.pack(f"<{len(blobs)}I", *map(len, blobs)), *blobs])


# bytes before the head of older layouts
_OLDER_LAYOUTS = {b"estate-desk build cache 3\n": 8, b"estate-desk build cache 4\n": 12,
                  b"estate-desk build cache 5\n": _FRAME.size}


def _older_outputs(data: memoryview) -> set[str]:
    """The pages an older layout's cache says its build wrote (its head, a marshalled dict, came first):
    kept, so that a page whose procedure is deleted along with an upgrade is still removed."""
    for magic, frame in _OLDER_LAYOUTS.items():
        if data[:len(magic)] == magic:
            data = data[len(magic) + frame:]
    try:
        head = marshal.loads(data)
        outputs = head.get("outputs", set()) if isinstance(head, dict) else set()
        return {o for o in outputs if isinstance(o, str)} if isinstance(outputs, (set, frozenset)) else set()
    except Exception:  # not even that: nothing to keep
        return set()


def _frames(data: memoryview, at: int) -> Iterator[tuple[slice, memoryview]]:
    """The length-prefixed blobs of DATA from AT, each with the span of its frame (length, CRC, blob).
    marshal.loads over the bytes read at once: marshal.load on a file reads it object by object, 4x slower
    (0.12 s against 0.03 for 12 MB at 1,000 procedures)."""
    while at < len(data):
        start = at
        size, crc = _FRAME.unpack_from(data, at)
        at += _FRAME.size
        if at + size > len(data):
            raise ValueError("cut short")
        blob = data[at:at + size]
        if zlib.crc32(blob) != crc:
            raise ValueError("damaged (CRC-32 does not match)")
        at += size
        yield slice(start, at), blob


# ---- parsed results as plain data (str, int, tuple, list, dict, None) for marshal ----------------------

_KINDS: dict[str, type] = {"procedure": Procedure, "notice": Notice, "intro": Intro, "unparsed": Unparsed}
# fields holding a date (or None), read off the models, so a new one cannot silently stop the cache saving
_DATES = {f.name for cls in _KINDS.values() for f in fields(cls) if "date" in str(f.type).split(" | ")}
# fields kept as marshal bytes until read (models.Lazy: a page's HTML, headings and section text), by kind
_LAZY: dict[str, dict[str, Lazy]] = {kind: {name: a for name, a in vars(cls).items() if isinstance(a, Lazy)}
                                     for kind, cls in _KINDS.items()}


def _encode(result: tuple, blobs: list[bytes]) -> tuple:
    """(item, problems) → plain data; the item is a Procedure, a Notice, an Intro, an Unparsed or None. Its Lazy fields
    go to BLOBS as marshal bytes (as they came, if never read), and stand as their number there."""
    item, problems = result
    plain_problems = [(p.file, p.line, p.message) for p in problems]
    if item is None:
        return ("none", None, plain_problems)
    kind = next(name for name, cls in _KINDS.items() if isinstance(item, cls))
    values = vars(item)
    plain = {name: values[name] for name in _STORED[kind]}  # as they are, but for these (as _decode reads them):
    for name in _CONVERTED[kind]:
        plain[name] = _encode_field(name, plain[name])
    for name, lazy in _LAZY[kind].items():
        blobs.append(lazy.packed(item, _ENCODERS[name]))
        plain[name] = len(blobs) - 1
    return (kind, plain, plain_problems)


def _encode_field(name: str, value: Any) -> Any:
    if name == "source":  # parsed items keep no file bytes (see parse.py)
        return (value.path, value.rel, value.kind, value.digest, value.shown, value.stamp)
    if name in _DATES:
        return value.toordinal() if value else None
    if name in ("headings", "sections"):
        return [tuple(x) for x in value]
    return value


def _decode(plain: tuple, blobs: list[memoryview], lazy: bool = True) -> tuple:
    kind, item, problems = plain
    found = [BuildProblem(*p) for p in problems]
    if item is None:
        return None, found
    packed = _LAZY[kind]
    for name in _CONVERTED[kind]:  # the other fields are stored as they are (one call a field cost ~5 ms)
        item[name] = _decode_field(name, item[name])
    for name in packed:
        item[name] = Packed(blobs[item[name]], _DECODERS[name])
    decoded = _KINDS[kind](**item)
    if not lazy:  # decoded now, so that nothing holds on to the file's bytes
        for name in packed:
            getattr(decoded, name)
    return decoded, found


def _decode_field(name: str, value: Any) -> Any:
    if name == "source":
        path, rel, kind, digest, shown, stamp = value
        return SourceFile(path, rel, kind, b"", digest, shown, tuple(stamp))
    if name in _DATES:
        return date.fromordinal(value) if value is not None else None
    if name == "headings":
        return [Heading._make(h) for h in value]
    if name == "sections":
        return [Section._make(s) for s in value]
    return value


# per field, not per item: the same partial for every page
_ENCODERS = {name: partial(_encode_field, name) for lazy in _LAZY.values() for name in lazy}
_DECODERS = {name: partial(_decode_field, name) for lazy in _LAZY.values() for name in lazy}
# by kind: the fields stored as plain values (not Lazy), and those of them _encode_field/_decode_field convert
_STORED = {kind: [f.name for f in fields(cls) if f.name not in _LAZY[kind]] for kind, cls in _KINDS.items()}
_CONVERTED = {kind: [f.name for f in fields(cls) if f.name == "source" or f.name in _DATES] for kind, cls in _KINDS.items()}


def known_sources(cache: BuildCache) -> dict[str, tuple[tuple[int, ...], SourceFile]]:
    """The source files the saved results were parsed from, by path, with the stamp they had then (for
    discover): from the file's head, without decoding a result."""
    sources = (_decode_field("source", source) for source in cache.sources.values())
    return {source.path: (source.stamp, source) for source in sources if source.stamp != UNTRUSTED}


def save(config: EstateConfig, out: Path, cache: BuildCache, live: set[str], outputs: set[str]) -> Future:
    """Keep only what this build used, and write it in the background; the future says when it is written.

    A cache file that lags behind only costs the next CLI build some re-rendering, never a wrong page.
    """
    cache.parsed = {k: v for k, v in cache.parsed.items() if k in live}
    cache.pages = {k: v for k, v in cache.pages.items() if k in outputs}
    cache.signatures = {k: v for k, v in cache.signatures.items() if k in outputs}
    cache.outputs = outputs
    _MEMO[out.resolve()] = cache
    # a copy of the containers (not of what they hold): the next --watch build changes them meanwhile
    snapshot = replace(cache, _results={}, pages=dict(cache.pages), signatures=dict(cache.signatures),
                       outputs=set(cache.outputs), saved=[])
    return _WRITER.submit(_dump, snapshot, list(cache.parsed.items()), cache_path(config, out),
                          _writing_marker(config, out), cache.saved)


def wait_for_writes() -> None:
    """Return once every cache write started so far is on disk (one writer: a no-op queued behind them)."""
    _WRITER.submit(lambda: None).result()


DUMP_BATCH = 200  # parsed results encoded and written at a time: no copy of the whole cache in memory
KEEP_BATCH = 16   # a saved batch smaller than this is encoded again with the new results, so that files added
                  # one build at a time do not end up as 1,000 tiny batches (parse workers hand over 4 or more)


def _dump(cache: BuildCache, parsed: list[tuple[str, tuple]], path: Path, marker: Path,
          saved: Sequence[SavedBatch] = ()) -> None:
    """Write the cache: its small part, then the parsed results in batches (those SAVED before that are
    unchanged as the bytes they were); then the build is complete."""
    head = {name: getattr(cache, name) for name in _HEAD}  # its parsed results follow in batches
    head["sources"] = {key: _encode_field("source", item.source) for key, (item, _) in parsed if item is not None}
    live = dict(parsed)
    kept = [batch for batch in saved if len(batch.results) >= KEEP_BATCH and batch.unchanged_in(live)]
    done = {key for batch in kept for key, _, _ in batch.results}
    parsed = [(key, result) for key, result in parsed if key not in done]
    try:
        with atomic_file(path) as fh:
            fh.write(MAGIC)
            blob = marshal.dumps(head)
            fh.write(_FRAME.pack(len(blob), zlib.crc32(blob)))
            fh.write(blob)
            for batch in kept:
                fh.write(batch.frames)
            for start in range(0, len(parsed), DUMP_BATCH):
                fh.write(encode_batch(parsed[start:start + DUMP_BATCH]))
        marker.unlink(missing_ok=True)
    except (ValueError, OSError) as exc:  # a value marshal cannot hold, a full disk: the old file stays, and
        log.warning("build cache not saved (%s): %s", path, exc)  # the marker with it: pages are redone


def remove_stale(out: Path, cache: BuildCache, outputs: set[str]) -> int:
    """Delete pages the last build wrote that this build no longer produces (a removed procedure).

    Only inside OUT: the list comes from a file in var/, which must not be able to name any other file.
    """
    removed = 0
    for rel in sorted(cache.outputs - outputs):
        path = out / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            log.warning("not removing %s: outside %s", rel, out)
            continue
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
