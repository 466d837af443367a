"""Every bad input to the builder fails the build with file:line problems and leaves site/ untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from estate.config import ConfigError, load_config
from handbook.build import BuildFailed, build
from tests.conftest import TODAY

GOOD = """---
id: T-009
title: 新规程
department: customer-service
category: duty
version: "1.0"
effective: 2026-01-01
review_by: 2027-01-01
owner: 客服主管
audience: staff
tags: [测试]
records: [《值班记录》]
---

## 一、目的

正文。
"""


def problems_for(root: Path) -> list[str]:
    """Build ROOT and return the problems as printed lines (the build must fail)."""
    with pytest.raises(BuildFailed) as exc:
        build(load_config(root), root / "site", today=TODAY, workers=1)
    return [str(p) for p in exc.value.problems]


def write(root: Path, name: str, text: str | bytes) -> None:
    path = root / "procedures" / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.replace("title: 新规程\n", ""), "procedures/new.md:1: 缺少必填字段 title"),
        (lambda s: s.replace("effective: 2026-01-01", "effective: 2026-13-45"), "procedures/new.md:7: 字段 effective"),
        (lambda s: s.replace("department: customer-service", "department: 财务"), "procedures/new.md:4: 未知的部门"),
        (lambda s: s.replace("category: duty", "category: 不存在"), "procedures/new.md:5: 未知的类别"),
        (lambda s: s.replace("audience: staff", "audience: everyone"), "procedures/new.md:10: 字段 audience"),
        (lambda s: s.replace("id: T-009", "id: T 009/x"), "procedures/new.md:2: 字段 id"),
        (lambda s: s.replace("tags: [测试]", "tags: {a: 1}"), "procedures/new.md:11: 字段 tags"),
        (lambda s: s.replace("id: T-009", "id: T-001"), "编号 T-001 重复"),
        (lambda s: s.replace("正文。", "见[值班](nope.md)。"), "procedures/new.md:17: 链接指向不存在的规程 nope.md"),
        (lambda s: s.replace("正文。", "见[值班](duty.md#没有这个标题)。"), "procedures/new.md:17: 链接指向 duty.md 中不存在的标题"),
        (lambda s: s.replace("review_by: 2027-01-01", "review_by: 2025-01-01"), "procedures/new.md:8: 复审日期早于生效日期"),
        (lambda s: s + "\n[[policy:nonsense]]\n", "procedures/new.md:19: 未知的占位符 [[policy:nonsense]]"),
        (lambda s: s.replace("audience: staff", "supersedes: T-404\naudience: staff"), "procedures/new.md:10: supersedes 指向不存在的编号 T-404"),
        (lambda s: s.replace("tags: [测试]", "tags: [测试"), "procedures/new.md:12: 前置元数据 YAML 语法错误"),
        (lambda s: s.replace("---\nid", "id", 1), "procedures/new.md:1: 缺少前置元数据"),
    ],
    ids=["missing-field", "bad-date", "unknown-department", "unknown-category", "bad-audience", "bad-id",
         "tags-not-list", "duplicate-id", "broken-link", "broken-heading", "review-before-effective",
         "unknown-placeholder", "unknown-supersedes", "yaml-syntax", "no-front-matter"],
)
def test_bad_procedure_is_reported_with_file_and_line(mini: Path, edit, expected: str) -> None:  # noqa: ANN001
    write(mini, "new.md", edit(GOOD))
    found = problems_for(mini)
    assert any(expected in p for p in found), found


def test_gbk_file_is_named_as_gbk(mini: Path) -> None:
    write(mini, "gbk.md", GOOD.encode("gbk"))
    assert problems_for(mini) == ["procedures/gbk.md:3: 文件是 GBK 编码，请另存为 UTF-8 (file is GBK-encoded; save it as UTF-8)"]


def test_invalid_utf8_names_the_line(mini: Path) -> None:
    write(mini, "bad.md", GOOD.encode("utf-8").replace("正文".encode(), b"\xff\xfe\xfd"))
    (found,) = problems_for(mini)
    assert found.startswith("procedures/bad.md:17: 不是有效的 UTF-8"), found


def test_utf8_bom_is_accepted(mini: Path) -> None:
    write(mini, "bom.md", b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert (mini / "site/staff/procedures/t-009.html").is_file()


def test_all_problems_are_reported_at_once(mini: Path) -> None:
    write(mini, "a.md", GOOD.replace("title: 新规程\n", ""))
    write(mini, "b.md", GOOD.replace("id: T-009", "id: T-010").replace("正文。", "[x](missing.md)"))
    write(mini, "c.md", GOOD.encode("gbk"))
    found = problems_for(mini)
    assert {p.split(":")[0] for p in found} == {"procedures/a.md", "procedures/b.md", "procedures/c.md"}


def test_failed_build_leaves_previous_site_untouched(mini: Path) -> None:
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1)
    before = {p: p.read_bytes() for p in (mini / "site").rglob("*") if p.is_file()}
    write(mini, "bad.md", GOOD.replace("department: customer-service", "department: 不存在"))
    (mini / "procedures/duty.md").write_text(
        (mini / "procedures/duty.md").read_text(encoding="utf-8").replace("值班员须准时到岗", "改过的内容"), encoding="utf-8")
    problems_for(mini)
    after = {p: p.read_bytes() for p in (mini / "site").rglob("*") if p.is_file()}
    assert after == before


def test_link_to_a_file_that_failed_to_parse_is_not_reported_twice(mini: Path) -> None:
    write(mini, "target.md", GOOD.replace("title: 新规程\n", ""))
    write(mini, "source.md", GOOD.replace("id: T-009", "id: T-011").replace("正文。", "[x](target.md#一目的)"))
    found = problems_for(mini)
    assert len(found) == 1 and found[0].startswith("procedures/target.md"), found


def test_cli_exits_1_and_prints_problems(mini: Path) -> None:
    write(mini, "bad.md", GOOD.replace("owner: 客服主管\n", ""))
    run = subprocess.run([sys.executable, "build.py", "--root", str(mini), "--today", "2026-11-22"],
                         capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert run.returncode == 1
    assert "procedures/bad.md:1: 缺少必填字段 owner" in run.stderr
    assert not (mini / "site").exists()


@pytest.mark.parametrize("out", [".", "..", "procedures", "content/site", "var/site", "inbox"])
def test_an_output_folder_over_the_sources_is_refused_and_nothing_is_deleted(mini: Path, out: str) -> None:
    """`--out . --clean` emptied the estate root: procedures/ and content/ were gone."""
    before = sorted(p.relative_to(mini) for p in mini.rglob("*"))
    run = subprocess.run([sys.executable, "build.py", "--root", str(mini), "--out", str(mini / out), "--clean"],
                         capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert run.returncode == 1
    assert "输出文件夹不能是规程库根目录或它的上级" in run.stderr and "(output folder would overwrite" in run.stderr
    assert sorted(p.relative_to(mini) for p in mini.rglob("*")) == before


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[estate]\n", "estate.name: required setting is missing"),
        ('[estate]\nname = "x"\nlanguage = "fr"\n', "estate.language: 'fr' is not one of"),
        ('[estate]\nname = 5\n', "estate.name: expected str"),
        ('[estate]\nname = "x"\n[build]\nworkers = "two"\n', "build.workers: expected int"),
        ('[estate]\nname = "x"\nsurprise = 1\n', "estate.surprise: unknown setting"),
        ('[estate\nname = "x"\n', "TOML syntax error"),
        ('[estate]\nname = "x"\ntimezone = "Asia/Shanghai"\n', "estate.timezone: 'Asia/Shanghai' is not a UTC offset"),
    ],
)
def test_bad_config_is_reported(mini: Path, toml: str, expected: str) -> None:
    (mini / "content/estate.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(mini)
    assert expected in str(exc.value)
    assert "content/estate.toml" in str(exc.value)


def test_broken_synonyms_file_fails_the_build_with_its_name(mini: Path) -> None:
    (mini / "content/synonyms.toml").write_text("[[group\nwords = 1", encoding="utf-8")
    found = problems_for(mini)
    assert len(found) == 1 and "content/synonyms.toml" in found[0] and "TOML" in found[0], found


def test_embedded_external_resource_is_a_problem_but_a_link_is_not(mini: Path) -> None:
    write(mini, "img.md", GOOD.replace("正文。", "图示：\n\n![平面图](https://example.com/plan.png)\n\n"
                                                "[住建部网站](https://www.mohurd.gov.cn/)"))
    found = problems_for(mini)
    assert len(found) == 1 and found[0].startswith("procedures/img.md:19: 引用了外部资源 https://example.com/plan.png"), found


def test_hostile_text_is_escaped_not_executed(mini: Path) -> None:
    hostile = GOOD.replace("title: 新规程", 'title: "<script>alert(1)</script>{{ 7*7 }}"').replace(
        "正文。", "模板语法 {{ 7*7 }} {% if x %} 原样显示。")
    write(mini, "hostile.md", hostile)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/staff/procedures/t-009.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "{{ 7*7 }}" in page and "{% if x %}" in page and ">49<" not in page


def test_problems_name_the_file_as_it_sits_in_the_estate(mini: Path) -> None:
    (mini / "content/notices/bad.md").write_text("---\nid: N-002\ntitle: 停电\n---\n正文\n", encoding="utf-8")
    (mini / "handbook").mkdir()
    (mini / "procedures").rename(mini / "handbook/sop")
    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '\n[build]\nprocedures_dir = "handbook/sop"\n', encoding="utf-8")
    write_to = mini / "handbook/sop/x.md"
    write_to.write_text(GOOD.replace("owner: 客服主管\n", ""), encoding="utf-8")
    found = problems_for(mini)
    assert "content/notices/bad.md:1: 缺少必填字段 date (missing field)" in found
    assert "handbook/sop/x.md:1: 缺少必填字段 owner (missing field)" in found


@pytest.mark.parametrize("body, what", [
    ("<script>alert(1)</script>", "<script>"),
    ('<img src="plan.png" onerror="alert(1)">', "事件属性 onerror="),
    ("[点我](javascript:alert(1))", "脚本链接 javascript:alert(1)"),
    ('<a href="jav&#x61;script:alert(1)">点我</a>', "脚本链接 javascript:alert(1)"),
    ('<iframe src="form.html"></iframe>', "<iframe>"),
    ('<div onclick = "x()">按钮</div>', "事件属性 onclick="),
    ("[点此](javascript&colon;alert(document.cookie))", "脚本链接 javascript:alert(document.coo"),
    ('<div title=">" onmouseover="alert(3)">移到这里</div>', "事件属性 onmouseover="),
    ('<svg><a><animate attributeName="href" values="javascript:alert(1)"/><text>点</text></a></svg>', "<animate>"),
    ('<a href="\x01 java\tscript:alert(1)">点</a>', "脚本链接 javascript:alert(1)"),
    ("<div title=a'>\n<script>alert(2)</script>\n'</div>", "<script>"),
    ('点击 <img src=x title\u3000=\u3000" onerror=alert(12)//"> 查看', "事件属性 onerror="),
    ('<svg><style><img src=x onerror=alert(1)></style></svg>', "事件属性 onerror="),
    ('<svg/onload=alert(1)>', "事件属性 onload="),
    ('<div>\n<scr<a href="@@doc:nope.md#"></a>ipt>alert(3)</script>\n</div>', "构建程序的保留字"),
    ('<noscript><p title="</noscript><img src=x onerror=alert(6)>"></p></noscript>', "<noscript>"),
    ('<textarea><p title="</textarea><img src=x onerror=alert(7)>"></p></textarea>', "<textarea>"),
    ("<![CDATA[><img src=x onerror=alert(22)>]]>", "CDATA"),
    ("<details open><summary>步骤</summary>\n<img src=x onerror=alert(25) ", "没有写完"),
    ('<svg width="10"><rect width="10" height="10" filter="url(https://evil.test/f.svg#f)"/></svg>', "<svg>"),
    ('文字\n{: onclick="alert(1)" }', "事件属性 onclick="),
], ids=["script", "onerror", "md-link", "entity-link", "iframe", "handler", "named-entity", "quoted-gt", "svg-animate",
        "controls", "stray-quote", "fullwidth-space", "svg-style", "slashes", "forged-marker", "noscript", "textarea",
        "cdata", "unfinished", "svg-filter", "attr-list"])
def test_active_content_in_a_body_is_a_problem_with_its_line(mini: Path, body: str, what: str) -> None:
    write(mini, "active.md", GOOD.replace("正文。", f"说明：\n\n{body}\n"))
    found = problems_for(mini)
    assert found and all(f.startswith(("procedures/active.md:19: ", "procedures/active.md:20: ")) for f in found), found
    assert any(what in f for f in found), found


@pytest.mark.parametrize("body", [
    '<img src="https:evil.example/p.png">', "![图](https:evil.example/m.png)",
    '<img src="https:&sol;&sol;evil.example/e.png">', '<img src="https:\\\\evil.example\\b.png">',
    '<span style="background-image:url(https://evil.example/p.png)">字</span>',
    '<svg><image href="https://evil.example/s.png"/></svg>', '<img srcset="a.png 1x, //evil.example/b.png 2x">',
    '<span style="background:u\\72l(\\68ttps://evil.example/a.png)">字</span>',
    '<div style="background-image:image-set(\'https://evil.example/a.png\' 1x)">字</div>',
], ids=["no-slashes", "md-image", "entity-slashes", "backslashes", "css-url", "svg-image", "srcset", "css-escapes",
        "image-set"])
def test_anything_loaded_from_another_host_is_a_problem(mini: Path, body: str) -> None:
    """Images name the host; CSS that could load anything and SVG are refused as such."""
    (mini / "procedures/a.png").write_bytes(b"\x89PNG")   # srcset's local candidate is there: only the other one is wrong
    write(mini, "net.md", GOOD.replace("正文。", f"说明：\n\n{body}\n"))
    found = problems_for(mini)
    assert found and all(f.startswith("procedures/net.md:19: ") for f in found), found
    reasons = ("引用了外部资源", "style 中不允许", "<svg>", "<image>")
    assert all(any(r in f for r in reasons) for f in found), found


def test_a_raw_html_link_to_a_markdown_file_is_a_problem(mini: Path) -> None:
    write(mini, "raw.md", GOOD.replace("正文。", '见 <a href="duty.md">值班</a>。'))
    found = problems_for(mini)
    assert len(found) == 1 and "指向 Markdown 文件" in found[0] and found[0].startswith("procedures/raw.md:17:"), found


def test_the_intro_page_is_checked_too(mini: Path) -> None:
    (mini / "procedures/index.md").write_text("---\ntitle: 手册说明\n---\n本手册收录作业规程。\n\n<img src=x onerror=alert(2)>\n",
                                               encoding="utf-8")
    found = problems_for(mini)
    assert len(found) == 1 and found[0].startswith("procedures/index.md:6: ") and "onerror" in found[0], found


def test_words_that_look_like_handlers_and_commented_html_are_fine(mini: Path) -> None:
    (mini / "procedures/fees.pdf").write_bytes(b"%PDF-1.4")  # a local file the link needs (a missing one is a problem)
    write(mini, "fine.md", GOOD.replace("正文。", '见[缴费](fees.pdf "可 online=在线缴费")。\n\n<!-- <iframe src="x"></iframe> -->\n'))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)  # no BuildFailed
    assert "iframe" not in (mini / "site/staff/procedures/t-009.html").read_text(encoding="utf-8")


def test_code_about_scripts_and_plain_html_are_fine(mini: Path) -> None:
    write(mini, "code.md", GOOD.replace("正文。", "示例：`<script>` 与 `onclick=` 只是文字。\n\n```html\n<script>x()</script>\n```\n\n"
                                                 '<details><summary>更多</summary><kbd>Ctrl</kbd> 见 <a href="#一目的">目的</a></details>'))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)  # no BuildFailed
    page = (mini / "site/staff/procedures/t-009.html").read_text(encoding="utf-8")
    assert "<kbd>Ctrl</kbd>" in page and "&lt;script&gt;" in page


def test_a_malformed_url_is_left_to_the_browser_not_a_crash(mini: Path) -> None:
    write(mini, "url.md", GOOD.replace("正文。", "见[官网](http://[x]) 与 <http://x.cn[1]>。"))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert "官网" in (mini / "site/staff/procedures/t-009.html").read_text(encoding="utf-8")


def test_a_title_that_mentions_javascript_is_only_text(mini: Path) -> None:
    (mini / "procedures/fees.html").write_text("<p>缴费</p>", encoding="utf-8")
    write(mini, "title.md", GOOD.replace("正文。", '[提示](fees.html "不要点 javascript: 开头的链接")'))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)  # no BuildFailed


def test_code_that_shows_css_or_html_is_only_text(mini: Path) -> None:
    write(mini, "css.md", GOOD.replace("正文。", "样式示例：\n\n```css\nbody { background: url(http://intranet/bg.png) }\n```\n\n"
                                                "<table><tr><td style=\"text-align:center\">居中</td></tr></table>\n"))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)  # no BuildFailed


def test_braces_in_a_table_cell_are_not_lost_silently(mini: Path) -> None:
    """Python-Markdown's attr_list reads "{24小时}" at the end of a cell as attributes: say so, with the fix."""
    write(mini, "braces.md", GOOD.replace("正文。", "| 项目 | 时限 |\n|---|---|\n| 受理报修 {24小时} | 即时 |\n"))
    found = problems_for(mini)
    assert len(found) == 1 and "24小时" in found[0] and "\\{24小时\\}" in found[0], found


@pytest.mark.parametrize("body", ['<div data-search-slot data-root="https://evil.example/">x</div>',
                                  '<p id="es-page">x</p>'], ids=["planted-search-slot", "search-id"])
def test_hooks_of_the_pages_own_scripts_cannot_be_planted(mini: Path, body: str) -> None:
    write(mini, "hook.md", GOOD.replace("正文。", body))
    found = problems_for(mini)
    assert found and all(f.startswith("procedures/hook.md:17:") and "不允许的属性" in f for f in found), found


def test_a_notice_links_to_procedures_like_a_procedure_does(mini: Path) -> None:
    """Notice links are relative to procedures/; a missing target or heading is a problem on its line."""
    notice = mini / "content/notices/water.md"
    notice.write_text(notice.read_text(encoding="utf-8") + "\n报修见[报修流程](guides/repair.md#二报修步骤)，"
                      "另见[旧流程](gone.md)。\n", encoding="utf-8")
    found = problems_for(mini)
    assert len(found) == 1 and "gone.md" in found[0] and found[0].startswith("content/notices/water.md:12:"), found
    notice.write_text(notice.read_text(encoding="utf-8").replace("，另见[旧流程](gone.md)", ""), encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/public/notices/n-001.html").read_text(encoding="utf-8")
    assert 'href="../guides/t-002.html#二报修步骤"' in page


def test_utf16_file_is_named_as_utf16(mini: Path) -> None:
    """Windows Notepad's "Unicode" is UTF-16 with a byte-order mark."""
    write(mini, "notepad.md", GOOD.encode("utf-16"))
    found = problems_for(mini)
    assert found == ["procedures/notepad.md:1: 文件是 UTF-16 编码（记事本的“Unicode”），请另存为 UTF-8 (file is UTF-16; save it as UTF-8)"]


def test_a_broken_link_on_the_intro_page_is_a_problem(mini: Path) -> None:
    (mini / "procedures/index.md").write_text("---\ntitle: 说明\n---\n见[不存在](nope.md)。\n", encoding="utf-8")
    assert problems_for(mini) == ["procedures/index.md:4: 链接指向不存在的规程 nope.md (broken link)"]


def test_a_broken_link_names_its_own_line_not_an_earlier_mention(mini: Path) -> None:
    write(mini, "mention.md", GOOD.replace("正文。", "旧文件名是 `guides/repair.md`。\n\n见[报修](guides/repair.md#没有这节)。"))
    found = problems_for(mini)
    assert len(found) == 1 and found[0].startswith("procedures/mention.md:19: "), found


# ---- output names that would collide: one page would silently overwrite another ----------------

@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("[index]", "标签 “index” 的页面会与标签总览 tags/index.html 重名"),
        ("[A B, a-b]", "标签 “A B”、“a-b” 的页面同为 tags/a-b.html"),
        ("['🔥', '💧']", "标签 “💧”、“🔥” 的页面同为 tags/section.html"),
    ],
)
def test_tags_whose_pages_collide_fail_the_build(mini: Path, tags: str, expected: str) -> None:
    write(mini, "new.md", GOOD.replace("tags: [测试]", f"tags: {tags}"))
    assert any(p.startswith("procedures/new.md:11: " + expected) for p in problems_for(mini))


def test_ids_differing_only_in_case_fail_the_build(mini: Path) -> None:
    """Pages are named by the id in lower case: t-001 would overwrite T-001's page."""
    write(mini, "new.md", GOOD.replace("id: T-009", "id: t-001"))
    assert any(p.startswith("procedures/new.md:2: 编号 t-001 重复，已用于 procedures/duty.md（T-001")
               for p in problems_for(mini))


@pytest.mark.parametrize(("new_id", "expected"), [("INDEX", "公告编号 INDEX 与公告列表页 notices/index.html 重名"),
                                                  ("n-001", "公告编号 n-001 重复，已用于 content/notices/water.md")])
def test_notice_ids_that_would_overwrite_a_page_fail_the_build(mini: Path, new_id: str, expected: str) -> None:
    water = (mini / "content/notices/water.md").read_text(encoding="utf-8")
    (mini / "content/notices/zz.md").write_text(water.replace("id: N-001", f"id: {new_id}"), encoding="utf-8")
    assert any(p.startswith("content/notices/zz.md:2: " + expected) for p in problems_for(mini))


def test_a_file_with_a_front_matter_problem_also_has_its_body_checked(mini: Path) -> None:
    """All of a file's problems in one run: fixing the department must not reveal a script on the next one."""
    write(mini, "both.md", GOOD.replace("department: customer-service", "department: nowhere")
          .replace("正文。", "正文。\n\n<script>alert(1)</script>\n\n[[policy:nonsense]]\n"))
    found = problems_for(mini)
    assert any(p.startswith("procedures/both.md:4: 未知的部门") for p in found)
    assert any(p.startswith("procedures/both.md:19: 不允许的 HTML 标签 <script>") for p in found)
    assert any(p.startswith("procedures/both.md:21: 未知的占位符 [[policy:nonsense]]") for p in found)


def test_a_number_in_the_front_matter_is_kept_as_written(mini: Path) -> None:
    write(mini, "num.md", GOOD.replace('version: "1.0"', "version: 1.10").replace("owner: 客服主管", "owner: 2024"))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/staff/procedures/t-009.html").read_text(encoding="utf-8")
    assert "<dd>1.10</dd>" in page and "<dd>2024</dd>" in page


def test_a_key_written_twice_in_the_front_matter_is_a_problem(mini: Path) -> None:
    write(mini, "twice.md", GOOD.replace("title: 新规程\n", "title: 新规程\nid: T-010\n"))
    assert "procedures/twice.md:4: 字段 id 写了不止一次，只能保留一个 (duplicate key)" in problems_for(mini)


def test_front_matter_without_its_closing_line_says_so(mini: Path) -> None:
    write(mini, "open.md", GOOD.replace("records: [《值班记录》]\n---\n", "records: [《值班记录》]\n"))
    assert "procedures/open.md:1: 前置元数据没有结束：YAML 块之后须有单独一行 --- (front matter block not closed)" \
        in problems_for(mini)


def test_the_same_problem_twice_is_reported_on_each_line(mini: Path) -> None:
    write(mini, "twice.md", GOOD.replace("正文。", "<script>a()</script>\n\n正文。\n\n[点我](javascript:alert(1))\n\n"
                                                   "<script>b()</script>\n\n[再点](javascript:alert(2))\n"))
    found = problems_for(mini)
    assert [p.split(": ")[0] for p in found if "<script>" in p] == ["procedures/twice.md:17", "procedures/twice.md:23"]
    assert [p.split(": ")[0] for p in found if "脚本链接" in p] == ["procedures/twice.md:21", "procedures/twice.md:25"]


@pytest.mark.parametrize("value", [
    "[" * 100_000 + "]" * 100_000,                   # libyaml's composer overflowed its C stack: a crash
    "\n" + "".join(" " * i + "a:\n" for i in range(1, 1200)) + " " * 1200 + "1",
    "&a [1, *a]",                                    # an anchor inside itself
    "{a: " * 30 + "1" + "}" * 30,
    "[" * 1500 + "]" * 1500,                         # pickle could not carry it between processes: a hang
    "[" * 21 + "]" * 21,                             # one level past NESTING_MAX (20 pass: see below)
], ids=["100,000 brackets", "1,200 indented keys", "self-reference", "30 mappings", "1,500 brackets", "21 levels"])
def test_a_front_matter_value_nested_absurdly_deep_is_a_problem_not_a_crash(mini: Path, value: str) -> None:
    (mini / "procedures/new.md").write_text(GOOD.replace("tags: [测试]", f"extra: {value}\ntags: [测试]"),
                                            encoding="utf-8")
    found = problems_for(mini)
    assert len(found) == 1 and found[0].startswith("procedures/new.md:") and "nested too deeply" in found[0]


def test_front_matter_nested_a_little_or_repeated_by_aliases_is_fine(mini: Path) -> None:
    """19 levels, and a "billion laughs" block (a few nodes reached 9^6 ways) read in a moment."""
    laughs = "".join(f"\nl{n}: &l{n} [" + ", ".join([f"*l{n - 1}" if n else "1"] * 9) + "]" for n in range(7))
    page = GOOD.replace("tags: [测试]", f"deep: {'[' * 19}{']' * 19}{laughs}\ntags: [测试]")
    (mini / "procedures/new.md").write_text(page, encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert (mini / "site/staff/procedures/t-009.html").is_file()


def test_a_procedure_saved_as_upper_case_md_is_built_like_any_other(mini: Path) -> None:
    """Windows editors and zip tools may write KEY.MD: it is a procedure, not a file to skip without a word."""
    write(mini, "KEY.MD", GOOD)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert "新规程" in (mini / "site/staff/procedures/t-009.html").read_text(encoding="utf-8")


def test_links_to_files_named_with_an_ampersand_or_written_with_backslashes_work(mini: Path) -> None:
    (mini / "procedures/sub").mkdir()
    write(mini, "sub/水电&燃气.md", GOOD)
    write(mini, "new.md", GOOD.replace("T-009", "T-010").replace("正文。", "见[水电](sub/水电&燃气.md)、"
                                                                         "[燃气](sub/水电%26燃气.md)与[同一篇](sub\\水电&燃气.md#一目的)。"))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/staff/procedures/t-010.html").read_text(encoding="utf-8")
    assert '见<a href="t-009.html">水电</a>、<a href="t-009.html">燃气</a>与<a href="t-009.html#一目的">同一篇</a>。' in page


def test_a_file_name_that_is_not_utf8_is_a_problem_named_as_its_owner_reads_it(mini: Path) -> None:
    """A zip made on Chinese Windows names its files in GBK: a problem, not a UnicodeEncodeError traceback."""
    (mini / "procedures").joinpath(os.fsdecode("值班规程.md".encode("gbk"))).write_text(GOOD, encoding="utf-8")
    write(mini, "bad.md", GOOD.replace("T-009", "T-010").replace("department: customer-service", "department: 财务"))
    problems = problems_for(mini)
    assert "procedures/值班规程.md:1: 文件名不是 UTF-8 编码（可能来自 GBK 的压缩包），请重命名 (file name is not UTF-8)" in problems
    assert any(p.startswith("procedures/bad.md:4: 未知的部门") for p in problems)   # the others are still checked


def test_a_file_that_cannot_be_read_is_a_problem(mini: Path) -> None:
    (mini / "procedures/gone.md").symlink_to(mini / "procedures/nowhere.md")
    assert problems_for(mini) == ["procedures/gone.md:1: 无法读取文件：No such file or directory (cannot read the file)"]


def test_a_missing_procedures_folder_fails_the_build_instead_of_emptying_the_handbook(mini: Path) -> None:
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '\n[build]\nprocedures_dir = "procedure"\n', encoding="utf-8")
    before = sorted(p.relative_to(mini / "site") for p in (mini / "site").rglob("*"))
    assert [p.split(": ")[0] for p in problems_for(mini)] == ["procedure:1"]
    assert sorted(p.relative_to(mini / "site") for p in (mini / "site").rglob("*")) == before


def test_a_second_intro_page_is_a_problem(mini: Path) -> None:
    write(mini, "README.md", "# 说明\n\n另一份介绍。\n")
    assert problems_for(mini) == ["procedures/index.md:1: 规程文件夹里已有一个首页介绍（index.md 或 README.md），只能有一个 "
                                  "(a second intro page)"]


def test_a_body_nested_hundreds_deep_is_a_problem_not_a_crash(mini: Path) -> None:
    write(mini, "new.md", GOOD + "\n" + "\n".join("    " * i + "- 项" for i in range(400)) + "\n")
    write(mini, "other.md", GOOD.replace("T-009", "T-010"))   # converted after it, in the same process
    assert problems_for(mini) == ["procedures/new.md:1: 正文的列表或引用嵌套了上百层，无法转换，请减少层级 (body nested too deeply)"]
    write(mini, "new.md", GOOD)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert "新规程" in (mini / "site/staff/procedures/t-010.html").read_text(encoding="utf-8")


def test_a_body_problem_does_not_hide_the_same_files_broken_links_and_files(mini: Path) -> None:
    write(mini, "new.md", GOOD.replace("正文。", "![图](https://example.com/a.png)\n\n见[无](nope.md)与![缺](none.png)。"))
    assert problems_for(mini) == [
        "procedures/new.md:17: 引用了外部资源 https://example.com/a.png：离线打开时无法显示，请把文件放进站点 (external resource)",
        "procedures/new.md:19: 引用的文件不存在：none.png (missing file)",
        "procedures/new.md:19: 链接指向不存在的规程 nope.md (broken link)",
    ]


@pytest.mark.parametrize("kind", ["procedure", "notice"])
def test_a_front_matter_problem_does_not_hide_the_same_files_broken_links_and_files(mini: Path, kind: str) -> None:
    """Before, a file whose front matter failed had only its front matter and body markup checked: its broken
    links and missing files showed up one build later, after the author had fixed the first problem."""
    body = "见[无](nope.md)、[值班](duty.md#没有这个标题)与![缺](none.png)。"
    if kind == "procedure":
        write(mini, "new.md", GOOD.replace("department: customer-service", "department: 财务").replace("正文。", body))
        shown, line = "procedures/new.md", 17
    else:
        (mini / "content/notices/bad.md").write_text(f"---\nid: N-BAD\ntitle: 坏公告\ndate: 2026-13-01\n---\n\n{body}\n",
                                                    encoding="utf-8")
        shown, line = "content/notices/bad.md", 7
    found = problems_for(mini)
    assert sorted(p for p in found if "(broken link)" in p or "(no such heading)" in p or "(missing file)" in p) == [
        f"{shown}:{line}: 引用的文件不存在：none.png (missing file)",
        f"{shown}:{line}: 链接指向 duty.md 中不存在的标题 #没有这个标题 (no such heading)",
        f"{shown}:{line}: 链接指向不存在的规程 nope.md (broken link)",
    ]
    assert len(found) == 4 and any(p.startswith(f"{shown}:4: ") for p in found)  # the front matter's own


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("audience: staff", "audience: staff\nsupercedes: T-001",
     "未知字段 supercedes，是不是 supersedes？(unknown field; did you mean supersedes?)"),
    ("tags: [测试]", "tag: [测试]", "未知字段 tag，是不是 tags？(unknown field; did you mean tags?)"),
    ("owner: 客服主管", "owner：客服主管", "字段名后是全角冒号“：”，请改成半角冒号加空格“: ” (full-width colon after a key)"),
])
def test_a_misspelt_key_or_a_full_width_colon_is_a_problem_on_its_line(mini: Path, old: str, new: str,
                                                                       expected: str) -> None:
    """A typo'd `supercedes:` had left the old version listed as current, without a word."""
    text = GOOD.replace(old, new)
    write(mini, "new.md", text)
    line = text.split("\n").index(new.split("\n")[-1]) + 1
    assert f"procedures/new.md:{line}: {expected}" in problems_for(mini)


def test_a_key_of_the_estates_own_is_kept_without_a_problem(mini: Path) -> None:
    write(mini, "new.md", GOOD.replace("records: [《值班记录》]\n", "records: [《值班记录》]\nreviewer: 李主管\n"))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)


@pytest.mark.parametrize("written", ["tags: 甲类, 乙类", "tags: 甲类，乙类", "tags: [甲类，乙类]", "tags: 甲类、乙类"])
def test_a_list_written_without_brackets_or_with_chinese_commas_is_still_a_list(mini: Path, written: str) -> None:
    write(mini, "new.md", GOOD.replace("tags: [测试]", written))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert sorted(p.name for p in (mini / "site/staff/tags").glob("*类*")) == ["乙类.html", "甲类.html"]


def test_a_resource_problem_names_its_own_line_not_an_earlier_link_to_the_same_site(mini: Path) -> None:
    body = ("详见[市住建局通知](https://zjj.example.gov.cn/notice/2025.html)。\n\n中间一段。\n\n"
            "![流程图](https://zjj.example.gov.cn/img/flow.png)")
    write(mini, "new.md", GOOD.replace("正文。", body))
    line = GOOD.replace("正文。", body).split("\n").index("![流程图](https://zjj.example.gov.cn/img/flow.png)") + 1
    assert [p.split(" 引用了")[0] for p in problems_for(mini)] == [f"procedures/new.md:{line}:"]


def test_a_notice_that_expires_before_its_date_is_a_problem(mini: Path) -> None:
    """It would never be shown, and nothing would say why."""
    notice = mini / "content/notices/water.md"
    notice.write_text(notice.read_text(encoding="utf-8").replace("expires: 2026-11-20", "expires: 2026-11-10"),
                      encoding="utf-8")
    assert problems_for(mini) == ["content/notices/water.md:6: 过期日期早于发布日期：公告永远不会显示 (expires before its date)"]


@pytest.mark.parametrize(("hostile", "char"), [
    ("[" * 10_000, "["),                        # each "[" made Python-Markdown scan to the paragraph's end: 36 s
    ("[a][" * 8_000, "["),                      # a reference's text never closes: 79 s
    ("[" * 5_000 + "]" * 5_000, "["),           # closed, but each nested one scans half the paragraph: 11 s
    ("[a](" * 8_000, "("),                      # a link's address never closes: 72 s
    ("<a " * 10_000, "<"),                      # HTMLParser looks for each tag's ">" to the document's end: 18 s
], ids=["open-brackets", "open-references", "nested-brackets", "open-addresses", "open-tags"])
def test_thousands_of_unmatched_brackets_are_a_problem_not_a_stalled_build(mini: Path, hostile: str, char: str) -> None:
    """A pasted log or a hostile file: the conversion stops when it has scanned 40 times the file, and says why."""
    write(mini, "new.md", GOOD + "\n" + "[开头]还好。\n\n" * 3 + hostile + "\n")
    write(mini, "other.md", GOOD.replace("T-009", "T-010"))   # converted after it, in the same process
    assert problems_for(mini) == [f"procedures/new.md:25: 正文里有成千上万个没有配对的“{char}”，转换要一遍遍重扫全文，已停止："
                                  f"请配对，或写成“\\{char}”（原样展示的文字请放进代码块） "
                                  f"(too many unmatched '{char}': Markdown conversion stopped)"]
    write(mini, "new.md", GOOD)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert "新规程" in (mini / "site/staff/procedures/t-010.html").read_text(encoding="utf-8")


def test_a_long_page_of_many_links_and_tags_is_well_within_the_scanning_budget(mini: Path) -> None:
    """Matched brackets and finished tags scan each character about once: 3,000 of them in a paragraph are fine."""
    many = "".join(f"[第{n}条](https://example.org/{n}) 与 [备注{n}]、<br>" for n in range(3_000))
    write(mini, "new.md", GOOD.replace("正文。", many))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/staff/procedures/t-009.html").read_text(encoding="utf-8")
    assert page.count('<a href="https://example.org/') == 3_000 and "[备注2999]、<br>" in page


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("正文。", "![图](" + "图" * 100 + ".png)", "procedures/new.md:17: 引用的文件不存在：" + "图" * 100 + ".png (missing file)"),
    ("tags: [测试]", "tags: [" + "标" * 100 + "]", "procedures/new.md:11: 字段 tags：标签“" + "标" * 20 + "…”太长"),
    ("id: T-009", "id: T-" + "9" * 300, "procedures/new.md:2: 字段 id：编号有 302 个字符，最多 100 个 (id too long)"),
], ids=["file-name-too-long", "tag-too-long", "id-too-long"])
def test_a_name_too_long_for_a_file_is_a_problem_before_anything_is_written(mini: Path, old: str, new: str,
                                                                            expected: str) -> None:
    """Python 3.11's is_file raised ENAMETOOLONG (a traceback); an id or tag that names a page's file failed the
    build only while it wrote pages, past the checks, with site/ half-written."""
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    before = {p: p.read_bytes() for p in (mini / "site").rglob("*") if p.is_file()}
    write(mini, "new.md", GOOD.replace(old, new))
    assert [p for p in problems_for(mini) if p.startswith(expected)] != []
    assert {p: p.read_bytes() for p in (mini / "site").rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("key", ["1", "~", "true", "2026-01-01"])
def test_a_front_matter_key_that_is_not_text_is_kept_like_any_other_unknown_key(mini: Path, key: str) -> None:
    """YAML reads `1: 2` as the number 1: the misspelt-key check had crashed on it."""
    write(mini, "new.md", GOOD.replace("tags: [测试]", f"{key}: 2\ntags: [测试]"))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert (mini / "site/staff/procedures/t-009.html").is_file()


@pytest.mark.parametrize("hostile", [
    "**" + "*a*" * 33_000 + "**",     # an element of 33,000 children, each placed by a lookup among all: 12 s
    "***" + "a*" * 40_000,            # 17 s
    "\\" * 100_000,                   # each escape rewrote the whole paragraph: 10 s
    "`a " * 100_000,                  # 300 KB of code spans: 13 s
], ids=["emphasis-children", "emphasis-run", "backslashes", "code-spans"])
def test_thousands_of_inline_matches_in_one_paragraph_are_a_problem_not_a_stalled_build(mini: Path,
                                                                                       hostile: str) -> None:
    write(mini, "new.md", GOOD + "\n" + "[开头]还好。\n\n" * 3 + hostile + "\n")
    [problem] = problems_for(mini)
    assert problem.startswith("procedures/new.md:25: 正文的一段里有成千上万处行内标记（")
    assert problem.endswith("(too much inline markup in one paragraph: Markdown conversion stopped)")
