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
