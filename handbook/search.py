"""The handbook's offline search index: one generated JS file per tree, loaded by a <script> tag.

A `<script>` (not fetch) is what lets search work from file:// on a USB stick. The index carries
the sections' text as written; the browser folds it (`handbook/search_fold.py` is the reference
rule) and scans it, so no n-gram postings are shipped and the file stays smaller than the text.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from estate.config import EstateConfig
from handbook.search_fold import browser_map, fold, folded_alphabet

log = logging.getLogger(__name__)

INDEX_FILE = "assets/search-index.js"
# Only these kinds are ever indexed: tickets and residents' records must never reach an index.
INDEXED_KINDS = ("procedure", "faq", "notice")


class SearchConfigError(ValueError):
    """The synonym file is unreadable or malformed."""


@dataclass(frozen=True)
class SearchDoc:
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


def build_index(docs: list[SearchDoc], config: EstateConfig) -> dict[str, str]:
    """Return {path relative to the tree root: file content}, e.g. {"assets/search-index.js": ...}.

    search.js and search.css are static assets: the builder copies render/static/ into assets/.
    """
    synonyms = load_synonyms(config.path(config.build.synonyms_file))
    payload = index_payload(docs, synonyms, config.build.recent_changes)
    files = {INDEX_FILE: index_script(payload)}
    log.info("search index: %d sections, %d KB", len(payload["sections"]) // 3,
             len(files[INDEX_FILE].encode("utf-8")) // 1024)
    return files


def index_script(payload: dict) -> str:
    """Wrap PAYLOAD as the index script: gzip'd data in base64, inflated by the browser's DecompressionStream.

    The gzip holds the JSON of everything but the text, a NUL byte, then the text as UTF-8, so the
    browser never runs JSON.parse over the megabytes of text. Measured at 1,000 procedures: the plain
    JSON script (5.5 MB) took ~250 ms to parse; this one is a third of the size and loads faster.
    """
    meta = {k: v for k, v in payload.items() if k != "text"}
    raw = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b"\0" + payload["text"].encode("utf-8")
    packed = base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")
    # search.html loads this script async, so it may run before search.js: then it leaves its data
    # in window.EstateSearchPending for search.js to pick up.
    call = "(window.EstateSearch && EstateSearch.ready || function () { window.EstateSearchPending = arguments; })"
    return f'{call}("gzip-v1", "{packed}");\n'


def read_index_script(script: str) -> dict:
    """Decode an index script back into its payload (for tests and tools)."""
    raw = gzip.decompress(base64.b64decode(script.split('"')[3]))
    meta, _, text = raw.partition(b"\0")
    return {**json.loads(meta), "text": text.decode("utf-8")}


def index_payload(docs: list[SearchDoc], synonyms: list[list[str]], recent: int) -> dict:
    """Lay the docs out as the compact structure search.js reads."""
    pages: list[list] = []
    page_of: dict[str, int] = {}
    sections: list = []        # flat: page index, anchor, heading
    texts: list[str] = []
    for doc in docs:
        if doc.kind not in INDEXED_KINDS:
            raise ValueError(f"{doc.url}: 不能索引类型为 {doc.kind!r} 的内容（只索引规程、知识库和公告）")
        page_url, _, anchor = doc.url.partition("#")
        if page_url not in page_of:
            page_of[page_url] = len(pages)
            pages.append([page_url, doc.title, doc.kind, doc.id, doc.department, doc.category,
                          doc.audience, list(doc.tags), doc.date])
        heading = _squash(doc.section)
        sections += [page_of[page_url], anchor, heading]
        texts.append(heading + "\n" + _squash(doc.text))   # two lines a section: heading, body
    alphabet = folded_alphabet(*texts, *(p[1] for p in pages), *map("".join, synonyms))
    return {"v": 1, "recent": recent, "fold": browser_map(alphabet), "synonyms": synonyms,
            "pages": pages, "sections": sections, "text": "\n".join(texts)}


def _squash(text: str) -> str:
    """Collapse whitespace runs so snippets read as one line and the separator stays unique."""
    return re.sub(r"\s+", " ", text).strip()


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
