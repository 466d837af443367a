"""The front matter almost every file has, read without YAML: one `key: value` a line, in a few plain forms.

Why: PyYAML reads a front-matter block in ~0.3 ms (composing its nodes in Python, even with libyaml) and takes
~20 ms to import; a one-off rebuild's parser then imports it for one file. This reader takes the forms the
procedures are written in (plain text, quoted text, dates and versions, `[a, b]` lists) and answers exactly
what handbook/parse.py's YAML reading makes of them: values as written for numbers and dates, True/False only
for YAML's boolean words. Anything else (a comment after a value, an indented line, an escape, an anchor, a
word YAML reads as a boolean or null, a duplicate key…) returns None, and YAML reads the block as before:
tests/test_frontmatter.py compares the two on random blocks of tricky lines.
"""

from __future__ import annotations

import re
from typing import Any

_KEY_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?: +(.*))?\Z")
_DOUBLE = re.compile(r'"([^"\\]*)" *\Z')
_SINGLE = re.compile(r"'([^']*)' *\Z")
_FLOW = re.compile(r"\[([^\[\]{}\"'#:]*)\] *\Z")
# characters YAML cannot take as they are: its reader refuses them (controls, BOM), or they change how a line
# reads (tab, CR, NEL and the Unicode line and paragraph separators)
_UNUSUAL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")  # listed, not
# the complement: a class of everything else takes ~15 ms to compile
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_NUMBER_LIKE = frozenset("-+.0123456789<=~")  # a number, a date, or YAML's merge/value/null marks
# YAML 1.1 words for true/false/null: PyYAML turns them into bool/None (keys included)
_WORDS = frozenset({"yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
                    "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~"})
_BOOLS = {w: w.lower() in ("yes", "true", "on") for w in _WORDS - {"null", "Null", "NULL", "~"}}


def read_simple(block: str) -> tuple[dict[str, Any], dict[str, int]] | None:
    """(fields, line of each field) of BLOCK (the text between the --- lines, which start on line 1), or None
    when BLOCK holds anything but the simple forms: YAML must read it then."""
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
    return (text,)  # text, or a number or date kept as written (as parse.py keeps them)


def _items(inside: str) -> tuple[list[str]] | None:
    """The items of a flow list `[a, b]` that are all plain text (not numbers, dates or YAML words)."""
    if not inside.strip(" "):
        return ([],)
    items = [item.strip(" ") for item in inside.split(",")]
    for item in items:
        if not item or item[0] in _INDICATORS or item[0] in _NUMBER_LIKE or item in _WORDS:
            return None
    return (items,)
