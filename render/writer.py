"""The one place files are written atomically: site pages, the build cache, the processor's snapshots.

A reader (a browser, a restarted processor) never sees half a file: content goes to a temp file in
the same folder and is renamed over the old one. Also how a file's name reads as text (text_name), which
both engines need for names that are not UTF-8, and how names are numbered apart (Taken): a page's heading
ids, an archive folder's files.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


def write_page(path: Path, content: str | bytes, *, fsync: bool = False) -> bool:
    """Write CONTENT to PATH atomically; return False if the file already held it.

    Skipping identical content keeps mtimes stable, so live reload and rsync-to-USB only see real
    changes. `fsync` is for state that must survive power loss; site pages can be rebuilt.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    with atomic_file(path, fsync=fsync) as fh:
        fh.write(data)
    return True


def copy_file(source: Path, path: Path) -> bool:
    """Copy SOURCE to PATH atomically, keeping its modification time; return False if PATH already is that copy.

    A copy with the source's size and mtime is taken as current without reading either file: a build copies
    every image and video its pages use, and reading them all again each time would cost more than the pages.
    """
    stat = source.stat()
    try:
        done = path.stat()
        if done.st_size == stat.st_size and done.st_mtime_ns == stat.st_mtime_ns:
            return False
    except FileNotFoundError:
        pass
    with atomic_file(path) as fh, source.open("rb") as src:
        shutil.copyfileobj(src, fh)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return True


@contextmanager
def atomic_file(path: Path, *, text: bool = False, fsync: bool = False) -> Iterator[IO[Any]]:
    """Yield a file to write PATH's new content into; it replaces PATH only if the block completes.

    With FSYNC the data and the rename are flushed to disk (journal snapshots); without, a crash may
    lose the new version but never leaves a torn file.
    """
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new, empty temp file beside PATH (its folder made if need be), open for writing, 0644 whatever the
    umask (a web server reads the pages as another user): (fd, its name).

    Named by process and thread, not by mkstemp's random tries, which cost as much as writing a page: a build
    writes 1,000s. O_EXCL never follows a link planted under that name; a temp file a killed build left there
    is removed and made again; a name that cannot be taken back (a folder) falls back to mkstemp.
    """
    tmp = f"{path.parent}/.{path.name}.{os.getpid()}-{threading.get_ident()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    except FileExistsError:
        try:
            os.unlink(tmp)
            fd = os.open(tmp, flags, 0o644)
        except OSError:  # not removable, or made again meanwhile
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o644)
    return fd, tmp


def fsync_dir(directory: Path) -> None:
    """Make a rename in DIRECTORY durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def text_name(name: str) -> str:
    """NAME as text UTF-8 can hold: a name that is not UTF-8 (GBK bytes from Samba or a zip made on Chinese
    Windows) reads as GBK when it decodes cleanly, otherwise its odd bytes are written \\xNN. A UTF-8 name comes
    back as it is, so `text_name(n) != n` tells that N is not UTF-8."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    try:
        raw = os.fsencode(name)
    except UnicodeError:        # Windows: a name with a lone surrogate
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        return raw.decode("gbk")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


class Taken(set):
    """Names in use (a page's ids, a folder's files) that are only ever added to, and where each numbering
    walk (NAME, NAME-1, NAME-2… or id, id_1, id_2…) stopped. The next walk from the same start goes on from
    there: the names it passed are still taken. Walking from the start each time was quadratic (8,000
    headings "## 标题": 74 s; 4,000 archive names cut to one stem: 27 s)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        super().__init__(names)
        self._walked: dict[Hashable, int] = {}

    def first_free(self, start: Hashable, candidates: Callable[[int], tuple[str, ...]], n: int = 0) -> tuple[str, ...]:
        """CANDIDATES(n) for the first n (from N, or from where the last walk from START stopped) whose names are
        all free; they are taken from then on."""
        n = self._walked.get(start, n)
        found = candidates(n)
        while any(name in self for name in found):
            n += 1
            found = candidates(n)
        self._walked[start] = n + 1   # n is taken now too
        self.update(found)
        return found
