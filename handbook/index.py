"""Index step: cross-check the parsed procedures and derive navigation, records and tags."""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from estate.config import EstateConfig
from handbook.models import BuildProblem, Intro, Notice, Procedure, Unparsed
from render.anchors import anchors_for, find_anchor, markdown_path, slugify

log = logging.getLogger(__name__)


@dataclass
class Handbook:
    """Everything the render step needs, derived once."""

    procedures: list[Procedure]                 # current versions, in navigation order
    superseded: list[Procedure]                 # kept, hidden from navigation
    notices: list[Notice]
    by_id: dict[str, Procedure] = field(default_factory=dict)
    by_rel: dict[str, Procedure] = field(default_factory=dict)
    records: dict[str, list[Procedure]] = field(default_factory=dict)
    record_anchors: dict[str, str] = field(default_factory=dict)   # each register's anchor on the records page
    tags: dict[str, list[Procedure]] = field(default_factory=dict)
    intro: Intro | None = None
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # what is derived from it later, once

    def neighbours(self, proc: Procedure, visible: list[Procedure] | None = None
                   ) -> tuple[Procedure | None, Procedure | None]:
        """Previous and next procedure in VISIBLE (default: the navigation order); none for superseded ones."""
        procs = self.procedures if visible is None else visible
        if proc.superseded_by:
            return None, None
        positions = self.memo.get(("positions", id(procs)))
        if positions is None:
            positions = self.memo["positions", id(procs)] = {p.id: i for i, p in enumerate(procs)}
        i = positions[proc.id]
        return (procs[i - 1] if i > 0 else None), (procs[i + 1] if i + 1 < len(procs) else None)


def resolve_link(from_rel: str, target: str) -> str:
    """Resolve a link written in FROM_REL to a path relative to the procedures folder (TARGET as
    render.anchors.markdown_path gives it: decoded, forward slashes)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(from_rel), target))


MEDIA = "media"   # site/<tree>/media/<procedures|notices>/<path>: the local files pages use


def local_file(config: EstateConfig, item: Procedure | Notice | Intro | Unparsed, written: str) -> tuple[str, Path] | None:
    """(URL under the tree, file on disk) of a local file ITEM uses, written relative to ITEM's source; None
    if it lies outside ITEM's folder (procedures/ or the notices folder): only those folders are published."""
    notice = item.source.kind == "notice"
    rel = posixpath.normpath(posixpath.join(posixpath.dirname(item.source.rel), written.replace("\\", "/")))
    if rel == ".." or rel.startswith(("../", "/")) or markdown_path(rel):  # a source is a page, never a file
        return None
    folder = config.build.notices_dir if notice else config.build.procedures_dir
    return f"{MEDIA}/{'notices' if notice else 'procedures'}/{rel}", config.path(folder) / rel


def _check_files(config: EstateConfig, item: Procedure | Notice | Intro | Unparsed) -> list[BuildProblem]:
    problems = []
    for written, line in item.files:
        found = local_file(config, item, written)
        if found is None:
            problems.append(BuildProblem(_file(item), line, f"引用的文件 {written} 不在规程或公告文件夹内，不会随站点发布 "
                                         "(file outside the procedures/notices folder)"))
        elif not _is_file(found[1]):
            problems.append(BuildProblem(_file(item), line, f"引用的文件不存在：{written} (missing file)"))
    return problems


def _is_file(path: Path) -> bool:
    """Is PATH a file? A name no file can have (over 255 bytes: ENAMETOOLONG) is not: Python 3.11's is_file
    raises for it, and had crashed the build."""
    try:
        return path.is_file()
    except OSError:
        return False


def build_index(
    config: EstateConfig, procedures: list[Procedure], notices: list[Notice], unparsed: frozenset[str] = frozenset(),
    intro: Intro | None = None, today: date | None = None, failed: Sequence[Unparsed] = (),
) -> tuple[Handbook, list[BuildProblem]]:
    """Check ids, supersedes and links across files; order the navigation.

    UNPARSED names procedure files that failed to parse: links to them are not reported again. FAILED are the
    bodies of files whose front matter failed: their links and files are checked all the same. TODAY decides
    which versions are in force: a version superseded by one whose effective date is still to come stays current.
    """
    problems: list[BuildProblem] = []
    today = today or date.today()
    for proc in procedures:  # derived afresh each build (cached objects are reused in watch mode)
        proc.superseded_by = proc.upcoming_successor = None
    by_id: dict[str, Procedure] = {}
    by_slug: dict[str, Procedure] = {}   # pages are named by the id in lower case: EN-1 and en-1 would share one
    for proc in procedures:
        other = by_slug.get(proc.slug)
        if other:
            problems.append(BuildProblem(_file(proc), _field_line(proc, "id"),
                                         f"编号 {proc.id} 重复，已用于 {_file(other)}（{other.id}；页面名不分大小写）(duplicate id)"))
        else:
            by_id[proc.id] = by_slug[proc.slug] = proc
    for proc in procedures:
        _link_supersedes(proc, by_id, problems, today)
    problems.extend(_supersedes_cycles(procedures, by_id))
    by_rel = {p.source.rel: p for p in procedures}
    for proc in procedures:
        problems.extend(_check_links(proc, by_rel, unparsed))
    _check_notice_ids(notices, problems)
    for item in [*notices, *([intro] if intro else []), *failed]:
        problems.extend(_check_links(item, by_rel, unparsed))
    for item in [*procedures, *notices, *([intro] if intro else []), *failed]:
        problems.extend(_check_files(config, item))
    current = sorted((p for p in procedures if not p.superseded_by), key=_nav_key(config))
    handbook = Handbook(
        procedures=current,
        superseded=sorted((p for p in procedures if p.superseded_by), key=lambda p: p.id),
        notices=sorted(notices, key=lambda n: (not n.pinned, -n.date.toordinal(), n.id)),
        by_id=by_id,
        by_rel=by_rel,
        intro=intro,
    )
    handbook.records = _group(current, lambda p: p.records)
    handbook.record_anchors = anchors_for(list(handbook.records))
    handbook.tags = _group(current, lambda p: p.tags)
    problems.extend(_tag_page_clashes(handbook.tags))
    return handbook, problems


def _file(item: Procedure | Notice | Intro | Unparsed) -> str:
    return item.source.shown


def _link_supersedes(proc: Procedure, by_id: dict[str, Procedure], problems: list[BuildProblem],
                     today: date) -> None:
    if not proc.supersedes:
        return
    old = by_id.get(proc.supersedes)
    line = _field_line(proc, "supersedes")
    claimed = old and (old.superseded_by or old.upcoming_successor)
    if old is None:
        problems.append(BuildProblem(_file(proc), line, f"supersedes 指向不存在的编号 {proc.supersedes} (unknown id)"))
    elif old is proc:
        problems.append(BuildProblem(_file(proc), line, "规程不能取代自己 (a procedure cannot supersede itself)"))
    elif claimed and claimed != proc.id:
        problems.append(BuildProblem(_file(proc), line, f"{old.id} 已被 {claimed} 取代 (already superseded)"))
    elif proc.effective > today:  # staff go on working by the old version until the new one is in force
        old.upcoming_successor = proc.id
    else:
        old.superseded_by = proc.id


def _supersedes_cycles(procedures: list[Procedure], by_id: dict[str, Procedure]) -> list[BuildProblem]:
    """A → B → A would leave no version current: each procedure on a cycle is reported at its supersedes line.

    Each procedure is walked once (a chain of 2,000 versions had been walked from each of them, 34 s)."""
    walked: dict[int, int] = {}  # id(procedure) -> 1 on the current walk, 2 walked before
    loops: dict[int, str] = {}   # id(procedure on a cycle) -> the cycle, from it back to it
    for start in procedures:
        path, cur = [], start
        while cur is not None and id(cur) not in walked:
            walked[id(cur)] = 1
            path.append(cur)
            cur = by_id.get(cur.supersedes or "")
        if cur is not None and walked[id(cur)] == 1 and cur is not path[-1]:  # closed a loop on this walk
            cycle = path[path.index(cur):]
            for i, proc in enumerate(cycle):
                loops[id(proc)] = " → ".join(p.id for p in [*cycle[i:], *cycle[:i], proc])
        walked.update((id(p), 2) for p in path)
    return [BuildProblem(_file(proc), _field_line(proc, "supersedes"),
                         f"supersedes 构成循环：{loops[id(proc)]}，没有哪个版本是现行的 (supersedes cycle)")
            for proc in procedures if id(proc) in loops]


def _field_line(item: Procedure | Notice, name: str) -> int:
    return item.field_lines.get(name, 1)


def _check_links(item: Procedure | Notice | Intro | Unparsed, by_rel: dict[str, Procedure],
                 unparsed: frozenset[str]) -> list[BuildProblem]:
    """Links to procedures and their headings must exist. A notice's links are relative to procedures/."""
    problems, shown = [], _file(item)
    base = "" if item.source.kind == "notice" else item.source.rel
    public = isinstance(item, Procedure | Notice) and item.public
    for target, fragment, line in item.links:
        rel = resolve_link(base, target)
        dest = by_rel.get(rel)
        if dest is None and rel in unparsed:
            continue
        if dest is not None and public and not dest.public:
            log.warning("%s:%d: 公开页面中指向员工规程 %s 的链接在业主页面上显示为纯文本 "
                        "(link to a staff-only procedure is shown as text on public pages)", shown, line, dest.id)
        if dest is None:
            problems.append(BuildProblem(shown, line, f"链接指向不存在的规程 {target} (broken link)"))
        elif fragment and find_anchor(dest.headings, fragment) is None:
            problems.append(BuildProblem(shown, line, f"链接指向 {target} 中不存在的标题 #{fragment} (no such heading)"))
    return problems


RESERVED_SLUGS = {"index"}   # tags/index.html and notices/index.html list the others


def _check_notice_ids(notices: list[Notice], problems: list[BuildProblem]) -> None:
    seen: dict[str, Notice] = {}
    for n in notices:
        line = _field_line(n, "id")
        if n.slug in RESERVED_SLUGS:
            problems.append(BuildProblem(n.source.shown, line, f"公告编号 {n.id} 与公告列表页 notices/index.html 重名，"
                                         "请换一个编号 (id clashes with a page name)"))
        elif n.slug in seen:
            other = seen[n.slug]
            problems.append(BuildProblem(n.source.shown, line, f"公告编号 {n.id} 重复，已用于 {other.source.shown}"
                                         f"（{other.id}；页面名不分大小写）(duplicate id)"))
        seen.setdefault(n.slug, n)


def _tag_page_clashes(tags: dict[str, list[Procedure]]) -> list[BuildProblem]:
    """Tags whose pages would overwrite another page: two spellings with one page name ("A B", "a-b"), or the
    tag index's own name. Reported at each procedure that uses such a tag."""
    by_page: dict[str, list[str]] = defaultdict(list)
    for tag in tags:
        by_page[slugify(tag)].append(tag)
    problems = []
    for page, names in by_page.items():
        if len(names) < 2 and page not in RESERVED_SLUGS:
            continue
        clash = "、".join(f"“{n}”" for n in names)
        why = (f"标签 {clash} 的页面同为 tags/{page}.html，请统一写法 (tags share a page)" if len(names) > 1 else
               f"标签 {clash} 的页面会与标签总览 tags/{page}.html 重名，请换个写法 (tag clashes with a page name)")
        problems.extend(BuildProblem(_file(p), _field_line(p, "tags"), why) for n in names for p in tags[n])
    return problems


def _nav_key(config: EstateConfig) -> Callable[[Procedure], tuple[int, str]]:
    """Navigation order: the categories' order in estate.toml, then id."""
    order = {c.id: i for i, c in enumerate(config.categories)}
    return lambda p: (order.get(p.category, len(order)), p.id)


def _group(procs: list[Procedure], keys: Callable[[Procedure], Iterable[str]]) -> dict[str, list[Procedure]]:
    """Procedures under each key KEYS gives them (records, tags), keys sorted."""
    groups: dict[str, list[Procedure]] = defaultdict(list)
    for p in procs:
        for k in keys(p):
            groups[k].append(p)
    return dict(sorted(groups.items()))


def status(proc: Procedure, today: date, warning_days: int) -> list[str]:
    """Badges a procedure carries today: upcoming, review_overdue, review_due, superseded."""
    badges = []
    if proc.effective > today:
        badges.append("upcoming")
    if proc.review_by < today:
        badges.append("review_overdue")
    elif (proc.review_by - today).days <= warning_days:
        badges.append("review_due")
    if proc.superseded_by:
        badges.append("superseded")
    return badges
