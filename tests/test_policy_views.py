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
