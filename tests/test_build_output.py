"""What the builder writes: golden pages, links that resolve offline, two separate trees, incremental rebuilds.

Regenerate the golden pages on purpose with:  UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_build_output.py
"""

from __future__ import annotations

import os
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from estate.config import load_config
from handbook.build import BuildFailed, build
from handbook.search import read_index_script
from tests.conftest import TODAY

EXPECTED = Path(__file__).parent / "expected" / "mini"
GOLDEN = [
    "index.html", "staff/index.html", "staff/procedures/t-001.html", "staff/procedures/t-000.html",
    "staff/procedures/t-002.html", "staff/changes.html", "staff/records.html", "staff/tags/值班.html",
    "staff/notices/n-001.html", "public/index.html", "public/guides/t-002.html", "public/notices/n-001.html",
    "public/changes.html",
]


@pytest.mark.parametrize("page", GOLDEN)
def test_golden_page(mini_site: Path, page: str) -> None:
    built = (mini_site / page).read_text(encoding="utf-8")
    golden = EXPECTED / page
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(built, encoding="utf-8")
    assert built == golden.read_text(encoding="utf-8"), f"{page} differs from tests/expected/mini/{page}"


class _Refs(HTMLParser):
    """Collects href/src values and element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.refs.append(value)
            if name == "id" and value:
                self.ids.add(value)


def _parse(path: Path) -> _Refs:
    parser = _Refs()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _html_files(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def broken_links(site: Path) -> list[str]:
    """Links in SITE's pages to a file or anchor that is not there."""
    broken = []
    for page in _html_files(site):
        for ref in _parse(page).refs:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith(("mailto:", "tel:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file():
                broken.append(f"{page.relative_to(site)} → {ref}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)} → {ref} (no such anchor)")
    return broken


def test_every_link_resolves_to_a_file_and_anchor(mini_site: Path) -> None:
    assert not broken_links(mini_site)


def test_no_external_urls_in_assets_or_references(mini_site: Path) -> None:
    external = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import\s+["']?https?:""")
    offenders = [str(p.relative_to(mini_site)) for p in mini_site.rglob("*")
                 if p.suffix in (".html", ".css", ".js") and external.search(_decoded(p))]
    assert not offenders


def _decoded(path: Path) -> str:
    """A text file as the browser reads it: its BOM decides (the search index is UTF-16), else UTF-8."""
    data = path.read_bytes()
    return data.decode("utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8")


def test_directory_links_point_at_index_html(mini_site: Path) -> None:
    for page in _html_files(mini_site):
        for ref in _parse(page).refs:
            path = urlsplit(ref).path
            assert not (path.endswith("/") or path in (".", "..")), f"{page}: {ref} needs index.html for file://"


def test_public_tree_never_links_to_staff_or_shows_staff_content(mini_site: Path) -> None:
    public = mini_site / "public"
    for page in _html_files(public):
        text = page.read_text(encoding="utf-8")
        for ref in _parse(page).refs:
            if not urlsplit(ref).scheme:
                target = (page.parent / unquote(urlsplit(ref).path)).resolve()
                assert public.resolve() in target.parents or target == public.resolve(), f"{page}: {ref}"
        assert "T-001" not in text and "值班员须准时到岗" not in text, page  # a staff-only procedure
    # the index is packed (gzip, 15 bits a code unit): decode it, or this check could never fail
    public_index = read_index_script((public / "assets/search-index.js").read_bytes())
    staff_index = read_index_script((mini_site / "staff/assets/search-index.js").read_bytes())
    assert "值班员须准时到岗" in staff_index["text"]
    assert "值班员须准时到岗" not in public_index["text"] and "如何报修" in repr(public_index["pages"])
    assert "T-001" not in repr(public_index)


def test_public_guide_unlinks_staff_only_procedures(mini_site: Path) -> None:
    html = (mini_site / "public/guides/t-002.html").read_text(encoding="utf-8")
    assert "值班安排见值班规程。" in html
    staff = (mini_site / "staff/procedures/t-002.html").read_text(encoding="utf-8")
    assert '<a href="t-001.html#交接班">值班规程</a>' in staff


def test_superseded_version_is_kept_hidden_and_linked_from_successor(mini_site: Path) -> None:
    home = (mini_site / "staff/index.html").read_text(encoding="utf-8")
    assert "T-000" not in home and "T-001" in home
    old = (mini_site / "staff/procedures/t-000.html").read_text(encoding="utf-8")
    assert "本版本已被取代" in old and 'href="t-001.html"' in old
    new = (mini_site / "staff/procedures/t-001.html").read_text(encoding="utf-8")
    assert 'href="t-000.html"' in new
    assert "T-000" in (mini_site / "staff/changes.html").read_text(encoding="utf-8")


def test_badges_follow_the_dates(mini_site: Path) -> None:
    overdue = (mini_site / "staff/procedures/t-001.html").read_text(encoding="utf-8")
    upcoming = (mini_site / "staff/procedures/t-002.html").read_text(encoding="utf-8")
    assert "复审日期（2026-06-01）已过" in overdue and "2027-03-01 起生效" in upcoming
    assert "起生效" not in overdue and "复审日期" not in upcoming
    # the banner's note says it: the same fact is not repeated as a badge on the page
    assert "badge--review_overdue" not in overdue and "badge--upcoming" not in upcoming
    home = (mini_site / "staff/index.html").read_text(encoding="utf-8")
    assert "badge--review_overdue" in home and "badge--upcoming" in home   # lists keep the badges


def test_records_page_lists_each_record_with_its_procedures(mini_site: Path) -> None:
    html = (mini_site / "staff/records.html").read_text(encoding="utf-8")
    section = html.split('id="值班记录"')[1].split("</section>")[0]
    assert "T-001" in section and "T-002" in section
    assert "T-000" not in section  # superseded versions are not listed


def _rebuild(root: Path) -> set[str]:
    return set(build(load_config(root), root / "site", today=TODAY, workers=1).rendered)


def test_incremental_rebuild_renders_only_what_depends_on_the_change(mini: Path) -> None:
    first = _rebuild(mini)
    assert "staff/procedures/t-001.html" in first
    assert _rebuild(mini) == set()  # nothing changed, nothing rendered
    body = mini / "procedures/guides/repair.md"
    body.write_text(body.read_text(encoding="utf-8").replace("拨打客服电话。", "拨打客服电话或到前台。"), encoding="utf-8")
    assert _rebuild(mini) == {"staff/procedures/t-002.html", "public/guides/t-002.html"}
    body.write_text(body.read_text(encoding="utf-8").replace("title: 如何报修", "title: 业主如何报修"), encoding="utf-8")
    changed = _rebuild(mini)
    assert {"staff/index.html", "staff/changes.html", "staff/records.html", "staff/tags/报修.html",
            "staff/procedures/t-002.html", "public/index.html", "staff/procedures/t-001.html"} <= changed
    assert "staff/procedures/t-000.html" not in changed  # does not show T-002 at all


def test_config_change_rebuilds_everything(mini: Path) -> None:
    all_pages = _rebuild(mini)
    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("测试花园管理处", "测试花园物业管理处"), encoding="utf-8")
    assert _rebuild(mini) == all_pages


def test_removed_procedure_page_is_deleted(mini: Path) -> None:
    _rebuild(mini)
    (mini / "procedures/guides/repair.md").unlink()
    (mini / "procedures/duty.md").write_text(
        (mini / "procedures/duty.md").read_text(encoding="utf-8").replace("[报修流程](guides/repair.md#二报修步骤)", "报修流程"),
        encoding="utf-8")
    _rebuild(mini)
    assert not (mini / "site/staff/procedures/t-002.html").exists()
    assert not (mini / "site/public/guides/t-002.html").exists()


def test_clean_build_removes_foreign_files(mini: Path) -> None:
    (mini / "site").mkdir()
    (mini / "site/stray.html").write_text("x", encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1, clean=True)
    assert not (mini / "site/stray.html").exists()
    assert (mini / "site/staff/index.html").is_file()


def test_parallel_build_equals_serial_build(tmp_path: Path, mini: Path) -> None:
    from handbook import parallel

    config = load_config(mini)
    old = parallel.PARALLEL_MIN
    parallel.PARALLEL_MIN = 1
    try:
        build(config, tmp_path / "par", today=TODAY, workers=2)
    finally:
        parallel.PARALLEL_MIN = old
    build(config, tmp_path / "ser", today=TODAY, workers=1)
    files = sorted(p.relative_to(tmp_path / "ser") for p in (tmp_path / "ser").rglob("*.html"))
    assert files
    for rel in files:
        assert (tmp_path / "par" / rel).read_bytes() == (tmp_path / "ser" / rel).read_bytes(), rel


def test_ui_language_comes_from_config(mini: Path) -> None:
    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('name = "测试花园"', 'name = "测试花园"\nlanguage = "en"'),
                    encoding="utf-8")
    _rebuild(mini)
    html = (mini / "site/staff/procedures/t-001.html").read_text(encoding="utf-8")
    assert "On this page" in html and 'lang="en"' in html and "本页目录" not in html


def test_home_pages_show_only_notices_still_in_force(mini_site: Path) -> None:
    for tree in ("staff", "public"):
        assert "3栋停水通知" not in (mini_site / f"{tree}/index.html").read_text(encoding="utf-8")  # expired 11-20
        assert "3栋停水通知" in (mini_site / f"{tree}/notices/index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("watching", [True, False], ids=["watch", "one-off"])
def test_memoised_pages_are_reused_only_while_what_they_show_is_unchanged(mini: Path, watching: bool) -> None:
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1, watching=watching)
    duty = mini / "procedures/duty.md"
    duty.write_text(duty.read_text(encoding="utf-8").replace("id: T-001", "id: T-005").replace(
        "title: 值班规程", "title: 值班与交接规程"), encoding="utf-8")
    rendered = set(build(config, mini / "site", today=TODAY, workers=1, watching=watching).rendered)
    repair = (mini / "site/staff/procedures/t-002.html").read_text(encoding="utf-8")
    assert "staff/procedures/t-002.html" in rendered
    assert 'href="t-005.html#交接班"' in repair  # its link follows the renamed target
    assert "值班与交接规程" in repair              # and its previous/next shows the new title
    fresh = mini.parent / "fresh"
    build(load_config(mini), fresh, today=TODAY, workers=1)
    for page in ("staff/procedures/t-002.html", "staff/procedures/t-005.html", "staff/index.html"):
        assert (mini / "site" / page).read_bytes() == (fresh / page).read_bytes(), page


def test_a_deleted_page_is_written_again_though_nothing_it_shows_changed(mini: Path) -> None:
    _rebuild(mini)
    page = mini / "site/staff/procedures/t-002.html"
    before = page.read_bytes()
    page.unlink()
    assert _rebuild(mini) == {"staff/procedures/t-002.html"}
    assert page.read_bytes() == before


def test_a_new_day_renders_the_pages_whose_badges_change(mini: Path) -> None:
    """Badges follow the date; the home pages show the build date; other pages stay as they were."""
    first = _rebuild(mini)
    later = set(build(load_config(mini), mini / "site", today=date(2027, 3, 2), workers=1).rendered)
    assert {"staff/procedures/t-002.html", "public/guides/t-002.html", "staff/index.html", "public/index.html"} <= later
    assert "staff/procedures/t-000.html" not in later and len(later) < len(first)
    assert "起生效" not in (mini / "site/staff/procedures/t-002.html").read_text(encoding="utf-8")
    assert "2027-03-02" in (mini / "site/staff/index.html").read_text(encoding="utf-8")


def test_watch_mode_rereads_unchanged_files_when_a_config_change_drops_their_parse(mini: Path) -> None:
    """--watch keeps no file bytes; a config change invalidates every parsed result, so they are read again."""
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1, watching=True)
    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("测试花园管理处", "测试花园物业管理处"), encoding="utf-8")
    result = build(load_config(mini), mini / "site", today=TODAY, workers=1, watching=True)
    assert result.parsed >= 3
    page = (mini / "site/staff/procedures/t-002.html").read_text(encoding="utf-8")
    assert "测试花园物业管理处" in page and "拨打客服电话" in page


REFERENCE_LINK = """---
id: T-003
title: 交接要点
department: customer-service
category: duty
version: "1.0"
effective: 2026-01-01
review_by: 2027-06-01
owner: 客服主管
audience: both
---

## 要点

交接前看[值班
规程][值班]。

[值班]: duty.md#交接班
"""


@pytest.mark.parametrize("watching", [True, False], ids=["watch", "one-off"])
def test_a_reference_style_link_follows_its_target(mini: Path, watching: bool) -> None:
    """Links Markdown makes from reference definitions (or wrapped over lines) are dependencies too."""
    (mini / "procedures/ref.md").write_text(REFERENCE_LINK, encoding="utf-8")
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1, watching=watching)
    assert 'href="t-001.html#交接班"' in (mini / "site/staff/procedures/t-003.html").read_text(encoding="utf-8")
    duty = mini / "procedures/duty.md"
    duty.write_text(duty.read_text(encoding="utf-8").replace("id: T-001", "id: T-005"), encoding="utf-8")
    build(config, mini / "site", today=TODAY, workers=1, watching=watching)
    assert 'href="t-005.html#交接班"' in (mini / "site/staff/procedures/t-003.html").read_text(encoding="utf-8")


def test_a_broken_reference_style_link_is_reported_on_its_line(mini: Path) -> None:
    from handbook.build import BuildFailed

    (mini / "procedures/ref.md").write_text(REFERENCE_LINK.replace("duty.md#交接班", "gone.md"), encoding="utf-8")
    with pytest.raises(BuildFailed) as failed:
        build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert [str(p) for p in failed.value.problems if "gone.md" in str(p)][0].startswith("procedures/ref.md:18:")


def test_links_on_the_intro_page_are_resolved(mini: Path) -> None:
    (mini / "procedures/index.md").write_text("---\ntitle: 说明\n---\n先读[值班规程](duty.md#交接班)。\n", encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    home = (mini / "site/staff/index.html").read_text(encoding="utf-8")
    assert 'href="procedures/t-001.html#交接班"' in home and "@@doc:" not in home


@pytest.mark.parametrize("page", ["staff/changes.html", "staff/tags/报修.html", "public/index.html"])
def test_a_deleted_listing_page_is_written_again(mini: Path, page: str) -> None:
    _rebuild(mini)
    path = mini / "site" / page
    before = path.read_bytes()
    path.unlink()
    assert _rebuild(mini) == {page}
    assert path.read_bytes() == before


@pytest.mark.parametrize("watching", [True, False], ids=["watch", "one-off"])
def test_listing_pages_follow_a_new_notice(mini: Path, watching: bool) -> None:
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1, watching=watching)
    (mini / "content/notices/lift.md").write_text(
        "---\nid: N-002\ntitle: 电梯保养通知\ndate: 2026-11-21\ncategory: works\n---\n周末保养。\n", encoding="utf-8")
    rendered = set(build(config, mini / "site", today=TODAY, workers=1, watching=watching).rendered)
    assert {"staff/index.html", "staff/notices/index.html", "public/notices/index.html"} <= rendered
    assert "电梯保养通知" in (mini / "site/public/notices/index.html").read_text(encoding="utf-8")


# ---- print header: estate names are free text in CSS -------------------------------------------

@pytest.mark.parametrize("name", ['阳光"花园', "a\\b", "</style><script>alert(1)</script>", "两行\n名字", "A&B"])
def test_css_string_keeps_any_name_inside_its_quotes(name: str) -> None:
    from render.jinja import css_string

    quoted = str(css_string(name))
    inner = quoted[1:-1]
    assert quoted[0] == quoted[-1] == '"' and not set(inner) & set('"<>&\n')
    # a CSS parser reads the escapes back into the name: "\HEX " is one character
    assert re.sub(r"\\([0-9A-F]+) ", lambda m: chr(int(m.group(1), 16)), inner) == name


def test_tree_stylesheet_carries_the_print_header(mini_site: Path) -> None:
    staff = (mini_site / "staff/assets/site.css").read_text(encoding="utf-8")
    public = (mini_site / "public/assets/site.css").read_text(encoding="utf-8")
    assert '@top-right { content: "测试花园 员工手册"; }' in staff
    # a named page: only procedure pages print it, not notices, lists or the root chooser
    assert "@page procedure {" in staff and "body.page-procedure { page: procedure; }" in staff
    assert "@top-right" in public and "员工手册" not in public.rsplit("@media print", 1)[1]
    page = (mini_site / "staff/procedures/t-001.html").read_text(encoding="utf-8")
    assert '@top-left{content:"T-001 · v2.0"}' in page


def test_links_reach_headings_by_anchor_text_or_explicit_id_in_any_case(mini: Path) -> None:
    duty = mini / "procedures/duty.md"
    duty.write_text(duty.read_text(encoding="utf-8") + "\n## Escalation {#Escalate-Now}\n\n升级。\n\n## Main\n\n主要。\n",
                    encoding="utf-8")
    repair = mini / "procedures/guides/repair.md"
    links = "[a](../duty.md#Escalate-Now) [b](../duty.md#escalate-now) [c](../duty.md#Escalation) [d](../duty.md#Main)"
    repair.write_text(repair.read_text(encoding="utf-8") + f"\n{links}\n", encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    html = (mini / "site/staff/procedures/t-002.html").read_text(encoding="utf-8")
    for text in "abc":
        assert f'<a href="t-001.html#Escalate-Now">{text}</a>' in html
    assert '<a href="t-001.html#main_1">d</a>' in html
    assert html.count('id="main"') == 1 and not broken_links(mini / "site")


def test_pages_are_written_whole_readable_and_without_leftovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page goes to a temp file beside it, then is renamed over it: it is 0644 whatever the umask, nothing
    is left behind, the same content is not written again, a temp file a killed build left is replaced, and a
    link planted under the temp name is not followed."""
    import os
    import threading

    from render.writer import write_page

    page = tmp_path / "site/staff/procedures/t-001.html"
    old_umask = os.umask(0o077)
    try:
        assert write_page(page, "<p>一</p>") is True
    finally:
        os.umask(old_umask)
    assert page.read_text(encoding="utf-8") == "<p>一</p>" and page.stat().st_mode & 0o777 == 0o644
    stamp = page.stat().st_mtime_ns
    assert write_page(page, "<p>一</p>") is False and page.stat().st_mtime_ns == stamp
    leftover = page.with_name(f".{page.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # this thread's temp name
    leftover.write_text("半页", encoding="utf-8")
    assert write_page(page, "<p>二</p>") is True and page.read_text(encoding="utf-8") == "<p>二</p>"
    target = tmp_path / "elsewhere.txt"
    target.write_text("不可改", encoding="utf-8")
    leftover.symlink_to(target)
    assert write_page(page, "<p>三</p>") is True
    assert target.read_text(encoding="utf-8") == "不可改" and page.read_text(encoding="utf-8") == "<p>三</p>"
    assert sorted(p.name for p in page.parent.iterdir()) == ["t-001.html"]
    leftover.mkdir()  # a name that cannot be taken back: the page is written under another temp name
    assert write_page(page, "<p>四</p>") is True and page.read_text(encoding="utf-8") == "<p>四</p>"
    assert sorted(p.name for p in page.parent.iterdir()) == [leftover.name, "t-001.html"]


def test_clean_refuses_a_folder_that_holds_no_site_and_deletes_nothing(mini: Path, tmp_path: Path) -> None:
    """`--out /media/usb --clean` meant for /media/usb/site: the stick's own files stay."""
    usb = tmp_path / "usb"
    (usb / "照片").mkdir(parents=True)
    (usb / "财务报表.xlsx").write_bytes(b"keep")
    with pytest.raises(BuildFailed, match="--clean refused"):
        build(load_config(mini), usb, today=TODAY, workers=1, clean=True)
    assert sorted(p.name for p in usb.iterdir()) == ["照片", "财务报表.xlsx"]
    build(load_config(mini), usb / "site", today=TODAY, workers=1)      # a site folder of its own...
    (usb / "site/stray.html").write_text("x", encoding="utf-8")
    build(load_config(mini), usb / "site", today=TODAY, workers=1, clean=True)  # ...is cleaned
    assert not (usb / "site/stray.html").exists() and (usb / "site/staff/index.html").is_file()


def test_an_output_that_is_a_file_is_a_problem_not_a_traceback(mini: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"keep")
    with pytest.raises(BuildFailed, match="output is a file"):
        build(load_config(mini), tmp_path / "afile", today=TODAY, workers=1)
    assert (tmp_path / "afile").read_bytes() == b"keep"


def test_two_registers_with_one_anchor_get_two_and_no_page_id_is_taken(mini: Path) -> None:
    """《值班记录》 and 值班记录 made two sections with id="值班记录": one register's link opened the other's list.
    A register named like the search box (es-q) took the id the page's script looks up."""
    duty = mini / "procedures/duty.md"
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    duty.write_text(duty.read_text(encoding="utf-8").replace("records: [", "records: [值班记录, Es-Q, "), encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)    # incremental: the page learns new anchors
    records = (mini / "site/staff/records.html").read_text(encoding="utf-8")
    ids = re.findall(r'\bid="([^"]*)"', records)
    assert len(ids) == len(set(ids)) and "es-q_1" in ids and "es-q" not in ids   # es-q: the search box's
    page = (mini / "site/staff/procedures/t-001.html").read_text(encoding="utf-8")
    linked = re.findall(r'href="\.\./records\.html#([^"]*)"', page)
    assert len(linked) == len(set(linked)) >= 3 and set(linked) <= set(ids)
    assert broken_links(mini / "site") == []
