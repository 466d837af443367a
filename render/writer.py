"""The one place files are written atomically: site pages, the build cache, the processor's snapshots.

A reader (a browser, a restarted processor) never sees half a file: content goes to a temp file in
the same folder and is renamed over the old one.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
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
    if fsync or not _replace(path, data):
        with atomic_file(path, fsync=fsync) as fh:
            fh.write(data)
    return True


def _replace(path: Path, data: bytes) -> bool:
    """atomic_file for a page held in memory, with less on the way: a build writes 1,000s of them. False if
    the temp name is taken (then atomic_file, with mkstemp's random names, writes the page).

    The temp name comes from the process id (a process writes one page at a time: the builder's workers, or
    --watch's one rebuilding thread), not from mkstemp's random tries; O_EXCL still never follows a link
    planted under that name, and a temp file a killed build left behind is removed and made again.
    """
    tmp = f"{path.parent}/.{path.name}.{os.getpid()}.tmp"
    fd = _create(tmp, path.parent)
    if fd is None:
        return False
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o644)  # whatever the umask: a web server reads the pages as another user
            rest = memoryview(data)
            while rest:  # a short write (a full disk) goes round again, to write the rest or raise
                written = os.write(fd, rest)
                if not written:
                    raise OSError(errno.ENOSPC, "nothing written", tmp)
                rest = rest[written:]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _create(tmp: str, folder: Path) -> int | None:
    """A new file TMP (its folder made if need be), open for writing; None if the name stays taken."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        return os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(tmp, flags, 0o644)
    except FileExistsError:  # left by a killed build (or a link planted there): removed, not followed
        pass
    try:
        os.unlink(tmp)
        return os.open(tmp, flags, 0o644)
    except OSError:  # not removable (a folder), or made again meanwhile
        return None


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
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


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
