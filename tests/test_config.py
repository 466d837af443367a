"""content/estate.toml: every setting documented, the example estate valid, the docs page complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from estate.config import ConfigError, EstateConfig, docs, load_config

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


@pytest.mark.parametrize(("setting", "expected"), [
    ("[processor]\nsettle_seconds = inf", "processor.settle_seconds: inf is not a finite number"),
    ("[processor]\nwrite_grace_seconds = nan", "processor.write_grace_seconds: nan is not a finite number"),
    ("[processor]\nsettle_seconds = -1.0", "processor.settle_seconds: -1.0 is out of range, 0 to 3600"),
    ("[processor]\nmax_form_bytes = -5", "processor.max_form_bytes: -5 is out of range, 1024 to 1073741824"),
    ("[build]\nworkers = 48000", "build.workers: 48000 is out of range, 0 to 64"),
    ('[processor]\ninbox_dir = "var/rejected"', "processor.inbox_dir: 'var/rejected' and processor.var_dir 'var' "
                                                "must not contain each other"),
    ('[processor]\ninbox_dir = "./var"', "processor.inbox_dir: './var' and processor.var_dir 'var' must not"),
    ('[processor]\nvar_dir = "inbox/state"', "processor.inbox_dir: 'inbox' and processor.var_dir 'inbox/state'"),
])
def test_a_setting_out_of_its_range_is_a_config_error_naming_it(tmp_path: Path, setting: str, expected: str) -> None:
    """Before, settle_seconds = inf crashed the processor in time.sleep, max_form_bytes = -5 in read(), and an
    inbox inside var/ read its own rejected files back as forms, doubling them on every pass (8,192 in 12 s)."""
    (tmp_path / "content").mkdir()
    (tmp_path / "content/estate.toml").write_text(f'[estate]\nname = "x"\n{setting}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as failed:
        load_config(tmp_path)
    assert any(p.startswith(expected) for p in failed.value.problems), failed.value.problems


def test_the_bounds_let_the_example_estates_settings_through() -> None:
    config = load_config(REPO)
    assert config.processor.settle_seconds == 0.2 and config.build.workers == 0
