"""A work budget for one Markdown conversion: hostile text is refused in a second, not converted in minutes.

Python-Markdown reads a link's text by scanning from its "[" to the matching "]", its address from "(" to
the matching ")", and hands raw HTML to the standard library's HTMLParser, which looks for a tag's ">".
Without the closing character each of those scans runs to the end of the paragraph (of the document, for
HTML), once per opening character: a 30 KB paragraph of unmatched "[" took two minutes, of "<a " twenty
seconds, and a build stalls on one pasted log. A real procedure scans each character about once (a link's
text, then its address); the budget is many times that, counted in characters scanned, not in seconds, so
the same file gets the same answer on any machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import markdown
from markdown.htmlparser import HTMLExtractor
from markdown.preprocessors import HtmlBlockPreprocessor, Preprocessor

# Characters a conversion may scan: this many times the document's length, and this many on top (short
# documents with a few long links). Bundled procedures and the bench's scan under 3 times their length.
TIMES_LENGTH = 40
AT_LEAST = 1_000_000


class MarkdownTooCostly(Exception):
    """The conversion was stopped: CHAR (unmatched, and many) made it rescan the text past its budget."""

    def __init__(self, char: str) -> None:
        super().__init__(char)
        self.char = char


class Budget:
    """Characters scanned so far in one conversion, against its limit."""

    def __init__(self) -> None:
        self.left = 0

    def start(self, length: int) -> None:
        self.left = AT_LEAST + TIMES_LENGTH * length

    def spend(self, chars: int, char: str) -> None:
        self.left -= chars
        if self.left < 0:
            raise MarkdownTooCostly(char)


def install(md: markdown.Markdown, budget: Budget) -> None:
    """Count MD's bracket scans (link, image and reference patterns) and raw-HTML tag scans against BUDGET,
    which each conversion starts afresh."""
    md.preprocessors.register(_StartBudget(md, budget), "handbook_start_budget", 1000)  # before all others
    for pattern in md.inlinePatterns:
        if hasattr(pattern, "getText"):
            pattern.getText = _counted_text(pattern.getText, budget)
        if hasattr(pattern, "getLink"):
            pattern.getLink = _counted_link(pattern.getLink, budget)
    if "html_block" in md.preprocessors:
        md.preprocessors.register(_CountedHtmlBlocks(md, budget), "html_block", 20)


class _StartBudget(Preprocessor):
    def __init__(self, md: markdown.Markdown, budget: Budget) -> None:
        super().__init__(md)
        self.budget = budget

    def run(self, lines: list[str]) -> list[str]:
        self.budget.start(sum(map(len, lines)) + len(lines))
        return lines


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


class _CountedExtractor(HTMLExtractor):
    def __init__(self, md: markdown.Markdown, *args: Any, budget: Budget, **kwargs: Any) -> None:
        self.budget = budget
        super().__init__(md, *args, **kwargs)

    def _spend(self, i: int) -> None:
        end = self.rawdata.find(">", i)  # where the standard library's scan for this tag stops (memchr: cheap)
        self.budget.spend((len(self.rawdata) if end < 0 else end) - i, "<")

    def parse_starttag(self, i: int) -> int:
        self._spend(i)
        return super().parse_starttag(i)

    def parse_endtag(self, i: int) -> int:
        self._spend(i)
        return super().parse_endtag(i)

    def parse_html_declaration(self, i: int) -> int:
        self._spend(i)
        return super().parse_html_declaration(i)

    def parse_pi(self, i: int) -> int:
        self._spend(i)
        return super().parse_pi(i)
