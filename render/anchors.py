"""Anchors and link markers: what the builder needs of rendered pages without the Markdown converter.

Kept apart from render/markdown.py so that the index and render steps do not import Python-Markdown: a one-off
rebuild converts its few changed files in a forked process (handbook/parallel.py), which alone imports it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

LINK_MARKER = "@@doc:"
FILE_MARKER = "@@file:"   # a local file (image, video, PDF) the page uses: the builder copies it and points here
_STRIP = re.compile(r"[^\w\s-]")
_NUMBERED = re.compile(r"^(.*)_([0-9]+)$")
_SPACES = re.compile(r"\s+")


def markdown_path(written: str) -> str | None:
    """The source path a link's path names if it is a Markdown file (`a.md`, `Key.MD`, `a%2Emd`, `a.md/`),
    else None. One rule for every reader of links: anything it names is a page, never a file to publish
    (a link that slipped past as a "file" had copied a staff-only procedure's source into the public tree)."""
    path = unquote(written).replace("\\", "/").rstrip("/")
    return path if path.lower().endswith(".md") else None


def slugify(value: str, separator: str = "-") -> str:
    """Make a GitHub-style anchor that keeps CJK: '4.2 派工' → '42-派工', '一、目的' → '一目的'."""
    value = unicodedata.normalize("NFKC", value).strip().lower()
    value = _STRIP.sub("", value)
    return _SPACES.sub(separator, value).strip(separator) or "section"


# Ids the page templates and search.js give their own elements: a heading "Main" or "ES Page" must not take
# one (a second id="es-page" broke the page's search script). tests/test_markdown.py checks the list is whole.
RESERVED_IDS = frozenset({"main", "es-page", "es-page-q", "es-q", "es-dropdown", "h-contact", "h-depts", "h-guides",
                          "h-notices"})
RESERVED_PREFIX = "es-dropdown-"   # search.js numbers the drop-down's options es-dropdown-0, es-dropdown-1…


def unique_anchor(anchor: str, used: set[str]) -> str:
    """`anchor`, or `anchor_1`, `anchor_2`… (the toc extension's numbering, so existing links keep working)."""
    while anchor in used or not anchor:
        m = _NUMBERED.match(anchor)
        anchor = f"{m.group(1)}_{int(m.group(2)) + 1}" if m else f"{anchor}_1"
    used.add(anchor)
    return anchor


def own_anchor(text: str) -> str:
    """TEXT's anchor, kept out of the prefix the page's search script numbers its own elements with."""
    anchor = slugify(text)
    return f"section-{anchor}" if anchor.startswith(RESERVED_PREFIX) else anchor


def anchors_for(names: list[str]) -> dict[str, str]:
    """Each of NAMES' anchor on one page (the records page's registers): numbered apart when two names make
    the same one (《值班记录》 and 值班记录), never an id the page's own elements use."""
    used = set(RESERVED_IDS)
    return {name: unique_anchor(own_anchor(name), used) for name in names}


def find_anchor(headings: list, fragment: str) -> str | None:
    """The anchor of the heading a link's FRAGMENT names, as readers write it: the anchor itself (an explicit
    {#Id} keeps its case), the heading's text, or its text in anchor form; None if no heading matches."""
    anchors = [h.anchor for h in headings]
    if fragment in anchors:
        return fragment
    wanted = slugify(fragment)
    if wanted in anchors:
        return wanted
    # an explicit {#Escalate-Now} linked as #escalate-now; then a heading whose anchor was numbered away
    # from its text ("Main" → main_1, beside the page's own id="main")
    return next((a for a in anchors if slugify(a) == wanted), None) or \
        next((h.anchor for h in headings if slugify(h.text) == wanted), None)


__all__ = ["FILE_MARKER", "LINK_MARKER", "RESERVED_IDS", "RESERVED_PREFIX", "anchors_for", "find_anchor", "markdown_path",
           "own_anchor", "slugify", "unique_anchor"]
