"""The build cache in var/build/: what it keeps survives a round trip; a damaged file costs a cold build only."""

from __future__ import annotations

import logging
import marshal
import os
import shutil
import sys
import zlib
from dataclasses import fields, replace
from pathlib import Path

import jinja2
import pytest

from estate.config import load_config
from handbook import cache as build_cache
from handbook import discover
from handbook.build import build
from handbook.search import read_index_script
from tests.conftest import TODAY


def _cache_file(root: Path) -> Path:
    return build_cache.cache_path(load_config(root), root / "site")


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Results saved two to a batch, and a batch of one still copied as it was: the mini estate's five
    results then take the paths 1,000 procedures take (batches copied, batches encoded again)."""
    monkeypatch.setattr(build_cache, "DUMP_BATCH", 2)
    monkeypatch.setattr(build_cache, "KEEP_BATCH", 1)


def _assert_as_parsed(config: object, saved: build_cache.BuildCache) -> None:
    """SAVED holds what parsing the estate's files now gives, result by result and field by field."""
    fresh = build_cache.BuildCache()
    from handbook.discover import discover
    from handbook.sources import Expander, parse_sources

    parse_sources(discover(config), config, Expander.load(config), fresh, workers=1)
    assert saved.parsed.keys() == fresh.parsed.keys()
    for key, (item, problems) in fresh.parsed.items():
        loaded, loaded_problems = saved.parsed[key]
        assert loaded_problems == problems
        if item is None or isinstance(item, tuple):
            assert loaded == item
            continue
        assert type(loaded) is type(item)
        for f in fields(item):
            if f.name == "superseded_by":  # derived by the index step each build, not by parsing
                continue
            assert getattr(loaded, f.name) == getattr(item, f.name), (key, f.name)


def test_parsed_results_survive_the_round_trip(mini: Path) -> None:
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()  # as a new process would: read the file
    saved = build_cache._read(_cache_file(mini))
    build_cache._MEMO.clear()
    _assert_as_parsed(config, saved)
    assert saved.pages and saved.signatures and saved.outputs


def test_a_one_page_rebuild_saves_the_batches_it_did_not_change_as_they_were(
        mini: Path, settled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    before = _cache_file(mini).read_bytes()
    edited = mini / "procedures/duty.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n补充一句。\n", encoding="utf-8")
    encoded: list[tuple] = []
    real = build_cache._encode
    monkeypatch.setattr(build_cache, "_encode", lambda result, blobs: encoded.append(result) or real(result, blobs))
    build(config, mini / "site", today=TODAY, workers=1)
    # the edited file's new result, and at most the one result that shared a batch with its old one
    assert 1 <= len(encoded) <= 2 and any(item.source.rel == "duty.md" for item, _ in encoded)
    build_cache._MEMO.clear()
    saved = build_cache._read(_cache_file(mini))
    _assert_as_parsed(config, saved)  # (decodes the results, which lists the batches)
    assert len(saved.saved) >= 2 and any(bytes(batch.frames) in before for batch in saved.saved)
    assert "补充一句" in saved.parsed[next(k for k, (i, _) in saved.parsed.items() if i and i.source.rel == "duty.md")][0].html


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even the mini estate's five files are parsed by a pool of workers."""
    from handbook import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN", 1)


def test_results_parsed_in_workers_are_saved_as_they_came(mini: Path, pooled: None, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers hand results over encoded as the cache saves them: the parent encodes none of them again,
    and the site and the cache are what a build in one process makes."""
    parent = os.getpid()
    encoded_here: list[tuple] = []
    real = build_cache._encode
    monkeypatch.setattr(build_cache, "_encode", lambda result, blobs: (
        encoded_here.append(result) if os.getpid() == parent else None) or real(result, blobs))
    config = load_config(mini)
    build(config, mini / "site", today=TODAY, workers=2)
    assert encoded_here == []
    build_cache._MEMO.clear()
    _assert_as_parsed(config, build_cache._read(_cache_file(mini)))
    build(config, tmp_path / "serial", today=TODAY, workers=1)
    for page in (tmp_path / "serial").rglob("*.html"):
        assert (mini / "site" / page.relative_to(tmp_path / "serial")).read_bytes() == page.read_bytes(), page


def test_results_the_cache_cannot_encode_still_come_back_from_a_worker(mini: Path, pooled: None, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A value marshal cannot hold (none is known since front matter is checked; this is the fallback): the
    worker sends its results as objects, the site is built all the same, and only the cache is not saved."""
    from handbook import parallel

    def refuse(results: list) -> bytes:
        raise ValueError("unmarshallable object")

    monkeypatch.setattr(parallel, "encode_batch", refuse)
    monkeypatch.setattr(build_cache, "encode_batch", refuse)
    with caplog.at_level(logging.WARNING, logger="handbook.cache"):
        build(load_config(mini), mini / "site", today=TODAY, workers=2)
    assert "build cache not saved" in caplog.text
    monkeypatch.undo()
    build(load_config(mini), tmp_path / "serial", today=TODAY, workers=1)
    for page in (tmp_path / "serial").rglob("*.html"):
        assert (mini / "site" / page.relative_to(tmp_path / "serial")).read_bytes() == page.read_bytes(), page


def test_procedures_added_one_build_at_a_time_do_not_leave_a_batch_each(mini: Path, settled: None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches under KEEP_BATCH are encoded again with the new results, so the file never becomes a long
    list of tiny batches (each costs a read and a CRC) however the estate grows."""
    monkeypatch.setattr(build_cache, "KEEP_BATCH", 2)
    config = load_config(mini)
    duty = (mini / "procedures/duty.md").read_text(encoding="utf-8")
    build(config, mini / "site", today=TODAY, workers=1)
    for n in range(3):
        page = duty.replace("id: T-001", f"id: N-{n}").replace("supersedes: T-000\n", "")
        (mini / f"procedures/new-{n}.md").write_text(page, encoding="utf-8")
        build_cache._MEMO.clear()
        build(config, mini / "site", today=TODAY, workers=1)
    cache = build_cache._read(_cache_file(mini))
    assert len(cache.parsed) == 8 and len(cache.saved) <= 8 // 2 + 1


def test_a_rebuild_from_the_saved_cache_renders_nothing(mini: Path) -> None:
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    again = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert again.rendered == [] and again.parsed == 0


def _flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


@pytest.mark.parametrize("damage", ["empty", "binary", "text", "cut short", "garbage after the header",
                                    "one byte flipped"])
def test_a_damaged_cache_file_means_a_cold_build(mini: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    first = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    saved = _cache_file(mini).read_bytes()
    _cache_file(mini).write_bytes({"empty": b"", "binary": b"\x00garbage", "text": b"not marshal at all" * 100,
                                   "cut short": saved[: len(saved) // 2],
                                   "garbage after the header": build_cache.MAGIC + b"\xff" * 40,
                                   "one byte flipped": _flip_middle_byte(saved)}[damage])
    with caplog.at_level(logging.DEBUG, logger="handbook.cache"):
        again = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert again.parsed == first.parsed  # everything parsed afresh
    assert (mini / "site/staff/procedures/t-001.html").is_file()
    # a file of another layout (an older version's) is quietly rebuilt; a damaged one is said to be
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING and "unreadable build cache" in r.message]
    assert bool(warned) == (damage in ("cut short", "garbage after the header", "one byte flipped"))


def test_pickling_is_not_used_for_the_cache(mini: Path) -> None:
    """Pickling a str keeps a UTF-8 copy inside it for its whole life (see cache.py): a saved cache must not."""
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    item = next(v[0] for v in build_cache._MEMO[(mini / "site").resolve()].parsed.values() if hasattr(v[0], "html"))
    size = sys.getsizeof(item.html)
    build_cache.save(load_config(mini), mini / "site", build_cache._MEMO[(mini / "site").resolve()],
                     set(build_cache._MEMO[(mini / "site").resolve()].parsed), set()).result()
    assert sys.getsizeof(item.html) == size


def test_search_index_from_the_saved_chunks_equals_a_cold_one(mini: Path, tmp_path: Path) -> None:
    """One-off builds keep the packed search chunks in var/build/search.cache; what they give must not differ."""
    build(load_config(mini), mini / "site", today=TODAY)
    saved = build_cache.folder(load_config(mini)) / "search.cache"
    assert saved.is_file()
    body = mini / "procedures/guides/repair.md"
    body.write_text(body.read_text(encoding="utf-8").replace("拨打客服电话。", "拨打客服电话或到前台。"), encoding="utf-8")
    build_cache._MEMO.clear()
    build(load_config(mini), mini / "site", today=TODAY)
    cold_root = tmp_path / "cold"
    import shutil

    shutil.copytree(mini, cold_root, ignore=shutil.ignore_patterns("var", "site"))
    build(load_config(cold_root), cold_root / "site", today=TODAY)
    for tree in ("staff", "public"):
        warm = (mini / f"site/{tree}/assets/search-index.js").read_bytes()
        assert warm == (cold_root / f"site/{tree}/assets/search-index.js").read_bytes(), tree
    assert "或到前台" in read_index_script((mini / "site/public/assets/search-index.js").read_bytes())["text"]


def test_a_one_page_rebuild_makes_only_that_pages_search_documents(mini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The packer keys a page by its source: the documents of pages whose chunk is saved are never made."""
    from handbook import search, search_docs

    monkeypatch.setattr(search, "CHUNK_MIN", 1)   # a chunk a page
    monkeypatch.setattr(search, "CUT_EVERY", 1)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    body = mini / "procedures/duty.md"
    body.write_text(body.read_text(encoding="utf-8") + "\n补充：交班前清点钥匙。\n", encoding="utf-8")
    build_cache._MEMO.clear()   # as a new process: caches from var/build/ only
    search.clear_cache()
    made = []
    real = search_docs._procedure_docs
    monkeypatch.setattr(search_docs, "_procedure_docs", lambda p, *a: made.append(p.id) or real(p, *a))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert made and set(made) == {"T-001"}
    assert "清点钥匙" in read_index_script((mini / "site/staff/assets/search-index.js").read_bytes())["text"]


def _plain_procedure(number: int) -> str:
    return (f"---\nid: T-{number:03d}\ntitle: 规程{number}\ndepartment: 客服部\ncategory: duty\nversion: \"1.0\"\n"
            f"effective: 2026-01-01\nreview_by: 2027-06-01\nowner: 客服主管\naudience: staff\n---\n\n"
            f"## 目的\n\n第 {number} 篇规程的正文。\n\n## 步骤\n\n先登记，再处理。\n")


def test_a_one_page_rebuild_decodes_only_the_html_and_sections_it_shows(mini: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Other pages' HTML and section text (90% of the cache) stay marshal bytes: models.Lazy."""
    from handbook import search
    from handbook.models import Packed

    monkeypatch.setattr(search, "CHUNK_MIN", 1)   # a search chunk a page: only the edited page's is redone
    monkeypatch.setattr(search, "CUT_EVERY", 1)
    for number in range(100, 112):
        (mini / f"procedures/p{number}.md").write_text(_plain_procedure(number), encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    edited = mini / "procedures/p105.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n补充：交班前清点钥匙。\n", encoding="utf-8")
    build_cache._MEMO.clear()   # as a new process: the cache from var/build/ only
    search.clear_cache()
    build(load_config(mini), mini / "site", today=TODAY, workers=1)

    items = {item.id: item for item, _ in build_cache._MEMO[(mini / "site").resolve()].parsed.values()
             if item is not None and "_sections" in vars(item)}
    sections = {i for i, item in items.items() if type(item.__dict__["_sections"]) is not Packed}
    html = {i for i, item in items.items() if type(item.__dict__["_html"]) is not Packed}
    assert sections == {"T-105"}
    # its page, and its neighbours' (their previous/next links show it), and notices (never memoised)
    assert "T-105" in html and html <= {"T-104", "T-105", "T-106"} | {i for i in items if i.startswith("N-")}
    kept = items["T-110"]
    assert kept.sections[0].title == "目的" and "第 110 篇" in kept.html   # the others are read on demand
    assert type(kept.__dict__["_html"]) is str


def test_watch_decodes_the_cache_at_once_and_a_lazy_item_still_pickles(mini: Path) -> None:
    """--watch lives on: it must not keep the whole cache file's bytes alive for a few undecoded pages."""
    import pickle

    from handbook.models import Packed

    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    lazy = build_cache._read(_cache_file(mini))
    item = next(i for i, _ in lazy.parsed.values() if i is not None and "_html" in vars(i))
    assert type(vars(item)["_html"]) is Packed
    assert pickle.loads(pickle.dumps(item)).html == item.html   # e.g. to a worker process
    build_cache._MEMO.clear()
    build(load_config(mini), mini / "site", today=TODAY, workers=1, watching=True)
    items = [i for i, _ in build_cache._MEMO[(mini / "site").resolve()].parsed.values() if i is not None]
    assert items and not [i for i in items for v in vars(i).values() if type(v) is Packed]


def test_what_the_index_shows_of_the_config_follows_it(mini: Path) -> None:
    """A department renamed in estate.toml reaches every page of the index, though no procedure changed."""
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    toml = mini / "content/estate.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('name = "工程部"', 'name = "工程维修部"'), encoding="utf-8")
    build_cache._MEMO.clear()
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    pages = read_index_script((mini / "site/staff/assets/search-index.js").read_bytes())["pages"]
    depts = {row[4] for row in pages}
    assert "工程维修部" in depts and "工程部" not in depts


def test_a_damaged_search_cache_is_ignored(mini: Path, caplog: pytest.LogCaptureFixture) -> None:
    build(load_config(mini), mini / "site", today=TODAY)
    saved = build_cache.folder(load_config(mini)) / "search.cache"
    saved.write_bytes(b"\x00\x01damaged")
    (mini / "site/staff/assets/search-index.js").unlink()
    build_cache._MEMO.clear()
    build(load_config(mini), mini / "site", today=TODAY, workers=1)  # in-process: its warning reaches caplog
    assert "ignoring unreadable search cache" in caplog.text
    assert (mini / "site/staff/assets/search-index.js").is_file()


def test_saved_chunks_are_reused_by_the_next_process(mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from handbook import build as builder
    from handbook import search
    from handbook.discover import discover
    from handbook.index import build_index
    from handbook.sources import Expander, parse_sources

    config = load_config(mini)
    parsed = parse_sources(discover(config), config, Expander.load(config), build_cache.BuildCache(), workers=1)
    handbook, _ = build_index(config, parsed.procedures, parsed.notices, frozenset())
    cache_file = tmp_path / "search.cache"
    first = builder._search_files(config, handbook, [], "stamp", cache_file)
    search.clear_cache()  # as a new process starts
    laid_out = []
    monkeypatch.setattr(search, "_layout", lambda docs: laid_out.append(docs) or pytest.fail("chunk laid out again"))
    monkeypatch.setattr(search, "browser_map", lambda alphabet: pytest.fail("fold map made again"))
    decoded = []  # a chunk's layout (pages, sections, text) is read from the saved bytes only if it must be
    monkeypatch.setattr(search, "_as_is", lambda value: decoded.append(value) or value)
    assert builder._search_files(config, handbook, [], "stamp", cache_file) == first
    assert laid_out == [] and decoded == []
    search.clear_cache()


def test_saved_chunks_that_moved_are_shifted_not_laid_out_again(mini: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A page gone before them moves every later chunk: each is shifted from its saved layout, and the index
    is the one a cold build makes."""
    from handbook import build as builder
    from handbook import search
    from handbook.discover import discover
    from handbook.index import build_index
    from handbook.sources import Expander, parse_sources

    monkeypatch.setattr(search, "CHUNK_MIN", 1)   # a chunk a page
    monkeypatch.setattr(search, "CUT_EVERY", 1)
    config = load_config(mini)
    parsed = parse_sources(discover(config), config, Expander.load(config), build_cache.BuildCache(), workers=1)
    handbook, _ = build_index(config, parsed.procedures, parsed.notices, frozenset())
    cache_file = tmp_path / "search.cache"
    builder._search_files(config, handbook, [], "stamp", cache_file)
    fewer = replace(handbook, procedures=handbook.procedures[1:], memo={})
    cold = builder._search_files(config, fewer, [], "stamp")
    search.clear_cache()  # as a new process starts
    laid_out, decoded = [], []
    monkeypatch.setattr(search, "_layout", lambda docs: laid_out.append(docs) or pytest.fail("chunk laid out again"))
    monkeypatch.setattr(search, "_as_is", lambda value: decoded.append(value) or value)
    assert builder._search_files(config, fewer, [], "stamp", cache_file) == cold
    assert laid_out == [] and decoded   # the moved chunks' sections were read to be shifted
    search.clear_cache()


def test_compiled_templates_live_with_the_program_not_in_var(mini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from render import jinja

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    cache = jinja._bytecode_cache()
    assert cache is not None and Path(cache.directory).parent == Path(jinja.__file__).parent / "__pycache__"
    # PYTHONDONTWRITEBYTECODE is honoured as Python does for .pyc files: what is there is read, nothing written
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    reader = jinja._bytecode_cache()
    assert reader is not None and reader.directory == cache.directory
    before = sorted(Path(cache.directory).iterdir())
    template = jinja2.Environment(bytecode_cache=reader).from_string("{{ 1 }}")  # noqa: S701
    bucket = reader.get_bucket(template.environment, "probe.html", None, "{{ 1 }}")
    bucket.code = compile("1", "probe", "eval")
    reader.set_bucket(bucket)
    assert sorted(Path(cache.directory).iterdir()) == before
    elsewhere = mini / "elsewhere"                  # an install whose templates were never compiled
    elsewhere.mkdir()
    (elsewhere / "jinja.py").write_bytes(b"")
    monkeypatch.setattr(jinja, "__file__", str(elsewhere / "jinja.py"))
    assert jinja._bytecode_cache() is None and not (elsewhere / "__pycache__").exists()
    monkeypatch.undo()
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert sorted(p.name for p in build_cache.folder(load_config(mini)).iterdir()) == sorted(
        [_cache_file(mini).name, "search.cache"])  # var/build/ holds data only


def test_watch_picks_up_an_edited_template(mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded templates are not checked on every page (auto_reload off): the build's look at the templates
    (assets_digest) drops them when one changed, so --watch shows a template edit on its next rebuild."""
    from render import jinja

    templates = tmp_path / "templates"
    shutil.copytree(jinja.TEMPLATES, templates)
    shutil.copytree(jinja.STATIC, tmp_path / "static")
    monkeypatch.setattr(jinja, "TEMPLATES", templates)
    monkeypatch.setattr(jinja, "STATIC", tmp_path / "static")
    monkeypatch.setattr(jinja, "_DIGEST", {})
    monkeypatch.setattr(jinja, "_bytecode_cache", lambda: None)
    jinja.environment.cache_clear()
    try:
        build(load_config(mini), mini / "site", today=TODAY, workers=1, watching=True)
        page = mini / "site/staff/procedures/t-001.html"
        assert "模板改过了" not in page.read_text(encoding="utf-8")
        base = templates / "base.html"
        base.write_text(base.read_text(encoding="utf-8").replace("</main>", "</main><p>模板改过了</p>"),
                        encoding="utf-8")
        build(load_config(mini), mini / "site", today=TODAY, workers=1, watching=True)
        assert "模板改过了" in page.read_text(encoding="utf-8")
    finally:
        jinja.environment.cache_clear()


# ---- one-off builds trust a file's stamp, unless the file was still changing ------------------------

@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled however new: a test writes its files just before building (and cannot age a
    ctime), so without this every stamp would be untrusted."""
    monkeypatch.setattr(discover, "RACY_NS", -1)


def test_a_one_off_build_does_not_read_files_it_parsed_before(mini: Path, settled: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()                     # a new process: only the file on disk
    opened: list[str] = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    edited = mini / "procedures/duty.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n补充一句。\n", encoding="utf-8")
    again = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    read = {Path(f).name for f in opened if f.endswith(".md")}
    assert read == {"duty.md"} and again.parsed == 1


def test_the_estate_named_another_way_still_reads_no_unchanged_file(mini: Path, settled: None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`--root .` one time and `--root /srv/estate` the next: the cache knows the same files by the same paths."""
    monkeypatch.chdir(mini.parent)
    build(load_config(mini.name), Path(mini.name) / "site", today=TODAY, workers=1)       # relative
    build_cache._MEMO.clear()
    opened: list[str] = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    monkeypatch.chdir(mini)
    again = build(load_config("."), mini / "site", today=TODAY, workers=1)                 # "." from inside
    assert not [f for f in opened if f.endswith(".md")] and again.parsed == 0 and again.written == 0


@pytest.mark.parametrize("how", ["rewritten, old mtime put back", "replaced by a copy with the old mtime"])
def test_a_changed_file_with_its_old_size_and_mtime_is_still_seen(mini: Path, settled: None, how: str) -> None:
    """tar, cp -p, rsync -t and touch -d set mtime back; ctime and the inode still tell."""
    edited = mini / "procedures/duty.md"
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    before = os.stat(edited)
    text = edited.read_text(encoding="utf-8")
    changed = text.replace("值班规程", "值守规程", 1)                  # same byte length
    if how.startswith("rewritten"):
        edited.write_text(changed, encoding="utf-8")
    else:
        copy = edited.with_name("copy.tmp")
        copy.write_text(changed, encoding="utf-8")
        copy.replace(edited)
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(edited).st_size == before.st_size
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert "值守规程" in (mini / "site/staff/procedures/t-001.html").read_text(encoding="utf-8")


def test_a_file_read_while_it_may_still_change_is_never_trusted(mini: Path) -> None:
    """Two saves inside one tick of the file clock can leave size, mtime and ctime alike: a file this
    fresh is read again by every build until it has settled."""
    edited = mini / "procedures/duty.md"
    edited.touch()
    fresh = next(s for s in discover.discover(load_config(mini)) if s.rel == "duty.md")
    assert fresh.stamp == discover.UNTRUSTED and fresh.raw
    assert not any(p.endswith("/duty.md") for p in build_cache.known_sources(_built_cache(mini)))


def _built_cache(root: Path) -> build_cache.BuildCache:
    build(load_config(root), root / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    return build_cache._read(_cache_file(root))


def test_a_file_read_again_unchanged_is_trusted_next_time(mini: Path, settled: None) -> None:
    """A touched (or checked-out, copied) file is read once, then known by its new stamp."""
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    (mini / "procedures/duty.md").touch()
    st = os.stat(mini / "procedures/duty.md")
    for _ in range(2):  # and still so after a build that did not read it (its saved batch holds the new stamp)
        known = build_cache.known_sources(_built_cache(mini))
        stamp = next(v[0] for k, v in known.items() if k.endswith("/duty.md"))
        assert stamp == (st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino)


def test_pages_written_by_a_build_cut_short_are_redone_and_cleaned_up(mini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after writing pages, before saving its cache: the next build must not trust the old cache's
    fingerprints (the pages on disk are newer), and must remove a page whose source has gone since."""
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    extra = mini / "procedures/extra.md"
    extra.write_text((mini / "procedures/duty.md").read_text(encoding="utf-8")
                     .replace("T-001", "T-099").replace("supersedes: T-000\n", ""), encoding="utf-8")

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(build_cache, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        build(load_config(mini), mini / "site", today=TODAY, workers=1)
    monkeypatch.undo()
    assert (mini / "site/staff/procedures/t-099.html").is_file()
    build_cache._MEMO.clear()
    extra.unlink()
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert not (mini / "site/staff/procedures/t-099.html").exists()
    assert "T-099" not in (mini / "site/staff/index.html").read_text(encoding="utf-8")
    assert not build_cache._writing_marker(load_config(mini), mini / "site").exists()


def test_an_older_cache_layout_still_removes_pages_of_deleted_procedures(mini: Path) -> None:
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    path = _cache_file(mini)
    outputs = build_cache._read(path).outputs
    path.write_bytes(marshal.dumps({"parse_stamp": "old", "outputs": outputs | {"staff/procedures/gone.html"},
                                    "planted": 1}) + marshal.dumps([]))
    (mini / "site/staff/procedures/gone.html").write_text("old page", encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert not (mini / "site/staff/procedures/gone.html").exists()


@pytest.mark.parametrize("layout", [3, 5])
def test_a_previous_cache_layout_still_removes_pages_of_deleted_procedures(mini: Path, layout: int) -> None:
    """Layout 3 (before each frame carried a CRC-32): its head came after the magic line and a length;
    layout 5 (before the head listed the sources): after the magic line and a frame header."""
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    path = _cache_file(mini)
    head = marshal.dumps({"outputs": build_cache._read(path).outputs | {"staff/procedures/gone.html"}, "parsed": {}})
    before_head = len(head).to_bytes(8, "little") if layout == 3 else build_cache._FRAME.pack(len(head), 0)
    path.write_bytes(f"estate-desk build cache {layout}\n".encode() + before_head + head)
    (mini / "site/staff/procedures/gone.html").write_text("old page", encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert not (mini / "site/staff/procedures/gone.html").exists()


def test_which_files_changed_is_known_before_any_result_is_decoded(mini: Path, settled: None) -> None:
    """The head lists each saved result's source, so a one-off rebuild forks its parser for the changed files
    first and decodes the ~1,000 saved results while that runs."""
    cache = _built_cache(mini)
    known = build_cache.known_sources(cache)
    assert cache._rest is not None  # nothing decoded yet
    assert {Path(p).name for p in known} >= {"duty.md", "repair.md"}
    duty = next(source for _, source in known.values() if source.rel == "duty.md")
    assert cache.reusable(duty) and not cache.reusable(replace(duty, rel="copy-of-duty.md"))
    assert cache._rest is not None
    assert duty.digest + "procedure" in cache.parsed and cache._rest is None


def test_saved_results_that_cannot_be_decoded_are_parsed_again(mini: Path, settled: None,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """A head that checks out over results that do not (a planted file with right CRCs): the files the head
    vouched for are parsed after all, and the site comes out the same."""
    first = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/staff/procedures/t-001.html").read_bytes()
    build_cache._MEMO.clear()
    path = _cache_file(mini)
    data = path.read_bytes()
    head_size, _ = build_cache._FRAME.unpack_from(data, len(build_cache.MAGIC))
    end_of_head = len(build_cache.MAGIC) + build_cache._FRAME.size + head_size
    bogus = marshal.dumps([("key", ("procedure", {"no such field": 1}, []))])
    table = build_cache._table_frame([])
    path.write_bytes(data[:end_of_head] + b"".join(build_cache._FRAME.pack(len(f), zlib.crc32(f)) + f
                                                   for f in (bogus, table)))
    (mini / "site/staff/procedures/t-001.html").unlink()
    with caplog.at_level(logging.WARNING, logger="handbook.cache"):
        again = build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert again.parsed == first.parsed
    assert (mini / "site/staff/procedures/t-001.html").read_bytes() == page
    assert any("unreadable build cache" in r.message for r in caplog.records)


@pytest.mark.parametrize("entry", [("a", "b"), ("p", "rel", "procedure", "other", "shown", (1, 2)),
                                   ("p", "rel", "procedure", "d", "shown", ("1",)), ["p"], None])
def test_a_planted_head_is_a_cold_build(mini: Path, entry: object, caplog: pytest.LogCaptureFixture) -> None:
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    path = _cache_file(mini)
    head = marshal.dumps({"outputs": set(), "sources": {"dprocedure": entry}})
    path.write_bytes(build_cache.MAGIC + build_cache._FRAME.pack(len(head), zlib.crc32(head)) + head)
    with caplog.at_level(logging.WARNING, logger="handbook.cache"):
        cache = build_cache._read(path)
    assert cache.sources == {} and cache.parsed == {}
    assert any("unreadable build cache" in r.message for r in caplog.records)


def test_a_planted_cache_cannot_delete_files_outside_the_site(mini: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    build_cache._MEMO.clear()
    rel = os.path.relpath(victim, mini / "site")
    path = _cache_file(mini)
    path.write_bytes(marshal.dumps({"outputs": {rel, str(victim)}}))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_tree_names_agree_with_the_pages_module() -> None:
    from handbook.pages import PUBLIC, STAFF
    assert build_cache.TREES == (STAFF, PUBLIC)


def test_watch_builds_leave_what_they_drop_collectable(mini: Path) -> None:
    """A one-off build freezes what it loaded (it ends soon); --watch lives on and must not."""
    import gc

    gc.unfreeze()
    build(load_config(mini), mini / "site", today=TODAY, workers=1, watching=True)
    assert gc.get_freeze_count() == 0
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


def test_a_build_goes_on_where_its_cache_cannot_be_written(mini: Path, caplog: pytest.LogCaptureFixture) -> None:
    """var/build/ unusable (here a file stands where the folder should be): pages are still built."""
    folder = build_cache.folder(load_config(mini))
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert (mini / "site/staff/procedures/t-001.html").is_file()
    assert "not writable" in caplog.text and "not saved" in caplog.text


_REBUILD_PROBE = """
import sys
import build
build.main(["--root", sys.argv[1], "-q", "--workers", "2", "--today", "2026-05-01"])
print(" ".join(m for m in ("handbook.parse", "markdown", "yaml", "estate.policy") if m in sys.modules))
"""


def test_a_one_off_rebuild_converts_changed_files_in_a_forked_process(mini: Path) -> None:
    """The parser's YAML and Python-Markdown are imported by a forked process that converts the changed file
    while the build's own process loads the templates; the page still shows the edit. The policy, which no
    page here uses, is not read at all."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    probe = [sys.executable, "-c", _REBUILD_PROBE, str(mini)]
    shutil.copyfile(repo / "content/policy.toml", mini / "content/policy.toml")
    subprocess.run(probe, cwd=repo, check=True, capture_output=True)   # the first build: cold, parse workers
    body = mini / "procedures/duty.md"
    body.write_text(body.read_text(encoding="utf-8") + "\n交班前清点钥匙柜。\n", encoding="utf-8")
    done = subprocess.run(probe, cwd=repo, check=True, capture_output=True, text=True)
    summary, loaded = done.stdout.splitlines()
    assert "写入 2 页" in summary                     # its staff and public pages
    assert loaded == ""
    assert "交班前清点钥匙柜" in (mini / "site/staff/procedures/t-001.html").read_text(encoding="utf-8")


_WATCH_PROBE = """
import sys
from pathlib import Path
from estate.config import load_config
from handbook import parallel
from handbook.build import build

root = Path(sys.argv[1])
build(load_config(root), root / "site", workers=2, watching=True)
forked = []
started = parallel.Background
parallel.Background = lambda workers, fn, *args: forked.append(fn.__name__) or started(workers, fn, *args)
body = root / "procedures/duty.md"
body.write_text(body.read_text(encoding="utf-8") + "\\n交班前清点钥匙柜。\\n", encoding="utf-8")
build(load_config(root), root / "site", workers=2, watching=True)
print(" ".join(forked))
"""


def test_watch_rebuilds_parse_in_their_own_process(mini: Path) -> None:
    """--watch lives on: its first build leaves the parser loaded, so each edit is converted in-process instead
    of forking a process that imports YAML and Python-Markdown again (only a one-off build gains from that)."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", _WATCH_PROBE, str(mini)], cwd=repo, check=True,
                          capture_output=True, text=True)
    assert done.stdout.strip() == ""
    assert "交班前清点钥匙柜" in (mini / "site/staff/procedures/t-001.html").read_text(encoding="utf-8")
