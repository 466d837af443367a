"""The one place that writes into site/: atomically, so a reader never sees half a page."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def write_page(path: Path, content: str | bytes, *, fsync: bool = False) -> bool:
    """Write CONTENT to PATH via a temp file and rename; return False if the file already held it.

    Skipping identical content keeps mtimes stable, so live reload and rsync-to-USB only see real
    changes. `fsync` is for state that must survive power loss; site pages can be rebuilt.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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
    return True


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
