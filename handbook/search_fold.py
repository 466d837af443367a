"""Fold text the way search compares it: NFKC, lower case, Traditional → Simplified, punctuation dropped.

The browser (`render/static/search.js`) folds with the same per-character rule, so this module is
the reference the tests check the JavaScript against. Folding is per character and never changes
where a character sits in the text, so a match in folded text maps back to the text as written.

The Traditional → Simplified table comes from OpenCC's maintained data (the `opencc` package) at
build time; the browser gets only the pairs whose Simplified side occurs in the indexed text.
"""

from __future__ import annotations

import logging
import unicodedata
from functools import cache

log = logging.getLogger(__name__)

# Basic CJK blocks that OpenCC's character table covers (astral extensions are rare in SOPs).
CJK_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
# Traditional spellings OpenCC's character table leaves alone because the character is also Simplified
# in other words (著名, 瞭望, 慰藉) or is a Hong Kong form (衞): folded anyway, so 著裝 finds 着装 and
# 瞭解 finds 了解. Folding both spellings of 显著 to 显着 costs nothing: index and query fold alike.
EXTRA_T2S = {"著": "着", "瞭": "了", "藉": "借", "衞": "卫", "粧": "妆", "敍": "叙", "甦": "苏"}
# Unicode categories ignored by search: punctuation, separators (spaces), symbols, controls.
DROPPED_CATEGORIES = ("P", "Z", "S", "C")


@cache
def t2s_table() -> dict[str, str]:
    """Map every Traditional character that OpenCC simplifies to a single character."""
    import opencc  # imported lazily: only the build needs it

    chars = [chr(cp) for start, end in CJK_BLOCKS for cp in range(start, end + 1)]
    converter = opencc.OpenCC("t2s")
    # one call for all 28,000 characters, one a line (so no two form a phrase): 4× faster than one call each
    converted = converter.convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):  # OpenCC changed how it treats line breaks: ask per character
        converted = [converter.convert(ch) for ch in chars]
    table = {ch: out for ch, out in zip(chars, converted, strict=True) if out != ch and len(out) == 1}
    table.update(EXTRA_T2S)
    log.debug("OpenCC t2s: %d characters differ", len(table))
    return table


@cache
def fold_char(ch: str) -> str:
    """Fold one character; return "" if search ignores it (memoised: texts reuse a few thousand characters)."""
    norm = unicodedata.normalize("NFKC", ch)
    if len(norm) != 1:
        norm = ch
    low = norm.lower()
    if len(low) == 1:
        norm = low
    norm = t2s_table().get(norm, norm)
    if unicodedata.category(norm)[0] in DROPPED_CATEGORIES:
        return ""
    return norm


def fold(text: str) -> str:
    """Fold a string: the form that index and query are compared in."""
    return "".join(map(fold_char, text))


def folded_alphabet(*texts: str) -> set[str]:
    """The folded characters that occur in TEXTS (folding each distinct character once)."""
    return fold_points(code_points(*texts))


def code_points(*texts: str) -> set[int]:
    """The distinct code points of TEXTS."""
    points: set[int] = set()
    for text in texts:
        # ints from a UTF-32 buffer: twice as fast as a set of 1-character strings
        points.update(memoryview(text.encode("utf-32-le", "surrogatepass")).cast("I"))
    return points


def fold_points(points: set[int]) -> set[str]:
    """The folded characters of code POINTS, without those search ignores."""
    return {f for f in map(fold_char, map(chr, points)) if f}


def browser_map(alphabet: set[str]) -> str:
    """Return the Traditional→Simplified pairs, concatenated, whose Simplified side is in ALPHABET."""
    pairs = sorted((t, s) for t, s in t2s_table().items() if s in alphabet)
    return "".join(t + s for t, s in pairs)
