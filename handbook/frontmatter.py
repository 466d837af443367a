"""The front matter almost every file has, read without YAML: one `key: value` a line, in a few plain forms.

Why: PyYAML reads a front-matter block in ~0.3 ms (composing its nodes in Python, even with libyaml) and takes
~20 ms to import; a one-off rebuild's parser then imports it for one file. This reader takes the forms the
procedures are written in (plain text, quoted text, dates and versions, `[a, b]` lists) and answers exactly
what handbook/parse.py's YAML reading makes of them: versions and dates as written, True/False only for
YAML's boolean words. Anything else (a comment after a value, an indented line, an escape, an anchor, a
word YAML reads as a boolean or null, a duplicate key…) returns None, and YAML reads the block as before:
tests/test_frontmatter.py compares the two on random blocks of tricky lines.
"""

from __future__ import annotations

import re
from typing import Any

_KEY_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,99}):(?: +(.*))?\Z")  # longer keys: YAML's (it refuses >1,024)
_DOUBLE = re.compile(r'"([^"\\]*)" *\Z')
_SINGLE = re.compile(r"'([^']*)' *\Z")
_FLOW = re.compile(r"\[([^\[\]{}\"'#:]*)\] *\Z")
# Characters YAML cannot take as they are: its reader refuses them (controls, BOM), or they change how a line
# reads (tab, CR, NEL and the Unicode line and paragraph separators). Listed, not as the complement of what
# it takes: a class of everything else takes ~15 ms to compile.
_UNUSUAL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
# A value led by a digit or sign that YAML may read as a number: it has only the characters YAML's numbers
# are written with. Of those, versions (1.8, 1.10, 2.0.1) and dates (2026-01-15) are taken as written, as
# parse.py keeps them; the rest (0x1F, 1_000, 1:20, 4,301 digits) is left to YAML, which may refuse it. A
# value with any other character ("2027 年度通知") is text, or a date and time, which parse.py also keeps.
_NUMBER_ALPHABET = re.compile(r"[-+.0-9_:A-Za-z]+\Z")
_PLAIN_NUMBER = re.compile(r"(?:\d{1,20}(?:\.\d{1,20}){0,3}|\d{4}-\d\d-\d\d)\Z")
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_NUMBER_LIKE = frozenset("-+.0123456789<=~")  # a number, a date, or YAML's merge/value/null marks
# YAML 1.1 words for true/false/null: PyYAML turns them into bool/None (keys included)
_WORDS = frozenset({"yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
                    "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~"})
_BOOLS = {w: w.lower() in ("yes", "true", "on") for w in _WORDS - {"null", "Null", "NULL", "~"}}


def read_simple(block: str) -> tuple[dict[str, Any], dict[str, int]] | None:
    """(fields, line of each field) of BLOCK (the text between the --- lines, the first --- being the file's
    line 1), or None when BLOCK holds anything but the simple forms: YAML must read it then."""
    if "\r\n" in block:  # a file saved on Windows: YAML reads CR LF as one line break
        block = block.replace("\r\n", "\n")
    if _UNUSUAL.search(block):
        return None
    data: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(block.split("\n"), start=2):
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue  # a blank line or a comment
        m = _KEY_LINE.match(line)
        if m is None or m.group(1) in data or m.group(1) in _WORDS or m.group(2) is None:
            return None
        value = _value(m.group(2).rstrip(" "))
        if value is None:
            return None
        data[m.group(1)], lines[m.group(1)] = value[0], number
    return (data, lines) if data else None


def _value(text: str) -> tuple[Any] | None:
    """TEXT as a one-tuple of its value, or None if it is not one of the simple forms."""
    if not text:
        return None
    first = text[0]
    if first in "\"'":
        m = (_DOUBLE if first == '"' else _SINGLE).match(text)
        return (m.group(1),) if m else None
    if first == "[":
        m = _FLOW.match(text)
        return None if m is None else _items(m.group(1))
    if first in _INDICATORS or text in ("<<", "=") or ": " in text or " #" in text or text.endswith(":"):
        return None  # YAML syntax, or its merge and value marks
    if text in _WORDS:
        return (_BOOLS[text],) if text in _BOOLS else None
    if first in _NUMBER_LIKE and _NUMBER_ALPHABET.match(text) and not _PLAIN_NUMBER.match(text):
        return None
    return (text,)  # text, or a version or date kept as written (as parse.py keeps them)


def _items(inside: str) -> tuple[list[str]] | None:
    """The items of a flow list `[a, b]` that are all plain text (not numbers, dates or YAML words)."""
    if not inside.strip(" "):
        return ([],)
    items = [item.strip(" ") for item in inside.split(",")]
    for item in items:
        if not item or item[0] in _INDICATORS or item[0] in _NUMBER_LIKE or item in _WORDS:
            return None
    return (items,)
