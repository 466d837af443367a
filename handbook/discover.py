"""Discover step: find the Markdown sources of an estate and read them once."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from estate.config import EstateConfig
from handbook.models import SourceFile

log = logging.getLogger(__name__)

INTRO_NAMES = ("index.md", "README.md")


def discover(config: EstateConfig) -> list[SourceFile]:
    """Read every procedure and notice file, in a stable order."""
    found: list[SourceFile] = []
    for folder, kind in ((config.build.procedures_dir, "procedure"), (config.build.notices_dir, "notice")):
        base = config.path(folder)
        if not base.is_dir():
            log.debug("no %s folder at %s", kind, base)
            continue
        for path in sorted(base.rglob("*.md")):
            if any(part.startswith((".", "_")) for part in path.relative_to(base).parts):
                continue  # editor backups, drafts
            rel = path.relative_to(base).as_posix()
            raw = path.read_bytes()
            this_kind = "page" if kind == "procedure" and rel in INTRO_NAMES else kind
            found.append(SourceFile(path, rel, this_kind, raw, hashlib.sha256(raw).hexdigest()))
    return found


def source_paths(config: EstateConfig) -> list[Path]:
    """Folders and files whose change means a rebuild (for --watch)."""
    return [config.path(config.build.procedures_dir), config.path(config.build.notices_dir),
            config.path("content")]
