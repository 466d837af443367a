"""The Markdown layer: anchors, plain-text headings and sections, and the fast paths' equivalence to stock
Python-Markdown (the converter skips inline work no pattern can do and names headings without the toc
extension; both must change nothing in the HTML)."""

from __future__ import annotations

import re
from pathlib import Path

import markdown
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handbook.models import Heading
from render.anchors import FILE_MARKER, LINK_MARKER, Used, find_anchor, slugify, unique_anchor
from render.markdown import RESERVED_IDS, render_markdown

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "tests" / "data" / "markdown" / "edge-cases.md"


def _stock(text: str) -> str:
    """What plain Python-Markdown with the toc extension makes of TEXT (no link rewriting)."""
    md = markdown.Markdown(
        extensions=["toc", "tables", "attr_list", "fenced_code", "sane_lists"],
        extension_configs={"toc": {"slugify": slugify}},
        output_format="html",
    )
    return md.convert(text)


_MD_LINK = re.compile(r"\]\([^)\s]+\.md(#[^)\s]*)?\)")
SAMPLES = [EDGE, *sorted((ROOT / "procedures").glob("*.md"))]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_html_is_what_stock_python_markdown_makes(path: Path) -> None:
    # links to other procedures and local files are marked on purpose (the builder resolves them): compare
    # everything else
    text = _MD_LINK.sub("](elsewhere.html)", path.read_text(encoding="utf-8"))
    ours = render_markdown(text).html
    assert LINK_MARKER not in ours
    assert ours.replace(FILE_MARKER, "") == _stock(text)


def test_heading_anchors_keep_chinese_and_number_duplicates() -> None:
    anchors = [a for _, _, a in render_markdown(EDGE.read_text(encoding="utf-8")).headings]
    assert anchors[:4] == ["标题", "交接班", "交接班_1", "交接班_2"]
    assert "用-code-的-标题" in anchors
    assert anchors.count("custom-id") == 1 and "custom-id_1" in anchors  # {#custom-id} wins, the later one is numbered
    assert anchors[-1] == "section"  # an empty heading still gets an anchor


def test_heading_titles_and_section_text_are_plain_text() -> None:
    rendered = render_markdown(EDGE.read_text(encoding="utf-8"))
    titles = [title for _, title, _ in rendered.headings]
    assert "转义 * 星号 & 实体 ©" in titles
    assert "含 HTML 的标题" in titles
    everything = " ".join(titles) + " ".join(text for *_, text in rendered.sections)
    assert "\x02" not in everything and "\x03" not in everything
    assert "a@b.cn" in everything  # the obfuscated mail link reads as written


def test_links_to_procedures_become_markers_with_the_fragment_as_written() -> None:
    html = render_markdown("[交接](duty-handover.md#交接 班) [外部](https://example.com/a.md)").html
    assert f'href="{LINK_MARKER}duty-handover.md#交接 班"' in html     # the builder finds the heading
    assert 'href="https://example.com/a.md"' in html


def test_a_fragment_finds_its_heading_however_the_reader_wrote_it() -> None:
    from handbook.models import Heading

    text = "## 交接 班\n\n## Escalation {#Escalate-Now}\n\n## Main\n\n## 交接 班\n"
    headings = [Heading._make(h) for h in render_markdown(text).headings]
    assert [h.anchor for h in headings] == ["交接-班", "Escalate-Now", "main_1", "交接-班_1"]
    for fragment, anchor in [("交接 班", "交接-班"), ("交接-班", "交接-班"), ("交接-班_1", "交接-班_1"),
                             ("Escalate-Now", "Escalate-Now"), ("escalate-now", "Escalate-Now"),
                             ("Escalation", "Escalate-Now"), ("Main", "main_1"), ("main_1", "main_1"), ("没有", None)]:
        assert find_anchor(headings, fragment) == anchor, fragment


def test_headings_never_take_an_id_the_page_gives_its_own_elements() -> None:
    """A heading "ES Page" once took id="es-page", and the page's search script broke on the second one."""
    root = Path(__file__).parent.parent / "render"
    ids = set()
    for path in [*root.glob("templates/**/*.html"), *root.glob("static/*.js")]:
        text = path.read_text(encoding="utf-8")
        ids |= set(re.findall(r'\bid="([^"{}]+)"', text)) | set(re.findall(r'getElementById\("([^"]+)"\)', text))
    assert ids and ids <= RESERVED_IDS
    anchors = [anchor for _, _, anchor in render_markdown("\n\n".join(f"## {i}" for i in sorted(ids))).headings]
    assert not set(anchors) & ids
    assert render_markdown("## ES Dropdown 3").headings[0][2] == "section-es-dropdown-3"   # search.js's option ids
    assert 'a.id = (list.id || "es-dropdown") + "-" + k' in (root / "static/search.js").read_text(encoding="utf-8")


def test_table_of_contents_nests_subheadings_under_their_heading() -> None:
    from handbook.models import Heading
    from handbook.pages import nest_toc

    heads = [Heading(3, "前言", "a"), Heading(2, "一", "b"), Heading(3, "1.1", "c"), Heading(4, "深", "d"),
             Heading(3, "1.2", "e"), Heading(2, "二", "f")]
    toc = nest_toc(heads)
    assert [e["text"] for e in toc] == ["前言", "一", "二"]  # a level-3 heading before any level 2 stays on top
    assert [e["text"] for e in toc[1]["children"]] == ["1.1", "1.2"]
    assert toc[1]["children"][0]["children"] == []  # level 4 is left out of the table of contents


def test_html_comments_are_notes_that_reach_neither_page_nor_search() -> None:
    rendered = render_markdown("## 维修\n\n<!-- 内部：-> 3栋1502 王先生 138… -->\n\n报修后 2 小时内到场。<!-- 备注 -->\n")
    assert "<!--" not in rendered.html and "王先生" not in rendered.html
    text = " ".join(section_text for *_, section_text in rendered.sections)
    assert "王先生" not in text and "备注" not in text and "2 小时内到场" in text


def test_section_text_of_raw_html_is_what_a_reader_sees() -> None:
    rendered = render_markdown('<details><summary>更多</summary><p title="a > b">细节</p><style>p{}</style></details>\n')
    text = " ".join(section_text for *_, section_text in rendered.sections)
    assert "细节" in text and "更多" in text and "a > b" not in text and "p{}" not in text


def test_code_in_a_heading_reads_as_written_in_its_title_and_anchor() -> None:
    rendered = render_markdown("## 使用 `<br>` 换行\n\n正文 `<!-- 不是注释 -->`。\n")
    assert rendered.headings == [(2, "使用 <br> 换行", "使用-br-换行")]
    assert "&lt;!-- 不是注释 --&gt;" in rendered.html  # code that shows a comment stays visible
    assert "<!-- 不是注释 -->" in rendered.sections[0][3]


def test_links_are_read_as_a_browser_reads_them() -> None:
    links = render_markdown("[甲](missing&#56;.md) [乙](duty\\_x.md#交接) [丙](http://[x])\n").links
    assert links == [("missing8.md", ""), ("duty_x.md", "交接")]


def test_each_link_is_placed_on_the_line_where_its_path_is_next_written():
    """Problems with a link name its line: the same path twice is two lines, a reference definition counts,
    a link the text shows out of order is still found, and one written in another form gets the first line."""
    from render.markdown import link_lines

    text = ("见[交接](duty.md)。\n"          # line 10
            "再见[交接](duty.md#交班)。\n"     # 11
            "[维修][r]\n"                       # 12
            "\n"                                # 13
            "[r]: <repair.md>\n"               # 14
            "[前台](front%20desk.md)\n")        # 15
    links = [("duty.md", ""), ("duty.md", "交班"), ("repair.md", ""), ("duty.md", "again"),
             ("front desk.md", "")]
    assert link_lines(text, links, first_line=10) == [
        ("duty.md", "", 10), ("duty.md", "交班", 11), ("repair.md", "", 14), ("duty.md", "again", 10),
        ("front desk.md", "", 10)]
    assert link_lines(text, []) == []


# Pieces of Markdown that each fast path must tell apart from what it skips: every block kind (and text that
# merely looks like one), inline syntax, escapes, raw HTML, attribute lists, full-width digits and spaces
# (not HTML comments: those are dropped on purpose, see test_html_comments_are_notes…).
PIECES = [
    "物业服务中心受理报修。", "2024年起执行", "１２３全角数字", "\u3000全角空格开头", "  两个空格", "    缩进代码",
    "\t制表符缩进", "1. 第一步", "2) 不是列表", "- 项目", "* 项目", "+ 项目", "-不是列表", "**粗体**开头",
    "*斜体*", "__粗体__", "_下划线_", "# 标题", "## 二级标题 ##", "标题\n===", "标题\n---", "---", "***",
    "_ _ _", "- - -", "> 引用", "a > b", "| 步骤 | 时限 |\n|---|---|\n| 1 | 当日 |", "甲 | 乙",
    "[r]: http://example.com", "[链接][r]", "[链接](a.html)", "![图](p.png)", "<http://example.com>",
    "\\*转义\\*", "\\[方括号\\]", "`代码 <br>`", "<div>原始 HTML</div>", "&amp; &copy",
    "{: #custom }", "### 带属性 {#own}", "行尾两空格  \n下一行", "```\n代码块\n```", "a_b_c", "#不是标题",
    "= 等号", "1.5 小时", "第1.步", "两字\t\n制表符成了行尾空格", "<b>粗</b>", "a&b", "!感叹", "[方括号]",
    "- 项目\n  <div>缩进的块级 HTML</div>", "甲\n   <details>乙</details>",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(["\n", "\n\n", " ", "\n\n\n\n"])), min_size=1, max_size=14))
def test_fast_paths_change_nothing_whatever_the_document(parts: list[tuple[str, str]]) -> None:
    """Random documents of tricky pieces: our converter (with its shortcuts around the block tests, the inline
    pass, attr_list and unescape) makes exactly the HTML stock Python-Markdown makes."""
    text = "".join(piece + sep for piece, sep in parts)
    assert render_markdown(text).html.replace(FILE_MARKER, "") == _stock(text)


def test_the_shortcuts_are_in_place() -> None:
    """Each shortcut falls back silently to stock behaviour when Python-Markdown is not as it expects (same
    HTML, only slower): this says they are all on with the Python-Markdown we install."""
    import render.markdown as converter
    from render import markdown_speed as speed

    render_markdown("**粗体**开头的段落。")
    md = converter._converter
    assert type(next(iter(md.parser.blockprocessors))) is speed._PlainParagraph
    assert isinstance(md.parser.blockprocessors, speed._ListedOnce)
    assert all(isinstance(md.treeprocessors[name], speed._OnlyIf) for name in ("attr_list", "unescape"))
    assert "handbook_skip_plain" in md.treeprocessors
    patterns = md.treeprocessors["inline"].inlinePatterns
    assert isinstance(patterns, tuple) and 0 < len(patterns) < len(md.inlinePatterns)  # only those for "*"


class _CountingUsed(Used):
    checks = 0

    def __contains__(self, key: object) -> bool:
        self.checks += 1
        return super().__contains__(key)


def test_numbering_duplicate_headings_goes_on_where_it_stopped() -> None:
    """8,000 headings "## 标题" took 74 s when each walked _1, _2… again; the ids are the toc extension's."""
    used = _CountingUsed(RESERVED_IDS)
    ids = [unique_anchor("标题", used) for _ in range(2000)]
    assert ids[:3] == ["标题", "标题_1", "标题_2"] and ids[-1] == "标题_1999" and len(set(ids)) == 2000
    assert used.checks < 3 * 2000
    assert unique_anchor("标题_5", used) == "标题_2000"    # numbered on from its own number, past the taken ones


def test_a_heading_ending_in_thousands_of_digits_is_text_not_a_number() -> None:
    """int() refuses more than 4,300 digits: the second such heading had crashed the build."""
    long = "a_" + "9" * 5000
    html = render_markdown(f"## {long}\n\n## {long}\n").html
    anchor = long[:1000]   # see the next test
    assert f'id="{anchor}"' in html and f'id="{anchor}_1"' in html


def test_an_anchor_is_made_from_the_first_thousand_characters() -> None:
    """Normalizing a run of combining marks takes quadratic time: a tag of 80,000 of them took a build 33 s."""
    assert slugify("a" + "\u0301" * 80_000) == "á"
    assert slugify("派" * 1500) == "派" * 1000


def test_a_page_of_many_headings_is_indexed_once_for_all_links_into_it() -> None:
    headings = [Heading(2, f"T{i}", f"X-{i}") for i in range(3000)]
    assert find_anchor(headings, "x-2999") == "X-2999" and find_anchor(headings, "T5") == "X-5"
    assert find_anchor(headings, "t5") == "X-5" and find_anchor(headings, "nope") is None
    from render import anchors
    assert anchors._INDEXES[id(headings)][0] is headings
