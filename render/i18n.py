"""UI strings: one catalogue per language in render/locales/, chosen by estate.language."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

LOCALES = Path(__file__).parent / "locales"
DEFAULT = "zh-Hans"


def catalogue_files(language: str) -> list[Path]:
    """The files LANGUAGE's strings come from, later over earlier: the default catalogue, then its own."""
    return [LOCALES / f"{lang}.toml" for lang in dict.fromkeys((DEFAULT, language))]


@cache
def catalogue(language: str) -> dict[str, str]:
    """Load LANGUAGE's strings over the default catalogue, so a missing key falls back to Chinese."""
    strings: dict[str, str] = {}
    for path in catalogue_files(language):
        strings.update(tomllib.loads(path.read_text(encoding="utf-8")))
    return strings


def translator(language: str) -> Callable[..., str]:
    """Return t(key, **values) for LANGUAGE; an unknown key shows as itself so it is noticed, not hidden."""
    strings = catalogue(language)

    def t(key: str, **values: object) -> str:
        text = strings.get(key)
        if text is None:
            log.warning("missing UI string %r for %s", key, language)
            return key
        return text.format(**values) if values else text

    return t
