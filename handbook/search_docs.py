"""What the search index is given: one document per section of every page a tree shows.

Only procedures, the knowledge base and notices: nothing carrying a resident's personal data
(tickets, forms) is ever handed to the index.
"""

from __future__ import annotations

import hashlib
from weakref import WeakKeyDictionary

from estate.config import EstateConfig
from handbook.index import Handbook
from handbook.models import Notice, Procedure
from handbook.pages import PUBLIC, url
from handbook.search import PageDocs, SearchDoc

# Parsed procedures and notices are reused across --watch rebuilds (the cache hands back the same
# objects), so their documents are made once per object and tree. Weak keys: forgotten with the object.
_MEMO: WeakKeyDictionary[Procedure | Notice, dict[str, list[SearchDoc]]] = WeakKeyDictionary()


def search_pages(config: EstateConfig, hb: Handbook, tree: str, parse_stamp: str) -> list[PageDocs]:
    """TREE's pages for the search index, each keyed by its source, made into documents only when asked.

    PARSE_STAMP is the build cache's: config, policy and code, under which the same source file parses to
    the same procedure. A one-page rebuild thus never makes the documents of the other pages.
    """
    dept = {d.id: d.name for d in config.departments}
    cat = {c.id: c.name for c in config.categories}
    pages: list[PageDocs] = []
    for p in hb.procedures:
        if tree == PUBLIC and not p.public:
            continue
        names = (dept.get(p.department, p.department), cat.get(p.category, p.category))
        pages.append(_page(p, tree, parse_stamp, names, lambda p=p: _procedure_docs(p, tree, dept, cat)))
    for n in hb.notices:
        if tree == PUBLIC and n.audience not in ("resident", "both"):
            continue
        pages.append(_page(n, tree, parse_stamp, (), lambda n=n: _notice_docs(n, tree)))
    return pages


def _page(item: Procedure | Notice, tree: str, parse_stamp: str, names: tuple[str, ...], make) -> PageDocs:  # noqa: ANN001
    page = url(tree, "procedure" if isinstance(item, Procedure) else "notice", item.slug)
    src = item.source
    key = hashlib.blake2b("\0".join((parse_stamp, tree, page, src.rel, src.kind, src.digest, *names))
                          .encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return PageDocs(page, key, item.text_chars, lambda: _memo(item, tree, make))


def _memo(item: Procedure | Notice, tree: str, make) -> list[SearchDoc]:  # noqa: ANN001
    per_tree = _MEMO.setdefault(item, {})
    if tree not in per_tree:
        per_tree[tree] = make()
    return per_tree[tree]


def _procedure_docs(p: Procedure, tree: str, dept: dict[str, str], cat: dict[str, str]) -> list[SearchDoc]:
    page = url(tree, "procedure", p.slug)
    kind = "faq" if p.category == "knowledge" else "procedure"
    return [SearchDoc(url=f"{page}#{s.anchor}" if s.anchor else page, title=p.title, section=s.title, text=s.text,
                      kind=kind, id=p.id, department=dept.get(p.department, p.department),
                      category=cat.get(p.category, p.category), audience=p.audience, tags=p.tags,
                      date=p.effective.isoformat())
            for s in p.sections]


def _notice_docs(n: Notice, tree: str) -> list[SearchDoc]:
    page = url(tree, "notice", n.slug)
    return [SearchDoc(url=f"{page}#{s.anchor}" if s.anchor else page, title=n.title, section=s.title,
                      text=s.text, kind="notice", id=n.id, category="公告", audience=n.audience,
                      date=n.date.isoformat())
            for s in n.sections]
