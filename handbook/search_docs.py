"""What the search index is given: one document per section of every page a tree shows.

Only procedures, the knowledge base and notices: nothing carrying a resident's personal data
(tickets, forms) is ever handed to the index.
"""

from __future__ import annotations

from estate.config import EstateConfig
from handbook.index import Handbook
from handbook.pages import PUBLIC, url
from handbook.search import SearchDoc


def search_docs(config: EstateConfig, hb: Handbook, tree: str) -> list[SearchDoc]:
    """Section-level documents for TREE."""
    dept = {d.id: d.name for d in config.departments}
    cat = {c.id: c.name for c in config.categories}
    docs: list[SearchDoc] = []
    for p in hb.procedures:
        if tree == PUBLIC and not p.public:
            continue
        page = url(tree, "procedure", p.slug)
        kind = "faq" if p.category == "knowledge" else "procedure"
        for s in p.sections:
            docs.append(SearchDoc(
                url=f"{page}#{s.anchor}" if s.anchor else page, title=p.title, section=s.title, text=s.text,
                kind=kind, id=p.id, department=dept.get(p.department, p.department),
                category=cat.get(p.category, p.category), audience=p.audience, tags=p.tags,
                date=p.effective.isoformat()))
    for n in hb.notices:
        if tree == PUBLIC and n.audience not in ("resident", "both"):
            continue
        page = url(tree, "notice", n.slug)
        for s in n.sections or []:
            docs.append(SearchDoc(url=f"{page}#{s.anchor}" if s.anchor else page, title=n.title, section=s.title,
                                  text=s.text, kind="notice", id=n.id, category="公告", audience=n.audience,
                                  date=n.date.isoformat()))
    return docs
