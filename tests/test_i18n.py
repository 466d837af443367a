"""UI strings: one catalogue per language, every key translated, chosen in estate.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from render.i18n import LOCALES, translator

TEMPLATES = Path(__file__).parent.parent / "render" / "templates"


def _keys(language: str) -> set[str]:
    return set(tomllib.loads((LOCALES / f"{language}.toml").read_text(encoding="utf-8")))


@pytest.mark.parametrize("language", ["zh-Hant", "en"])
def test_every_language_has_every_key(language: str) -> None:
    assert _keys(language) == _keys("zh-Hans")


def test_every_key_used_by_a_template_exists() -> None:
    used = set()
    for template in TEMPLATES.rglob("*.html"):
        used |= set(re.findall(r"t\('([a-z_.]+)'", template.read_text(encoding="utf-8")))
    static = {k for k in used if not k.endswith(".")}
    assert static <= _keys("zh-Hans"), static - _keys("zh-Hans")


def test_placeholders_are_filled_and_missing_keys_show_themselves() -> None:
    t = translator("zh-Hant")
    assert t("tag.lead", count=3) == "3 份規程帶有此標籤。"
    assert t("no.such.key") == "no.such.key"
