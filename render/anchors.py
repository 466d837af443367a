"""Anchors and link markers: what the builder needs of rendered pages without the Markdown converter.

Kept apart from render/markdown.py so that the index and render steps do not import Python-Markdown: a one-off
rebuild converts its few changed files in a forked process (handbook/parallel.py), which alone imports it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from render.writer import Taken

LINK_MARKER = "@@doc:"
FILE_MARKER = "@@file:"   # a local file (image, video, PDF) the page uses: the builder copies it and points here
_STRIP = re.compile(r"[^\w\s-]")
_NUMBERED = re.compile(r"^(.*)_([0-9]{1,9})$")
_SPACES = re.compile(r"\s+")


def markdown_path(written: str) -> str | None:
    """The source path a link's path names if it is a Markdown file (`a.md`, `Key.MD`, `a%2Emd`, `a.md/`),
    else None. One rule for every reader of links: anything it names is a page, never a file to publish
    (a link that slipped past as a "file" had copied a staff-only procedure's source into the public tree)."""
    path = unquote(written).replace("\\", "/").rstrip("/")
    return path if path.lower().endswith(".md") else None


SLUG_FROM = 1000  # characters of a text its anchor is made from


def slugify(value: str, separator: str = "-") -> str:
    """Make a GitHub-style anchor that keeps CJK: '4.2 派工' → '42-派工', '一、目的' → '一目的'.

    From the first SLUG_FROM characters only: Unicode normalization sorts a run of combining marks in quadratic
    time, and a tag of 80,000 of them had taken a build 33 s (a real heading is far shorter than the limit).
    """
    value = unicodedata.normalize("NFKC", value[:SLUG_FROM]).strip().lower()
    value = _STRIP.sub("", value)
    return _SPACES.sub(separator, value).strip(separator) or "section"


# Ids the page templates and search.js give their own elements: a heading "Main" or "ES Page" must not take
# one (a second id="es-page" broke the page's search script). tests/test_markdown.py checks the list is whole.
RESERVED_IDS = frozenset({"main", "es-page", "es-page-q", "es-q", "es-dropdown", "h-contact", "h-depts", "h-guides",
                          "h-notices"})
RESERVED_PREFIX = "es-dropdown-"   # search.js numbers the drop-down's options es-dropdown-0, es-dropdown-1…


Used = Taken  # the ids taken on one page


def unique_anchor(anchor: str, used: Taken) -> str:
    """`anchor`, or `anchor_1`, `anchor_2`… (the toc extension's numbering, so existing links keep working),
    each walk going on where the last one from the same start stopped (see Taken).
    A number of more than nine digits is text, not a count ("a_999…9" with 5,000 nines had crashed int()).
    """
    if anchor and anchor not in used:
        used.add(anchor)
        return anchor
    m = _NUMBERED.match(anchor)
    base, n = (m.group(1), int(m.group(2)) + 1) if m else (anchor, 1)
    (found,) = used.first_free((base, n), lambda k: (f"{base}_{k}",), n)
    return found


def own_anchor(text: str) -> str:
    """TEXT's anchor, kept out of the prefix the page's search script numbers its own elements with."""
    anchor = slugify(text)
    return f"section-{anchor}" if anchor.startswith(RESERVED_PREFIX) else anchor


def anchors_for(names: list[str]) -> dict[str, str]:
    """Each of NAMES' anchor on one page (the records page's registers): numbered apart when two names make
    the same one (《值班记录》 and 值班记录), never an id the page's own elements use."""
    used = Used(RESERVED_IDS)
    return {name: unique_anchor(own_anchor(name), used) for name in names}


def find_anchor(headings: list, fragment: str) -> str | None:
    """The anchor of the heading a link's FRAGMENT names, as readers write it: the anchor itself (an explicit
    {#Id} keeps its case), the heading's text, or its text in anchor form; None if no heading matches."""
    anchors, by_anchor, by_text = _heading_index(headings)
    if fragment in anchors:
        return fragment
    wanted = slugify(fragment)
    if wanted in anchors:
        return wanted
    # an explicit {#Escalate-Now} linked as #escalate-now; then a heading whose anchor was numbered away
    # from its text ("Main" → main_1, beside the page's own id="main")
    return by_anchor.get(wanted) or by_text.get(wanted)


_INDEXES: dict[int, tuple[list, tuple]] = {}  # id(headings) -> (headings, their index): one per linked page
_INDEXES_MAX = 512


def _heading_index(headings: list) -> tuple[set[str], dict[str, str], dict[str, str]]:
    """HEADINGS' anchors, and each anchor by its own and by its text's anchor form (the first heading wins).

    Made once per page's headings, not per link: 3,000 links into a page of 3,000 headings made 2 M anchors."""
    found = _INDEXES.get(id(headings))
    if found is not None and found[0] is headings:
        return found[1]
    by_anchor: dict[str, str] = {}
    by_text: dict[str, str] = {}
    for h in headings:
        by_anchor.setdefault(slugify(h.anchor), h.anchor)
        by_text.setdefault(slugify(h.text), h.anchor)
    if len(_INDEXES) >= _INDEXES_MAX:
        _INDEXES.clear()
    index = ({h.anchor for h in headings}, by_anchor, by_text)
    _INDEXES[id(headings)] = (headings, index)
    return index


__all__ = ["FILE_MARKER", "LINK_MARKER", "RESERVED_IDS", "RESERVED_PREFIX", "anchors_for", "find_anchor", "markdown_path",
           "own_anchor", "slugify", "unique_anchor", "Used"]
