"""Shortcuts around Python-Markdown's slowest steps, for documents that cannot use them: same HTML, less time.

Each skips work whose result is known in advance (a text no inline pattern can match, a pattern whose
triggers the document lacks, a document without "{" for attr_list or "\\" for unescape, a block only the
paragraph processor can take, a block without "|" for the table test) or that Python-Markdown repeats (listing
its registries, lower-casing tags). tests/test_markdown.py checks that the HTML is exactly what stock
Python-Markdown makes, on the bundled procedures and on random documents of tricky pieces.
Converting 100 of the bench's procedures: 1,107 M instructions with the inline, attr_list and table
shortcuts alone (callgrind), 634 M with all of them. Those three had taken 1,000 procedures from 3.0 to 1.6 s
of CPU, measured when they were added.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import markdown
from markdown import inlinepatterns
from markdown.blockparser import BlockParser
from markdown.blockprocessors import BlockProcessor
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString, Registry


def speed_up(md: markdown.Markdown) -> None:
    """Install the shortcuts on MD (after its extensions registered their processors)."""
    md.treeprocessors.register(_SkipPlainText(md), "handbook_skip_plain", 21)  # just before "inline" (20)
    # attr_list visits every element (~8% of a conversion) but has nothing to do without a "{"; unescape
    # (~4%) restores backslash escapes, which only a "\" in the source makes
    for name, priority, char in (("attr_list", 8, "{"), ("unescape", 0, "\\")):
        if name in md.treeprocessors:
            md.treeprocessors.register(_OnlyIf(md, md.treeprocessors[name], char), name, priority)
    md.is_block_level = _remembered(md.is_block_level)  # type: ignore[method-assign]
    if "inline" in md.treeprocessors:  # last of the preprocessors (stock ones: 30 to 20), see its docstring
        md.preprocessors.register(_ReadDocument(md), "handbook_read_document", 1)
    if "table" in md.parser.blockprocessors:  # every row of a table has a "|": most blocks need no closer look
        table = md.parser.blockprocessors["table"]
        stock_test = table.test
        table.test = lambda parent, block: "|" in block and stock_test(parent, block)
    blocks = md.parser.blockprocessors
    if _names_in_order(blocks) == _STOCK_BLOCKS:  # the processors _maybe_special knows
        blocks.register(_PlainParagraph(md.parser, blocks["paragraph"]), "handbook_plain_paragraph", 200)
    md.parser.blockprocessors = _ListedOnce.of(blocks)


class _ListedOnce(Registry):
    """A Registry that lists its items in order once (again after a change), not on every iteration.

    Why: the block parser walks its processors for every block (~50 times a procedure), and a Registry builds
    a new list each time (~5% of a conversion)."""

    _listed: tuple | None = None

    @classmethod
    def of(cls, registry: Registry) -> _ListedOnce:
        copy = cls()
        for item in list(registry._priority):  # a copy: looking an item up sorts the registry's own list
            copy.register(registry[item.name], item.name, item.priority)
        return copy

    def __iter__(self) -> Iterator:
        if self._listed is None:
            self._listed = tuple(super().__iter__())
        return iter(self._listed)

    def register(self, item: object, name: str, priority: float) -> None:
        self._listed = None
        super().register(item, name, priority)

    def deregister(self, name: str, strict: bool = True) -> None:
        self._listed = None
        super().deregister(name, strict)


def _names_in_order(registry: Registry) -> tuple[str, ...]:
    """REGISTRY's names in the order it runs them (highest priority first; its own list may be unsorted)."""
    return tuple(item.name for item in sorted(registry._priority, key=lambda item: item.priority, reverse=True))


# The block processors Python-Markdown runs with our extensions, in order. A block none of them but the last
# can take is a paragraph.
_STOCK_BLOCKS = ("empty", "indent", "code", "table", "hashheader", "setextheader", "hr", "olist", "ulist", "quote",
                 "reference", "paragraph")
# Together, _maybe_special's checks find every block one of the others might take (and more).
_LEAD = re.compile(r"\s|\d|[*+-][ ]|[-_*][-_* ]*(?:\n|\Z)")  # indented, led by a blank line; an item; a rule
_LATER_LINE = re.compile(r"\n[ ]*[-=_*]")  # a rule or a setext heading's underline on a later line


def _maybe_special(block: str) -> bool:
    """Might a processor other than the paragraph one take BLOCK? Plain `in` tests first: one regex with all
    the alternatives tried them at every character of the block (~5 µs a paragraph)."""
    return (not block or "|" in block or "#" in block or ">" in block or "]:" in block  # a table row, a #
            or _LEAD.match(block) is not None                     # heading, a quote, a reference definition
            or ("\n" in block and _LATER_LINE.search(block) is not None))


class _PlainParagraph(BlockProcessor):
    """A block that no other block processor can take, handed to the paragraph processor at once.

    Why: Python-Markdown asks each block processor in turn whether a block is its kind; a paragraph (most
    blocks of a procedure, list items' text included) answers eleven tests before the last one takes it,
    ~10% of a conversion. One regex, in C, rules them all out.
    """

    def __init__(self, parser: BlockParser, paragraph: BlockProcessor):
        super().__init__(parser)
        self.paragraph = paragraph

    def test(self, parent: etree.Element, block: str) -> bool:
        return not _maybe_special(block)

    def run(self, parent: etree.Element, blocks: list[str]) -> bool | None:
        return self.paragraph.run(parent, blocks)


class _SkipPlainText(Treeprocessor):
    """Mark text that no inline pattern can match as atomic, so the inline pass skips it.

    Why: most of a procedure is plain Chinese prose and table cells; Python-Markdown's inline pass still
    tries every pattern on every text through a slow per-pattern loop (about 40% of conversion time).
    Asking the patterns' own regexes first, in C, gives the same answer: a text none of them can match
    comes out of the inline pass unchanged.
    """

    def run(self, root: etree.Element) -> None:
        searches = _triggers(self.md).searches
        search = searches[0] if len(searches) == 1 else lambda text: any(s(text) for s in searches)
        for el in root.iter():
            text, tail = el.text, el.tail
            if text and not isinstance(text, AtomicString) and not search(text):
                el.text = AtomicString(text)
            if tail and not isinstance(tail, AtomicString) and not search(tail):
                el.tail = AtomicString(tail)


# Python-Markdown's inline patterns (by their regex constant) and the strings one of which every match of
# each contains: a text with none of them cannot match. Patterns not listed are asked with their own regex.
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "BACKTICK_RE": ("`",), "ESCAPE_RE": ("\\",), "LINK_RE": ("[",), "REFERENCE_RE": ("[",),
    "IMAGE_LINK_RE": ("!",), "IMAGE_REFERENCE_RE": ("!",), "AUTOLINK_RE": ("<",), "AUTOMAIL_RE": ("<",),
    "HTML_RE": ("<",), "ENTITY_RE": ("&",), "LINE_BREAK_RE": ("  \n",), "NOT_STRONG_RE": ("*", "_"),
    "EM_STRONG_RE": ("*",), "STRONG_EM_RE": ("*",), "STRONG_EM3_RE": ("*",), "STRONG_RE": ("*",),
    "EMPHASIS_RE": ("*",), "EM_STRONG2_RE": ("_",), "STRONG_EM2_RE": ("_",), "SMART_STRONG_RE": ("_",),
    "SMART_EMPHASIS_RE": ("_",), "SMART_STRONG_EM_RE": ("_",),
}
_TRIGGER_PATTERNS = {r"\*|_": ("*", "_")}  # patterns written in place, not as a constant (the delimiter processor)


def _known_triggers() -> dict[str, tuple[str, ...]]:
    """{a pattern's regex: the strings one of which each of its matches contains}."""
    known = {getattr(inlinepatterns, name): need for name, need in _TRIGGERS.items() if hasattr(inlinepatterns, name)}
    return known | _TRIGGER_PATTERNS


@dataclass
class _Triggers:
    """What the shortcuts know of MD's inline patterns, made once per set of patterns (see _triggers)."""

    count: int      # how many patterns it was made from: a pattern registered later remakes it
    table: list     # each pattern with the strings one of which its every match contains (None: unknown)
    searches: list  # search functions that together find every text some pattern could match: one regex, in
                    # C, for the patterns in _TRIGGERS; any other (an extension's) is asked with its own regex

    @classmethod
    def of(cls, md: markdown.Markdown) -> _Triggers:
        known = _known_triggers()
        table = [(p, known.get(getattr(p, "pattern", None))) for p in md.inlinePatterns]
        needs = {n for _, need in table if need for n in need}
        searches = [p.getCompiledRegExp().search for p, need in table if need is None]
        chars = "".join(re.escape(c) for c in sorted(n for n in needs if len(n) == 1))
        alternatives = [re.escape(n) for n in sorted(needs) if len(n) > 1] + ([f"[{chars}]"] if chars else [])
        if alternatives:
            searches.insert(0, re.compile("|".join(alternatives)).search)
        return cls(len(md.inlinePatterns), table, searches)


def _triggers(md: markdown.Markdown) -> _Triggers:
    found = getattr(md, "handbook_triggers", None)
    if found is None or found.count != len(md.inlinePatterns):
        found = md.handbook_triggers = _Triggers.of(md)  # type: ignore[attr-defined]
    return found


class _ReadDocument(Preprocessor):
    """Look once at the text the block parser gets, for what later steps may skip.

    - The characters some processor needs (NEEDED): without a "{" attr_list has nothing to find, without a
      "\\" unescape (_OnlyIf).
    - The inline patterns that can match somewhere in the document. For each text that holds some pattern's
      trigger (a bold lead-in, a link), Python-Markdown tries all ~14 patterns in turn, each through a slow
      Python loop. A pattern whose triggers the whole document lacks fails on every text, and a failed pattern
      changes nothing (the next one starts from the text's beginning either way), so leaving it out gives the
      same HTML. The list is a tuple, not Python-Markdown's Registry, which sorts and looks up by name on
      every index.

    Runs after the other preprocessors: two of them make a line break's "  \n" the author never typed
    (normalize_whitespace expands tabs; html_block ends an indented block tag's line after its indent).
    """

    NEEDED = ("{", "\\")

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        self.md.handbook_chars = {c for c in self.NEEDED if c in text}  # type: ignore[attr-defined]
        self.md.treeprocessors["inline"].inlinePatterns = tuple(
            pattern for pattern, need in _triggers(self.md).table if need is None or any(n in text for n in need))
        return lines


class _OnlyIf(Treeprocessor):
    """INNER, run only on documents that hold CHAR (see _ReadDocument)."""

    def __init__(self, md: markdown.Markdown, inner: Treeprocessor, char: str):
        super().__init__(md)
        self.inner, self.char = inner, char

    def run(self, root: etree.Element) -> None:
        if self.char in getattr(self.md, "handbook_chars", self.char):
            self.inner.run(root)

    def __getattr__(self, name: str) -> object:
        """The rest is INNER's: Python-Markdown's inline patterns read treeprocessors["unescape"].RE."""
        if name == "inner":  # not set yet (a copy being made): no endless recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def _remembered(is_block_level: Callable[[object], bool]) -> Callable[[object], bool]:
    """MD.is_block_level, each tag's answer kept: it lower-cases and looks up every tag of every element
    (~130,000 calls for 1,000 procedures). Its list of block-level tags is fixed once the extensions loaded;
    the tags asked about are those of the elements Python-Markdown makes (authors' raw HTML stays text), a
    few dozen, so the answers kept stay few in a long-lived --watch."""
    known: dict[object, bool] = {}

    def remembered(tag: object) -> bool:
        try:
            return known[tag]
        except KeyError:
            known[tag] = found = is_block_level(tag)
            return found

    return remembered
