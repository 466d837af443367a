"""Discover step: find the Markdown sources of an estate and read them once."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from estate.config import EstateConfig
from handbook.models import BuildProblem, SourceFile
from render.writer import text_name

log = logging.getLogger(__name__)

INTRO_NAMES = ("index.md", "readme.md")  # lower case: README.md, Index.MD


def discover(config: EstateConfig, remember: bool = False,
             known: dict[str, tuple[tuple[int, ...], SourceFile]] | None = None,
             problems: list[BuildProblem] | None = None) -> list[SourceFile]:
    """Read every procedure and notice file, in a stable order.

    A file whose stamp (size, mtime, ctime, inode) is that of a file the last build parsed is not read again (its
    SourceFile comes back without bytes; parse_sources finds its result in the cache). REMEMBER
    (watch mode) keeps what was read for the next call; a one-off build passes KNOWN, what the build
    cache says it parsed, and does not hold on to the bytes.

    What cannot be read (no procedures folder, a file name that is not UTF-8, a broken link or a file without
    permission) goes to PROBLEMS, or is logged as a warning without it: the build goes on to find the rest.
    """
    found: list[SourceFile] = []
    seen = _SEEN.get(config.root.resolve(), {}) if remember else (known or {})
    report = problems.append if problems is not None else lambda p: log.warning("%s", p)
    for folder, kind in ((config.build.procedures_dir, "procedure"), (config.build.notices_dir, "notice")):
        base = config.path(folder)
        if not base.is_dir():
            if kind == "procedure":  # a typo in build.procedures_dir or an unmounted share: not an empty handbook
                report(BuildProblem(folder, 1, f"找不到规程文件夹 {base}（见 content/estate.toml 的 build.procedures_dir）"
                                               "(procedures folder not found)"))
            continue
        top = str(base)
        for rel in _markdown_files(top):
            this_kind = "page" if kind == "procedure" and rel.lower() in INTRO_NAMES else kind
            shown = f"{folder.rstrip('/')}/{rel}"
            if text_name(rel) != rel:  # Python holds such a name with surrogates, which no page or message can print
                report(BuildProblem(text_name(shown), 1, "文件名不是 UTF-8 编码（可能来自 GBK 的压缩包），请重命名 "
                                                         "(file name is not UTF-8)"))
                continue
            if this_kind == "page" and any(s.kind == "page" for s in found):
                report(BuildProblem(shown, 1, "规程文件夹里已有一个首页介绍（index.md 或 README.md），只能有一个 "
                                              "(a second intro page)"))
                continue
            try:
                found.append(_read(os.path.join(top, rel), rel, this_kind, seen, shown))
            except OSError as exc:  # a dangling symlink, no permission, a file gone since the folder was listed
                report(BuildProblem(shown, 1, f"无法读取文件：{exc.strerror or exc} (cannot read the file)"))
    if remember:  # only files that still exist: a deleted procedure is forgotten
        _SEEN[config.root.resolve()] = {s.path: (s.stamp, replace(s, raw=b"") if s.raw else s) for s in found}
    return found


def reread(source: SourceFile) -> SourceFile:
    """SOURCE with its bytes, for a file --watch knew unchanged but whose parse result is gone (e.g. a
    config change invalidated them all); a file changed since is read as it is now."""
    return source if source.raw else _read(source.path, source.rel, source.kind, {}, source.shown)


# estate root -> {path: (stamp, SourceFile without its bytes)} from the last --watch build: unchanged
# files are not read again, and their bytes (25 MB at 5,000 procedures) are not kept
_SEEN: dict[Path, dict[str, tuple[tuple[int, ...], SourceFile]]] = {}
UNTRUSTED = (0, 0)  # the stamp of a file read while it may still have been changing


# A file changed this recently may change again within the same tick of the file clock (a few ms) and
# keep its size: its stamp is not trusted, it is read and hashed every time.
RACY_NS = 2_000_000_000


def _read(path: str, rel: str, kind: str, seen: dict, shown: str) -> SourceFile:
    st = os.stat(path)
    # mtime alone can be set back (tar, cp -p, rsync -t, touch -d, mv of an older file); ctime cannot:
    # any of those, and any write, sets it to now. The inode tells a replaced file from the one it replaced.
    stamp = (st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) <= RACY_NS:
        stamp = UNTRUSTED
    known = seen.get(path)
    if known and stamp != UNTRUSTED and known[0] == stamp and \
            (known[1].rel, known[1].kind, known[1].shown) == (rel, kind, shown):
        return known[1]
    with open(path, "rb") as fh:
        raw = fh.read()
    return SourceFile(path, rel, kind, raw, hashlib.sha256(raw).hexdigest(), shown, stamp)


def _markdown_files(base: str) -> list[str]:
    """Relative paths of *.md below BASE, skipping hidden and _draft files and folders."""
    rels = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        prefix = os.path.relpath(folder, base).replace(os.sep, "/")
        for name in files:
            if name.lower().endswith(".md") and not name.startswith((".", "_")):  # Key.MD too (Windows editors)
                rels.append(name if prefix == "." else f"{prefix}/{name}")
    return sorted(rels)


def source_paths(config: EstateConfig) -> list[Path]:
    """Folders whose change means a rebuild (for --watch), none inside another (each watched once)."""
    folders = sorted({config.path(f).resolve() for f in (config.build.procedures_dir, config.build.notices_dir,
                                                           "content")})
    return [f for f in folders if not any(other in f.parents for other in folders)]
