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


POLICY_VIEWS_LANGUAGES = ["zh-Hans", "zh-Hant", "en"]


def _policy_keys_asked(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every policy.* key the views look up while expanding each placeholder for a policy that takes most
    branches, plus every name their label groups must know (states, actions, form types, channels, flags…)."""
    from dataclasses import replace

    from estate.contract import FORM_TYPES, load_schemas
    from estate.lifecycle import ACTION_LABELS, STATE_LABELS
    from estate.policy import load_policy
    from render import policy_views
    from render.policy_views import Words

    asked: set[str] = set()
    call, label = Words.__call__, Words.label

    def record_call(self: Words, key: str, **values: object) -> str:
        asked.add(f"policy.{key}")
        return call(self, key, **values)

    def record_label(self: Words, group: str, name: str, fallback: str | None = None) -> str:
        asked.add(f"policy.{group}.{name}")
        return label(self, group, name, fallback)

    monkeypatch.setattr(Words, "__call__", record_call)
    monkeypatch.setattr(Words, "label", record_label)
    policy = load_policy(Path(__file__).parent.parent / "content" / "policy.toml")
    # every rule for 1 minute or 1 working day (the singular units), each deadline name in the by-level table,
    # and one more rule that names no condition (it applies to all tickets)
    one = replace(policy, deadlines=tuple(replace(r, minutes=1, working_days=min(r.working_days, 1), urgency=(1,))
                                          for r in policy.deadlines))
    one = replace(one, deadlines=(replace(one.deadlines[0], kinds=(), flags=(), urgency=()), *one.deadlines))
    for p in (policy, one):
        policy_views.expand_placeholders("\n".join(f"[[policy:{n}]]" for n in policy_views.PLACEHOLDERS), p)
    channels = load_schemas()["common"]["properties"]["channel"]["enum"]
    flags = ("emergency", "important", "vulnerable", "safety", "management_notified", "repeat_complaint",
             "possible_duplicate", "escalated")  # every flag processor/rules.py sets
    asked |= {f"policy.{group}.{name}" for group, names in (
        ("state", STATE_LABELS), ("action", ACTION_LABELS), ("kind", FORM_TYPES), ("channel", channels),
        ("flag", flags), ("weekday", "1234567"),
        ("type", ("string", "integer", "number", "boolean", "object", "array"))) for name in names}
    asked |= {f"policy.unit.{u}{one}" for u in ("minutes", "hours", "days", "working_days") for one in ("", "_one")}
    return {key for key in asked if not key.endswith(".")}   # (a keyword rule without a flag asks for none)


def test_every_policy_key_the_views_ask_for_is_in_every_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _policy_keys_asked(monkeypatch)
    for language in POLICY_VIEWS_LANGUAGES:
        assert sorted(asked - _keys(language)) == [], language


def test_every_policy_key_of_the_catalogues_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """No dead policy.* strings: a key the views stopped asking for is removed, not left to be translated."""
    listed = {key for key in _keys("zh-Hans") if key.startswith("policy.")}
    assert sorted(listed - _policy_keys_asked(monkeypatch)) == []


def test_an_english_window_title_spaces_the_estate_from_the_site_and_a_catalogue_edit_rebuilds_pages(
        mini: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """English pages were titled "测试花园Staff handbook"; and a catalogue is part of every page, like a template."""
    import shutil

    from estate.config import load_config
    from handbook.build import build
    from render import i18n, jinja
    from tests.conftest import TODAY

    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('name = "测试花园"', 'name = "测试花园"\nlanguage = "en"'),
                    encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = mini / "site/staff/procedures/t-001.html"
    assert "<title>值班规程 · 测试花园 Staff handbook</title>" in page.read_text(encoding="utf-8")
    locales = tmp_path / "locales"
    shutil.copytree(LOCALES, locales)
    monkeypatch.setattr(i18n, "LOCALES", locales)
    monkeypatch.setattr(jinja, "LOCALES", locales)
    en = locales / "en.toml"
    en.write_text(en.read_text(encoding="utf-8").replace('"Staff handbook"', '"Staff manual"'), encoding="utf-8")
    i18n.catalogue.cache_clear()
    try:
        build(load_config(mini), mini / "site", today=TODAY, workers=1)
    finally:
        i18n.catalogue.cache_clear()
    assert "<title>值班规程 · 测试花园 Staff manual</title>" in page.read_text(encoding="utf-8")
