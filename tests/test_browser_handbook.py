"""The handbook in a real browser (Debian's chromium via Playwright), from file:// and over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, watched_page

pytestmark = pytest.mark.browser


@pytest.fixture(params=["file", "http"])
def base(request: pytest.FixtureRequest, mini_site: Path) -> str:
    """The site root as a file:// URL or as http://127.0.0.1:PORT."""
    if request.param == "file":
        return mini_site.as_uri()
    return request.getfixturevalue("mini_http")


@pytest.fixture
def page(chromium) -> Iterator:  # noqa: ANN001
    with watched_page(chromium, 1280, 900) as pg:
        yield pg


def _in_viewport(pg, selector: str) -> bool:  # noqa: ANN001
    return pg.eval_on_selector(selector, "e => { const r = e.getBoundingClientRect();"
                                         " return r.top >= 0 && r.top < window.innerHeight; }")


def test_follow_cross_link_to_a_heading(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/staff/procedures/t-001.html")
    assert page.title().startswith("值班规程")
    page.click("text=报修流程")
    page.wait_for_url("**/t-002.html#*")
    assert page.url.endswith("t-002.html#二报修步骤") or page.url.endswith("t-002.html#%E4%BA%8C%E6%8A%A5%E4%BF%AE%E6%AD%A5%E9%AA%A4")
    assert _in_viewport(page, "h2[id='二报修步骤']")
    page.screenshot(path=str(ARTIFACTS / f"handbook-crosslink-{base[:4]}.png"), full_page=True)


def test_toc_link_lands_on_chinese_anchor(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/staff/procedures/t-001.html")
    page.click(".toc >> text=交接班")
    assert page.evaluate("decodeURIComponent(location.hash)") == "#交接班"
    assert _in_viewport(page, "h2[id='交接班']")


@pytest.mark.parametrize(("path", "placeholder", "action"), [
    ("staff/procedures/t-001.html", "搜索规程、知识库（按 / 键）", "/staff/search.html"),
    ("public/index.html", "搜索公告、办事指南（按 / 键）", "/public/search.html"),
])
def test_header_search_box_knows_its_tree(page, base: str, path: str, placeholder: str, action: str) -> None:  # noqa: ANN001
    """The slot carries no root or placeholder: search.js takes them from its script's src and the tree."""
    page.goto(f"{base}/{path}")
    box = page.locator(".site-search input[name=q]")
    assert box.get_attribute("placeholder") == placeholder
    assert page.eval_on_selector(".site-search form", "f => f.action").endswith(action)
    box.fill("报修")
    box.press("Enter")
    page.wait_for_url(f"**{action}?q=*")
    page.wait_for_selector(".es-page-results .es-result, .es-status")


@pytest.mark.parametrize("width", [1280, 390])
def test_meta_labels_stay_with_their_values_however_long(chromium, mini_site: Path, width: int) -> None:  # noqa: ANN001
    """No wrapper per pair: a label must still start its value's line, and a long value must wrap, not spill."""
    with watched_page(chromium, width, 900) as page:
        page.goto(f"{mini_site.as_uri()}/staff/procedures/t-001.html")
        page.evaluate("""() => {
            const dds = document.querySelectorAll('.proc-meta dd');
            dds[3].textContent = 'Customer Relationship Management Supervisor (Night Shift)';
            dds[4].textContent = '工程设备设施维护保养与智能化系统运行管理中心工程设备设施维护保养与智能化系统运行管理中心';
            dds[5].textContent = 'Telecommunications/Infrastructure/Maintenance/Department';
        }""")
        report = page.evaluate("""() => {
            const meta = document.querySelector('.proc-meta'), out = [];
            for (const dt of meta.querySelectorAll('dt')) {
                const dd = dt.nextElementSibling, a = [...dt.getClientRects()].pop(), b = dd.getClientRects()[0];
                if (Math.abs(a.top - b.top) > 1 || b.left < a.right - 1) out.push(dt.textContent + ' is not beside its value');
            }
            if (meta.scrollWidth > meta.clientWidth + 1) out.push('a value spills out of the list');
            return out;
        }""")
        assert report == []


def test_tag_chips_on_a_procedure_keep_apart(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/staff/procedures/t-001.html")
    chips = page.locator(".proc-tags a")
    assert chips.count() >= 2
    first, second = chips.nth(0).bounding_box(), chips.nth(1).bounding_box()
    assert second["x"] - (first["x"] + first["width"]) >= 6       # a space and both margins apart


def test_print_stylesheet_hides_navigation(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/staff/procedures/t-001.html")
    assert page.is_visible(".site-nav")
    page.emulate_media(media="print")
    for selector in (".site-header", ".toc", ".breadcrumbs", ".prev-next", ".site-footer"):
        assert not page.is_visible(selector), selector
    assert page.is_visible(".proc-banner__id")
    after = page.eval_on_selector(".proc-body a[href]", "a => getComputedStyle(a, '::after').content")
    assert "t-002.html" in after  # printed pages show where a link goes
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    page.screenshot(path=str(ARTIFACTS / "handbook-print.png"), full_page=True)


def test_home_groups_and_badges_render(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/staff/index.html")
    assert page.inner_text("#h-cat-duty").startswith("值班与交接班")
    assert page.is_visible("text=已过复审期") and page.is_visible("text=即将生效")
    page.click("text=如何报修")
    page.wait_for_url("**/procedures/t-002.html")


def test_phone_layout_has_no_horizontal_scroll(chromium, mini_site: Path) -> None:  # noqa: ANN001
    context = chromium.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2)
    pg = context.new_page()
    for path in ("staff/index.html", "staff/procedures/t-002.html", "public/index.html"):
        pg.goto((mini_site / path).as_uri())
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a phone"
    pg.screenshot(path=str(ARTIFACTS / "handbook-phone.png"), full_page=True)
    context.close()


def test_keyboard_skip_link_and_landmarks(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/public/guides/t-002.html")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.keyboard.press("Tab")    # the next stop is inside the main content, past header and navigation
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")
    # banner and contentinfo are the implicit roles of a header and footer that sit directly in <body>
    for role in ("banner", "main", "contentinfo", "navigation"):
        assert page.get_by_role(role).count() >= 1, role
    assert page.get_by_role("banner").count() == 1 and page.get_by_role("contentinfo").count() == 1


def test_department_chips_filter_the_home_lists(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/staff/index.html")
    assert page.is_visible("text=值班规程") and page.is_visible("text=如何报修")
    page.click("[data-dept-filter] >> text=工程部")
    assert page.is_visible("text=如何报修") and not page.is_visible("text=值班规程")
    assert not page.is_visible("#cat-duty")  # a category with nothing left is hidden too
    page.click("[data-dept-filter] >> text=全部部门")
    assert page.is_visible("text=值班规程")
