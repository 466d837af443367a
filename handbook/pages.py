"""Render step, part one: turn the Handbook into page specs (output path, template, plain-data context).

Contexts hold only plain data (str, int, list, dict), so a page's fingerprint is a hash of its
context: the incremental build re-renders exactly the pages whose context changed.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from estate.config import EstateConfig
from handbook.cache import BuildCache
from handbook.index import Handbook, local_file, resolve_link, status
from handbook.models import PUBLIC, STAFF, Heading, Intro, Notice, Procedure
from handbook.parallel import fingerprint
from render.anchors import FILE_MARKER, LINK_MARKER, find_anchor, slugify
from render.i18n import translator

log = logging.getLogger(__name__)

_URL_ESCAPES = str.maketrans({" ": "%20", '"': "%22", "?": "%3F", "%": "%25", "<": "%3C", ">": "%3E"})
_MARKER = re.compile(r'<a href="' + re.escape(LINK_MARKER) + r'([^"#]*)#([^"]*)"([^>]*)>(.*?)</a>', re.S)
_FILE = re.compile(re.escape(FILE_MARKER) + r"""([^"']*)""")
_SRCSET = re.compile(r"""(\ssrcset\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
_SRCSET_FILE = re.compile(re.escape(FILE_MARKER) + r"""([^\s,"']+)""")  # a candidate's URL ends at a space


@dataclass
class PageSpec:
    """One page to write: site/<tree>/<path> from <template> and <context>."""

    tree: str
    path: str                   # relative to the tree root, forward slashes
    template: str
    context: dict[str, Any] | None  # None: not built yet (a memoised page); `make` builds it if it must be written
    fingerprint: str = ""       # set when already known (a memoised page), else computed when writing
    make: Callable[[], PageSpec] | None = None

    def full_context(self) -> dict[str, Any]:
        """The context (and template) of a memoised page, built now because its file must be written after all."""
        if self.context is None:
            made = self.make()  # type: ignore[misc]
            self.template, self.context = made.template, made.context
        return self.context  # type: ignore[return-value]


_LAYOUT = {  # the one place the site's URL layout is decided ({slug} filled in per page)
    "home": "index.html", "changes": "changes.html", "records": "records.html", "tags": "tags/index.html",
    "tag": "tags/{slug}.html", "notices": "notices/index.html", "notice": "notices/{slug}.html",
    "search": "search.html", "config": "config.html",
}
_PROCEDURE = {STAFF: "procedures/{slug}.html", PUBLIC: "guides/{slug}.html"}


def url(tree: str, kind: str, slug: str = "") -> str:
    """The tree-relative URL of a page kind."""
    pattern = _PROCEDURE[tree] if kind == "procedure" else _LAYOUT[kind]
    return pattern.format(slug=slugify(slug) if kind == "tag" else slug)


def href(from_path: str, to_path: str) -> str:
    """Relative link between two tree-relative paths (file:// needs relative links to index.html)."""
    from_dir, _, _ = from_path.rpartition("/")
    if from_dir and to_path.startswith(from_dir + "/"):
        rel = to_path[len(from_dir) + 1:]
    else:  # tree paths never contain "..", so climbing to the root and down again is always right
        rel = "../" * from_path.count("/") + to_path
    # Keep CJK readable (printed link targets, status bar); escape only what breaks a URL.
    return rel.translate(_URL_ESCAPES)


def estate_context(config: EstateConfig) -> dict[str, Any]:
    """What every page, the root chooser and the trees' stylesheets say of the estate, and in which language."""
    e = config.estate
    return {"language": e.language, "estate": {"name": e.name, "office": e.office, "phone": e.phone,
                                               "emergency_phone": e.emergency_phone, "address": e.address}}


def nest_toc(headings: list[Heading], deepest: int = 3) -> list[dict[str, Any]]:
    """Headings down to level DEEPEST as nested entries ({text, anchor, children}), as the outline reads.

    Nested lists let a screen reader announce "list, 4 items, level 2" instead of one flat run of links.
    """
    top: list[dict[str, Any]] = []
    open_levels: list[tuple[int, list]] = [(0, top)]
    for h in headings:
        if h.level > deepest:
            continue
        while open_levels[-1][0] >= h.level:
            open_levels.pop()
        entry = {"text": h.text, "anchor": h.anchor, "children": []}
        open_levels[-1][1].append(entry)
        open_levels.append((h.level, entry["children"]))
    return top


@dataclass
class _Around:
    """The procedures a procedure's page shows besides itself."""

    prev: Procedure | None
    next: Procedure | None
    older: list[Procedure]        # versions it superseded
    newer: Procedure | None       # the version that superseded it
    targets: list[Procedure | None]  # where its links lead (None: nowhere)
    successor: Procedure | None   # the version that will supersede it, not in force yet
    replaces: Procedure | None    # the version still in force that this one, not yet in force, will supersede


class Views:
    """Builds the page specs of one tree."""

    def __init__(self, config: EstateConfig, hb: Handbook, tree: str, today: date, cache: BuildCache):
        self.config, self.hb, self.tree, self.today = config, hb, tree, today
        self.cache = cache  # its page fingerprints and procedure-page signatures: see procedure()
        self.t = translator(config.estate.language)
        self._summaries: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, str] = {}   # source rel -> what a page showing that procedure depends on
        self.dept = {d.id: d.name for d in config.departments}
        self.cat = {c.id: c.name for c in config.categories}
        visible = hb.procedures if tree == STAFF else [p for p in hb.procedures if p.public]
        self.procedures = visible
        self.notices = [n for n in hb.notices if tree == STAFF or n.audience in ("resident", "both")]
        self._older: dict[str, list[Procedure]] = {}  # id -> the versions it superseded
        for o in hb.superseded:
            self._older.setdefault(o.superseded_by or "", []).append(o)

    # -- shared pieces -------------------------------------------------------------------------
    def base(self, path: str, title: str, crumbs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        depth = path.count("/")
        return {
            "tree": self.tree,
            "root": "../" * depth,
            "path": path,
            "title": title,
            "crumbs": [{"title": t, "href": href(path, u)} for t, u in (crumbs or [])],
            **estate_context(self.config),
            "built": "",  # the build date shows on the home pages only: other pages change when they do
        }

    def summary(self, p: Procedure, from_path: str) -> dict[str, Any]:
        """A procedure as lists and links show it; the part that does not depend on the page is memoised."""
        base = self._summaries.get(p.id)
        if base is None:
            base = self._summaries[p.id] = {
                "id": p.id, "title": p.title, "path": url(self.tree, "procedure", p.slug), "dept_id": p.department,
                "version": p.version, "effective": p.effective.isoformat(), "review_by": p.review_by.isoformat(),
                "owner": p.owner, "department": self.dept.get(p.department, p.department),
                "category": self.cat.get(p.category, p.category), "audience": p.audience,
                "badges": status(p, self.today, self.config.build.review_warning_days),
            }
        return {**base, "href": href(from_path, base["path"])}

    def record_href(self, from_path: str, record: str) -> str:
        """Records are listed on a staff page only, and only the current versions' records; else no link."""
        if self.tree != STAFF or record not in self.hb.records:
            return ""
        return href(from_path, url(self.tree, "records")) + "#" + self.hb.record_anchors[record]

    def tag_href(self, from_path: str, tag: str) -> str:
        """Tag pages list current versions only: a superseded version's other tags get no link."""
        return href(from_path, url(self.tree, "tag", tag)) if tag in self.hb.tags else ""

    def shown(self, p: Procedure | None) -> Procedure | None:
        """P, if this tree has a page for it: the staff tree has every version, the public one the current
        versions of residents' procedures. Links and version notes name only pages the reader can open."""
        if p is None or self.tree == STAFF or (p.public and not p.superseded_by):
            return p
        return None

    def body(self, item: Procedure | Notice | Intro, from_path: str) -> str:
        """ITEM's HTML with cross-links resolved for this tree (in the public tree, links to staff-only pages
        become text) and its local files pointed at their copies under media/."""
        source_rel = "" if isinstance(item, Notice) else item.source.rel   # a notice links as if in procedures/

        def swap(m: re.Match[str]) -> str:
            dest = self.shown(self.hb.by_rel.get(resolve_link(source_rel, html.unescape(m.group(1)))))
            if dest is None:
                return m.group(4)
            anchor = find_anchor(dest.headings, html.unescape(m.group(2))) if m.group(2) else None
            target = url(self.tree, "procedure", dest.slug) + (f"#{anchor}" if anchor else "")
            return f'<a href="{href(from_path, target).replace("&", "&amp;")}"{m.group(3)}>{m.group(4)}</a>'

        def media(m: re.Match[str]) -> str:
            parts = urlsplit(html.unescape(m.group(1)))
            found = local_file(self.config, item, unquote(parts.path))
            target = href(from_path, found[0]) if found else ""   # validated: found unless the build failed
            # it may stand in '…' as well as "…" (raw HTML): neither quote may end the attribute early
            target += f"#{parts.fragment}" if parts.fragment else ""
            return target.replace("&", "&amp;").replace("'", "%27").replace('"', "%22")

        text = _MARKER.sub(swap, item.html)
        if FILE_MARKER not in text:
            return text
        if "srcset" in text:  # its candidates first: the general pattern would take a whole list for one path
            text = _SRCSET.sub(lambda m: f"{m.group(1)}{m.group(2)}{_SRCSET_FILE.sub(media, m.group(3))}{m.group(2)}", text)
        return _FILE.sub(media, text)

    def media(self) -> dict[str, Path]:
        """The local files this tree's pages use: {path under the tree: file to copy}."""
        items = [*self.procedures, *self.notices]
        if self.tree == STAFF:
            items += [*self.hb.superseded, *([self.hb.intro] if self.hb.intro else [])]
        return {found[0]: found[1] for item in items for written, _ in item.files
                if (found := local_file(self.config, item, written))}

    # -- pages ---------------------------------------------------------------------------------
    def pages(self) -> Iterator[PageSpec]:
        """Every page of this tree, one at a time."""
        listed = self._listed
        yield from (listed("home", self.home), listed("changes", self.changes), listed("notices", self.notices_index))
        yield self.search()
        yield from map(self.procedure, self.procedures)
        yield from map(self.notice, self.notices)
        if self.tree == STAFF:
            yield from map(self.procedure, self.hb.superseded)
            yield from (listed("records", self.records), listed("tags", self.tags_index), self.config_page())
            yield from (listed("tag", lambda t=t: self.tag(t), t) for t in self.hb.tags)

    def _listed(self, kind: str, make: Callable[[], PageSpec], slug: str = "") -> PageSpec:
        """A page that lists procedures or notices, reused while the catalogue is what it was (see below)."""
        return self._memoised(url(self.tree, kind, slug), self.catalogue, make)

    def _memoised(self, path: str, signature: str, make: Callable[[], PageSpec]) -> PageSpec:
        """PATH's page: from MAKE, or, while SIGNATURE (what the page shows) is what the last build recorded,
        a spec that carries the last fingerprint and builds its context only if the file must be written."""
        key = f"{self.tree}/{path}"
        if self.cache.signatures.get(key) == signature and key in self.cache.pages:
            return PageSpec(self.tree, path, "", None, self.cache.pages[key], make)
        spec = make()
        spec.fingerprint = fingerprint(spec.template, spec.context)
        self.cache.signatures[key] = signature
        return spec

    @property
    def catalogue(self) -> str:
        """Everything the listing pages show: each procedure's and notice's listed fields and badges (not
        their bodies: editing a body changes no list), the intro page, and the date the home page shows.
        The same for both trees (each lists a part of it), so it is made once per handbook."""
        days = self.config.build.review_warning_days
        key = ("catalogue", self.today, days)
        if key not in self.hb.memo:
            rows = [(p.source.rel, p.id, p.title, p.version, str(p.effective), str(p.review_by), p.owner,
                     p.department, p.category, p.audience, p.tags, p.records, p.supersedes or "",
                     p.superseded_by or "", p.upcoming_successor or "", status(p, self.today, days))
                    for p in [*self.hb.procedures, *self.hb.superseded]]
            notices = [(n.source.rel, n.id, n.title, str(n.date), n.category, str(n.expires), n.pinned, n.audience)
                       for n in self.hb.notices]
            intro = self.hb.intro.source.digest if self.hb.intro else ""
            text = repr((self.today, rows, notices, intro))
            self.hb.memo[key] = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return self.hb.memo[key]

    def home(self) -> PageSpec:
        path = url(self.tree, "home")
        groups = []
        for cat in self.config.categories:
            items = [self.summary(p, path) for p in self.procedures if p.category == cat.id]
            if items:
                groups.append({"id": cat.id, "name": cat.name, "description": cat.description, "items": items})
        depts = []
        for d in self.config.departments:
            count = sum(1 for p in self.procedures if p.department == d.id)
            if count:
                depts.append({"id": d.id, "name": d.name, "count": count, "description": d.description})
        ctx = self.base(path, self.config.estate.name)
        ctx.update(groups=groups, departments=depts, total=len(self.procedures), built=self.today.isoformat(),
                   intro=self._intro(path),
                   notices=[self.notice_summary(n, path) for n in self.current_notices()[:5]])
        return PageSpec(self.tree, path, f"{self.tree}/home.html", ctx)

    def _intro(self, path: str) -> str:
        intro = self.hb.intro
        return self.body(intro, path) if intro and self.tree == STAFF else ""

    def procedure(self, p: Procedure) -> PageSpec:
        """A procedure's page; its context is not even built while what it shows is what it was.

        It shows the procedure and the procedures around it (neighbours, versions, link targets), each
        standing for its source file's path and content hash, with the badges today's date gives them;
        the config, policy, templates and builder code clear the whole memo when they change (see
        cache.load). With 1,000 procedures, skipping the unchanged pages' contexts is most of what a
        one-page rebuild saves.
        """
        around = self._around(p)
        return self._memoised(url(self.tree, "procedure", p.slug), self._signature(p, around),
                              lambda: self._procedure(p, around))

    def _around(self, p: Procedure) -> _Around:
        prev, nxt = self.hb.neighbours(p, self.procedures)
        by_id, shown = self.hb.by_id, self.shown
        replaces = by_id.get(p.supersedes or "")
        return _Around(prev, nxt, [o for o in self._older.get(p.id, ()) if shown(o)],
                       shown(by_id.get(p.superseded_by or "")),
                       [self.hb.by_rel.get(resolve_link(p.source.rel, t)) for t, _, _ in p.links],
                       shown(by_id.get(p.upcoming_successor or "")),
                       shown(replaces) if replaces and replaces.upcoming_successor == p.id else None)

    def _signature(self, p: Procedure, around: _Around) -> str:
        """A hash of what P's page shows: each procedure on it by its source file's path and content hash,
        with the badges today's date gives it, where its links lead, and where its registers are listed."""
        parts = [self._token(x) if x else "-" for x in
                 (p, around.prev, around.next, around.newer, around.successor, around.replaces)]
        parts += ["older", *map(self._token, around.older), "links"]
        parts += [f"{x.source.rel}@{x.source.digest}" if x else "-" for x in around.targets]
        if self.tree == STAFF:  # where its registers are listed (or not): an anchor is numbered by the others' names
            parts += ["records", *(self.hb.record_anchors.get(r, "-") for r in p.records)]
        return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).hexdigest()

    def _token(self, p: Procedure) -> str:
        """P as the signatures of the pages showing it name it: made once, as each procedure shows on ~7 pages."""
        found = self._tokens.get(p.source.rel)
        if found is None:
            badges = ",".join(status(p, self.today, self.config.build.review_warning_days))
            found = self._tokens[p.source.rel] = f"{p.source.rel}@{p.source.digest}:{badges}"
        return found

    def _procedure(self, p: Procedure, around: _Around) -> PageSpec:
        path = url(self.tree, "procedure", p.slug)
        cat_name = self.cat.get(p.category, p.category)
        ctx = self.base(path, p.title, [(cat_name, url(self.tree, "home") + f"#cat-{p.category}")])
        summary = self.summary
        ctx.update(
            proc=summary(p, path),
            tags=[{"name": t, "href": self.tag_href(path, t)} for t in p.tags],
            records=[{"name": r, "href": self.record_href(path, r)} for r in p.records],
            toc=nest_toc(p.headings),
            html=self.body(p, path),
            prev=summary(around.prev, path) if around.prev else None,
            next=summary(around.next, path) if around.next else None,
            older=[summary(o, path) for o in around.older],
            newer=summary(around.newer, path) if around.newer else None,
            successor=summary(around.successor, path) if around.successor else None,
            replaces=summary(around.replaces, path) if around.replaces else None,
            show_tags=self.tree == STAFF,
        )
        return PageSpec(self.tree, path, "procedure.html", ctx)

    def changes(self) -> PageSpec:
        path = url(self.tree, "changes")
        items = sorted(self.procedures + (self.hb.superseded if self.tree == STAFF else []),
                       key=lambda p: (p.effective, p.id), reverse=True)
        ctx = self.base(path, self.t("changes.title"))
        shown = self.shown  # the public list names only versions residents can open
        ctx.update(items=[self.summary(p, path) | {"superseded_by": p.superseded_by or "",
                                                   "supersedes": p.supersedes if shown(self.hb.by_id.get(p.supersedes or ""))
                                                   else ""} for p in items])
        return PageSpec(self.tree, path, "changes.html", ctx)

    def records(self) -> PageSpec:
        path = url(self.tree, "records")
        ctx = self.base(path, self.t("records.title"))
        ctx.update(records=[{"name": name, "anchor": self.hb.record_anchors[name], "items": [self.summary(p, path) for p in procs]}
                            for name, procs in self.hb.records.items()])
        return PageSpec(self.tree, path, "records.html", ctx)

    def tags_index(self) -> PageSpec:
        path = url(self.tree, "tags")
        ctx = self.base(path, self.t("tags.title"))
        ctx.update(tags=[{"name": t, "count": len(ps), "href": href(path, url(self.tree, "tag", t))}
                         for t, ps in self.hb.tags.items()])
        return PageSpec(self.tree, path, "tags.html", ctx)

    def tag(self, tag: str) -> PageSpec:
        path = url(self.tree, "tag", tag)
        ctx = self.base(path, self.t("tag.title", tag=tag), [(self.t("tags.title"), url(self.tree, "tags"))])
        ctx.update(tag=tag, items=[self.summary(p, path) for p in self.hb.tags[tag]])
        return PageSpec(self.tree, path, "tag.html", ctx)

    def notice_summary(self, n: Notice, from_path: str) -> dict[str, Any]:
        expired = bool(n.expires and n.expires < self.today)
        return {"id": n.id, "title": n.title, "date": n.date.isoformat(), "category": n.category,
                "expires": n.expires.isoformat() if n.expires else "", "expired": expired, "pinned": n.pinned,
                "href": href(from_path, url(self.tree, "notice", n.slug))}

    def current_notices(self) -> list[Notice]:
        """Notices still in force (no expiry date, or not yet past it): the home page shows only these."""
        return [n for n in self.notices if not (n.expires and n.expires < self.today)]

    def notices_index(self) -> PageSpec:
        path = url(self.tree, "notices")
        ctx = self.base(path, self.t("notices.title"))
        ctx.update(items=[self.notice_summary(n, path) for n in self.notices])
        return PageSpec(self.tree, path, "notices.html", ctx)

    def notice(self, n: Notice) -> PageSpec:
        path = url(self.tree, "notice", n.slug)
        ctx = self.base(path, n.title, [(self.t("notices.title"), url(self.tree, "notices"))])
        ctx.update(notice=self.notice_summary(n, path), html=self.body(n, path))
        return PageSpec(self.tree, path, "notice.html", ctx)

    def search(self) -> PageSpec:
        path = url(self.tree, "search")
        return PageSpec(self.tree, path, "search.html", self.base(path, self.t("search.title")))

    def config_page(self) -> PageSpec:
        from estate.config import docs

        path = url(self.tree, "config")
        ctx = self.base(path, self.t("config.title"))
        ctx.update(rows=[{"name": n, "default": d, "doc": text} for n, d, text in docs()])
        return PageSpec(self.tree, path, "config.html", ctx)
