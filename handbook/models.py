"""The handbook builder's small models: what discover → parse → index → render pass along."""

from __future__ import annotations

import marshal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

AUDIENCES = ("staff", "resident", "both")
STAFF, PUBLIC = "staff", "public"   # the two output trees, each deployable alone
TREES = (STAFF, PUBLIC)


@dataclass(frozen=True)
class SourceFile:
    """A Markdown file found under procedures/ or content/notices/."""

    path: str           # absolute (a str: 1,000s of Path objects cost a one-page rebuild ~25 ms to make and hash)
    rel: str            # relative to its folder, with forward slashes: "duty-handover.md"
    kind: str           # procedure | notice | page
    raw: bytes
    digest: str         # sha256 of raw, for the incremental-build manifest
    shown: str = ""     # the path problems are reported under, relative to the estate root
    stamp: tuple[int, ...] = (0, 0)  # (mtime_ns, size, ctime_ns, inode) when read, see discover._read

    def __post_init__(self) -> None:
        if not self.shown:
            object.__setattr__(self, "shown", self.rel)


@dataclass(frozen=True)
class BuildProblem:
    """A validation problem, printed as `file:line: message`."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# Tens of thousands of these at 5,000 procedures, pickled into the build cache and back from the parse
# workers: named tuples are small and pickle several times faster than (slotted) dataclasses.
class Heading(NamedTuple):
    """A heading inside a page, with its stable anchor (Chinese text kept, see render/markdown.py)."""

    level: int
    text: str
    anchor: str


class Section(NamedTuple):
    """A heading and the plain text under it, up to the next heading: the unit search finds."""

    anchor: str         # "" for the text before the first heading
    title: str
    level: int
    text: str           # plain text as written (no markup)


class Packed:
    """A field's value as the build cache keeps it, marshal bytes, until someone reads it (see Lazy)."""

    __slots__ = ("blob", "decode")

    def __init__(self, blob: bytes | memoryview, decode: Callable[[Any], Any]):
        self.blob = blob      # often a slice of the cache file's bytes, not a copy
        self.decode = decode  # from what marshal gives back to the field's value

    def __reduce__(self) -> tuple:  # a slice of a buffer cannot be pickled: its bytes can
        return (Packed, (bytes(self.blob), self.decode))


class Lazy:
    """A dataclass field that may hold a Packed value, decoded on first read.

    Why: a page's HTML, headings and section text are 94% of the build cache (11.4 of 12 MB at 1,000
    procedures), and a one-page rebuild reads them for a few pages only; decoding them all cost ~60 ms.
    """

    def __init__(self, default: Any):
        self.default = default  # what the dataclass's __init__ takes as the default (immutable)

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.default
        value = obj.__dict__[self.slot]
        if type(value) is Packed:
            value = obj.__dict__[self.slot] = value.decode(marshal.loads(value.blob))
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value

    def packed(self, obj: Any, encode: Callable[[Any], Any]) -> bytes | memoryview:
        """OBJ's value as marshal bytes (ENCODE makes it plain data), without decoding a Packed one."""
        value = obj.__dict__[self.slot]
        return value.blob if type(value) is Packed else marshal.dumps(encode(value))


@dataclass(eq=False)  # identity: two procedures are never "equal", and comparing bodies is slow
class Procedure:
    """A procedure (SOP) with validated front matter and its rendered body."""

    source: SourceFile
    id: str
    title: str
    department: str     # department id
    category: str       # category id
    version: str
    effective: date
    review_by: date
    owner: str
    audience: str       # staff | resident | both
    tags: tuple[str, ...] = ()
    records: tuple[str, ...] = ()
    supersedes: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)    # unknown front-matter keys, kept
    field_lines: dict[str, int] = field(default_factory=dict)  # front-matter key -> line, for messages
    body: str = ""                                         # Markdown after front matter
    body_line: int = 1                                     # line of the body's first line in the file
    html: str = Lazy("")                                   # rendered body
    headings: Sequence[Heading] = Lazy(())
    sections: Sequence[Section] = Lazy(())
    text_chars: int = 0                                    # characters of the sections' titles and text
    links: list[tuple[str, str, int]] = field(default_factory=list)  # (target rel, fragment, line)
    files: list[tuple[str, int]] = field(default_factory=list)  # local files it uses (path as written, line)
    superseded_by: str | None = None                       # filled by the index step
    upcoming_successor: str | None = None                  # filled by the index step: a newer version that
                                                           # supersedes this one once its effective date comes

    @property
    def slug(self) -> str:
        """Output name: the id lower-cased, e.g. cs-sop-003 (ids are unique, file names may move)."""
        return self.id.lower()

    @property
    def public(self) -> bool:
        return self.audience in ("resident", "both")


@dataclass(eq=False)
class Notice:
    """A resident notice from content/notices/ (water cut, works, activities, fees, policy changes)."""

    source: SourceFile
    id: str
    title: str
    date: date
    category: str = "general"      # outage | works | activity | fees | policy | general
    expires: date | None = None
    pinned: bool = False
    audience: str = "resident"     # resident | staff | both
    body: str = ""
    body_line: int = 1
    html: str = Lazy("")
    headings: Sequence[Heading] = Lazy(())
    sections: Sequence[Section] = Lazy(())
    text_chars: int = 0                 # characters of the sections' titles and text
    links: list[tuple[str, str, int]] = field(default_factory=list)  # (target rel, fragment, line)
    files: list[tuple[str, int]] = field(default_factory=list)  # local files it uses (path as written, line)
    extra: dict[str, Any] = field(default_factory=dict)
    field_lines: dict[str, int] = field(default_factory=dict)  # front-matter key -> line, for messages

    @property
    def public(self) -> bool:
        """Shown in the residents' tree too."""
        return self.audience in ("resident", "both")

    @property
    def slug(self) -> str:
        return self.id.lower()


@dataclass(eq=False)
class Intro:
    """The handbook's intro page (procedures/index.md), shown on the staff home page."""

    title: str
    html: str
    source: SourceFile
    links: list[tuple[str, str, int]] = field(default_factory=list)  # (target rel, fragment, line)
    files: list[tuple[str, int]] = field(default_factory=list)  # local files it uses (path as written, line)


@dataclass(eq=False)
class Unparsed:
    """A procedure or notice whose front matter failed: no page, but the links and files its body uses are
    checked with everyone else's, so the author sees all of the file's problems in one build."""

    source: SourceFile
    links: list[tuple[str, str, int]] = field(default_factory=list)  # (target rel, fragment, line)
    files: list[tuple[str, int]] = field(default_factory=list)  # local files it uses (path as written, line)
