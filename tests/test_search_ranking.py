"""Search ranking and matching rules in a real browser, each on a tiny estate written for the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from handbook.search import SearchDoc
from tests.conftest import watched_page
from tests.test_search_browser import write_site

pytestmark = pytest.mark.browser

TOP = """([q, n]) => EstateSearch.search(q, {limit: n, sections: 1}).results.map(r => r.page.title)"""


def doc(title: str, text: str, heading: str = "", *, pid: str = "", n: int = 0, date: str = "2026-01-01") -> SearchDoc:
    """One section of a procedure page; pages are told apart by PID (or N)."""
    pid = pid or f"P-{n:03d}"
    anchor = f"#s{abs(hash(heading)) % 1000}" if heading else ""
    return SearchDoc(url=f"procedures/{pid.lower()}.html{anchor}", title=title, section=heading, text=text,
                     kind="procedure", id=pid, date=date)


@pytest.fixture
def page(chromium):
    with watched_page(chromium, 1100, 800) as pg:
        yield pg


def open_site(pg, tmp_path: Path, docs: list[SearchDoc]) -> None:
    """Write a site of DOCS and open its search page with the index loaded."""
    site = write_site(tmp_path, docs)
    pg.goto(site.as_uri() + "/search.html")
    pg.wait_for_function("window.EstateSearch && EstateSearch.index")


def top(pg, q: str, n: int = 10) -> list[str]:
    return pg.evaluate(TOP, [q, n])


def test_a_token_only_titles_hold_still_counts(page, tmp_path):
    """钥匙管理: 匙管 is in no section, only in titles; the pages titled …钥匙管理规定 still come first."""
    docs = [doc(f"{name}钥匙管理规定", "物业服务工作须规范，做好记录。", n=i) for i, name in enumerate(["东区", "西区", "南区"])]
    docs += [doc("装修管理规程", "装修管理须登记，管理处审批，管理人员巡查，管理费另计。", n=10 + i)
             for i in range(2)]
    docs += [doc("档案管理制度", "档案管理由管理处负责，管理台账每月核对。", n=20)]
    open_site(page, tmp_path, docs)
    assert set(top(page, "钥匙管理")[:3]) == {"东区钥匙管理规定", "西区钥匙管理规定", "南区钥匙管理规定"}


LATIN = [
    doc("国庆假期装修施工时间提醒", "假期内装修材料只可在 8:00–10:00 经北门进出。", pid="N-2026-008"),
    doc("表单接口说明", "每张表单一个 JSON 文件，编码 UTF-8（可带 BOM）。老系统导出的 GBK 文件自动转换。",
        "4.1 投递方式", pid="KB-002"),
    doc("服务触点标准", "休息区有座椅、饮水机。", "4.1 前台", pid="QA-SOP-001"),
    doc("计划停电通知", "停电范围：A座 1–3 单元。", pid="N-2026-009"),
    doc("值班与交接班规程", "值班员每两小时巡查一次。", pid="CS-SOP-003"),
    doc("客户服务规范", "不议论住户。", "4.3 与住户相处", pid="CS-SOP-001"),
    doc("上门服务规范", "动手前说明故障原因。", "4.3 作业中", pid="CS-SOP-005"),
    doc("意见箱管理规程", "当天 17:30 前完成分办，3 天内答复。", "4.3 答复时限", pid="CS-SOP-009"),
]


def test_latin_and_digits_match_at_word_starts_in_titles_ids_and_headings(page, tmp_path):
    """UTF-8 is not N-2026-008 (its id holds an 8 mid-number); A座 is not QA-SOP-001 (QA holds an a)."""
    open_site(page, tmp_path, LATIN)
    assert top(page, "UTF-8") == ["表单接口说明"]
    assert top(page, "A座")[0] == "计划停电通知"
    assert "服务触点标准" not in top(page, "A座")
    assert top(page, "8")[0] == "国庆假期装修施工时间提醒"       # an id's number, leading zeros dropped


@pytest.mark.parametrize("query", ["sop3", "sop 3", "SOP-3", "cs-sop-3", "CS-SOP-003", "cssop003", "003"])
def test_short_procedure_numbers_find_the_procedure_first(page, tmp_path, query):
    open_site(page, tmp_path, LATIN)
    assert top(page, query)[0] == "值班与交接班规程"


def test_highlights_mark_latin_at_word_starts_only(page, tmp_path):
    open_site(page, tmp_path, LATIN)
    snippet = page.evaluate("q => EstateSearch.search(q, {sections: 1}).results[0].sections[0].snippet", "b")
    assert "<mark>B</mark>OM" in snippet
    assert "G<mark>" not in snippet


def test_synonym_fragments_are_not_marked_where_the_synonym_is_not(page, tmp_path):
    """报修 brings in 修东西: its 东西 must not be marked in 什么东西坏了, nor carried to the page by ?h=."""
    open_site(page, tmp_path, [doc("如何报修", "报修时请说明：什么东西坏了、从什么时候开始。", "4.2 报修时请说明", n=1)])
    hit = page.evaluate("q => EstateSearch.search(q, {sections: 1}).results[0].sections[0]", "报修")
    marked = [m.split("</mark>")[0] for m in hit["snippet"].split("<mark>")[1:]]
    assert "报修" in marked and "坏了" in marked
    assert not any("东西" in w for w in marked + hit["hits"]), (marked, hit["hits"])
    assert "%E4%B8%9C%E8%A5%BF" not in hit["url"]       # 东西


def test_one_shared_latin_letter_suggests_nothing(page, tmp_path):
    """Pinyin "bao" shares only an o with JSON: no "did you mean"; a shared pair of letters still suggests."""
    open_site(page, tmp_path, [doc("表单接口说明", "每张表单一个文件。", "JSON 格式", n=1),
                               doc("值班与交接班规程", "交接班须签字。", "4.3 交接班", n=2)])
    suggest = "q => EstateSearch.search(q).suggestions"
    assert page.evaluate(suggest, "bao") == []
    assert page.evaluate(suggest, "jason") == ["JSON 格式"]
    assert page.evaluate(suggest, "交借班")[0] == "交接班"


STATE = [doc("常见问题标准答复", "对讲门铃由工程部维修，住户可直接报修。", "楼下的对讲门铃坏了找谁？", n=1),
         doc("常见问题标准答复", "停车场收费按月结算。", "停车费怎么交？", n=1),
         doc("突发事件应急处理规程", "通过电梯对讲安抚被困者，通知电梯维保单位。", "4.4 电梯困人", n=2),
         doc("5栋电梯年度检修通知", "检修期间请使用 6 栋电梯，电梯厅张贴了时间。", n=3),
         doc("装修须知", "材料搬运请使用货梯或电梯保护板。", "4.4 装修垃圾与材料", n=4)]


@pytest.mark.parametrize(("query", "first"), [
    ("电梯坏了", {"突发事件应急处理规程", "5栋电梯年度检修通知"}), ("电梯壞了", {"突发事件应急处理规程", "5栋电梯年度检修通知"}),
    ("门铃坏了", {"常见问题标准答复"}), ("坏了", {"常见问题标准答复"}), ("电梯失灵了", {"突发事件应急处理规程", "5栋电梯年度检修通知"}),
])
def test_a_state_word_names_no_heading_unless_it_is_all_the_query_says(page, tmp_path, query, first):
    """电梯坏了 is about the lift: the FAQ heading that says 坏了 (of a doorbell) came first, as 坏了 is the rarer
    word. 坏了 still counts where it is written, and alone it finds that heading."""
    open_site(page, tmp_path, STATE)
    found = top(page, query)
    assert found[0] in first, found
    if "电梯" in query:
        assert "常见问题标准答复" not in found[:2], found


@pytest.mark.parametrize(("query", "found"), [
    ("门铃按钮坏掉了", ["常见问题标准答复"]),   # 坏掉 is written nowhere: it must not halve the coverage
    ("门铃按钮失灵", ["常见问题标准答复"]),
    ("1503坏了", []),                         # the room number must still be there; 坏了 alone is not enough
])
def test_a_state_word_is_not_needed_for_coverage(page, tmp_path, query, found):
    open_site(page, tmp_path, STATE)
    assert top(page, query)[:1] == found


def test_matches_that_touch_only_once_punctuation_is_folded_away_are_marked_apart(page, tmp_path):
    """Folding drops punctuation and spaces, so 回访 and 回访时 of "回访。 回访时" touch in the folded text: one
    <mark> then ran over the 。 between them. Matches written side by side are still one mark."""
    open_site(page, tmp_path, [doc("投诉处理规程", "三天内完成回访。 回访时确认结果；客服电话回访。", "4.5 回访", n=1)])
    snippet = page.evaluate("q => EstateSearch.search(q, {sections: 1}).results[0].sections[0].snippet", "回访时间")
    assert "<mark>回访</mark>。 <mark>回访时</mark>" in snippet, snippet
    assert "<mark>电话回访</mark>" in page.evaluate(
        "q => EstateSearch.search(q, {sections: 1}).results[0].sections[0].snippet", "电话回访")
