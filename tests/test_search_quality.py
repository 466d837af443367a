"""Search quality over the example estate: recall@5 of a query set, measured with the real search.js.

The estate is built with the real builder, and the queries run in headless Chromium against the
built staff tree, so the test checks what a front-desk officer gets. Below recall@5 = 0.95 it fails.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from urllib.parse import quote

import pytest

from estate.config import load_config

REPO = Path(__file__).resolve().parent.parent
QUERIES = REPO / "tests" / "data" / "search_queries.toml"
ARTIFACTS = REPO / "tests" / "artifacts"
TARGET = 0.95
RUN = """([queries, mode]) => queries.map(q =>
  EstateSearch.search(q, {limit: 5, sections: 1, mode: mode}).results.map(r => [r.page.id, r.sections[0].heading]))"""

pytestmark = pytest.mark.browser


def load_queries() -> list[dict]:
    """The query set, checked for shape so a typo cannot silently drop a query."""
    queries = tomllib.loads(QUERIES.read_text(encoding="utf-8"))["query"]
    for q in queries:
        assert q["q"].strip() and q["expect"] and q["script"] in ("hans", "hant", "mixed"), q
        assert all(len(e) == 2 for e in q["expect"]), q
    return queries


def test_query_set_is_big_enough_and_covers_both_scripts():
    queries = load_queries()
    assert len(queries) >= 40
    scripts = {q["script"] for q in queries}
    assert {"hans", "hant"} <= scripts
    assert sum(q["how"] == "phrasing" for q in queries) >= 10


def test_expected_sections_exist(built_staff):
    """Every expected (id, heading) is a real section of the built index, so recall cannot pass by accident."""
    present = set(built_staff["sections"])
    missing = [(q["q"], e) for q in load_queries() for e in q["expect"] if tuple(e) not in present]
    assert not missing, f"expected sections not in the index: {missing}"


@pytest.fixture(scope="module")
def built_staff(tmp_path_factory, browser_page):
    """Build the estate (ESTATE_ROOT or this repo) and open its staff search page from file://."""
    from handbook.build import build

    root = Path(os.environ.get("ESTATE_ROOT", REPO))
    out = tmp_path_factory.mktemp("estate-site")
    build(load_config(root), out=out)
    browser_page.goto((out / "staff" / "search.html").as_uri())
    browser_page.wait_for_function("window.EstateSearch && EstateSearch.index")
    sections = browser_page.evaluate("""() => EstateSearch.index.secs.map(
        s => [EstateSearch.index.pages[s.page].id, s.heading])""")
    return {"page": browser_page, "sections": [tuple(s) for s in sections], "out": out, "root": root}


@pytest.fixture(scope="module")
def browser_page(chromium):
    """A page of the session's headless Chromium (tests/conftest.py)."""
    page = chromium.new_page()
    yield page
    page.close()


def test_public_index_holds_public_pages_only(built_staff):
    """The residents' tree gets its own index: no staff-only procedure, no staff-tree link."""
    from handbook.search import INDEX_FILE, read_index_script

    public = read_index_script((built_staff["out"] / "public" / INDEX_FILE).read_bytes())
    staff = read_index_script((built_staff["out"] / "staff" / INDEX_FILE).read_bytes())
    audiences = {p[6] for p in public["pages"]}
    assert audiences and audiences <= {"resident", "both"}
    assert not any(p[0].startswith(("../", "/", "staff/")) for p in public["pages"])
    staff_only = {p[3] for p in staff["pages"] if p[6] == "staff"}
    assert staff_only and not staff_only & {p[3] for p in public["pages"]}


def recall(page, queries: list[dict], mode: str) -> tuple[float, list[str]]:
    """Recall@5 of QUERIES in tokenising MODE, and a line per miss."""
    results = page.evaluate(RUN, [[q["q"] for q in queries], mode])
    misses = []
    for q, got in zip(queries, results, strict=True):
        if not any(list(g) in q["expect"] for g in got):
            misses.append(f"{q['q']!r}: wanted {q['expect'][0]}, got {got[:3]}")
    return 1 - len(misses) / len(queries), misses


def test_recall_at_5(built_staff):
    score, misses = recall(built_staff["page"], load_queries(), "bigram")
    print(f"recall@5 (bigram) = {score:.3f}")
    assert score >= TARGET, "recall@5 below target:\n" + "\n".join(misses)


def test_built_handbook_dropdown_and_search_page(built_staff):
    """The real handbook: a procedure page's search box, then the ?q= page, with screenshots to look at."""
    page, staff = built_staff["page"], built_staff["out"] / "staff"
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto((staff / "procedures" / "cs-sop-003.html").as_uri())
    page.keyboard.press("/")
    page.keyboard.type("水管爆了")
    page.wait_for_selector("#es-dropdown a.es-hit")
    first = page.locator("#es-dropdown a.es-hit").first
    assert first.locator(".es-section").inner_text() in {"4.5 水管爆裂", "家里水管爆了怎么办？", "4.4 水管爆裂或家中漏水"}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-handbook-dropdown.png"))
    page.goto((staff / "search.html").as_uri() + "?q=" + quote("投訴 回訪"))
    page.wait_for_selector(".es-page-results .es-result")
    assert "回访" in page.locator(".es-page-results .es-result").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "search-handbook-page.png"), full_page=True)


FIRST = """q => EstateSearch.search(q, {limit: 3, sections: 1}).results.map(r => [r.page.id, r.sections[0].heading])"""


@pytest.mark.skipif("ESTATE_ROOT" in os.environ, reason="the example estate's sections")
@pytest.mark.parametrize(("query", "wanted"), [
    ("着火了怎么办", ["RES-004", "4.2 着火"]), ("火灾怎么办", ["SEC-SOP-001", "4.2 火警"]),
    ("漏水怎么办", ["RES-004", "4.4 水管爆裂或家中漏水"]), ("超时了怎么办", ["CS-SOP-007", "4.5 即将超时与超时"]),
    ("如何报修", ["RES-001", "4.2 报修时请说明"]),
])
def test_question_words_do_not_outvote_what_the_question_is_about(built_staff, query, wanted):
    """"着火了怎么办" once opened "车位被占了怎么办？" first: its 怎么 and 么办 outvoted 着火, and the fire
    sections fell under the coverage cut. The question words are dropped; the topic's section is in the top 3."""
    assert wanted in built_staff["page"].evaluate(FIRST, query)


TITLED = """qs => qs.map(q => { const f = EstateSearch.fold(q);
  const titled = EstateSearch.index.pages.filter(p => EstateSearch.fold(p.title).includes(f)).length;
  const got = EstateSearch.search(q, {limit: 10, sections: 1}).results.map(r => r.page.title);
  return [titled, got]; })"""


@pytest.mark.parametrize("query", ["钥匙", "鑰匙", "投诉", "物业费", "紧急程度", "上门服务", "装修", "交接班"])
def test_pages_titled_with_the_query_come_first(built_staff, query):
    """A page whose title holds the query ranks above pages that only have it in a section heading."""
    titled, got = built_staff["page"].evaluate(TITLED, [query])[0]
    assert titled
    fold = built_staff["page"].evaluate("t => t.map(EstateSearch.fold)", got)
    want = built_staff["page"].evaluate("q => EstateSearch.fold(q)", query)
    assert all(want in t for t in fold[:titled]), got


PASTE = """q => { EstateSearch.clearCache(); const t0 = performance.now();
  const ids = EstateSearch.search(q, {limit: 5, sections: 1}).results.map(r => r.page.id);
  return [ids, performance.now() - t0]; }"""


@pytest.mark.parametrize("name", ["complaint-handling", "duty-handover", "knowledge-faq", "form-contract"])
@pytest.mark.parametrize("length", [300, 1000, 3000])
def test_a_pasted_passage_finds_its_page(built_staff, name, length):
    """The first LENGTH characters of a procedure, pasted into the box, find that procedure first."""
    text = (built_staff["root"] / "procedures" / f"{name}.md").read_text(encoding="utf-8")
    head, body = text.split("---", 2)[1:]
    pid = next(line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("id:"))
    passage = "".join(ch for ch in body if ch not in "#*|-\n")[:length]
    ids, ms = built_staff["page"].evaluate(PASTE, passage)
    assert ids[:1] == [pid], (ids, passage[:40])
