"""Reference implementations the search tests compare the shipped code against (not shipped).

- `index_payload` + `index_script`: the index laid out and packed in one piece; the chunked, cached
  packing in handbook/search.py must decode to exactly this.
- `tokens`: the browser's splitting rule (search.js), written plainly in Python.
"""

from __future__ import annotations

import gzip
import re

from handbook.search import (
    INDEXED_KINDS,
    LEVEL,
    TEXT_ENCODING,
    SearchDoc,
    _head_end,
    _json,
    _script,
    _squash,
)
from handbook.search_fold import browser_map, folded_alphabet

ALNUM = re.compile(r"[a-z0-9]")


def index_payload(docs: list[SearchDoc], synonyms: list[list[str]], recent: int) -> dict:
    """Lay the docs out as the compact structure search.js reads, in one go."""
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


def index_script(payload: dict) -> bytes:
    """Wrap PAYLOAD as the index script in one piece (the reference layout the chunked packing must match)."""
    meta = _json({k: v for k, v in payload.items() if k != "text"})
    raw = meta + _head_end(len(meta)) + payload["text"].encode(TEXT_ENCODING)
    return _script(gzip.compress(raw, compresslevel=LEVEL, mtime=0))



def tokens(folded: str, mode: str = "bigram") -> list[str]:
    """Split a folded term like the browser: CJK runs into n-grams, Latin and digit runs whole.

    mode "bigram" uses bigrams (a single character stays a unigram), "unigram" single characters,
    "both" unigrams and bigrams.
    """
    out: list[str] = []
    for run in re.findall(r"[a-z]+|[0-9]+|[^a-z0-9]+", folded):
        if ALNUM.match(run):
            out.append(run)
            continue
        uni = list(run)
        bi = [run[i:i + 2] for i in range(len(run) - 1)]
        if mode == "unigram" or len(run) == 1:
            out.extend(uni)
        elif mode == "both":
            out.extend(uni + bi)
        else:
            out.extend(bi)
    return out
