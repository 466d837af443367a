"""Unit tests of the search index: folding, tokenising, the index file, synonyms; ranking in Chromium."""

from __future__ import annotations

import gzip
import re
import unicodedata
from pathlib import Path

import pytest

from estate.config import BuildConfig, EstateConfig, EstateInfo
from handbook import search
from handbook.search import (
    INDEX_FILE,
    SearchConfigError,
    SearchDoc,
    build_index,
    load_synonyms,
    pack15,
    read_index_script,
    unpack15,
)
from handbook.search_fold import browser_map, fold, t2s_table
from tests.search_reference import index_payload, index_script, tokens

REPO = Path(__file__).resolve().parent.parent


def payload(files: dict[str, bytes]) -> dict:
    """Decode the generated index script back into its data."""
    script = files[INDEX_FILE]
    assert script.startswith(b"\xff\xfe")                     # UTF-16LE, said by its BOM
    text = script.decode("utf-16")
    assert text.startswith("(window.EstateSearch && EstateSearch.ready") and text.endswith(");\n")
    return read_index_script(script)


def config_at(root: Path, **build) -> EstateConfig:
    return EstateConfig(estate=EstateInfo(name="测试花园"), build=BuildConfig(**build), root=root)


def doc(url: str, section: str, text: str, **kw) -> SearchDoc:
    return SearchDoc(url=url, title=kw.pop("title", "规程"), section=section, text=text,
                     kind=kw.pop("kind", "procedure"), **kw)


# ---- folding ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    ("投訴", "投诉"), ("回訪", "回访"), ("維修", "维修"), ("交接班", "交接班"), ("聽濤國際", "听涛国际"),
    ("ＡＢＣ１２３", "abc123"), ("WO-2026", "wo2026"), ("A座 1502", "a座1502"), ("「值班記錄」。", "值班记录"),
    ("400电话", "400电话"),
])
def test_fold_makes_forms_equal(a, b):
    assert fold(a) == fold(b)


def test_fold_keeps_distinct_words_distinct():
    assert fold("投诉") != fold("回访")
    assert fold("1502") != fold("1503")


def test_fold_is_per_character_and_drops_only_punctuation_and_spaces():
    text = "客戶（A座）１５０２室：水管爆裂！"
    assert fold(text) == "客户a座1502室水管爆裂"
    for ch in text:
        out = fold(ch)
        assert len(out) <= 1
        assert (out == "") == (unicodedata.category(ch)[0] in "PZSC")


def test_t2s_table_comes_from_opencc_and_is_large():
    table = t2s_table()
    assert len(table) > 3000                    # OpenCC simplifies thousands of characters
    assert table["訴"] == "诉" and table["濤"] == "涛"
    assert "诉" not in table                    # Simplified characters fold to themselves


def test_spellings_opencc_keeps_fold_together_too():
    """著/瞭/藉 are Simplified characters in other words, so OpenCC's table keeps them: 著裝 found nothing."""
    assert fold("著裝") == fold("着装") and fold("瞭解") == fold("了解") and fold("憑藉") == fold("凭借")
    assert fold("衞生") == fold("卫生")
    assert "著着" in browser_map(set(fold("着装规范")))    # the browser folds them alike as well


def test_browser_map_ships_only_pairs_for_the_indexed_alphabet():
    pairs = browser_map(set("投诉回访"))
    assert len(pairs) % 2 == 0
    shipped = dict(zip(pairs[::2], pairs[1::2], strict=True))
    assert shipped["訴"] == "诉" and shipped["訪"] == "访" and shipped["迴"] == "回"
    assert set(shipped.values()) <= set("投诉回访") and len(shipped) < 10


# ---- tokenising -------------------------------------------------------------------------------

def test_tokens_bigrams_and_whole_latin_digit_runs():
    assert tokens(fold("交接班")) == ["交接", "接班"]
    assert tokens(fold("A座1502")) == ["a", "座", "1502"]
    assert tokens(fold("WO-2026")) == ["wo", "2026"]
    assert tokens(fold("400电话")) == ["400", "电话"]


def test_tokens_modes():
    assert tokens("投诉", "unigram") == ["投", "诉"]
    assert tokens("投诉", "both") == ["投", "诉", "投诉"]
    assert tokens("诉", "bigram") == ["诉"]      # a lone character stays searchable


# ---- the index file ---------------------------------------------------------------------------

def test_build_index_writes_one_script_with_sections_as_written(tmp_path):
    docs = [doc("procedures/a.html", "", "前言。"),
            doc("procedures/a.html#二回訪", "二、回訪", "處理完畢  3 日內\n回訪。", id="CS-1", tags=("回訪",),
                date="2026-01-02"),
            doc("notices/n1.html", "", "停水通知", kind="notice", title="停水")]
    files = build_index(docs, config_at(tmp_path, recent_changes=7))
    assert list(files) == [INDEX_FILE]
    data = payload(files)
    assert data["recent"] == 7
    assert [p[0] for p in data["pages"]] == ["procedures/a.html", "notices/n1.html"]
    assert data["sections"] == [0, "", "", 0, "二回訪", "二、回訪", 1, "", ""]
    assert data["text"].split("\n") == ["", "前言。", "二、回訪", "處理完畢 3 日內 回訪。", "", "停水通知"]
    assert "訪访" in data["fold"] and "訴诉" not in data["fold"]    # 诉 is not in this text


def test_build_index_refuses_anything_but_procedures_faq_notices(tmp_path):
    with pytest.raises(ValueError, match="tickets/wo-1.html"):
        build_index([doc("tickets/wo-1.html", "", "业主电话 138…", kind="ticket")], config_at(tmp_path))


SIZES = [0, 1, 2, 47, 48, 49, 50, 51, 97, 1000, 12_345]


@pytest.mark.parametrize("size", SIZES)
def test_pack15_round_trips_and_stays_inside_a_js_string(size):
    """Every byte value, odd and even lengths, both ends of the base64 tail."""
    data = bytes((i * 131 + (i >> 8)) % 256 for i in range(size))
    text = pack15(data)
    assert unpack15(text, size) == data
    assert not {ch for ch in text if 0xD800 <= ord(ch) <= 0xDFFF or ch in '"\\\n\r\u2028\u2029'}
    assert len(text) * 2 <= size * 1.08 + 80      # ~15 bits a code unit, not base64's 12 a byte-pair


def test_index_size_stays_close_to_the_text(tmp_path):
    text = "接班人员提前 5 分钟到岗，清点对讲机，阅读上一班的《值班记录》。" * 20
    docs = [doc(f"procedures/p{i}.html#s", "4.4 交接班", text) for i in range(50)]
    size = len(build_index(docs, config_at(tmp_path))[INDEX_FILE])
    assert size < 0.5 * 50 * len(text.encode("utf-8"))     # compressed: smaller than the text itself


# ---- incremental packing ----------------------------------------------------------------------

def corpus(pages: int, edit: dict[int, str] | None = None) -> list[SearchDoc]:
    """PAGES procedures of three sections each, in both scripts; EDIT appends text to some docs."""
    docs = []
    for i in range(pages):
        for k, heading in enumerate(("一、目的", "二、交接班", "三、回訪記錄")):
            text = f"第{i}号规程第{k}节：接班人员提前 5 分钟到岗，處理完畢 3 日內回訪。A座{1500 + i}室。" * (1 + i % 4)
            docs.append(doc(f"procedures/p{i}.html#s{k}", heading, text + (edit or {}).get(3 * i + k, ""),
                            title=f"规程{i}", id=f"P-{i}", tags=("回訪",), date=f"2026-01-{1 + i % 28:02d}"))
    return docs


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few pages, so a test corpus is cut into many of them."""
    monkeypatch.setattr(search, "CHUNK_MIN", 300)
    monkeypatch.setattr(search, "CUT_EVERY", 2)
    search.clear_cache()
    yield
    search.clear_cache()


def cold(docs: list[SearchDoc], config: EstateConfig) -> str:
    search.clear_cache()
    return build_index(docs, config)[INDEX_FILE]


def test_chunked_index_decodes_to_the_one_piece_layout(tmp_path, small_chunks):
    docs, config = corpus(60), config_at(tmp_path)
    script = build_index(docs, config)[INDEX_FILE]
    assert len(search._CACHE.chunks) > 10                      # really cut into chunks
    assert read_index_script(script) == index_payload(docs, [], config.build.recent_changes)
    # the same bytes a one-piece gzip would inflate to; only the compression differs
    one_piece = index_script(index_payload(docs, [], config.build.recent_changes))
    assert read_index_script(one_piece) == read_index_script(script)


def test_text_starts_at_an_even_offset_whatever_the_head_length(tmp_path, small_chunks):
    """search.js reads the UTF-16LE text in place as a Uint16Array, which needs an even byte offset."""
    config, pads = config_at(tmp_path), set()
    for pages in range(0, 7):
        for script in (build_index(corpus(pages), config)[INDEX_FILE],
                       index_script(index_payload(corpus(pages), [], config.build.recent_changes))):
            _, _, _, data, size = script.decode("utf-16").split('"')
            raw = gzip.decompress(unpack15(data, int(size.strip(" ,);\n"))))
            cut = raw.index(b"\0")
            assert cut % 2 == 1 and len(raw) % 2 == 0
            assert raw[cut + 1:].decode("utf-16-le") == read_index_script(script)["text"]
            pads.add(raw[cut - 1:cut] == b" ")
    assert pads == {True, False}                               # both head parities were met


@pytest.mark.parametrize("change", ["edit one body", "add a page", "remove a page", "rename a heading",
                                    "add a synonym"])
def test_warm_build_is_byte_identical_to_cold(tmp_path, small_chunks, change):
    config = config_at(tmp_path)
    (tmp_path / "content").mkdir()
    before = corpus(60)
    first = build_index(before, config)[INDEX_FILE]            # warms the cache
    after = {"edit one body": lambda: corpus(60, {31: "新增一句：水管爆裂时先关总阀。"}),
             "add a page": lambda: corpus(61),
             "remove a page": lambda: corpus(59),
             "rename a heading": lambda: [d if i != 40 else d._replace(section="四、鑰匙")
                                          for i, d in enumerate(before)],
             "add a synonym": lambda: before}[change]()
    if change == "add a synonym":
        (tmp_path / "content" / "synonyms.toml").write_text('groups = [["爆管", "水管爆裂"]]', encoding="utf-8")
    warm = build_index(after, config)[INDEX_FILE]
    assert warm != first
    assert warm == cold(after, config)


def test_edit_repacks_only_its_chunk(tmp_path, small_chunks, monkeypatch):
    config = config_at(tmp_path)
    build_index(corpus(60), config)
    packed = []
    monkeypatch.setattr(search, "_deflate", lambda key: packed.append(key[1]) or search.zlib.compress(key[1]))
    search._CACHE.pieces.clear()                               # count what repacking it all deflates...
    build_index(corpus(60), config)
    everything = len(packed)
    packed.clear()
    build_index(corpus(60, {31: "新增一句。"}), config)        # ...against what one edit deflates
    assert 0 < len(packed) <= 6 < everything
    assert any("新增一句".encode(search.TEXT_ENCODING) in raw for raw in packed)


def test_cache_keeps_only_the_last_two_builds(tmp_path, small_chunks):
    config = config_at(tmp_path)
    for n in (40, 41, 42, 43):                                 # each build changes the last chunk
        build_index(corpus(n), config)
    live = {id(c) for c in search._CACHE.chunks.values()}
    build_index(corpus(43), config)
    assert {id(c) for c in search._CACHE.chunks.values()} <= live
    chunks_now = len(search._CACHE.chunks)
    build_index(corpus(43), config)
    assert len(search._CACHE.chunks) == chunks_now             # bounded: nothing grows build after build


def test_sections_of_one_page_apart_are_brought_together(tmp_path):
    docs = [doc("procedures/a.html#1", "一", "甲"), doc("procedures/b.html#1", "一", "乙"),
            doc("procedures/a.html#2", "二", "丙")]
    data = payload(build_index(docs, config_at(tmp_path)))
    assert [p[0] for p in data["pages"]] == ["procedures/a.html", "procedures/b.html"]
    assert data["sections"] == [0, "1", "一", 0, "2", "二", 1, "1", "一"]
    assert data["text"].split("\n") == ["一", "甲", "二", "丙", "一", "乙"]


def test_a_tree_with_nothing_to_index_gets_an_empty_index(tmp_path):
    data = payload(build_index([], config_at(tmp_path)))
    assert (data["pages"], data["sections"], data["text"]) == ([], [], "")


def test_squash_matches_the_regex_it_replaced():
    for text in ["  a\t\nb  ", "甲\u3000乙\xa0丙\x1c丁", "", "\n\n", "處理  完畢\r\n3 日"]:
        assert search._squash(text) == re.sub(r"\s+", " ", text).strip()


# ---- synonyms ---------------------------------------------------------------------------------

def test_estate_synonyms_load():
    groups = load_synonyms(REPO / "content" / "synonyms.toml")
    assert any("水管爆了" in g and "水管爆裂" in g for g in groups)


def test_missing_synonym_file_means_none(tmp_path):
    assert load_synonyms(tmp_path / "content" / "synonyms.toml") == []


@pytest.mark.parametrize(("content", "problem"), [
    ("groups = [[\"爆管\"]]", "第 1 组"),
    ("groups = [[\"爆管\", 3]]", "第 1 组"),
    ("groups = [[\"爆管\", \"！！\"]]", "标点"),
    ("group = []", "未知设置"),
    ("groups = [", "TOML 语法错误"),
])
def test_bad_synonym_file_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "synonyms.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SearchConfigError, match=re.escape(problem)) as err:
        load_synonyms(path)
    assert str(path) in str(err.value)


def test_gbk_synonym_file_is_refused(tmp_path):
    path = tmp_path / "synonyms.toml"
    path.write_bytes('groups = [["爆管", "水管爆裂"]]'.encode("gbk"))
    with pytest.raises(SearchConfigError, match="UTF-8"):
        load_synonyms(path)


# ---- the same folding in the browser; ranking -------------------------------------------------

@pytest.fixture(scope="module")
def search_page(tmp_path_factory, chromium):
    """A blank page with search.js and an index of ranking fixtures, in headless Chromium."""
    root = tmp_path_factory.mktemp("rank")
    body = "巡查公共区域，发现问题及时报修。" * 6
    docs = [
        doc("procedures/body.html#s", "四、工作程序", body + "钥匙钥匙钥匙交还前台。", title="巡查规程", id="P-BODY"),
        doc("procedures/key.html#s", "4.3 钥匙借用", "登记后借出。", title="钥匙管理规程", id="P-KEY"),
        doc("procedures/split.html#s", "4.1 安排", "先交接设备，再接班签字。" + body, title="设备规程", id="P-SPLIT"),
        doc("procedures/phrase.html#s", "4.2 流程", "交接班时双方签字。" + body, title="流程规程", id="P-PHRASE"),
        doc("procedures/room.html#s", "示例", "A座1502室报修，另有 B1502 车位。", title="示例", id="P-ROOM",
            department="工程部"),
        doc("procedures/other.html#s", "示例", "C座21502室，型号ＸＹＺ７。", title="其他", id="P-OTHER"),
        doc("procedures/multi.html#a", "一、记录", "值班记录保存三年。", title="多节规程", id="P-MULTI"),
        doc("procedures/multi.html#b", "二、检查", "主管检查值班记录。", title="多节规程", id="P-MULTI"),
        doc("procedures/fold.html", "", "投诉回访维修听涛国际", title="繁简", id="P-FOLD"),
        doc("procedures/broken.html#s", "门铃坏了", "请联系智能设备组。", title="门铃", id="P-BROKEN"),
        doc("procedures/repair.html#s", "报修以后", "一般二十四小时内上门。", title="时限", id="P-REPAIR"),
        # last: its section ends where the text ends; astral characters take two UTF-16 code units
        doc("procedures/astral.html#s", "示例", "𠀀𠀁号楼：门禁卡補辦。", title="生僻字", id="P-ASTRAL"),
    ]
    (root / "assets").mkdir()
    (root / "content").mkdir()
    (root / "content" / "synonyms.toml").write_text('groups = [["报修", "坏了"]]', encoding="utf-8")
    (root / INDEX_FILE).write_bytes(build_index(docs, config_at(root))[INDEX_FILE])
    (root / "assets" / "search.js").write_bytes((REPO / "render" / "static" / "search.js").read_bytes())
    (root / "index.html").write_text('<!doctype html><meta charset="utf-8"><script src="assets/search.js"></script>'
                                     '<script src="assets/search-index.js"></script>', encoding="utf-8")
    page = chromium.new_page()
    page.goto((root / "index.html").as_uri())
    page.wait_for_function("window.EstateSearch && EstateSearch.index")
    yield page
    page.close()


def ids(page, query: str, **opts) -> list[str]:
    return page.evaluate("([q, o]) => EstateSearch.search(q, o).results.map(r => r.page.id)", [query, opts])


@pytest.mark.browser
def test_browser_fold_matches_python(search_page):
    """Same rule in both languages (the browser map holds the pairs for the indexed text's characters)."""
    sample = "投訴回訪維修聽濤國際ＡＢＣ１２３WO-2026「值班記錄」。A座 1502室Ⅳⅱ①﹏ﾃｽﾄ"
    assert search_page.evaluate("s => EstateSearch.fold(s)", sample) == fold(sample)


@pytest.mark.browser
def test_title_and_heading_matches_rank_above_body_frequency(search_page):
    assert ids(search_page, "钥匙")[:2] == ["P-KEY", "P-BODY"]


@pytest.mark.browser
def test_phrase_ranks_above_scattered_bigrams(search_page):
    got = ids(search_page, "交接班")
    assert got.index("P-PHRASE") < got.index("P-SPLIT")


@pytest.mark.browser
def test_digits_match_at_word_starts_only(search_page):
    assert ids(search_page, "1502") == ["P-ROOM"]          # not inside 21502
    assert ids(search_page, "Ａ座１５０２") == ["P-ROOM"]
    assert ids(search_page, "502") == []
    assert ids(search_page, "xyz7") == ["P-OTHER"] and ids(search_page, "yz7") == []   # full-width too


@pytest.mark.browser
def test_one_result_per_page_with_best_section_first(search_page):
    out = search_page.evaluate("q => EstateSearch.search(q, {sections: 3}).results", "值班记录 检查")
    assert [r["page"]["id"] for r in out] == ["P-MULTI"]
    assert [s["heading"] for s in out[0]["sections"]] == ["二、检查", "一、记录"]
    assert re.findall("<mark>(.*?)</mark>", out[0]["sections"][0]["snippet"]) == ["检查值班记录"]


@pytest.mark.browser
def test_filters_restrict_results(search_page):
    assert ids(search_page, "报修") and "P-ROOM" in ids(search_page, "报修")
    assert ids(search_page, "报修", filters={"department": "工程部"}) == ["P-ROOM"]


@pytest.mark.browser
def test_traditional_query_finds_simplified_text(search_page):
    assert ids(search_page, "鑰匙借用")[0] == "P-KEY"


@pytest.mark.browser
@pytest.mark.parametrize(("query", "marked"), [("门禁卡补办", "门禁卡補辦"), ("𠀁号楼", "𠀁号楼")])
def test_marks_land_on_the_written_text_after_astral_characters(search_page, query, marked):
    out = search_page.evaluate("q => EstateSearch.search(q, {sections: 1}).results", query)
    assert [r["page"]["id"] for r in out] == ["P-ASTRAL"]
    hit = out[0]["sections"][0]
    assert re.findall("<mark>(.*?)</mark>", hit["snippet"]) == [marked]
    assert re.sub("</?mark>", "", hit["snippet"]) == "𠀀𠀁号楼：门禁卡補辦。"
    assert hit["hits"] == [marked]


@pytest.mark.browser
def test_typed_words_rank_above_their_synonyms(search_page):
    """报修 and 坏了 are synonyms here; a heading that says 报修 comes first, one that says 坏了 is found too."""
    got = search_page.evaluate("q => EstateSearch.search(q).results.map(r => r.page.id)", "报修")
    assert got.index("P-REPAIR") < got.index("P-BROKEN")
