"""Parse step for the whole estate: every source file, in parallel, reusing cached results."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from estate.config import EstateConfig
from handbook import parallel
from handbook.cache import BuildCache
from handbook.discover import reread
from handbook.models import BuildProblem, Intro, Notice, Procedure, SourceFile
from handbook.parse import _Problems, decode, parse_notice, parse_procedure, read_body, split_front_matter
from handbook.safety import Body, check_body
from render.markdown import link_lines, render_markdown

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


def check_placeholders(body: Body, names: frozenset[str]) -> list[BuildProblem]:
    """Report `[[policy:NAME]]` lines whose NAME the policy views do not know."""
    problems = []
    for m in _PLACEHOLDER.finditer(body.text):
        if m.group(1) not in names:
            line = body.first_line + body.text[: m.start()].count("\n")
            known = "、".join(sorted(names)) or "（无：缺少 content/policy.toml）"
            problems.append(BuildProblem(body.shown, line,
                                         f"未知的占位符 [[policy:{m.group(1)}]]，可用：{known} (unknown placeholder)"))
    return problems


def parse_one(source: SourceFile, config: EstateConfig, expander: Expander):  # noqa: ANN201
    """Parse one source of any kind; returns (item, problems)."""
    if source.kind == "page":
        return parse_intro(source)
    parser = parse_procedure if source.kind == "procedure" else parse_notice
    item, problems = parser(source, config, expander.expand)
    if item is not None:
        problems = _body_problems(item.source.shown, item.body, item.body_line, item.html, len(item.links), expander)
        item.body = ""  # rendered into html and links by now; not kept for 5,000 procedures
    elif problems:  # a front-matter problem: the body's own problems are reported in the same run
        problems = problems + _unparsed_body_problems(source, expander)
    return (item if not problems else None), problems


def _body_problems(shown: str, body: str, first_line: int, body_html: str, links: int,
                   expander: Expander) -> list[BuildProblem]:
    checked = Body(shown, body, first_line, _authors_html(body, body_html), links)
    return check_placeholders(checked, expander.names) + check_body(checked)


def _unparsed_body_problems(source: SourceFile, expander: Expander) -> list[BuildProblem]:
    """The body problems of a file whose front matter failed, if its body could be read at all."""
    found = read_body(source)
    if found is None:
        return []
    body, first_line = found
    rendered = render_markdown(expander.expand(body))
    return _body_problems(source.shown, body, first_line, rendered.html, len(rendered.links), expander)


def _authors_html(body: str, body_html: str) -> str:
    """The body's HTML without the policy tables the builder inserted (ours, outside the authors' allowlist)."""
    if not _PLACEHOLDER.search(body):
        return body_html
    return render_markdown(_PLACEHOLDER.sub("", body)).html


def parse_intro(source: SourceFile) -> tuple[Intro | None, list[BuildProblem]]:
    """The handbook's intro page (procedures/index.md): optional front matter with a title, then Markdown."""
    problems = _Problems(source)
    text = decode(source, problems) or ""
    parts = split_front_matter(text, problems) if text.startswith("---") else None
    title, body, first_line = ("", text, 1) if parts is None else (str(parts[0].get("title", "")), parts[2], parts[3])
    rendered = render_markdown(body)
    found = check_body(Body(source.shown, body, first_line, rendered.html, len(rendered.links)))
    files = [(path, line) for path, _, line in link_lines(body, [(f, "") for f in rendered.files], first_line)]
    intro = Intro(title, rendered.html, replace(source, raw=b""), link_lines(body, rendered.links, first_line), files)
    return (None if found else intro), found


@dataclass
class Parsed:
    """What the parse step hands to the index step."""

    procedures: list[Procedure] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    intro: Intro | None = None                  # procedures/index.md
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
            _restamp(hit[0], src)
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


def _restamp(item: Procedure | Notice | Intro, src: SourceFile) -> None:
    """A file read again (touched, copied, checked out) but unchanged: keep the stamp it has now, so the
    next one-off build can trust it instead of reading it every time."""
    if src.raw and item.source.stamp != src.stamp:
        item.source = replace(item.source, stamp=src.stamp)


def _same_file(item: object, src: SourceFile) -> bool:
    """A cached parse is reused only for the same path too (two identical files are two procedures)."""
    source = getattr(item, "source", None)
    return source is None or source.rel == src.rel
