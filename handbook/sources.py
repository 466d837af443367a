"""Parse step for the whole estate: every source file, in parallel, reusing cached results."""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from estate.config import EstateConfig
from handbook import parallel
from handbook.cache import BuildCache
from handbook.discover import reread
from handbook.models import BuildProblem, Notice, Procedure, SourceFile
from handbook.parse import _Problems, decode, parse_notice, parse_procedure, split_front_matter
from render.markdown import render_markdown

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"^\[\[policy:([\w-]+)\]\]\s*$", re.M)


@dataclass
class Expander:
    """Expands `[[policy:NAME]]` lines from the processor's policy file (one source of truth)."""

    expand: Callable[[str], str]
    names: frozenset[str]
    digest: str

    @classmethod
    def load(cls, config: EstateConfig) -> Expander:
        """Load the policy and its views; without a policy file every placeholder is reported as unknown."""
        from estate import contract, lifecycle
        from estate.policy import load_policy
        from render import policy_views

        policy_path = config.path(config.processor.policy_file)
        if not policy_path.exists():
            return cls(lambda text: text, frozenset(), "none")
        policy = load_policy(policy_path)
        names = {d.id: d.name for d in config.departments}
        inputs = [policy_path, Path(policy_views.__file__), Path(lifecycle.__file__),
                  *sorted(contract.SCHEMA_DIR.glob("*.json"))]
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()
        return cls(lambda text: policy_views.expand_placeholders(text, policy, names),
                   frozenset(policy_views.PLACEHOLDERS), digest)


def check_placeholders(item: Procedure | Notice, names: frozenset[str]) -> list[BuildProblem]:
    """Report `[[policy:NAME]]` lines whose NAME the policy views do not know."""
    problems = []
    for m in _PLACEHOLDER.finditer(item.body):
        if m.group(1) not in names:
            line = item.body_line + item.body[: m.start()].count("\n")
            known = "、".join(sorted(names)) or "（无：缺少 content/policy.toml）"
            problems.append(BuildProblem(item.source.shown, line,
                                         f"未知的占位符 [[policy:{m.group(1)}]]，可用：{known} (unknown placeholder)"))
    return problems


_EXTERNAL_ASSET = re.compile(r"""\b(?:src|srcset|poster|data)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)""", re.I)


def check_offline(item: Procedure | Notice) -> list[BuildProblem]:
    """Report images, scripts or frames loaded from another host: the handbook must work with no network.

    Ordinary links to websites are fine (a reader may follow them when online); embedded resources are not.
    """
    problems = []
    if "//" not in item.html:  # no URL with a host at all: skip the (slow, unanchored) scan
        return problems
    for m in _EXTERNAL_ASSET.finditer(item.html):
        url = m.group(1)
        problems.append(BuildProblem(item.source.shown, _line_of(item, url),
                                     f"引用了外部资源 {url}：离线打开时无法显示，请把文件放进站点 (external resource)"))
    return problems


# Raw HTML in Markdown is allowed (tables, <kbd>, <details>…) but nothing that runs: these pages are opened
# by every front-desk officer and, in the public tree, by residents. Hugo's default drops raw HTML outright.
_ACTIVE_TAG = re.compile(r"<(script|iframe|object|embed|frame|frameset|applet|base|meta)\b", re.I)
_TAG_BODY = re.compile(r"<[a-zA-Z][^>]*>")
_HANDLER = re.compile(r"""[\s"'/](on[a-z]+)\s*=""", re.I)
_URL_ATTR = re.compile(r"""\b(?:href|src|action|formaction|xlink:href|data)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_ACTIVE_HINT = re.compile(r"""[\s"'/]on[a-z]+\s*=|script\s*:|data\s*:|&#""", re.I)
_ACTIVE_SCHEME = re.compile(r"^(?:javascript|vbscript|data:text/html)", re.I)


def check_active(item: Procedure | Notice) -> list[BuildProblem]:
    """Report scripts, event handlers (onclick=…), javascript: links and embedded frames in the body."""
    found: list[tuple[str, str]] = [(m.group(0), f"<{m.group(1).lower()}> 标签") for m in _ACTIVE_TAG.finditer(item.html)]
    tags = _TAG_BODY.finditer(item.html) if _ACTIVE_HINT.search(item.html) else ()  # most pages: one scan
    for tag in tags:
        found += [(m.group(1), f"事件属性 {m.group(1).lower()}=") for m in _HANDLER.finditer(tag.group(0))]
        for m in _URL_ATTR.finditer(tag.group(0)):
            url = "".join(html.unescape(m.group(1).strip("\"'")).split())  # browsers ignore the spaces in "java script:"
            if _ACTIVE_SCHEME.match(url):
                found.append((m.group(1).strip("\"'")[:12], f"脚本链接 {url[:30]}"))
    return [BuildProblem(item.source.shown, _line_of(item, needle),
                         f"正文含有会执行的内容（{what}）：手册页面不允许脚本，请删除 (active content)")
            for needle, what in found]


def _line_of(item: Procedure | Notice, needle: str) -> int:
    offset = item.body.lower().find(needle.lower())
    return item.body_line + item.body[:offset].count("\n") if offset >= 0 else item.body_line


def parse_one(source: SourceFile, config: EstateConfig, expander: Expander):  # noqa: ANN201
    """Parse one source of any kind; returns (item, problems)."""
    if source.kind == "page":
        return parse_intro(source), []
    parser = parse_procedure if source.kind == "procedure" else parse_notice
    item, problems = parser(source, config, expander.expand)
    if item is not None:
        problems = check_placeholders(item, expander.names) + check_offline(item) + check_active(item)
        item.body = ""  # rendered into html and links by now; not kept for 5,000 procedures
    return (item if not problems else None), problems


def parse_intro(source: SourceFile) -> tuple[str, str] | None:
    """The handbook's intro page (procedures/index.md): optional front matter with a title, then Markdown."""
    problems = _Problems(source)
    text = decode(source, problems) or ""
    parts = split_front_matter(text, problems) if text.startswith("---") else None
    title, body = ("", text) if parts is None else (str(parts[0].get("title", "")), parts[2])
    return title, render_markdown(body).html


@dataclass
class Parsed:
    """What the parse step hands to the index step."""

    procedures: list[Procedure] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    intro: tuple[str, str] | None = None        # (title, html) of procedures/index.md
    problems: list[BuildProblem] = field(default_factory=list)
    unparsed: set[str] = field(default_factory=set)   # procedure files that failed: links to them are not re-reported
    fresh: int = 0                              # how many files were parsed afresh (not from the cache)


def parse_sources(sources: list[SourceFile], config: EstateConfig, expander: Expander, cache: BuildCache,
                  workers: int) -> Parsed:
    """Parse every source, reusing the cache's results for files whose content did not change."""
    results: dict[str, tuple] = {}
    todo = []
    for src in sources:
        hit = cache.parsed.get(src.digest + src.kind)
        if hit is not None and hit[0] is not None and _same_file(hit[0], src):
            results[src.rel + src.kind] = hit
        else:
            todo.append(src)
    todo = [reread(src) for src in todo]
    for src, result in zip(todo, parallel.map_parse(todo, config, expander, workers), strict=True):
        results[src.rel + src.kind] = result
        cache.parsed[src.digest + src.kind] = result
    parsed = Parsed(fresh=len(todo))
    for src in sources:
        item, problems = results[src.rel + src.kind]
        parsed.problems += problems
        if isinstance(item, Procedure):
            parsed.procedures.append(item)
        elif isinstance(item, Notice):
            parsed.notices.append(item)
        elif item is not None:
            parsed.intro = item
        elif src.kind == "procedure":
            parsed.unparsed.add(src.rel)
    return parsed


def _same_file(item: object, src: SourceFile) -> bool:
    """A cached parse is reused only for the same path too (two identical files are two procedures)."""
    source = getattr(item, "source", None)
    return source is None or source.rel == src.rel
