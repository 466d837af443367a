"""Markdown → HTML for procedures and notices, with anchors that work for Chinese headings.

Links between source files (`duty-handover.md#交接班`) are rewritten to a marker
(`@@doc:duty-handover.md#交接班`) that the builder resolves per output tree, so one conversion
serves both the staff and the public tree (where links to staff-only pages are unwrapped).
"""

from __future__ import annotations

import html
import logging
import re
import xml.etree.ElementTree as etree
from bisect import bisect_left
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import markdown
from markdown.extensions import Extension
from markdown.extensions.attr_list import AttrListExtension
from markdown.extensions.fenced_code import FencedCodeExtension
from markdown.extensions.sane_lists import SaneListExtension
from markdown.extensions.tables import TableExtension
from markdown.postprocessors import Postprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AMP_SUBSTITUTE

from render.anchors import (
    FILE_MARKER,
    LINK_MARKER,
    RESERVED_IDS,
    Used,
    markdown_path,
    own_anchor,
    unique_anchor,
)
from render.markdown_budget import Budget, MarkdownTooCostly, install
from render.markdown_speed import speed_up

log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


@dataclass
class Rendered:
    """What one Markdown conversion yields."""

    html: str
    headings: list[tuple[int, str, str]] = field(default_factory=list)   # (level, text, anchor)
    links: list[tuple[str, str]] = field(default_factory=list)  # (path, fragment) of links to .md files
    files: list[str] = field(default_factory=list)   # local files it uses (images, videos, documents), as written
    sections: list[tuple[str, str, int, str]] = field(default_factory=list)  # (anchor, title, level, text)


class _LinkRewriter(Treeprocessor):
    """Point links to other .md files at a marker the builder resolves per tree, and list them.

    The list is what the builder validates and what a page's incremental rebuild depends on, so it
    comes from the links Markdown actually made (inline, reference-style, wrapped over lines), not
    from a second reading of the source.
    """

    def run(self, root: etree.Element) -> None:
        self.md.links_out = []  # type: ignore[attr-defined]
        for a in root.iter("a"):
            try:
                parts = urlsplit(html.unescape(_as_written(a.get("href", ""))))  # as a browser reads it
            except ValueError:  # e.g. "http://[x]": not ours to judge, the browser shows it as written
                continue
            path = None if parts.scheme or parts.netloc else markdown_path(parts.path)
            if path is None:
                continue
            fragment = unquote(parts.fragment)
            self.md.links_out.append((path, fragment))  # type: ignore[attr-defined]
            a.set("href", f"{LINK_MARKER}{path}#{fragment}")   # the builder finds the heading: find_anchor


class _Sections(Treeprocessor):
    """Collect headings and the plain text below each, for the TOC and for section-level search."""

    def run(self, root: etree.Element) -> None:
        md = self.md
        current = ["", "", 0, []]
        md.sections_out = []  # type: ignore[attr-defined]
        md.headings_out = []  # type: ignore[attr-defined]

        def flush() -> None:
            text = " ".join(t for t in current[3] if t).strip()
            if current[0] or text:
                md.sections_out.append((current[0], current[1], current[2], _SPACES.sub(" ", text)))

        for child in root:
            level = _HEADING_TAGS.get(child.tag)
            if level:
                flush()
                title = _plain_text(md, child).strip()
                anchor = child.get("id", "")
                md.headings_out.append((level, title, anchor))
                current[:] = [anchor, title, level, []]
            else:
                current[3].append(_plain_text(md, child))
        flush()


_STASHED = re.compile("\x02wzxhzdk:(\\d+)\x03")  # Python-Markdown's placeholder for a piece of raw HTML
_PLACEHOLDER_P = re.compile(f"<p>{_STASHED.pattern}</p>\n?")  # ... standing alone as a paragraph
_ESCAPED = re.compile("\x02(\\d+)\x03")  # ... for a backslash-escaped character
_AMP = re.compile(re.escape(AMP_SUBSTITUTE) + r"(#\d+;|#x[0-9a-fA-F]+;|\w+;)?")
# Raw HTML as a reader sees it: no comments, no script or style content, no tags (a ">" inside quotes
# does not end a tag). Comments are author's notes: they never reach a page or the search index.
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HIDDEN = re.compile(_COMMENT.pattern + r"|<(script|style)\b.*?(?:</\1\s*>|$)", re.S | re.I)
_TAG = re.compile(r"""<[a-zA-Z/!?](?:[^>"']|"[^"]*"|'[^']*')*>?""")


class _HeadingIds(Treeprocessor):
    """Give each heading a unique anchor from its text, as Python-Markdown's toc extension names them.

    The toc extension also renders a table of contents for every document, which our templates build
    from `Rendered.headings` instead; assigning the ids alone costs a fifth of what it did.
    """

    def run(self, root: etree.Element) -> None:
        used, headings = Used(RESERVED_IDS), []
        for el in root.iter():  # one pass: the ids already given (attr_list's {#id}), and the headings to name
            if "id" in el.attrib:
                used.add(el.get("id"))
            elif el.tag in _HEADING_TAGS:
                headings.append(el)
        used.discard("")
        for el in headings:
            el.set("id", unique_anchor(own_anchor(_plain_text(self.md, el)), used))


def _plain_text(md: markdown.Markdown, el: etree.Element) -> str:
    """EL's text as a reader sees it: inline HTML, entities and backslash escapes restored, tags dropped.

    Before the postprocessors run, those are still Python-Markdown's placeholders (\\x02…\\x03). Only
    the stashed pieces are unescaped: "&copy" typed as text stays "&copy", as the toc extension read it.
    """
    text = "".join(_texts(el) if next(el.iter("code"), None) is not None else el.itertext())
    if "\x02" not in text:  # no placeholder (most text): nothing to put back
        return text
    blocks = md.htmlStash.rawHtmlBlocks
    return _as_written(_STASHED.sub(lambda m: visible_text(str(blocks[int(m.group(1))])), text))


def _texts(el: etree.Element):  # noqa: ANN202
    """EL's text pieces in order; code spans hold their text escaped (&lt;br&gt;), as the reader does not see it.
    (ElementTree's itertext gives the same pieces, in C, for an element without code.)"""
    if el.text:
        yield html.unescape(el.text) if el.tag == "code" else el.text
    for child in el:
        yield from _texts(child)
        if child.tail:
            yield child.tail


def _as_written(text: str) -> str:
    """TEXT with Python-Markdown's backslash-escape and ampersand placeholders put back (e.g. an automail's &#97;)."""
    if "\x02" not in text:
        return text
    text = _ESCAPED.sub(lambda m: chr(int(m.group(1))), text)
    return _AMP.sub(lambda m: html.unescape("&" + (m.group(1) or "")), text)


def visible_text(raw_html: str) -> str:
    """The text a browser shows for RAW_HTML."""
    return html.unescape(_TAG.sub("", _HIDDEN.sub("", raw_html)))


class _DropComments(Postprocessor):
    """HTML comments are notes to authors: not for the page, nor its source (residents read the public tree).

    Only the author's raw HTML is touched (Python-Markdown's stash, before it goes back into the page):
    "<!--" shown in code or text is escaped by then and stays.
    """

    def run(self, text: str) -> str:
        stash = self.md.htmlStash.rawHtmlBlocks
        emptied = set()
        for i, block in enumerate(stash):
            if isinstance(block, str) and "<!--" in block:
                stash[i] = _COMMENT.sub("", block)
                if not stash[i].strip():
                    emptied.add(i)
        # a block that was only a comment would come back as an empty <p>: drop its placeholder paragraph
        return _PLACEHOLDER_P.sub(lambda m: "" if int(m.group(1)) in emptied else m.group(0), text) if emptied else text


class _HandbookExtension(Extension):
    """Our processors (heading ids, links, sections, comments), then the speed-ups of markdown_speed."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Python-Markdown's API)
        md.treeprocessors.register(_HeadingIds(md), "handbook_heading_ids", 6)  # after attr_list (8): keep {#id}
        md.treeprocessors.register(_LinkRewriter(md), "handbook_links", 5)
        md.treeprocessors.register(_Sections(md), "handbook_sections", 4)
        md.postprocessors.register(_DropComments(md), "handbook_comments", 35)  # before "raw_html" (30)
        install(md, Budget())
        speed_up(md)


def _new_converter() -> markdown.Markdown:
    return markdown.Markdown(
        # md_in_html is left out on purpose: it costs ~30% of conversion time and procedures do not need it
        # instances, not names: a name makes Python-Markdown scan every installed package's entry points
        # (importlib.metadata, ~50 ms of each process's first conversion)
        extensions=[TableExtension(), AttrListExtension(), FencedCodeExtension(), SaneListExtension(),
                    _HandbookExtension()],
        output_format="html",
    )


_converter: markdown.Markdown | None = None


def render_markdown(text: str) -> Rendered:
    """Convert TEXT; the converter is built once per process and reset between documents."""
    global _converter
    if _converter is None:
        _converter = _new_converter()
    md = _converter
    md.reset()
    try:
        converted = md.convert(text)
    # RecursionError: lists or quotes nested some 250 deep (Python-Markdown recurses per level);
    # MarkdownTooCostly: thousands of unmatched "[", "(" or "<", or of inline matches in a paragraph (markdown_budget)
    except (RecursionError, MarkdownTooCostly):
        _converter = None   # stopped half-way through a document: the next one gets a fresh converter
        raise
    html, files = _mark_files(converted)
    return Rendered(html, headings=list(getattr(md, "headings_out", [])),
                    sections=list(getattr(md, "sections_out", [])), links=list(getattr(md, "links_out", [])),
                    files=files)


# Tags that make the browser fetch or open a file, and their attributes that name it ("..." or '...').
_FILE_TAG = re.compile(r"<(?:img|a|video|audio|source|track)\s[^>]*>", re.I)
_FILE_ATTRIBUTE = re.compile(r"""(\s(src|href|poster|srcset)\s*=\s*)(["'])(.*?)\3""", re.I | re.S)


_CONTROLS = re.compile(r"[\x00-\x20]+")
_SCHEME_LIKE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")


def _mark_files(html_text: str) -> tuple[str, list[str]]:
    """Mark the local files HTML_TEXT uses (relative paths, not .md pages) with FILE_MARKER, and list them.

    Written beside a procedure (`![平面图](images/plan.png)`), they must reach site/ too, or a USB copy shows
    broken images. Only real tags are read: code shows `<img src=…>` escaped, as text.
    """
    files: list[str] = []

    def local(written: str) -> str:
        """WRITTEN (a URL as the HTML has it) marked, if it names a local file; else as it was."""
        value = html.unescape(written)
        try:
            parts = urlsplit(value)
        except ValueError:
            return written
        squeezed = _CONTROLS.sub("", value)   # as the safety check reads it: "java script:" is a scheme there
        if parts.scheme or parts.netloc or not parts.path or squeezed.startswith(("/", "\\", "@@")) or \
                _SCHEME_LIKE.match(squeezed) or markdown_path(parts.path):
            return written
        files.append(unquote(parts.path))
        return f"{FILE_MARKER}{written}"

    def attribute(m: re.Match[str]) -> str:
        if m.group(2).lower() == "srcset":  # "a.png 1x, a@2x.png 2x": each candidate's URL ends at a space
            value = ", ".join(" ".join([local(url), *rest]) for url, *rest in
                              (c.split() for c in m.group(4).split(",") if c.strip()))
        else:
            value = local(m.group(4))
        return f"{m.group(1)}{m.group(3)}{value}{m.group(3)}"

    if "src" not in html_text and "href" not in html_text:
        return html_text, files
    return _FILE_TAG.sub(lambda tag: _FILE_ATTRIBUTE.sub(attribute, tag.group(0)), html_text), files


# where a link target starts: after "](", "](<" or a reference definition's "]: "
_TARGET = re.compile(r"\](?:\(\s*<?|:\s*<?)")


def link_lines(text: str, links: list[tuple[str, str]], first_line: int = 1) -> list[tuple[str, str, int]]:
    """LINKS as (path, fragment, line): each on the line of TEXT where its path is next written.

    Problems name that line; a path written only in another form (percent-encoded) gets the body's first line.
    """
    starts = [m.end() for m in _TARGET.finditer(text)] if links else []  # one scan, not a regex per link
    found, start = [], 0
    for path, fragment in links:
        after = (starts[i] for i in range(bisect_left(starts, start), len(starts)) if text.startswith(path, starts[i]))
        at = next(after, None)
        if at is None:
            at = next((s for s in starts if text.startswith(path, s)), text.find(path))
        line = first_line + text.count("\n", 0, at) if at >= 0 else first_line
        start = at + len(path) if at >= 0 else start
        found.append((path, fragment, line))
    return found
