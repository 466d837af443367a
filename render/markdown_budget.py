"""A work budget for one Markdown conversion: hostile text is refused in a second, not converted in minutes.

Python-Markdown reads a link's text by scanning from its "[" to the matching "]", its address from "(" to
the matching ")", and hands raw HTML to the standard library's HTMLParser, which looks for a tag's ">".
Without the closing character each of those scans runs to the end of the paragraph (of the document, for
HTML), once per opening character: a 30 KB paragraph of unmatched "[" took two minutes, of "<a " twenty
seconds, and a build stalls on one pasted log. Thousands of inline matches in one paragraph (emphasis, code
spans, escapes) cost the square of its length too, in C, and are counted at a discount. A real procedure scans
each character about once (a link's text, then its address); the budget is many times that, counted in work
done, not in seconds, so the same file gets the same answer on any machine.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import markdown
from markdown.htmlparser import HTMLExtractor
from markdown.inlinepatterns import InlineProcessor
from markdown.preprocessors import HtmlBlockPreprocessor, Preprocessor

# Characters a conversion may scan: this many times the document's length, and this many on top (short
# documents with a few long links). Bundled procedures and the bench's scan under 3 times their length.
TIMES_LENGTH = 40
AT_LEAST = 1_000_000


class MarkdownTooCostly(Exception):
    """The conversion was stopped: CHAR (unmatched, and many; or, not UNMATCHED, markup matched thousands of
    times in one paragraph) made it rescan the text past its budget."""

    def __init__(self, char: str, unmatched: bool = True) -> None:
        super().__init__(char)
        self.char = char
        self.unmatched = unmatched


class Budget:
    """Characters scanned so far in one conversion, against its limit."""

    def __init__(self) -> None:
        self.left = 0

    def start(self, length: int) -> None:
        self.left = AT_LEAST + TIMES_LENGTH * length

    def spend(self, chars: int, char: str, unmatched: bool = True) -> None:
        self.left -= chars
        if self.left < 0:
            raise MarkdownTooCostly(char, unmatched)


def install(md: markdown.Markdown, budget: Budget) -> None:
    """Count MD's bracket scans (link, image and reference patterns) and raw-HTML tag scans against BUDGET,
    which each conversion starts afresh."""
    md.preprocessors.register(_StartBudget(md, budget), "handbook_start_budget", 1000)  # before all others
    for pattern in md.inlinePatterns:
        if isinstance(pattern, InlineProcessor):
            pattern.handleMatch = _counted_match(pattern.handleMatch, budget)  # type: ignore[method-assign]
        if hasattr(pattern, "getText"):
            pattern.getText = _counted_text(pattern.getText, budget)
        if hasattr(pattern, "getLink"):
            pattern.getLink = _counted_link(pattern.getLink, budget)
    inline = md.treeprocessors["inline"] if "inline" in md.treeprocessors else None  # noqa: SIM401 (no get)
    if hasattr(inline, _PLACE_CHILD):
        setattr(inline, _PLACE_CHILD, _counted_place(getattr(inline, _PLACE_CHILD), budget))
    if "html_block" in md.preprocessors:
        md.preprocessors.register(_CountedHtmlBlocks(md, budget), "html_block", 20)


class _StartBudget(Preprocessor):
    def __init__(self, md: markdown.Markdown, budget: Budget) -> None:
        super().__init__(md)
        self.budget = budget

    def run(self, lines: list[str]) -> list[str]:
        self.budget.start(sum(map(len, lines)) + len(lines))
        return lines


# Python-Markdown rewrites the whole paragraph for each inline match (its placeholder goes in): thousands of
# matches in one paragraph cost the square of its length (100,000 backslashes: 10 s). That work is in C, some
# hundred times cheaper a character than the scans above; at 256, one 180 KB paragraph of 3,000 links and
# 3,000 tags stays well within (tests/test_build_validation.py).
REWRITE_DISCOUNT = 256


def _counted_match(handle_match: Callable, budget: Budget) -> Callable:
    @functools.wraps(handle_match)
    def counted(m: re.Match, data: str) -> Any:
        found = handle_match(m, data)  # (element or None, start, end)
        if found[0] is not None:
            budget.spend(len(data) // REWRITE_DISCOUNT, m.group(0)[:1], unmatched=False)
        return found
    return counted


# ... and puts each new child of an element in place by looking it up among all of them (list(node).index): an
# element of thousands of children ("**" + "*a*" x 33,000) costs the square of their number, again in C.
_PLACE_CHILD = "_InlineProcessor__processElementText"   # Python-Markdown's (private) method that does it
CHILD_DISCOUNT = 8


def _counted_place(place: Callable, budget: Budget) -> Callable:
    @functools.wraps(place)
    def counted(node: Any, subnode: Any, isText: bool = True) -> Any:  # noqa: N803 (Python-Markdown's name)
        if not isText and node is not subnode:
            budget.spend(len(node) // CHILD_DISCOUNT, "", unmatched=False)
        return place(node, subnode, isText)
    return counted


def _counted_text(get_text: Callable, budget: Budget) -> Callable:
    @functools.wraps(get_text)
    def counted(data: str, index: int) -> Any:
        found = get_text(data, index)  # (text, index after the "]" or the end, found)
        budget.spend(found[1] - index, "[")
        return found
    return counted


def _counted_link(get_link: Callable, budget: Budget) -> Callable:
    @functools.wraps(get_link)
    def counted(data: str, index: int) -> Any:
        found = get_link(data, index)  # (href, title, index, found); not found after a "(": scanned to the end
        budget.spend(found[2] - index if found[3] else (len(data) - index) * data.startswith("(", index), "(")
        return found
    return counted


class _CountedHtmlBlocks(HtmlBlockPreprocessor):
    """Python-Markdown's raw-HTML step, with each tag's search for its ">" counted."""

    def __init__(self, md: markdown.Markdown, budget: Budget) -> None:
        super().__init__(md)
        self.budget = budget

    def run(self, lines: list[str]) -> list[str]:
        parser = _CountedExtractor(self.md, budget=self.budget)
        parser.feed("\n".join(lines))
        parser.close()
        return "".join(parser.cleandoc).split("\n")


def _spending(stock: Callable) -> Callable:
    """STOCK (one of HTMLParser's parse_* methods for something that starts "<"), its scan counted first."""
    @functools.wraps(stock)
    def parse(self: _CountedExtractor, i: int) -> int:
        end = self.rawdata.find(">", i)  # where the standard library's scan for this tag stops (memchr: cheap)
        self.budget.spend((len(self.rawdata) if end < 0 else end) - i, "<")
        return stock(self, i)
    return parse


class _CountedExtractor(HTMLExtractor):
    def __init__(self, md: markdown.Markdown, *args: Any, budget: Budget, **kwargs: Any) -> None:
        self.budget = budget
        super().__init__(md, *args, **kwargs)

    parse_starttag = _spending(HTMLExtractor.parse_starttag)
    parse_endtag = _spending(HTMLExtractor.parse_endtag)
    parse_html_declaration = _spending(HTMLExtractor.parse_html_declaration)
    parse_pi = _spending(HTMLExtractor.parse_pi)
