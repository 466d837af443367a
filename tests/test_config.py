"""content/estate.toml: every setting documented, the example estate valid, the docs page complete."""

from __future__ import annotations

from pathlib import Path

from estate.config import EstateConfig, docs, load_config

REPO = Path(__file__).parent.parent


def test_every_setting_is_documented() -> None:
    rows = docs(EstateConfig)
    assert len(rows) > 20
    assert [name for name, _, text in rows if not text] == []
    assert "root" not in {name for name, _, _ in rows}  # internal, not a setting


def test_example_estate_config_loads() -> None:
    config = load_config(REPO)
    assert config.estate.name == "翠湖花园"
    assert config.department("客服部").id == "customer-service"  # by alias
    assert config.category("complaints").name == "投诉处理"


def test_config_page_lists_every_setting(mini_site: Path) -> None:
    page = (mini_site / "staff/config.html").read_text(encoding="utf-8")
    for name, _, _ in docs(EstateConfig):
        assert f"<code>{name}</code>" in page, name
