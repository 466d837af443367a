"""Shortcuts around Python-Markdown's slowest steps, for documents that cannot use them: same HTML, less time.

Each skips work whose result is known in advance (a text no inline pattern can match, a document without
"{" for attr_list, a block without "|" for the table test). tests/test_markdown.py checks that the HTML is
exactly what stock Python-Markdown makes. Together: 3.0 s → 1.6 s of CPU for 1,000 procedures.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree

import markdown
from markdown import inlinepatterns
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString


def speed_up(md: markdown.Markdown) -> None:
    """Install the shortcuts on MD (after its extensions registered their processors)."""
    md.treeprocessors.register(_SkipPlainText(md), "handbook_skip_plain", 21)  # just before "inline" (20)
    if "attr_list" in md.treeprocessors:
        md.preprocessors.register(_NoteBraces(md), "handbook_braces", 100)
        md.treeprocessors.register(_AttrListIfBraces(md, md.treeprocessors["attr_list"]), "attr_list", 8)
    if "table" in md.parser.blockprocessors:  # every row of a table has a "|": most blocks need no closer look
        table = md.parser.blockprocessors["table"]
        stock_test = table.test
        table.test = lambda parent, block: "|" in block and stock_test(parent, block)


class _SkipPlainText(Treeprocessor):
    """Mark text that no inline pattern can match as atomic, so the inline pass skips it.

    Why: most of a procedure is plain Chinese prose and table cells; Python-Markdown's inline pass still
    tries every pattern on every text through a slow per-pattern loop (about 40% of conversion time).
    Asking the patterns' own regexes first, in C, gives the same answer: a text none of them can match
    comes out of the inline pass unchanged.
    """

    def run(self, root: etree.Element) -> None:
        searches = _pattern_searches(self.md)

        def plain(text: str | None) -> bool:
            return bool(text) and not isinstance(text, AtomicString) and not any(s(text) for s in searches)

        for el in root.iter():
            if plain(el.text):
                el.text = AtomicString(el.text)
            if plain(el.tail):
                el.tail = AtomicString(el.tail)


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


def _pattern_searches(md: markdown.Markdown) -> list:
    """Search functions that together find every text some inline pattern of MD could match.

    One regex covers the patterns in _TRIGGERS (a single scan in C); any other pattern, e.g. one an
    extension adds, is asked with its own regex.
    """
    known = {getattr(inlinepatterns, name): need for name, need in _TRIGGERS.items() if hasattr(inlinepatterns, name)}
    needs: set[str] = set()
    searches = []
    for pattern in md.inlinePatterns:
        need = known.get(getattr(pattern, "pattern", None))
        if need is None:
            searches.append(pattern.getCompiledRegExp().search)
        else:
            needs.update(need)
    chars = "".join(re.escape(c) for c in sorted(n for n in needs if len(n) == 1))
    alternatives = [re.escape(n) for n in sorted(needs) if len(n) > 1] + ([f"[{chars}]"] if chars else [])
    if alternatives:
        searches.insert(0, re.compile("|".join(alternatives)).search)
    return searches


class _NoteBraces(Preprocessor):
    """Note whether the document has a "{" at all: without one, attr_list has nothing to find."""

    def run(self, lines: list[str]) -> list[str]:
        self.md.handbook_braces = any("{" in line for line in lines)  # type: ignore[attr-defined]
        return lines


class _AttrListIfBraces(Treeprocessor):
    """attr_list, run only on documents with a "{" (it visits every element: ~8% of a conversion)."""

    def __init__(self, md: markdown.Markdown, inner: Treeprocessor):
        super().__init__(md)
        self.inner = inner

    def run(self, root: etree.Element) -> None:
        if getattr(self.md, "handbook_braces", True):
            self.inner.run(root)
