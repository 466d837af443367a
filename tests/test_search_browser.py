"""Search in a real browser: headless Chromium types queries on a small site, from file:// and over HTTP."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import quote

import pytest

from estate.config import EstateConfig, EstateInfo
from handbook.search import SearchDoc, build_index, pack15
from render.i18n import translator
from render.jinja import environment, render, static_files
from tests.conftest import serve, watched_page

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "data" / "search_fixture.toml"
ARTIFACTS = REPO / "tests" / "artifacts"
PAGE = """{% extends "base.html" %}{% block main %}<article><h1>{{ title }}</h1>
{% for s in sections %}{% if s.heading %}<h2 id="{{ s.anchor }}">{{ s.heading }}</h2>{% endif %}<p>{{ s.text }}</p>
{% endfor %}</article>{% endblock %}"""


def fixture_pages() -> list[dict]:
    """The hand-written pages of tests/data/search_fixture.toml."""
    return tomllib.loads(FIXTURE.read_text(encoding="utf-8"))["page"]


def fixture_docs() -> list[SearchDoc]:
    """One SearchDoc per fixture section, as the builder would hand them over."""
    docs = []
    for p in fixture_pages():
        for s in p["section"]:
            docs.append(SearchDoc(url=p["url"] + (f"#{s['anchor']}" if s["anchor"] else ""), title=p["title"],
                                  section=s["heading"], text=s["text"], kind=p["kind"], id=p["id"],
                                  department=p.get("department", ""), category=p.get("category", ""),
                                  audience=p["audience"], tags=tuple(p.get("tags", ())), date=p["date"]))
    return docs


def config() -> EstateConfig:
    """A config whose root is the repository, so the estate's real synonyms file is used."""
    return EstateConfig(estate=EstateInfo(name="测试花园"), root=REPO)


def context(path: str, title: str) -> dict:
    """The base template's context, as handbook/pages.py builds it."""
    return {"tree": "staff", "root": "../" * path.count("/"), "path": path, "title": title, "crumbs": [],
            "language": "zh-Hans", "built": "2026-05-01",
            "estate": {"name": "测试花园", "office": "测试花园管理处", "phone": "", "emergency_phone": "", "address": ""}}


def write_site(out: Path, docs: list[SearchDoc] | None = None) -> Path:
    """Write the fixture site (pages, search page, assets, index) into OUT; return OUT."""
    for rel, data in static_files().items():
        (out / "assets" / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / "assets" / rel).write_bytes(data)
    for rel, text in build_index(docs or fixture_docs(), config()).items():
        (out / rel).write_bytes(text)
    t = translator("zh-Hans")
    for p in fixture_pages():
        html = environment().from_string(PAGE).render({**context(p["url"], p["title"]), "t": t,
                                                         "sections": p["section"]})
        (out / p["url"]).parent.mkdir(parents=True, exist_ok=True)
        (out / p["url"]).write_text(html, encoding="utf-8")
    (out / "index.html").write_text(environment().from_string(PAGE).render(
        {**context("index.html", "首页"), "t": t, "sections": []}), encoding="utf-8")
    (out / "search.html").write_text(render("search.html", context("search.html", "搜索")), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def browser(chromium):
    """The session's headless Chromium (tests/conftest.py): one Playwright per process."""
    return chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return write_site(tmp_path_factory.mktemp("search-site"))


@pytest.fixture(scope="module")
def http_root(site):
    server, base = serve(site)
    yield base + "/"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["file", "http"])
def base_url(request, site) -> str:
    """The site's root URL, from file:// and over HTTP on 127.0.0.1."""
    if request.param == "file":
        return site.as_uri() + "/"
    return request.getfixturevalue("http_root")


@pytest.fixture
def page(browser):
    with watched_page(browser, 1100, 800) as pg:
        yield pg


def shot(pg, name: str) -> None:
    """Save a screenshot under tests/artifacts/ for a human to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"search-{name}.png"), full_page=True)


def dropdown_titles(pg) -> list[str]:
    return pg.locator("#es-dropdown a.es-hit .es-title").all_inner_texts()


pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("query", "expected_title", "marked"), [
    ("交接班", "值班与交接班规程", "交接班"),
    ("交接班", "值班与交接班规程", "交接班"),
    ("投诉", "客戶投訴處理程序", "投訴"),        # Simplified query, Traditional page
    ("回访", "客戶投訴處理程序", "回訪"),
    ("維修", "报修受理与派工规程", "维修"),      # Traditional query, Simplified page
    ("a座1502", "报修受理与派工规程", "A座1502"),
    ("ＷＯ－２０２６", "报修受理与派工规程", "WO-2026"),
    ("abc123", "报修受理与派工规程", "ＡＢＣ１２３"),
])
def test_dropdown_finds_and_marks(page, base_url, query, expected_title, marked):
    page.goto(base_url + "procedures/cs-sop-003.html")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "es-q"
    page.keyboard.type(query)
    page.wait_for_selector("#es-dropdown a.es-hit")
    assert dropdown_titles(page)[0] == expected_title
    marks = page.locator("#es-dropdown a.es-hit").first.locator("mark").all_inner_texts()
    assert marked in "".join(marks)
    if query == "投诉":
        shot(page, "dropdown-cross-script")


def type_in_search_box(page, query: str, wait_for: str = "#es-dropdown a.es-hit") -> None:  # noqa: ANN001
    """Focus the header search box with its "/" shortcut, type QUERY, and wait for WAIT_FOR in the drop-down."""
    page.keyboard.press("/")
    page.keyboard.type(query)
    page.wait_for_selector(wait_for)


def test_keyboard_opens_section_and_page_highlights(page, base_url):
    page.goto(base_url + "index.html")
    type_in_search_box(page, "回访")
    page.keyboard.press("ArrowDown")
    assert "es-active" in (page.locator("#es-dropdown a.es-hit").first.get_attribute("class") or "")
    page.keyboard.press("Enter")
    page.wait_for_url("**/cs-sop-010.html?h=*#*")
    assert page.url.endswith("#" + quote("二回訪"))
    page.wait_for_selector("main mark.es-mark")
    assert "回訪" in page.locator("main mark.es-mark").all_inner_texts()
    shot(page, "opened-page-highlight")


def test_search_page_is_shareable_and_filters(page, base_url):
    page.goto(base_url + "search.html?q=" + quote("记录"))
    page.wait_for_selector(".es-page-results .es-result")
    titles = page.locator(".es-page-results .es-title").all_inner_texts()
    assert titles[0] == "值班与交接班规程"
    assert "客戶投訴處理程序" in titles          # 記錄 in Traditional text
    page.select_option("select[name=department]", "工程部")
    page.wait_for_function("document.querySelectorAll('.es-page-results .es-result').length === 0")
    assert page.locator(".es-none").inner_text().startswith("没有找到")
    shot(page, "search-page-filter")


def test_browser_unpacks_what_python_packs(page, base_url):
    """search.js's unpack15 undoes handbook/search.py's pack15 byte for byte (odd, even and tiny sizes)."""
    page.goto(base_url + "index.html")
    for size in (0, 1, 48, 49, 50, 777, 70_001):
        data = bytes((i * 97 + (i >> 9)) % 256 for i in range(size))
        got = page.evaluate("([t, n]) => Array.from(EstateSearch.unpack15(t, 0, n))", [pack15(data), size])
        assert bytes(got) == data, size


def test_empty_query_lists_recent_changes(page, base_url):
    page.goto(base_url + "search.html")
    page.wait_for_selector(".es-page-results .es-result")
    assert page.locator(".es-status").inner_text() == "最近更新"
    dates = page.locator(".es-page-results .es-date").all_inner_texts()
    assert dates == sorted(dates, reverse=True) and dates[0] == "2026-04-02"


def test_no_results_suggests_terms(page, base_url):
    page.goto(base_url + "search.html?q=" + quote("交借班"))     # a typo: 借 for 接
    page.wait_for_selector(".es-none")
    suggestions = page.locator(".es-suggestion").all_inner_texts()
    assert suggestions[0] == "交接班"
    page.locator(".es-suggestion").first.click()
    page.wait_for_selector(".es-page-results .es-result")
    assert page.locator("#es-page-q").input_value() == "交接班"
    shot(page, "no-results")


def test_synonym_finds_burst_pipe(page, base_url):
    page.goto(base_url + "search.html?q=" + quote("水管爆了"))
    page.wait_for_selector(".es-page-results .es-result")
    first = page.locator(".es-page-results .es-result").first
    assert first.locator(".es-section").first.inner_text() == "紧急维修"
    assert "水管爆裂" in first.locator("mark").all_inner_texts()


def test_search_page_shows_twenty_then_all(page, tmp_path):
    """Many hits: the first twenty render at once, a button shows the rest."""
    docs = [SearchDoc(url=f"procedures/p{i:02d}.html#s", title=f"规程{i:02d}", section="4.1 钥匙借用",
                      text="钥匙借用须登记。", kind="procedure", id=f"P-{i:02d}", date="2026-01-01")
            for i in range(25)]
    site = write_site(tmp_path, docs)
    page.goto(site.as_uri() + "/search.html?q=" + quote("钥匙"))
    page.wait_for_selector(".es-page-results .es-result")
    assert page.locator(".es-status").inner_text() == "25 个页面"
    assert page.locator(".es-result").count() == 20
    page.click(".es-more")
    assert page.locator(".es-result").count() == 25


def test_missing_index_says_so(page, tmp_path):
    site = write_site(tmp_path)
    (site / "assets" / "search-index.js").unlink()
    page.goto(site.as_uri() + "/search.html?q=" + quote("投诉"))
    page.wait_for_function("document.querySelector('.es-status').textContent.includes('载入失败')")


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_damaged_index_says_so(page, tmp_path, damage):
    """A half-copied or corrupted index (a USB copy cut short) reports the failure instead of loading forever."""
    site = write_site(tmp_path)
    path = site / "assets" / "search-index.js"
    head, data, tail = path.read_bytes().decode("utf-16").rsplit('"', 2)
    if damage == "truncated":   # the stated size no longer matches what is there
        data = data[: len(data) // 2]
    else:
        data, tail = pack15(b"x" * 300), ", 300);\n"
    path.write_bytes((head + '"' + data + '"' + tail).encode("utf-16"))
    page.goto(site.as_uri() + "/search.html?q=" + quote("投诉"))
    page.wait_for_function("document.querySelector('.es-status').textContent.includes('载入失败')")
    assert page.evaluate("EstateSearch.loadError") is True


@pytest.mark.parametrize("where", ["search page", "drop-down"])
def test_index_file_cut_short_says_so(browser, tmp_path, where):
    """A file cut mid-way is not even valid JavaScript: both the search page and the header box report it."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    site = write_site(tmp_path)
    path = site / "assets" / "search-index.js"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    if where == "search page":
        page.goto(site.as_uri() + "/search.html?q=" + quote("投诉"))
        page.wait_for_function("document.querySelector('.es-status').textContent.includes('载入失败')")
    else:
        page.goto(site.as_uri() + "/index.html")
        page.keyboard.press("/")
        page.keyboard.type("投诉")
        page.wait_for_function("document.querySelector('#es-dropdown').textContent.includes('载入失败')")
    assert page.evaluate("EstateSearch.loadError") is True
    context.close()
    assert len(errors) == 1, errors       # the cut file's own syntax error, and nothing after it


def test_ui_strings_can_come_from_the_catalogue(page, tmp_path):
    """A page that passes search_ui gets its strings (the catalogue's other languages), not the Chinese defaults."""
    site = write_site(tmp_path)
    html = environment().from_string(PAGE).render({**context("index.html", "Home"), "t": translator("zh-Hans"),
                                                    "sections": [], "search_ui": {"all": "All results"}})
    (site / "index.html").write_text(html, encoding="utf-8")
    page.goto(site.as_uri() + "/index.html")
    type_in_search_box(page, "投诉", "#es-dropdown a.es-all")
    assert page.locator("#es-dropdown a.es-all").inner_text() == "All results"


def test_escape_hides_and_arrow_down_reopens(page, base_url):
    """After Escape, ↓ + Enter must not open a result the user cannot see: ↓ reopens the list first."""
    page.goto(base_url + "index.html")
    type_in_search_box(page, "回访")
    page.keyboard.press("Escape")
    assert page.is_hidden("#es-dropdown")
    assert page.input_value("#es-q") == "回访"    # the first Escape closes the list, the next clears the box
    page.keyboard.press("ArrowDown")
    assert page.is_visible("#es-dropdown")
    assert page.evaluate("document.querySelectorAll('#es-dropdown .es-active').length") == 0
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")                  # hidden list: the form goes to the search page
    page.wait_for_url("**/search.html?q=" + quote("回访"))


@pytest.mark.parametrize("where", ["drop-down", "search page"])
def test_input_method_pinyin_is_not_searched(page, base_url, where):
    """While an input method composes "bao'xiu", nothing searches it; the committed 报修 is searched."""
    page.goto(base_url + ("index.html" if where == "drop-down" else "search.html"))
    box = "#es-q" if where == "drop-down" else "#es-page-q"
    results = "#es-dropdown" if where == "drop-down" else ".es-page-results"
    page.click(box)
    page.wait_for_function("window.EstateSearch && EstateSearch.index")
    before = page.inner_text(results)
    cdp = page.context.new_cdp_session(page)
    for partial in ["b", "bao", "bao'xiu"]:
        cdp.send("Input.imeSetComposition", {"text": partial, "selectionStart": len(partial),
                                             "selectionEnd": len(partial)})
        page.wait_for_timeout(50)
        assert page.input_value(box) == partial
        assert page.inner_text(results) == before, partial
        assert "没有找到" not in page.inner_text(results)
    cdp.send("Input.insertText", {"text": "报修"})
    page.wait_for_function(f"document.querySelector('{results}').textContent.includes('报修受理与派工规程')")



@pytest.mark.parametrize("query", ["？？？", "....", ".*"])
def test_punctuation_only_query_finds_nothing(page, base_url, query):
    """Marks alone leave nothing to search: say so, do not list the recent pages as if they matched."""
    page.goto(base_url + "index.html")
    type_in_search_box(page, query, "#es-dropdown .es-none")
    assert page.locator("#es-dropdown a.es-hit").count() == 0
    assert query in page.inner_text("#es-dropdown")
    page.goto(base_url + "search.html?q=" + quote(query))
    page.wait_for_selector(".es-page-results .es-none")
    assert page.locator(".es-result").count() == 0 and page.inner_text(".es-status") != "最近更新"


def test_tree_without_pages_says_so_once(page, tmp_path):
    """An empty query on a tree with no pages: one message, not "最近更新" above "nothing found for “”"."""
    site = write_site(tmp_path)
    for rel, data in build_index([], config()).items():
        (site / rel).write_bytes(data)
    page.goto(site.as_uri() + "/search.html")
    page.wait_for_selector(".es-page-results .es-none")
    assert page.inner_text(".es-status") == ""
    assert page.inner_text(".es-page-results") == "这里还没有可搜索的页面。"


def test_arrow_keys_set_the_active_descendant(page, base_url):
    """Screen readers announce the option the arrows choose: the combobox names it by id."""
    page.goto(base_url + "index.html")
    type_in_search_box(page, "记录")
    ids = page.evaluate("[...document.querySelectorAll('#es-dropdown [role=option]')].map(a => a.id)")
    assert len(ids) >= 2 and all(ids) and len(set(ids)) == len(ids)
    assert page.get_attribute("#es-q", "aria-activedescendant") is None
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#es-q", "aria-activedescendant") == ids[1]
    assert page.get_attribute("#" + ids[1], "aria-selected") == "true"
    page.keyboard.press("Escape")
    assert page.get_attribute("#es-q", "aria-activedescendant") is None
