"""The policy rendered into the handbook: placeholders, tables and the lifecycle diagram follow the data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from estate import lifecycle
from estate.contract import FORM_TYPES, load_schemas
from estate.policy import CalendarPolicy, load_policy
from render.markdown import render_markdown
from render.policy_views import PLACEHOLDERS, expand_placeholders, lifecycle_svg

ROOT = Path(__file__).resolve().parents[1]
POLICY = load_policy(ROOT / "content" / "policy.toml")


def view(name: str, policy=POLICY) -> str:
    return expand_placeholders(f"[[policy:{name}]]", policy)


def test_the_placeholder_names():
    assert {"deadlines", "lifecycle", "routing", "escalation", "calendar", "forms"} == PLACEHOLDERS


@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_each_placeholder_becomes_an_html_block_that_survives_markdown(name):
    text = f"# 标题\n\n前文\n\n[[policy:{name}]]\n\n后文"
    expanded = expand_placeholders(text, POLICY)
    assert "[[policy:" not in expanded and "前文" in expanded and "后文" in expanded
    html = render_markdown(expanded).html
    assert '<div class="policy-view' in html and "<table" in html
    assert "<p><table" not in html and "&lt;table" not in html


def test_only_exact_lines_outside_code_fences_are_replaced():
    text = "见 [[policy:deadlines]] 一节\n```\n[[policy:deadlines]]\n```\n[[policy:nope]]\n  [[policy:deadlines]]"
    assert expand_placeholders(text, POLICY) == text


def test_the_deadline_table_follows_the_policy():
    html = view("deadlines")
    for rule in POLICY.deadlines:
        assert rule.note in html and rule.label in html
    faster = replace(POLICY, deadlines=tuple(replace(r, minutes=45) if r.urgency == (1,) else r
                                             for r in POLICY.deadlines))
    assert "45 分钟" in view("deadlines", faster) and "45 分钟" not in html


def test_the_lifecycle_diagram_is_valid_svg_with_every_state_and_move():
    svg = lifecycle_svg()
    root = etree.fromstring(svg)
    assert root.tag.endswith("svg") and root.get("role") == "img"
    text = "".join(root.itertext())
    for label in lifecycle.STATE_LABELS.values():
        assert label in text
    for (state, action), target in lifecycle.TRANSITIONS.items():
        if target != state:
            assert lifecycle.ACTION_LABELS[action] in text, (state, action)
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")   # offline: no external reference


def test_the_lifecycle_view_is_generated_from_the_transition_table(monkeypatch):
    before = view("lifecycle")
    rows = dict(lifecycle.TRANSITIONS)
    rows[("merged", "reopen")] = "reopened"
    monkeypatch.setattr(lifecycle, "TRANSITIONS", rows)
    import render.policy_views as views
    monkeypatch.setattr(views, "TRANSITIONS", rows)
    after = view("lifecycle")
    assert after != before
    merged_row = re.search(r"已合并 <code>merged</code></td><td>([^<]*)</td>", after).group(1)
    assert "重开 → 已重开" in merged_row


def test_the_routing_table_lists_every_route():
    html = view("routing")
    for route in POLICY.routes:
        assert route.name in html and f"<td>{route.department}</td>" in html


def test_the_routing_table_says_department_names_when_given():
    names = {route.department: f"部门{i}" for i, route in enumerate(POLICY.routes)}
    html = expand_placeholders("[[policy:routing]]", POLICY, names)
    for route in POLICY.routes:
        assert f"<td>{names[route.department]}</td>" in html


def test_the_escalation_view_follows_the_policy():
    html = view("escalation")
    assert "30 天" in html and POLICY.escalation.supervisor in html and "水管爆裂" in html
    changed = replace(POLICY, escalation=replace(POLICY.escalation, repeat_days=14, supervisor="值班经理"))
    html = view("escalation", changed)
    assert "14 天" in html and "值班经理" in html


def test_the_calendar_view_lists_holidays_and_makeup_days():
    html = view("calendar")
    assert "08:30–17:30" in html and "2026-10-01" in html and "2026-10-10" in html
    other = replace(POLICY, calendar=CalendarPolicy(work_start="09:00", holidays=("2027-01-01",)))
    assert "09:00–17:30" in view("calendar", other) and "2027-01-01" in view("calendar", other)


def test_the_forms_view_documents_every_field_of_every_schema():
    html = view("forms")
    schemas = load_schemas()
    for name, schema in schemas.items():
        for field in schema["properties"]:
            if name != "common" and field == "form":
                continue
            assert f">{field}</code>" in html, (name, field)
    assert ">resident.phone</code>" in html and ">entries[].time</code>" in html
    for kind in FORM_TYPES:
        assert f"{kind}.schema.json" in html
    for route in POLICY.routes:
        assert f"{route.category}（{route.name}）" in html
    assert "duplicate 或 duplicate_form" in html


def test_the_form_contract_procedure_uses_the_views_and_has_the_usual_front_matter():
    text = (ROOT / "procedures" / "form-contract.md").read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["id"] == "KB-002" and meta["department"] == "customer-service"
    assert meta["category"] == "knowledge" and meta["audience"] == "staff"
    assert isinstance(meta["version"], str) and meta["effective"] < meta["review_by"]
    assert set(meta) >= {"title", "owner", "tags", "records"}
    assert "[[policy:forms]]" in body.splitlines() and "[[policy:lifecycle]]" in body.splitlines()
    assert "ticket_form" in body


def test_the_handbook_digests_what_the_views_are_made_of():
    """A change to the views, the lifecycle or a form schema re-parses every page (Expander.digest); the
    builder finds those files without importing the modules, so it must find the right ones."""
    import estate.contract
    import estate.lifecycle
    import render.policy_views
    from handbook import sources

    inputs = sources.policy_inputs(ROOT / "content" / "policy.toml")
    assert set(inputs) >= {Path(render.policy_views.__file__), Path(estate.lifecycle.__file__)}
    assert set(inputs) >= set(estate.contract.SCHEMA_DIR.glob("*.schema.json")) and len(inputs) > 10


def test_a_broken_policy_fails_the_build_even_where_no_page_uses_it(mini_copy_with_policy):
    from estate.config import ConfigError, load_config
    from handbook.build import build
    from tests.conftest import TODAY

    root = mini_copy_with_policy
    build(load_config(root), root / "site", today=TODAY, workers=1)  # valid: builds (no body has a placeholder)
    (root / "content" / "policy.toml").write_text("[calendar]\nwork_start = 'noon'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="work_start"):
        build(load_config(root), root / "site", today=TODAY, workers=1)


@pytest.fixture
def mini_copy_with_policy(mini):
    from shutil import copyfile

    copyfile(ROOT / "content" / "policy.toml", mini / "content" / "policy.toml")
    return mini


# --- the UI language (estate.language) ----------------------------------------------------------------------

# The estate's own words (rule labels and notes, urgency meanings, category names, keywords, the supervisor)
# made plain ASCII, so that any Chinese left in a table is the views' own.
NEUTRAL = replace(
    POLICY,
    deadlines=tuple(replace(r, label=f"rule{i}", note=f"note{i}") for i, r in enumerate(POLICY.deadlines)),
    urgency=replace(POLICY.urgency, labels=("u1", "u2", "u3", "u4"),
                    keywords=(*(replace(k, words=(f"word{i}",)) for i, k in enumerate(POLICY.urgency.keywords)),
                              replace(POLICY.urgency.keywords[0], words=("any",), kinds=()))),  # for every ticket
    routes=tuple(replace(r, name=f"route{i}") for i, r in enumerate(POLICY.routes)),
    escalation=replace(POLICY.escalation, supervisor="duty manager"),
)
HAN_OR_CJK_PUNCTUATION = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
# UI text of the zh-Hans tables, one phrase of each view; none may reach an en or zh-Hant estate's pages
SIMPLIFIED_UI = ["按紧急程度的处理时限", "按工单类型的专门时限", "全部时限规则", "30 分钟", "2 个工作日", "当天下班前",
                 "之后每", "所有工单", "工单分类与派单部门", "责任部门", "自动升级规则", "关键词判断紧急程度",
                 "默认紧急程度", "工作日历", "调休上班日", "周一", "工单状态流转图", "未完成（处理中）", "暂停前的状态",
                 "各状态可执行的动作", "已关闭", "确认受理", "突发事件", "网上/微信", "所有表单的公共字段", "取值与格式",
                 "须填字段", "文本", "对象"]
TRANSLATED = {
    "zh-Hant": ["按緊急程度的處理時限", "30 分鐘", "2 個工作日", "當天下班前", "工單分類與派單部門", "自動升級規則",
                "工作日曆", "週一", "工單狀態流轉圖", "已關閉", "確認受理", "所有表單的公共欄位", "須填欄位"],
    "en": ["Deadlines by urgency level", "30 minutes", "2 working days", "by close of business the same day",
           "Ticket categories and the departments they go to", "Automatic escalation", "Working calendar",
           "Monday", "Ticket lifecycle", "Received", "Confirm", "Fields every form has", "Fields needed"],
}
# characters only Simplified Chinese writes so (their Traditional forms differ)
SIMPLIFIED_ONLY = set("时单级类务报处复动态闭开历节调设项关键记标统钟个周间说义适为后认场访满确")


def every_view(policy, language: str) -> str:
    return "\n".join(expand_placeholders(f"[[policy:{name}]]", policy, language=language)
                     for name in sorted(PLACEHOLDERS))


@pytest.fixture
def neutral_schemas(monkeypatch):
    """The form schemas with their own words (field descriptions, x-zh notes) made ASCII."""
    import render.policy_views as views

    def neutral(node):
        if isinstance(node, dict):
            return {k: "desc" if k in ("description", "x-zh") and isinstance(v, str) else neutral(v)
                    for k, v in node.items()}
        return [neutral(v) for v in node] if isinstance(node, list) else node

    schemas = {name: neutral(schema) for name, schema in load_schemas().items()}
    monkeypatch.setattr(views, "load_schemas", lambda: schemas)


@pytest.mark.parametrize("language", ["en", "zh-Hant"])
def test_tables_of_an_en_or_zh_hant_estate_carry_no_simplified_ui_text(language, neutral_schemas):
    html = every_view(NEUTRAL, language)
    assert [s for s in SIMPLIFIED_UI if s in html] == []
    assert [s for s in TRANSLATED[language] if s not in html] == []


@pytest.mark.parametrize("language", ["en", "zh-Hant"])
def test_only_the_estate_and_schema_words_stay_chinese(language, neutral_schemas):
    """With the estate's and the schemas' words in ASCII, what Chinese is left in the tables is the
    translation's (zh-Hant), or nothing at all (en)."""
    html = every_view(NEUTRAL, language)
    if language == "en":
        assert HAN_OR_CJK_PUNCTUATION.findall(html) == []
    else:
        assert sorted(SIMPLIFIED_ONLY & set(html)) == []
        assert HAN_OR_CJK_PUNCTUATION.search(html)


def test_the_simplified_phrases_are_those_of_a_zh_hans_estate(neutral_schemas):
    """The list the two tests above look for is what zh-Hans shows, so it stays a real check."""
    html = every_view(NEUTRAL, "zh-Hans")
    assert [s for s in SIMPLIFIED_UI if s not in html] == []
    assert sorted(SIMPLIFIED_ONLY - set(html)) == []


def test_the_estate_words_stay_as_written_in_any_language():
    html = expand_placeholders("[[policy:deadlines]]\n[[policy:routing]]", POLICY, {"engineering": "工程部"}, "en")
    for rule in POLICY.deadlines:
        assert rule.note in html and rule.label in html
    assert "<td>工程部</td>" in html and "给排水" in html and "人身安全" in html


def test_english_counts_say_one_in_the_singular():
    hour = replace(POLICY, deadlines=tuple(replace(r, minutes=60) if r.urgency == (1,) else r for r in POLICY.deadlines),
                   escalation=replace(POLICY.escalation, repeat_days=1, duplicate_hours=1.0))
    html = every_view(hour, "en")
    assert "On site: 1 hour<" in html and "within 1 day<" in html and "within 1 hour<" in html
    assert "within 30 days" in every_view(POLICY, "en")


def test_the_lifecycle_diagram_speaks_the_estate_language():
    from render.policy_views import Words

    root = etree.fromstring(lifecycle_svg(Words("en")))
    text = "".join(root.itertext())
    assert "Ticket lifecycle" in text and "Resolved" in text and "On hold" in text
    assert HAN_OR_CJK_PUNCTUATION.findall(text) == []


def test_the_zh_hans_words_are_the_processor_s_own():
    """States, actions and form types are named in the processor's words (lifecycle table, schema titles):
    the Simplified catalogue repeats them, and must not drift from them."""
    from render.i18n import catalogue

    zh = catalogue("zh-Hans")
    assert {s: zh[f"policy.state.{s}"] for s in lifecycle.STATE_LABELS} == lifecycle.STATE_LABELS
    assert {a: zh[f"policy.action.{a}"] for a in lifecycle.ACTION_LABELS} == lifecycle.ACTION_LABELS
    schemas = load_schemas()
    assert {k: zh[f"policy.kind.{k}"] for k in FORM_TYPES} == {k: schemas[k]["title"].split(" (")[0] for k in FORM_TYPES}


def test_a_name_the_catalogue_lacks_shows_as_the_data_gives_it():
    """A channel or flag added to the policy before the catalogue knows it still builds, in its own words."""
    rules = (replace(POLICY.deadlines[0], channels=("fax",), flags=("vip",)), *POLICY.deadlines[1:])
    html = expand_placeholders("[[policy:deadlines]]", replace(POLICY, deadlines=rules), language="en")
    assert "channels: fax" in html and "vip" in html


def test_the_expander_uses_the_estate_language_and_a_language_change_reparses(mini_copy_with_policy):
    """The parse stamp holds estate.toml's bytes, so a new estate.language re-parses pages with tables."""
    from estate.config import load_config
    from handbook.build import build
    from tests.conftest import TODAY

    root = mini_copy_with_policy
    page = root / "procedures" / "calendar.md"
    page.write_text(page_text := MINI_PAGE, encoding="utf-8")
    assert "[[policy:calendar]]" in page_text
    built = root / "site" / "staff" / "procedures" / "t-cal.html"
    build(load_config(root), root / "site", today=TODAY, workers=1)
    assert "工作日历" in built.read_text(encoding="utf-8")
    for language, expected in (("en", "Working calendar"), ("zh-Hant", "工作日曆")):
        set_language(root, language)
        build(load_config(root), root / "site", today=TODAY, workers=1)
        html = built.read_text(encoding="utf-8")
        assert expected in html and "工作日历" not in html, language


def test_a_catalogue_edit_changes_the_expander_digest(mini_copy_with_policy, tmp_path, monkeypatch):
    """The tables' words are parse inputs: editing the estate language's catalogue re-parses (not another's)."""
    import shutil

    from estate.config import load_config
    from handbook import sources
    from render import i18n

    copy = tmp_path / "locales"
    shutil.copytree(i18n.LOCALES, copy)
    monkeypatch.setattr(i18n, "LOCALES", copy)   # where catalogue_files looks
    root = mini_copy_with_policy
    set_language(root, "en")
    before = sources.Expander.load(load_config(root))
    assert before.language == "en"
    (copy / "zh-Hant.toml").write_text("# another language's catalogue\n", encoding="utf-8")
    assert sources.Expander.load(load_config(root)).digest == before.digest
    for name in ("en.toml", "zh-Hans.toml"):  # the language's own, and the one it falls back on
        text = (copy / name).read_text(encoding="utf-8")
        (copy / name).write_text(text + "# edited\n", encoding="utf-8")
        assert sources.Expander.load(load_config(root)).digest != before.digest, name
        (copy / name).write_text(text, encoding="utf-8")


MINI_PAGE = """---
id: T-CAL
title: Calendar
department: 客服部
category: duty
version: "1.0"
effective: 2026-01-01
review_by: 2027-06-01
owner: 客服主管
audience: staff
---

[[policy:calendar]]
"""


def set_language(root: Path, language: str) -> None:
    toml = root / "content" / "estate.toml"
    text = re.sub(r'\nlanguage = "[^"]*"', "", toml.read_text(encoding="utf-8"))
    toml.write_text(text.replace("[estate]\n", f'[estate]\nlanguage = "{language}"\n', 1), encoding="utf-8")


def test_a_table_is_put_on_a_page_once_and_a_repeat_is_a_problem(mini_copy_with_policy) -> None:
    """500 copies of [[policy:forms]] (20 KB of HTML each) had made a 9 KB file take 19 s and a 12 MB page."""
    from estate.config import load_config
    from handbook.build import BuildFailed, build

    page = (mini_copy_with_policy / "procedures/duty.md")
    text = page.read_text(encoding="utf-8")
    page.write_text(text + "\n[[policy:forms]]\n\n[[policy:calendar]]\n" + "\n[[policy:forms]]\n" * 500,
                    encoding="utf-8")
    lines = page.read_text(encoding="utf-8").split("\n")
    first = lines.index("[[policy:forms]]") + 1
    second = lines.index("[[policy:forms]]", first) + 1
    with pytest.raises(BuildFailed) as failed:
        build(load_config(mini_copy_with_policy), mini_copy_with_policy / "site", workers=1)
    problems = [str(p) for p in failed.value.problems]
    assert len(problems) == 500 and problems[0] == (
        f"procedures/duty.md:{second}: [[policy:forms]] 已在第 {first} 行放过，每种表格每页只放一次 (placeholder repeated)")
    assert expand_placeholders("[[policy:forms]]\n\n[[policy:forms]]", POLICY).count("<table") == \
        expand_placeholders("[[policy:forms]]", POLICY).count("<table")
