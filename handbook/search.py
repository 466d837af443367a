"""The handbook's offline search index: one generated JS file per tree, loaded by a <script> tag.

A `<script>` (not fetch) is what lets search work from file:// on a USB stick. The index carries
the sections' text as written; the browser folds it (`handbook/search_fold.py` is the reference
rule) and scans it, so no n-gram postings are shipped and the file stays smaller than the text.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import logging
import marshal
import operator
import re
import struct
import tomllib
import zlib
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from estate.config import EstateConfig
from handbook.models import Lazy, Packed
from handbook.search_fold import browser_map, code_points, fold, fold_points
from render.writer import atomic_file

log = logging.getLogger(__name__)

INDEX_FILE = "assets/search-index.js"
# Only these kinds are ever indexed: tickets and residents' records must never reach an index.
INDEXED_KINDS = ("procedure", "faq", "notice")


class SearchConfigError(ValueError):
    """The synonym file is unreadable or malformed."""


# A named tuple: 10,000 are made for every build at 1,000 procedures, and hashed and compared as cache
# keys; a tuple does all three in C (a frozen dataclass took ~60 ms of a one-page rebuild to make them).
class SearchDoc(NamedTuple):
    """One section of a page, the unit that search finds."""

    url: str            # relative to the tree root, with anchor: "procedures/cs-sop-003.html#交接班"
    title: str          # page title (procedure or notice)
    section: str        # heading text of the section ("" for the lead before the first heading)
    text: str           # plain text of the section, as written
    kind: str           # procedure | faq | notice
    id: str = ""        # procedure id / notice id
    department: str = ""
    category: str = ""
    audience: str = ""
    tags: tuple[str, ...] = ()
    date: str = ""      # ISO effective/notice date


class PageDocs(NamedTuple):
    """One page's search documents, made only if no cached chunk holds them already."""

    url: str            # the page, without anchor
    key: Hashable       # stands for everything its docs are made from: the same key, the same docs
    size: int           # characters of its sections' headings and text: where a chunk may end
    make: Callable[[], list[SearchDoc]]


def build_index(docs: list[SearchDoc], config: EstateConfig,
                synonyms: list[list[str]] | None = None) -> dict[str, bytes]:
    """Return {path relative to the tree root: file content}, e.g. {"assets/search-index.js": ...}.

    SYNONYMS default to the estate's synonyms file. search.js and search.css are static sources: the
    builder ships them inside assets/site.js and assets/site.css (render/jinja.py BUNDLES).
    """
    return index_pages(group_docs(docs), config, synonyms)


def index_pages(pages: list[PageDocs], config: EstateConfig,
                synonyms: list[list[str]] | None = None) -> dict[str, bytes]:
    """build_index for docs already grouped by page, as the builder hands them over (search_docs.search_pages)."""
    if synonyms is None:
        synonyms = load_synonyms(config.path(config.build.synonyms_file))
    chunks = _chunks(pages)
    raws = _raws(chunks, synonyms, config.build.recent_changes)
    files = {INDEX_FILE: _script(_gzip(raws, _CACHE.deflate(raws)))}
    _CACHE.keep(chunks)
    log.info("search index: %d pages, %d KB", len(pages), len(files[INDEX_FILE]) // 1024)
    return files


def group_docs(docs: list[SearchDoc]) -> list[PageDocs]:
    """DOCS by page, in the order pages first appear (a page's sections apart are brought together);
    each page is keyed by its docs themselves."""
    by_page: dict[str, list[SearchDoc]] = {}
    for doc in docs:
        by_page.setdefault(doc.url.partition("#")[0], []).append(doc)
    return [PageDocs(url, tuple(group), sum(len(d.text) + len(d.section) for d in group), lambda g=group: g)
            for url, group in by_page.items()]


def clear_cache() -> None:
    """Forget the chunks kept for the next rebuild (a one-shot build will not rebuild)."""
    _CACHE.clear()


def load_cache(path: Path, stamp: str) -> None:
    """Start from the chunks a previous process saved at PATH (ignored unless saved with the same STAMP)."""
    _CACHE.load(path, stamp)


def save_cache(path: Path, stamp: str) -> None:
    """Save the chunks and pieces the last build used to PATH, for the next process."""
    _CACHE.save(path, stamp)


# ---- incremental packing --------------------------------------------------------------------
#
# `build --watch` calls build_index again after every edit. Packing the whole text anew (squash,
# JSON, deflate ~4 MB) took ~0.5 s at 1,000 procedures. So the docs are cut into chunks of whole
# pages, at content-defined points (a page whose URL hashes to 0 mod CUT_EVERY, once the chunk has
# CHUNK_MIN characters), so that an edit moves no other chunk's edges; each chunk is laid out once
# and cached by its pages' keys (the builder keys a page by its source, so the docs of pages in cached
# chunks are never even made). The payload is then a row of raw pieces (JSON head, each chunk's pages,
# sections and text), each raw-deflated on its own and ended with Z_FULL_FLUSH, so the pieces
# concatenate into one valid deflate stream; each is deflated with the 32 KB before it as preset
# dictionary (as pigz does), so cutting costs almost no compression. A piece is cached by itself
# and the piece before it. The gzip around them gets a CRC32 over the raw bytes. The output depends
# only on the docs, never on what the cache held: warm and cold builds are byte-identical (tested).

# The text is packed as UTF-16LE: at 1,000 procedures 0.94 MB gzip'd against 1.19 MB as UTF-8, 3.6 MB
# to inflate against 4.9, and the browser folds its code units in place instead of walking UTF-8 bytes.
TEXT_ENCODING = "utf-16-le"
LEVEL = 6                 # bench --pack, 1,000 procedures: level 4 1.41 MB / cold 173 ms, 5 1.38 / 181, 6 1.36 / 187
CHUNK_MIN = 10_000        # characters (2 bytes each in UTF-16) before a chunk may end
CHUNK_MAX = 200_000
CUT_EVERY = 8             # pages: with CHUNK_MIN, chunks come out ~20-40 K characters
WINDOW = 32 * 1024        # deflate's window: the preset dictionary a piece gets
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"    # deflate, no name, mtime 0, unknown OS
PARTS = ("pages", "sections", "text")


@dataclass(eq=False)
class _Chunk:
    """A run of whole pages, laid out once; its raw pieces are kept for the position it takes.

    Its pages and sections are Lazy (models.Lazy): a one-off build reads them from the saved cache only for a
    chunk that moved, and writes them back as the bytes they were read as (decoding the sections' 30,000 values
    took ~5 ms).
    """

    chars: int                # its distinct characters (text, titles) as bits (see _bits), folded once for all
                              # chunks: uniting 80 chunks' sets of ~1,100 characters took ~8 ms, ORing ints ~0.1
    count: int                # its pages, so that it is placed without reading them
    text: bytes               # "\n" + the "heading\nbody" lines of its sections joined by "\n", UTF-16LE
                              # (not Lazy: its raw pieces are the same bytes, saved once)
    pages: list[list] = Lazy(())     # page rows, as in the payload
    sections: list = Lazy(())        # flat: page index within the chunk, anchor, heading
    raws: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def raw(self, part: str, first_page: int) -> bytes:
        """PART as it reads in the payload when the chunk starts at page FIRST_PAGE (the same object each time)."""
        key = (part, first_page if part != "text" else min(first_page, 1))
        if key not in self.raws:
            if part == "text":
                raw = self.text if first_page else self.text[2:]   # only the first chunk is copied
            else:
                rows = self.pages if part == "pages" else _shift(self.sections, first_page)
                raw = (b"," if first_page else b"") + _json(rows)[1:-1]
            self.raws = {k: v for k, v in self.raws.items() if k[0] != part}   # a moved chunk stays moved
            self.raws[key] = raw
        return self.raws[key]


class _Key:
    """A chunk as a cache key: its pages' keys, hashed once; its digest is the same in every process."""

    __slots__ = ("keys", "hash", "_digest")

    def __init__(self, keys: tuple):
        self.keys = keys
        self.hash = hash(keys)
        self._digest = b""

    @property
    def digest(self) -> bytes:
        """For the saved cache (hash() differs from process to process)."""
        if not self._digest:
            h = hashlib.blake2b(digest_size=16)
            for key in self.keys:
                h.update(key if isinstance(key, bytes) else _docs_digest(key))
            self._digest = h.digest()
        return self._digest

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.hash == other.hash and self.keys == other.keys


def _docs_digest(docs: tuple[SearchDoc, ...]) -> bytes:
    # marshal format 2 writes no back-references: equal docs give equal bytes whatever they share
    plain = tuple(map(tuple, docs))   # marshal takes plain tuples only, not SearchDoc
    return hashlib.blake2b(marshal.dumps(plain, 2), digest_size=16).digest()


class _PackCache:
    """Chunks by docs and deflated pieces by (previous raw, raw), kept while one of the last two builds used them.

    Two, because each build indexes two trees (staff, public) one after the other.
    """

    def __init__(self) -> None:
        self.chunks: dict[_Key, _Chunk] = {}
        self.pieces: dict[tuple[bytes, bytes], bytes] = {}
        self.used: list[tuple[set, set]] = [(set(), set()), (set(), set())]
        # what load() read from disk, taken over by a build as it finds them (chunks by a digest of their docs)
        self.stored_chunks: dict[bytes, _Chunk] = {}
        self.stored_pieces: dict[tuple[bytes, bytes], bytes] = {}
        self.fold_maps: dict[bytes, str] = {}   # by the characters they were made for, the last few

    FOLD_MAPS_KEPT = 4   # staff and public tree, this build and the one before

    def fold_map(self, chars: int) -> str:
        """The Traditional→Simplified pairs the browser needs for text made of CHARS (browser_map; see _bits).

        Kept, saved and loaded with the chunks: making it needs the fold table (OpenCC over 28,000
        characters), ~30 ms of every new process, on the path of a one-page CLI rebuild.
        """
        import opencc  # its version is part of the key: another OpenCC may fold otherwise

        key = hashlib.blake2b(opencc.__version__.encode() + b"\0" + chars.to_bytes((chars.bit_length() + 7) // 8, "little"),
                              digest_size=16).digest()
        found = self.fold_maps.pop(key, None)
        if found is None:
            found = browser_map(fold_points(_points(chars)))
        self.fold_maps[key] = found                          # last used, last out
        while len(self.fold_maps) > self.FOLD_MAPS_KEPT:
            self.fold_maps.pop(next(iter(self.fold_maps)))
        return found

    def chunk(self, key: _Key, pages: list[PageDocs]) -> _Chunk:
        found = self.chunks.get(key)
        if found is None:
            found = self.stored_chunks.pop(key.digest, None) if self.stored_chunks else None
            found = self.chunks[key] = found or _layout([doc for page in pages for doc in page.make()])
        return found

    def deflate(self, raws: list[bytes]) -> list[bytes]:
        """Deflated RAWS, each with the one before as dictionary; several new ones go to two threads."""
        keys = list(zip([b"", *raws[:-1]], raws, strict=True))
        self.pieces.update((k, self.stored_pieces[k]) for k in keys if k not in self.pieces and k in self.stored_pieces)
        missing = [k for k in dict.fromkeys(keys) if k not in self.pieces]
        if len(missing) > 1:   # zlib drops the GIL while it deflates
            with ThreadPoolExecutor(2, thread_name_prefix="search-deflate") as pool:
                self.pieces.update(zip(missing, pool.map(_deflate, missing), strict=True))
        else:
            self.pieces.update((k, _deflate(k)) for k in missing)
        self.used[-1][1].update(keys)
        return [self.pieces[k] for k in keys]

    def keep(self, chunks: list[tuple[_Key, _Chunk]]) -> None:
        """Forget what neither this build nor the one before used; start the next build's record."""
        self.used[-1][0].update(key for key, _ in chunks)
        live_chunks = self.used[0][0] | self.used[1][0]
        live_pieces = self.used[0][1] | self.used[1][1]
        self.chunks = {k: v for k, v in self.chunks.items() if k in live_chunks}
        self.pieces = {k: v for k, v in self.pieces.items() if k in live_pieces}
        self.used = [self.used[1], (set(), set())]

    def clear(self) -> None:
        self.__init__()

    # A one-off build runs in a new process: it reads the last build's chunks and pieces from var/build/
    # and writes what it used, so a one-page rebuild re-packs one chunk instead of the whole index
    # (~0.35 s at 1,000 procedures). marshal, for the reason given in handbook/cache.py.

    def load(self, path: Path, stamp: str) -> None:
        try:   # loads over the bytes read at once: marshal.load on a file reads it object by object, 3x slower
            saved = marshal.loads(path.read_bytes())
            if saved[0] != stamp:   # another version's: its layout may differ too
                return
            _, chunks, pieces, fold_maps = saved
        except FileNotFoundError:
            return
        except Exception as exc:  # damaged: the index is packed from scratch
            log.warning("ignoring unreadable search cache %s: %s", path, exc)
            return
        self.fold_maps = dict(fold_maps)
        self.stored_chunks = {digest: _Chunk(chars, count, text, *(Packed(blob, _as_is) for blob in layout), dict(raws))
                              for digest, chars, count, text, raws, layout in chunks}
        self.stored_pieces = {(before, raw): packed for before, raw, packed in pieces}

    def save(self, path: Path, stamp: str) -> None:
        chunks = [(key.digest, c.chars, c.count, c.text, list(c.raws.items()),
                   [lazy.packed(c, _as_is) for lazy in _LAZY_PARTS]) for key, c in self.chunks.items()]
        pieces = [(before, raw, packed) for (before, raw), packed in self.pieces.items()]
        self.stored_chunks, self.stored_pieces = {}, {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as fh:
                marshal.dump((stamp, chunks, pieces, list(self.fold_maps.items())), fh)
        except OSError as exc:  # only the next rebuild is slower for it
            log.warning("search cache not saved (%s): %s", path, exc)



_CACHE = _PackCache()
_LAZY_PARTS = [vars(_Chunk)[name] for name in ("pages", "sections")]   # its Lazy fields, as saved


def _as_is(value: object) -> object:
    """A Lazy chunk field's value is what marshal gives back."""
    return value


_KIND = operator.itemgetter(SearchDoc._fields.index("kind"))


def _chunks(pages: list[PageDocs]) -> list[tuple[_Key, _Chunk]]:
    """Cut PAGES into cached chunks of whole pages, at points an edit elsewhere does not move."""
    out, start, size = [], 0, 0
    for end, page in enumerate(pages, 1):
        size += page.size
        cut = size >= CHUNK_MIN and zlib.crc32(page.url.encode("utf-8")) % CUT_EVERY == 0
        if cut or size >= CHUNK_MAX or end == len(pages):
            out.append(pages[start:end])
            start, size = end, 0
    return [(key, _CACHE.chunk(key, group)) for group in out for key in [_Key(tuple(p.key for p in group))]]


def _layout(docs: list[SearchDoc]) -> _Chunk:
    """Lay out one chunk's pages, sections and text (its docs are whole pages)."""
    if not set(map(_KIND, docs)) <= set(INDEXED_KINDS):
        bad = next(d for d in docs if d.kind not in INDEXED_KINDS)
        raise ValueError(f"{bad.url}: 不能索引类型为 {bad.kind!r} 的内容（只索引规程、知识库和公告）")
    pages: list[list] = []
    page_of: dict[str, int] = {}
    sections: list = []
    lines: list[str] = []
    for doc in docs:
        page_url, _, anchor = doc.url.partition("#")
        if page_url not in page_of:
            page_of[page_url] = len(pages)
            pages.append([page_url, doc.title, doc.kind, doc.id, doc.department, doc.category,
                          doc.audience, list(doc.tags), doc.date])
        heading = _squash(doc.section)
        sections += [page_of[page_url], anchor, heading]
        lines.append(heading + "\n" + _squash(doc.text))   # two lines a section: heading, body
    text = "\n".join(lines)
    chars = _bits(code_points(text, *(p[1] for p in pages)))
    return _Chunk(chars, len(pages), ("\n" + text).encode(TEXT_ENCODING), pages, sections)


def _bits(points: set[int]) -> int:
    """Code POINTS as the bits of one int (bit n: code point n), so sets of characters unite with one OR."""
    bitmap = bytearray((max(points, default=0) >> 3) + 1)
    for point in points:
        bitmap[point >> 3] |= 1 << (point & 7)
    return int.from_bytes(bitmap, "little")


def _points(bits: int) -> set[int]:
    """The code points of BITS (_bits undone)."""
    return {m.start() for m in re.finditer("1", format(bits, "b")[::-1])}


def _shift(sections: list, by: int) -> list:
    """Sections with their page index moved BY pages."""
    out = list(sections)
    out[::3] = [n + by for n in sections[::3]]
    return out


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _raws(chunks: list[tuple[_Key, _Chunk]], synonyms: list[list[str]], recent: int) -> list[bytes]:
    """The payload as raw pieces: the JSON of everything but the text, a NUL (see _head_end), the text."""
    chars = functools.reduce(operator.or_, (c.chars for _, c in chunks), _bits(code_points(*map("".join, synonyms))))
    head = _json({"v": 1, "recent": recent, "fold": _CACHE.fold_map(chars), "synonyms": synonyms})
    placed, n = [], 0
    for _, chunk in chunks:
        placed.append((chunk, n))
        n += chunk.count
    parts = {part: [c.raw(part, at) for c, at in placed] for part in PARTS}
    json_parts = [head[:-1] + b',"pages":[', *parts["pages"], b'],"sections":[', *parts["sections"], b"]}"]
    return [*json_parts[:-1], json_parts[-1] + _head_end(sum(map(len, json_parts))), *parts["text"]]


def _head_end(json_size: int) -> bytes:
    """The NUL that ends a JSON head of JSON_SIZE bytes, after a space if needed to put the text at an even offset.

    The browser reads the UTF-16LE text in place as a Uint16Array, which must start at an even offset.
    """
    return b" \0" if json_size % 2 == 0 else b"\0"


def _deflate(key: tuple[bytes, bytes]) -> bytes:
    """Raw-deflate the second of KEY after the first: a piece that ends on a byte boundary and can be followed."""
    before, raw = key
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, -15, zdict=before[-WINDOW:]) if before else \
        zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    return packer.compress(raw) + packer.flush(zlib.Z_FULL_FLUSH)


def _gzip(raws: list[bytes], deflated: list[bytes]) -> bytes:
    """Wrap the DEFLATED pieces in one gzip member: header, pieces, a final empty block, CRC32 and size of RAWS."""
    crc, size = 0, 0
    for raw in raws:
        crc = zlib.crc32(raw, crc)
        size += len(raw)
    final = zlib.compressobj(LEVEL, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    return b"".join([GZIP_HEADER, *deflated, final, struct.pack("<II", crc, size & 0xFFFFFFFF)])


def _script(packed: bytes) -> bytes:
    """Wrap gzip'd bytes as the index script (UTF-16LE with a BOM), inflated by the browser's DecompressionStream.

    The gzip holds the JSON of everything but the text, a NUL byte, then the text as UTF-16LE, so the
    browser never runs JSON.parse over the megabytes of text. Measured at 1,000 procedures: the plain
    JSON script (5.5 MB) took ~250 ms to parse; this one is a fifth of the size and loads faster.
    The bytes travel as a string of 15-bit code units (`pack15`): 1.07 bytes of file a byte, where
    base64 in a UTF-8 file took 1.33 (1.36 MB against 1.09 at 1,000 procedures).
    """
    # search.html loads this script async, so it may run before search.js: then it leaves its data
    # in window.EstateSearchPending for search.js to pick up.
    call = "(window.EstateSearch && EstateSearch.ready || function () { window.EstateSearchPending = arguments; })"
    return f'\ufeff{call}("{FORMAT}", "{pack15(packed)}", {len(packed)});\n'.encode("utf-16-le")


FORMAT = "gzip-b15"
# Code units 0x4E00-0xCDFF carry 15 bits each: no surrogate, quote, backslash or line break among them,
# so they stand in a JS string literal as they are. Inputs this short go as base64 (the recursion's end).
B15_OFFSET = 0x4E00
B15_BASE64_MAX = 48
_LOW7 = bytes((b & 0x7F) + (B15_OFFSET >> 8) for b in range(256))   # a high byte's low 7 bits, offset
_TOP = bytes(ord("1") if b & 0x80 else ord("0") for b in range(256))  # a high byte's top bit, as a digit


def pack15(data: bytes) -> str:
    """DATA as a string of 15-bit code units, decoded by search.js's unpack15 (which is told len(DATA)).

    Byte pairs become code units: the low byte whole, the high byte's 7 low bits plus B15_OFFSET's high
    byte. The high bytes' top bits (one per pair, an eighth of a byte) follow, packed the same way.
    Every step is a C-level slice or translate: a per-group loop in Python took ~150 ms at 1 MB.
    """
    if len(data) <= B15_BASE64_MAX:
        return base64.b64encode(data).decode("ascii")
    even = data if len(data) % 2 == 0 else data + b"\0"
    units = bytearray(len(even))
    units[0::2] = even[0::2]
    high = even[1::2]
    units[1::2] = high.translate(_LOW7)
    bits = high.translate(_TOP)
    bits += b"0" * (-len(bits) % 8)
    top = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return units.decode("utf-16-le") + pack15(top)


def unpack15(text: str, size: int) -> bytes:
    """The SIZE bytes pack15 wrote as TEXT (the reference for search.js's unpack15; used by tests and tools)."""
    if size <= B15_BASE64_MAX:
        return base64.b64decode(text)
    pairs = (size + 1) // 2
    top = unpack15(text[pairs:], (pairs + 7) // 8)
    bits = bin(int.from_bytes(top, "big"))[2:].zfill(len(top) * 8)
    units = text[:pairs].encode("utf-16-le")
    out = bytearray(units)
    high = bytes(b - (B15_OFFSET >> 8) for b in units[1::2])
    out[1::2] = bytes(h | (0x80 if bit == "1" else 0) for h, bit in zip(high, bits, strict=False))
    return bytes(out[:size])


def read_index_script(script: bytes) -> dict:
    """Decode an index script's bytes back into its payload (for tests and tools)."""
    text = script.decode("utf-16")
    _, fmt, _, data, rest = text.split('"', 4)
    if fmt != FORMAT:
        raise ValueError(f"not a {FORMAT} index script: {fmt!r}")
    size = int(rest.strip(" ,);\n"))
    raw = gzip.decompress(unpack15(data, size))
    meta, _, text = raw.partition(b"\0")
    return {**json.loads(meta), "text": text.decode(TEXT_ENCODING)}


def _squash(text: str) -> str:
    """Collapse whitespace runs so snippets read as one line and the separator stays unique."""
    return " ".join(text.split())   # str.split() splits on exactly what re's \\s matches, 5× faster


def load_synonyms(path: Path) -> list[list[str]]:
    """Read the synonym groups from PATH (missing file: none); each group's words find each other."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except UnicodeDecodeError as exc:
        raise SearchConfigError(f"{path}: 不是 UTF-8 编码（第 {exc.start} 字节）") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SearchConfigError(f"{path}: TOML 语法错误：{exc}") from exc
    groups = raw.get("groups", [])
    problems = [f"{path}: 未知设置 {key!r}（只认 groups）" for key in raw if key != "groups"]
    if not isinstance(groups, list):
        problems.append(f"{path}: groups 应是列表的列表")
        groups = []
    for i, group in enumerate(groups, 1):
        if not isinstance(group, list) or len(group) < 2 or not all(isinstance(w, str) for w in group):
            problems.append(f"{path}: 第 {i} 组同义词应是至少两个字符串的列表，实际是 {group!r}")
        elif any(not fold(w) for w in group):
            problems.append(f"{path}: 第 {i} 组含有只由标点或空格组成的词：{group!r}")
    if problems:
        raise SearchConfigError("\n".join(problems))
    return groups
