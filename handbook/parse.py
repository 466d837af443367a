"""Parse step: bytes → validated Procedure / Notice / intro page with rendered body, or a list of problems.

Every problem is reported as `file:line: message` and parsing carries on, so an author sees
all of them at once (like a compiler), not one per build. This module alone brings in Python-Markdown, and
YAML for front matter beyond the simple forms handbook/frontmatter.py reads: handbook/sources.py decides what
to parse, and parallel.map_parse calls `parse_one` where the work is done (see there why a one-off rebuild
does it in a forked process).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any

from estate.config import EstateConfig
from handbook.frontmatter import read_simple
from handbook.models import (
    AUDIENCES,
    BuildProblem,
    Heading,
    Intro,
    Notice,
    Procedure,
    Section,
    SourceFile,
    Unparsed,
)
from handbook.safety import Body, check_body
from render.anchors import slugify
from render.markdown import Rendered, link_lines, render_markdown
from render.markdown_budget import MarkdownTooCostly

if TYPE_CHECKING:
    from handbook.sources import Expander

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*$")
NOTICE_CATEGORIES = ("outage", "works", "activity", "fees", "policy", "general")
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*\r?$\n?", re.S | re.M)


@dataclass(frozen=True)
class FieldRule:
    """How one front-matter field is checked: a table row, not an if-chain."""

    name: str
    kind: str          # a key of _CHECKS: str | id | date | list | tags | audience | bool | notice_category
    required: bool = True


PROCEDURE_FIELDS = (
    FieldRule("id", "id"),
    FieldRule("title", "str"),
    FieldRule("department", "str"),
    FieldRule("category", "str"),
    FieldRule("version", "str"),
    FieldRule("effective", "date"),
    FieldRule("review_by", "date"),
    FieldRule("owner", "str"),
    FieldRule("audience", "audience"),
    FieldRule("tags", "tags", required=False),
    FieldRule("records", "list", required=False),
    FieldRule("supersedes", "id", required=False),
)

NOTICE_FIELDS = (
    FieldRule("id", "id"),
    FieldRule("title", "str"),
    FieldRule("date", "date"),
    FieldRule("category", "notice_category", required=False),
    FieldRule("expires", "date", required=False),
    FieldRule("pinned", "bool", required=False),
    FieldRule("audience", "audience", required=False),
)


class _Problems:
    """Collects problems for one file."""

    def __init__(self, source: SourceFile):
        self.file = source.shown
        self.items: list[BuildProblem] = []

    def add(self, line: int, message: str) -> None:
        self.items.append(BuildProblem(self.file, line, message))


def decode(source: SourceFile, problems: _Problems) -> str | None:
    """Decode UTF-8 (BOM allowed); name the line of the first bad byte, and say so if it is GBK or UTF-16."""
    raw = source.raw.removeprefix(b"\xef\xbb\xbf")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # what Notepad saves as "Unicode"
        problems.add(1, "文件是 UTF-16 编码（记事本的“Unicode”），请另存为 UTF-8 (file is UTF-16; save it as UTF-8)")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        try:
            raw.decode("gbk")
            problems.add(line, "文件是 GBK 编码，请另存为 UTF-8 (file is GBK-encoded; save it as UTF-8)")
        except UnicodeDecodeError:
            problems.add(line, f"不是有效的 UTF-8：第 {exc.start} 字节 (invalid UTF-8 at byte {exc.start})")
        return None


def split_front_matter(text: str, problems: _Problems) -> tuple[dict[str, Any], dict[str, int], str, int] | None:
    """Return (fields, line of each field, body, line where the body starts)."""
    m = _FRONT.match(text)
    if not m and re.match(r"---[ \t]*\r?\n", text):
        problems.add(1, "前置元数据没有结束：YAML 块之后须有单独一行 --- (front matter block not closed)")
        return None
    if not m:
        problems.add(1, "缺少前置元数据：文件须以 --- 开头的 YAML 块开始 (missing front matter block)")
        return None
    fields = read_simple(m.group(1)) or _read_yaml(m.group(1), problems)
    if fields is None:
        return None
    body_line = text[: m.end()].count("\n") + 1
    return *fields, text[m.end():], body_line


@cache
def _loader() -> type:
    """Safe YAML, but dates stay text so a bad one (2026-13-45) is our message, not a crash. Imported on first
    use: most front matter is read by handbook/frontmatter.py, and a one-off rebuild may never need YAML."""
    import yaml

    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster, when the wheel has it
    loader = type("_Loader", (base,), {})
    loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
    return loader


NESTING_MAX = 20  # levels of lists and mappings in a front-matter value: real ones have two or three


_TOO_DEEP = f"前置元数据的值嵌套超过 {NESTING_MAX} 层或包含自身 (front-matter value nested too deeply, or containing itself)"
COMPOSE_MAX = 1000  # a block that might nest deeper is not even composed: libyaml recurses, and ~30,000
                    # levels overflowed its C stack (a crash, not an error)
_BRACKET = re.compile(r"[\[\]{}]")
_OPENERS = {"[": 1, "{": 1, "]": -1, "}": -1}


def _nesting_bound(block: str) -> int:
    """At least the depth YAML would nest BLOCK to: its brackets' depth (quoted ones too) plus its widest
    run of leading spaces and dashes (block mappings and sequences)."""
    depth = flow = 0
    for m in _BRACKET.finditer(block):
        depth += _OPENERS[m.group()]
        flow = max(flow, depth)
    return flow + max((len(line) - len(line.lstrip(" -")) for line in block.splitlines()), default=0)


def _too_deep(node: Any, limit: int) -> bool:
    """Does the YAML NODE nest deeper than LIMIT, or contain itself (an anchor inside itself)?

    Such a value is no procedure's, and neither pickle nor marshal can carry one ~1,000 and ~2,000 levels deep
    between processes (a parse worker died and the build hung). Each node is looked at once, however many
    aliases repeat it (a "billion laughs" block is a few nodes reached 10^9 ways).
    """
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        current, finished = stack.pop()
        kids = _nested(current)
        if finished:
            on_path.discard(id(current))
            depth[id(current)] = level = 1 + max((depth[id(k)] for k in kids), default=0)
            if level > limit:
                return True
        elif id(current) in on_path:
            return True
        elif id(current) not in depth:
            on_path.add(id(current))
            stack.append((current, True))
            stack.extend((kid, False) for kid in kids)
    return False


def _nested(node: Any) -> list:
    """The nodes inside a sequence or mapping NODE (a mapping's keys as well as its values)."""
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_WIDE_COLON = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[ \t]*：")  # owner：客服主管, typed with a Chinese input method


def _read_yaml(block: str, problems: _Problems) -> tuple[dict[str, Any], dict[str, int]] | None:
    """(fields, line of each field) of the front-matter BLOCK, read as YAML; None with problems if it cannot be."""
    import yaml

    if _nesting_bound(block) > COMPOSE_MAX:
        problems.add(2, _TOO_DEEP)
        return None
    wide = [number for number, line in enumerate(block.split("\n"), start=2) if _WIDE_COLON.match(line)]
    for number in wide:  # YAML would read the line into the value above it, or fail on a later line
        problems.add(number, "字段名后是全角冒号“：”，请改成半角冒号加空格“: ” (full-width colon after a key)")
    if wide:
        return None
    loader = _loader()(block)
    try:  # composed once: its nodes give each key's line, and the same nodes are constructed into values
        node = loader.get_single_node()
        keys = [] if not isinstance(node, yaml.MappingNode) else [(str(k.value), k.start_mark.line + 2, v)
                                                                    for k, v in node.value]
        if node is not None and _too_deep(node, NESTING_MAX + 1):  # the mapping itself is a level
            problems.add(next((line for _, line, value in keys if _too_deep(value, NESTING_MAX)), 2), _TOO_DEEP)
            return None
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        problems.add(line, f"前置元数据 YAML 语法错误 (YAML syntax error): {getattr(exc, 'problem', exc)}")
        return None
    except (ValueError, TypeError) as exc:  # a value YAML parsed but could not construct
        problems.add(2, f"前置元数据无法读取 (unreadable front matter): {exc}")
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        problems.add(2, "前置元数据必须是“键: 值”的映射 (front matter must be a mapping)")
        return None
    lines = {name: line for name, line, _ in keys}
    seen: set[str] = set()
    for name, line, value in keys:
        if name in seen:  # YAML keeps the last silently: the author meant one of them
            problems.add(line, f"字段 {name} 写了不止一次，只能保留一个 (duplicate key)")
        seen.add(name)
        if isinstance(value, yaml.ScalarNode) and type(data.get(name)) in (int, float):
            data[name] = value.value   # as written: version 1.10 stays "1.10", not the number 1.1
    return data, lines


def check_fields(
    data: dict[str, Any], lines: dict[str, int], rules: tuple[FieldRule, ...], problems: _Problems
) -> dict[str, Any]:
    """Validate fields against RULES; return the cleaned values (bad ones left out)."""
    clean: dict[str, Any] = {}
    for rule in rules:
        line = lines.get(rule.name, 1)
        value = data.get(rule.name)
        if value is None or value == "":
            if rule.required:
                problems.add(1 if rule.name not in lines else line, f"缺少必填字段 {rule.name} (missing field)")
            continue
        result = _CHECKS[rule.kind](value)
        if isinstance(result, _Bad):
            problems.add(line, f"字段 {rule.name}：{result.message}")
        else:
            clean[rule.name] = result
    _check_misspelt(data, lines, _field_names(rules), problems)
    return clean


@cache
def _field_names(rules: tuple[FieldRule, ...]) -> frozenset[str]:
    return frozenset(rule.name for rule in rules)


def _check_misspelt(data: dict[str, Any], lines: dict[str, int], known: frozenset[str], problems: _Problems) -> None:
    """Keys the table does not know are kept for later use, but one that is nearly a known key is a typo whose
    field is silently missing (`supercedes:` left the old version listed as current): a problem."""
    for key in data:
        close = None if key in known else _close_key(str(key), known)  # `1: 2` is a key too
        if close and close not in data:
            problems.add(lines.get(key, 1), f"未知字段 {key}，是不是 {close}？(unknown field; did you mean {close}?)")


@cache  # an estate's own keys (`site:`, `script:`) come back in every file: difflib once, not 1,000 times
def _close_key(key: str, known: frozenset[str]) -> str | None:
    import difflib  # only when a file has a key of its own

    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return close[0] if close else None


@dataclass(frozen=True)
class _Bad:
    message: str


def _as_str(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value).strip()
    return _Bad(f"应为文本，实为 {type(value).__name__} (expected text)")


# An id and a tag name a page's file (procedures/<id>.html, tags/<tag>.html): a file name holds 255 bytes at most,
# and one too long had failed the build while it wrote pages, past the checks, leaving site/ half-written.
ID_MAX = 100
TAG_BYTES_MAX = 200


def _as_id(value: Any) -> Any:
    text = _as_str(value)
    if isinstance(text, str) and not ID_PATTERN.match(text):
        return _Bad(f"编号 {text!r} 只能含字母、数字和连字符，如 CS-SOP-003 (malformed id)")
    if isinstance(text, str) and len(text) > ID_MAX:
        return _Bad(f"编号有 {len(text)} 个字符，最多 {ID_MAX} 个 (id too long)")
    return text


def _as_date(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    return _Bad(f"{value!r} 不是 YYYY-MM-DD 格式的日期 (not a date)")


_SEPARATED = re.compile(r"[,，、]")   # `tags: 值班, 交接班` (no brackets), typed with either comma or 、


def _as_list(value: Any) -> Any:
    items = _SEPARATED.split(value) if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str | int) for v in items):
        return _Bad("应为文本列表，如 [值班, 交接班] (expected a list of text)")
    parts = (part.strip() for v in items for part in str(v).split("，"))  # [前台，报修]: YAML splits at "," only
    return tuple(part for part in parts if part)


def _as_tags(value: Any) -> Any:
    tags = _as_list(value)
    too_long = [] if isinstance(tags, _Bad) else [t for t in tags if len(slugify(t).encode()) > TAG_BYTES_MAX]
    if too_long:
        return _Bad(f"标签“{too_long[0][:20]}…”太长（标签页的文件名最多 {TAG_BYTES_MAX} 字节，约 60 个汉字）(tag too long)")
    return tags


def _as_audience(value: Any) -> Any:
    return value if value in AUDIENCES else _Bad(f"{value!r} 不是 staff、resident 或 both 之一")


def _as_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _Bad(f"{value!r} 应为 true 或 false")


def _as_notice_category(value: Any) -> Any:
    return value if value in NOTICE_CATEGORIES else _Bad(f"{value!r} 不是 {'、'.join(NOTICE_CATEGORIES)} 之一")


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "str": _as_str, "id": _as_id, "date": _as_date, "list": _as_list, "tags": _as_tags,
    "audience": _as_audience, "bool": _as_bool, "notice_category": _as_notice_category,
}


_H1 = re.compile(r"\A(?:[ \t]*\r?\n)*#[ \t]+[^\n]*\n?")


def strip_title(body: str, body_line: int) -> tuple[str, int]:
    """Drop a leading `# Title`: the page banner already shows the title (one h1 per page)."""
    m = _H1.match(body)
    if not m:
        return body, body_line
    return body[m.end():], body_line + m.group(0).count("\n")


def _render_into(item: Procedure | Notice, expand: Callable[[str], str]) -> None:
    rendered = render_markdown(expand(item.body))
    item.html = rendered.html
    item.headings = [Heading(*h) for h in rendered.headings]
    item.sections = [Section(*s) for s in rendered.sections]
    item.text_chars = sum(len(s.title) + len(s.text) for s in item.sections)  # sizes search chunks unread
    item.links, item.files = _uses(item.body, rendered, item.body_line)


def _uses(body: str, rendered: Rendered, first_line: int) -> tuple[list[tuple[str, str, int]], list[tuple[str, int]]]:
    """The pages RENDERED links to (target, fragment, line) and the local files it uses (as written, line),
    each with the line of BODY that names it."""
    files = [(path, line) for path, _, line in link_lines(body, [(f, "") for f in rendered.files], first_line)]
    return link_lines(body, rendered.links, first_line), files


@dataclass
class _Parsed:
    """A file's front matter checked against its field table, and its body."""

    problems: _Problems
    data: dict[str, Any]
    lines: dict[str, int]
    clean: dict[str, Any]
    body: str
    body_line: int

    def extra(self, rules: tuple[FieldRule, ...]) -> dict[str, Any]:
        """Unknown front-matter keys, kept (not rejected) for later use."""
        known = {r.name for r in rules}
        return {k: v for k, v in self.data.items() if k not in known}


def _read(source: SourceFile, rules: tuple[FieldRule, ...]) -> _Parsed | list[BuildProblem]:
    """Decode, split and check the front matter of SOURCE; a list means it failed with those problems."""
    problems = _Problems(source)
    text = decode(source, problems)
    parts = split_front_matter(text, problems) if text is not None else None
    if parts is None:
        return problems.items
    data, lines, body, body_line = parts
    clean = check_fields(data, lines, rules, problems)
    body, body_line = strip_title(body, body_line)
    return _Parsed(problems, data, lines, clean, body, body_line)


def read_body(source: SourceFile) -> tuple[str, int] | None:
    """SOURCE's body and the line it starts on, whatever its front matter holds; None if it cannot be read."""
    parsed = _read(source, ())
    return None if isinstance(parsed, list) else (parsed.body, parsed.body_line)


def parse_procedure(
    source: SourceFile, config: EstateConfig, expand: Callable[[str], str]
) -> tuple[Procedure | None, list[BuildProblem]]:
    """Parse and render one procedure file."""
    parsed = _read(source, PROCEDURE_FIELDS)
    if isinstance(parsed, list):
        return None, parsed
    clean, lines, problems = parsed.clean, parsed.lines, parsed.problems
    for key, lookup in (("department", config.department), ("category", config.category)):
        if key in clean:
            found = lookup(clean[key])
            if found is None:
                problems.add(lines[key], f"未知的{'部门' if key == 'department' else '类别'} {clean[key]!r}"
                             f"（见 content/estate.toml）(unknown {key})")
            else:
                clean[key] = found.id
    if "effective" in clean and "review_by" in clean and clean["review_by"] < clean["effective"]:
        problems.add(lines["review_by"], "复审日期早于生效日期 (review_by is before effective)")
    if problems.items:
        return None, problems.items
    proc = Procedure(source=replace(source, raw=b""), body=parsed.body, body_line=parsed.body_line,
                     extra=parsed.extra(PROCEDURE_FIELDS), field_lines=lines, **clean)
    _render_into(proc, expand)
    return proc, []


def parse_notice(
    source: SourceFile, config: EstateConfig, expand: Callable[[str], str]
) -> tuple[Notice | None, list[BuildProblem]]:
    """Parse and render one notice file."""
    parsed = _read(source, NOTICE_FIELDS)
    if isinstance(parsed, list):
        return None, parsed
    clean = parsed.clean
    if "expires" in clean and "date" in clean and clean["expires"] < clean["date"]:  # it would never be shown
        parsed.problems.add(parsed.lines["expires"], "过期日期早于发布日期：公告永远不会显示 (expires before its date)")
    if parsed.problems.items:
        return None, parsed.problems.items
    notice = Notice(source=replace(source, raw=b""), body=parsed.body, body_line=parsed.body_line,
                    extra=parsed.extra(NOTICE_FIELDS), field_lines=parsed.lines, **parsed.clean)
    _render_into(notice, expand)
    return notice, []


# ---- one source of any kind, as parallel.map_parse calls it ------------------------------------------

_PLACEHOLDER = re.compile(r"^\[\[policy:([\w-]+)\]\]\s*$", re.M)


def check_placeholders(body: Body, names: frozenset[str]) -> list[BuildProblem]:
    """Report `[[policy:NAME]]` lines whose NAME the policy views do not know, or that a page repeats: each
    table is put on a page once (500 copies of the 20 KB form table had made a 9 KB file take 19 s)."""
    problems, seen = [], {}
    for m in _PLACEHOLDER.finditer(body.text):
        line = body.first_line + body.text[: m.start()].count("\n")
        if m.group(1) not in names:
            known = "、".join(sorted(names)) or "（无：缺少 content/policy.toml）"
            problems.append(BuildProblem(body.shown, line,
                                         f"未知的占位符 [[policy:{m.group(1)}]]，可用：{known} (unknown placeholder)"))
        elif m.group(1) in seen:
            problems.append(BuildProblem(body.shown, line, f"[[policy:{m.group(1)}]] 已在第 {seen[m.group(1)]} 行放过，"
                                         "每种表格每页只放一次 (placeholder repeated)"))
        seen.setdefault(m.group(1), line)
    return problems


def parse_one(source: SourceFile, config: EstateConfig, expander: Expander):  # noqa: ANN201
    """Parse one source of any kind; returns (item, problems)."""
    try:
        if source.kind == "page":
            return parse_intro(source)
        parser = parse_procedure if source.kind == "procedure" else parse_notice
        item, problems = parser(source, config, expander.expand)
        if item is not None:
            problems = _body_problems(item.source.shown, item.body, item.body_line, item.html, len(item.links), expander)
            item.body = ""  # rendered into html and links by now; not kept for 5,000 procedures
        elif problems:  # a front-matter problem: the body's own problems are reported in the same run
            item, more = _unparsed_body(source, expander)
            problems = problems + more
    except RecursionError:
        return None, [BuildProblem(source.shown, 1, _TOO_DEEP_BODY)]
    except MarkdownTooCostly as stopped:
        return None, [BuildProblem(source.shown, _line_with_most(source, stopped.char or _MARKUP), _too_costly(stopped))]
    # a body problem keeps its item: the index checks its links and files in the same run, and the build fails
    return item, problems


_TOO_DEEP_BODY = "正文的列表或引用嵌套了上百层，无法转换，请减少层级 (body nested too deeply)"


_MARKUP = "*_`\\[<&"   # inline markup: where a paragraph of thousands of matches is looked for


def _too_costly(stopped: MarkdownTooCostly) -> str:
    char = stopped.char
    if not stopped.unmatched:
        return (f"正文的一段里有成千上万处行内标记（{char or '* _ `'}），转换要为每一处重写整段，已停止：请把这段分成多段，"
                f"或把原样展示的文字放进代码块 (too much inline markup in one paragraph: Markdown conversion stopped)")
    return (f"正文里有成千上万个没有配对的“{char}”，转换要一遍遍重扫全文，已停止：请配对，或写成“\\{char}”"
            f"（原样展示的文字请放进代码块） (too many unmatched '{char}': Markdown conversion stopped)")


def _line_with_most(source: SourceFile, chars: str) -> int:
    """The line of SOURCE that holds the most of CHARS: where an author starts looking."""
    lines = source.raw.decode("utf-8", "replace").split("\n")
    return max(range(len(lines)), key=lambda i: sum(map(lines[i].count, chars))) + 1


def _body_problems(shown: str, body: str, first_line: int, body_html: str, links: int,
                   expander: Expander) -> list[BuildProblem]:
    checked = Body(shown, body, first_line, _authors_html(body, body_html), links)
    placeholders = check_placeholders(checked, expander.names) if "[[policy:" in body else []  # names: read policy
    return placeholders + check_body(checked)


def _unparsed_body(source: SourceFile, expander: Expander) -> tuple[Unparsed | None, list[BuildProblem]]:
    """The body of a file whose front matter failed, if it could be read at all: its own problems, and its links
    and files for the index to check."""
    found = read_body(source)
    if found is None:
        return None, []
    body, first_line = found
    rendered = render_markdown(expander.expand(body))
    unparsed = Unparsed(replace(source, raw=b""), *_uses(body, rendered, first_line))
    return unparsed, _body_problems(source.shown, body, first_line, rendered.html, len(rendered.links), expander)


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
    intro = Intro(title, rendered.html, replace(source, raw=b""), *_uses(body, rendered, first_line))
    return (None if found else intro), found
