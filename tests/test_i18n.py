"""UI strings: one catalogue per language, every key translated, chosen in estate.toml."""

from __future__ import annotations

import json
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
        used |= set(re.findall(r"\bt\('([a-z_.]+)'", template.read_text(encoding="utf-8")))
    static = {k for k in used if not k.endswith(".")}
    assert static <= _keys("zh-Hans"), static - _keys("zh-Hans")


def test_placeholders_are_filled_and_missing_keys_show_themselves() -> None:
    t = translator("zh-Hant")
    assert t("tag.lead", count=3) == "3 份規程帶有此標籤。"
    assert t("no.such.key") == "no.such.key"


def test_search_ui_strings_follow_the_estate_language(mini: Path) -> None:
    from estate.config import load_config
    from handbook.build import build
    from tests.conftest import TODAY

    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('name = "测试花园"', 'name = "测试花园"\nlanguage = "zh-Hant"'),
                    encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/staff/search.html").read_text(encoding="utf-8")
    assert "輸入關鍵詞" in page
    ui = json.loads(re.search(r"window\.EstateSearchUI = (\{.*?\});</script>", page).group(1))
    assert ui["pages"] == "個頁面" and ui["kinds"]["faq"] == "知識庫"
    assert ui["placeholder"] == {"staff": "搜尋規程、知識庫（按 / 鍵）", "public": "搜尋公告、辦事指南（按 / 鍵）"}
    public = (mini / "site/public/index.html").read_text(encoding="utf-8")
    assert "搜尋公告、辦事指南" in public                     # as itself, not \\u escapes
    assert "</script>" not in json.dumps(ui) and "\\u" not in page.split("EstateSearchUI", 1)[1].split("</script>")[0]
