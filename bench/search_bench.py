"""Search benchmark: our offline search against MkDocs-Material's and Pagefind's on one synthetic corpus.

usage: .venv/bin/python bench/search_bench.py [-n 1000] [--out DIR] [--no-mkdocs] [--no-pagefind] [--pack]

Generates N procedures with ../shared/bench/make_corpus.py (half Traditional, half Simplified, with
its query file of same-script, cross-script and topic queries), builds them with our builder, then in
headless Chromium measures: recall@5 by query kind (precision@10 for topic-cross, as the corpus
README scores it), index size, page load to first usable query, and query time (p50/p95) — ours
from file://, the others over HTTP (neither searches from file:// out of the box; that is checked
too). MkDocs-Material and Pagefind come from PyPI (`pip install mkdocs-material 'pagefind[bin]'`).
Machines are shared: compare the systems within one run, not against figures from another run.

--pack measures only the index packing in-process, as `build --watch` exercises it: build_index
cold, unchanged and after one section's body changed (issue 2's rebuild budget), per deflate level,
and checks that a warm build's bytes equal a cold build's.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MAKE_CORPUS = Path("/work/shared/bench/make_corpus.py")
if not MAKE_CORPUS.exists():
    MAKE_CORPUS = REPO.parent / "shared" / "bench" / "make_corpus.py"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ID_IN_URL = re.compile(r"sop-(\d{4})", re.I)
LOAD_RUNS = 5

log = logging.getLogger(__name__)

from bench.corpus import DEPTS, TOPICS  # noqa: E402  (make_corpus.py's names, declared in the bench estate)


def make_estate(root: Path, n: int) -> list[dict]:
    """Write the corpus and a content/estate.toml naming its departments and categories; return the queries."""
    procs = root / "procedures"
    queries = root.parent / f"queries-{n}.json"
    subprocess.run([sys.executable, str(MAKE_CORPUS), str(n), str(procs), "--queries", str(queries)], check=True,
                   stdout=subprocess.DEVNULL)
    (procs / "index.md").unlink()      # the corpus's own table of contents is not a procedure
    lines = ['[estate]', 'name = "基准花园"', '']
    for kind, rows in (("departments", DEPTS), ("categories", TOPICS)):
        for i, (simp, trad) in enumerate(rows):
            aliases = f'["{trad}"]' if trad != simp else "[]"
            lines += [f"[[{kind}]]", f'id = "{kind[:3]}-{i}"', f'name = "{simp}"', f"aliases = {aliases}", ""]
    (root / "content").mkdir(parents=True, exist_ok=True)
    (root / "content" / "estate.toml").write_text("\n".join(lines), encoding="utf-8")
    return json.loads(queries.read_text(encoding="utf-8"))


def build_ours(root: Path, out: Path, workers: int | None = None) -> float:
    """Build the corpus with our builder; return seconds."""
    from estate.config import load_config
    from handbook.build import build

    started = time.perf_counter()
    build(load_config(root), out=out, workers=workers)
    return time.perf_counter() - started


def score(queries: list[dict], ranked: list[list[str]]) -> dict[str, float]:
    """Recall@5 for same/cross queries, precision@10 for topic-cross, averaged per kind."""
    by_kind: dict[str, list[float]] = {}
    for q, got in zip(queries, ranked, strict=True):
        expected = {f"SOP-{int(ID_IN_URL.search(e).group(1)):04d}" for e in q["expected"]}
        if q["kind"] == "topic-cross":
            value = len(set(got[:10]) & expected) / 10
        else:
            value = len(set(got[:5]) & expected) / min(5, len(expected))
        by_kind.setdefault(q["kind"], []).append(value)
    return {k: sum(v) / len(v) for k, v in by_kind.items()}


def ids_from_urls(urls: list[str]) -> list[str]:
    """Distinct procedure ids in result order."""
    out: list[str] = []
    for u in urls:
        m = ID_IN_URL.search(u)
        if m and (pid := f"SOP-{int(m.group(1)):04d}") not in out:
            out.append(pid)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def dir_size(path: Path, pattern: str = "*") -> tuple[int, int]:
    files = [p for p in path.rglob(pattern) if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


# ---- ours --------------------------------------------------------------------------------------

def measure_ours(browser, staff: Path, queries: list[dict]) -> dict:
    """Our search from file://: load to first query, recall by kind and tokenising mode, query times."""
    loads, phases = [], []
    first_q = quote(queries[0]["query"])
    for _ in range(LOAD_RUNS):
        page = browser.new_page()
        page.goto((staff / "search.html").as_uri() + "?q=" + first_q)
        page.wait_for_function("window.EstateSearch && EstateSearch.firstQueryAt !== undefined")
        loads.append(page.evaluate("EstateSearch.firstQueryAt"))
        phases.append(page.evaluate("""[performance.getEntriesByType('navigation')[0].domInteractive,
            EstateSearch.timings.script, EstateSearch.timings.inflated, EstateSearch.timings.indexed]"""))
        page.close()
    page = browser.new_page()
    proc = next((staff / "procedures").glob("*.html"))
    page.goto(proc.as_uri())
    lazy = page.evaluate("""() => new Promise(done => {
        const t0 = performance.now(), box = document.querySelector('#es-q');
        box.focus(); box.value = '投诉'; box.dispatchEvent(new Event('input'));
        const wait = () => EstateSearch.firstQueryAt !== undefined ? done(EstateSearch.firstQueryAt - t0) : setTimeout(wait, 2);
        wait(); })""")
    page.goto((staff / "search.html").as_uri())
    page.wait_for_function("window.EstateSearch && EstateSearch.index")
    texts = [q["query"] for q in queries]
    recall = {}
    for mode in ("bigram", "unigram", "both"):
        ranked = page.evaluate("""([qs, mode]) => qs.map(q => EstateSearch.search(q, {limit: 10, sections: 1, mode})
            .results.map(r => r.page.id))""", [texts, mode])
        recall[mode] = score(queries, ranked)
    times = page.evaluate("""qs => qs.map(q => { EstateSearch.clearCache();
        const t = performance.now(); EstateSearch.search(q, {limit: 50, sections: 3}); return performance.now() - t; })""",
                          texts)
    typing = page.evaluate("""qs => { EstateSearch.clearCache(); const out = [];
        qs.forEach(q => { for (let i = 1; i <= q.length; i++) { const t = performance.now();
            EstateSearch.search(q.slice(0, i), {limit: 8, sections: 1}); out.push(performance.now() - t); } });
        return out; }""", texts)
    page.close()
    size, files = dir_size(staff / "assets", "search*")
    return {"recall": recall["bigram"], "modes": recall, "size": size, "files": files,
            "load": statistics.median(loads), "load_max": max(loads), "lazy": lazy,
            "phases": [statistics.median(p[i] for p in phases) for i in range(4)],
            "p50": statistics.median(times), "p95": p95(times), "typing_p95": p95(typing)}


# ---- Pagefind ----------------------------------------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def pagefind_binary() -> list[str] | None:
    exe = shutil.which("pagefind", path=str(Path(sys.executable).parent)) or shutil.which("pagefind")
    if exe:
        return [exe]
    try:
        import pagefind  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "pagefind"]


def measure_pagefind(browser, site: Path, queries: list[dict]) -> dict | None:
    """Index the built HTML (procedure pages only) with Pagefind and query it over HTTP."""
    cmd = pagefind_binary()
    if not cmd:
        log.warning("pagefind not installed: pip install 'pagefind[bin]'")
        return None
    started = time.perf_counter()
    subprocess.run([*cmd, "--site", str(site), "--glob", "procedures/*.html"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index_seconds = time.perf_counter() - started
    (site / "pf.html").write_text('<!doctype html><meta charset="utf-8"><title>pf</title>', encoding="utf-8")
    file_ok = _pagefind_page(browser, (site / "pf.html").as_uri(), queries[:1])[0] is not None
    server, base = serve(site)
    try:
        loads, ranked, times = _pagefind_page(browser, base + "pf.html", queries)
    finally:
        server.shutdown()
    size, files = dir_size(site / "pagefind")
    return {"recall": score(queries, ranked), "size": size, "files": files, "load": loads,
            "p50": statistics.median(times), "p95": p95(times), "file_ok": file_ok, "index_seconds": index_seconds}


def _pagefind_page(browser, url: str, queries: list[dict]):
    page = browser.new_page()
    page.goto(url)
    try:
        load = page.evaluate("""async () => { const t0 = performance.now();
            window.pf = await import('./pagefind/pagefind.js'); await pf.init();
            await pf.search('投诉'); return performance.now() - t0; }""")
    except Exception as exc:  # file://: CORS refuses the module and its fetches
        log.info("pagefind at %s: %s", url, str(exc).splitlines()[0])
        page.close()
        return None, [], []
    ranked, times = [], []
    for q in queries:
        got = page.evaluate("""async q => { const t = performance.now(); const r = await pf.search(q);
            const top = await Promise.all(r.results.slice(0, 10).map(x => x.data()));
            return [performance.now() - t, top.map(d => d.url)]; }""", q["query"])
        times.append(got[0])
        ranked.append(ids_from_urls(got[1]))
    page.close()
    return load, ranked, times


# ---- MkDocs-Material ---------------------------------------------------------------------------

def measure_mkdocs(browser, root: Path, work: Path, queries: list[dict]) -> dict | None:
    """Build the corpus with MkDocs-Material (default search) and type the queries into its search box."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        log.warning("mkdocs not installed: pip install mkdocs-material")
        return None
    docs = work / "mk" / "docs"
    shutil.copytree(root / "procedures", docs)
    (docs / "index.md").write_text("# 基准花园\n", encoding="utf-8")
    # the default search, as the reference figures were measured (language: zh needs jieba)
    (work / "mk" / "mkdocs.yml").write_text("site_name: 基准花园\ntheme:\n  name: material\n"
                                            "plugins:\n  - search\n", encoding="utf-8")
    started = time.perf_counter()
    subprocess.run([str(mkdocs), "build", "-q"], cwd=work / "mk", check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    build_seconds = time.perf_counter() - started
    site = work / "mk" / "site"
    server, base = serve(site)
    try:
        page = browser.new_page()
        started_load = time.perf_counter()
        page.goto(base + "index.html")
        page.fill(".md-search__input", "投诉")
        page.press(".md-search__input", "End")
        page.wait_for_selector(".md-search-result__item", timeout=60_000)
        load = (time.perf_counter() - started_load) * 1000
        ranked, times = [], []
        for q in queries:
            ms, urls = _material_query(page, q["query"])
            if ms is not None:
                times.append(ms)
            ranked.append(ids_from_urls(urls))
        page.close()
    finally:
        server.shutdown()
    size = (site / "search" / "search_index.json").stat().st_size
    return {"recall": score(queries, ranked), "size": size, "files": 1, "load": load,
            "p50": statistics.median(times), "p95": p95(times), "file_ok": False, "build_seconds": build_seconds}


def _material_query(page, query: str) -> tuple[float | None, list[str]]:
    """Type QUERY; return (ms until the result list changed, result links once it settled).

    Material answers from a web worker, asynchronously: poll the list every 10 ms. When the new
    answer looks exactly like the old one (two empty answers in a row), no time is reported.
    """
    state = """() => [document.querySelector('.md-search-result__meta')?.textContent,
        [...document.querySelectorAll('.md-search-result__item > a')].map(a => a.href)]"""
    before = page.evaluate(state)
    started = time.perf_counter()
    page.fill(".md-search__input", query)
    page.press(".md-search__input", "End")      # Material listens to key events, not to fill()'s input
    changed, now = None, before
    while time.perf_counter() - started < 1.5:
        now = page.evaluate(state)
        if now != before:
            changed = (time.perf_counter() - started) * 1000
            break
        page.wait_for_timeout(10)
    stable = 0
    while changed is not None and stable < 5:
        page.wait_for_timeout(20)
        later = page.evaluate(state)
        stable = stable + 1 if later == now else 0
        now = later
    return changed, now[1]


# ---- packing the index (rebuild cost) ------------------------------------------------------------

PACK_ROUNDS = 5


def _edit_page(pages: list, k: int, extra: str) -> list:
    """PAGES with page K's first section longer by EXTRA, as the builder would hand them over after that edit."""
    docs = pages[k].make()
    edited_docs = [docs[0]._replace(text=docs[0].text + extra), *docs[1:]]
    edited = list(pages)
    edited[k] = pages[k]._replace(key=pages[k].key + extra.encode(), size=pages[k].size + len(extra),
                                  make=lambda: edited_docs)
    return edited


def measure_pack(root: Path, site: Path) -> None:
    """Time search.index_pages on the corpus's pages: cold, warm unchanged, warm after one edit, per level."""

    from estate.config import load_config
    from handbook import search

    captured: list[list] = []
    original = search.index_pages

    def spy(pages, config, synonyms=None):    # the pages exactly as the builder hands them over
        captured.append(list(pages))
        return original(pages, config, synonyms)

    search.index_pages = spy
    try:
        build_ours(root, site, workers=1)   # in this process: a forked packer's pages would not reach the spy
    finally:
        search.index_pages = original
    pages, config = max(captured, key=len), load_config(root)
    print(f"index packing: {len(pages)} pages, {sum(len(p.make()) for p in pages)} sections; "
          f"min / median of {PACK_ROUNDS} rounds, ms")
    print("| level | size | cold | unchanged | one body edited | warm == cold |")
    print("|---|---|---|---|---|---|")
    level = search.LEVEL
    for search.LEVEL in sorted({4, 5, level}):
        colds, sames, edits, identical = [], [], [], True
        for r in range(PACK_ROUNDS):
            search._CACHE.clear()
            ms, out = _timed(lambda: search.index_pages(pages, config))
            colds.append(ms)
            sames.append(_timed(lambda: search.index_pages(pages, config))[0])
            edited = _edit_page(pages, (len(pages) // PACK_ROUNDS) * r + 3, f"补充说明第{r}条。")
            ms, warm = _timed(functools.partial(search.index_pages, edited, config))
            edits.append(ms)
            search._CACHE.clear()
            identical &= warm == search.index_pages(edited, config)
        size = len(out[search.INDEX_FILE])
        print(f"| {search.LEVEL} | {size / 1e6:.2f} MB | {_mm(colds)} | {_mm(sames)} | {_mm(edits)} | "
              f"{'yes' if identical else 'NO'} |")
    search.LEVEL = level


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1000, out


def _mm(values: list[float]) -> str:
    return f"{min(values):.0f} / {statistics.median(values):.0f}"


# ---- report ------------------------------------------------------------------------------------

def table(rows: dict[str, dict]) -> str:
    """The three-way table, as Markdown."""
    out = ["| system | same R@5 | cross R@5 | topic-cross P@10 | index | files | load→first query | "
           "p50 query | p95 query | from file:// |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if r is None:
            out.append(f"| {name} | not run | | | | | | | | |")
            continue
        rc = r["recall"]
        load = f"{r['load']:.0f} ms" if r["load"] is not None else "—"
        out.append(f"| {name} | {rc.get('same', 0):.2f} | {rc.get('cross', 0):.2f} | {rc.get('topic-cross', 0):.2f} | "
                   f"{r['size'] / 1e6:.1f} MB | {r['files']} | {load} | {r['p50']:.1f} ms | {r['p95']:.1f} ms | "
                   f"{'yes' if r.get('file_ok', True) else 'no'} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="procedures to generate")
    ap.add_argument("--out", type=Path, help="keep the work folder here (default: a temp folder, removed)")
    ap.add_argument("--no-mkdocs", action="store_true", help="skip MkDocs-Material (slow: about 2 minutes)")
    ap.add_argument("--no-pagefind", action="store_true", help="skip Pagefind")
    ap.add_argument("--pack", action="store_true", help="only time packing the index (cold, warm, one edit)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    work = args.out or Path(tempfile.mkdtemp(prefix="search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(args, work)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    root, site = work / "estate", work / "site"
    queries = make_estate(root, args.n)
    if args.pack:
        measure_pack(root, site)
        return
    print(f"corpus: {args.n} procedures, {len(queries)} queries; our build {build_ours(root, site):.1f} s")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        rows: dict[str, dict | None] = {"Estate Desk (file://)": measure_ours(browser, site / "staff", queries)}
        ours = rows["Estate Desk (file://)"]
        if not args.no_mkdocs:
            rows["MkDocs-Material search (HTTP)"] = measure_mkdocs(browser, root, work, queries)
        if not args.no_pagefind:
            rows["Pagefind (HTTP)"] = measure_pagefind(browser, site / "staff", queries)
        browser.close()
    print(table(rows))
    print(f"\nours: lazy load on a handbook page (focus → first results) {ours['lazy']:.0f} ms; "
          f"load runs max {ours['load_max']:.0f} ms; as-you-type p95 {ours['typing_p95']:.1f} ms")
    dom, script, inflated, indexed = ours["phases"]
    print(f"ours, load phases (median ms from navigation): DOM ready {dom:.0f}, index script runs {script:.0f}, "
          f"inflated {inflated:.0f}, folded+indexed {indexed:.0f}, first results {ours['load']:.0f}")
    print("ours by tokenising mode (same / cross / topic-cross):")
    for mode, rc in ours["modes"].items():
        print(f"  {mode:8} {rc['same']:.3f} / {rc['cross']:.3f} / {rc['topic-cross']:.3f}")
    targets = [("same R@5 ≥ 0.95", ours["recall"]["same"] >= 0.95), ("cross R@5 ≥ 0.95", ours["recall"]["cross"] >= 0.95),
               ("index ≤ 8 MB", ours["size"] <= 8e6), ("load ≤ 300 ms", ours["load"] <= 300),
               ("p95 ≤ 30 ms", ours["p95"] <= 30)]
    print("targets: " + ", ".join(f"{name} {'ok' if ok else 'MISSED'}" for name, ok in targets))
    for name, r in rows.items():
        if r and "build_seconds" in r:
            print(f"{name}: build {r['build_seconds']:.0f} s")
        if r and "index_seconds" in r:
            print(f"{name}: indexing {r['index_seconds']:.1f} s")


if __name__ == "__main__":
    main()
