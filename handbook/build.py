"""The site builder's pipeline: discover → parse → index → render → write, on one screen.

`build()` is what `build.py`, `--watch` and the tests call. It validates everything before it
writes anything, so a failed build leaves the previous site/ as it was.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from itertools import chain
from pathlib import Path

from estate.config import EstateConfig
from handbook import cache as build_cache
from handbook import parallel, search
from handbook.discover import discover
from handbook.index import Handbook, build_index
from handbook.models import TREES, BuildProblem, Notice, Procedure, SourceFile
from handbook.pages import PageSpec, Views, estate_context
from handbook.search_docs import search_pages
from handbook.sources import Expander, parse_sources
from render.jinja import static_files, tree_assets
from render.writer import copy_file, write_page

log = logging.getLogger(__name__)


class BuildFailed(Exception):
    """Validation found problems; nothing was written."""

    def __init__(self, problems: list[BuildProblem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.message))
        super().__init__("\n".join(map(str, self.problems)))


@dataclass
class BuildResult:
    """What a build did, for the summary line and for tests."""

    written: int = 0
    skipped: int = 0
    removed: int = 0
    parsed: int = 0
    seconds: float = 0.0
    rendered: list[str] = field(default_factory=list)   # tree/path of pages rendered this time
    outputs: set[str] = field(default_factory=set)      # tree/path of every page this build produces

    def summary(self) -> str:
        return (f"完成：写入 {self.written} 页，跳过 {self.skipped} 页（未变），删除 {self.removed} 页，"
                f"用时 {self.seconds:.2f} 秒 (done: {self.written} written, {self.skipped} unchanged, "
                f"{self.removed} removed, {self.seconds:.2f} s)")


def build(config: EstateConfig, out: Path | None = None, *, clean: bool = False, today: date | None = None,
          workers: int | None = None, watching: bool = False) -> BuildResult:
    """Build the staff and public trees of CONFIG's estate into OUT (default: the configured site/).

    WATCHING (set by --watch/--serve) keeps the cache in memory and writes it to disk in the background.
    """
    started = time.perf_counter()
    parallel.wait_for_lingering()  # the last build's search chunks are on disk before this one reads them
    out = out or config.path(config.build.site_dir)
    check_output_folder(config, out, clean)
    today = today or date.today()
    workers = parallel.worker_count(config.build.workers if workers is None else workers)
    expander = Expander.load(config)
    cache = build_cache.load(out, config, expander.digest, lazy=not watching)
    if cache.restamped:  # the policy (or config, or code) changed: a broken policy file must fail the build
        expander.check()
    _settle(watching)

    known = None if watching else build_cache.known_sources(cache)  # --watch remembers them itself
    unreadable: list[BuildProblem] = []
    sources = discover(config, remember=watching, known=known, problems=unreadable)  # discover
    _progress(len(sources), "解析 {n} 个源文件… (parsing {n} files)")
    parsed = parse_sources(sources, config, expander, cache, workers, one_off=not watching)  # parse
    source_keys = {s.digest + s.kind for s in sources}
    del sources  # the raw bytes are parsed; at 5,000 procedures they are worth freeing
    handbook, index_problems = build_index(config, parsed.procedures, parsed.notices,  # index
                                           frozenset(parsed.unparsed), parsed.intro, today, parsed.failed)
    if unreadable or parsed.problems or index_problems:
        raise BuildFailed(unreadable + parsed.problems + index_problems)
    _settle(watching)  # before the render workers and the search packer fork
    synonyms = _synonyms(config)  # the last check: from here on, the build writes
    indexing = _index_search(config, handbook, synonyms, cache.parse_stamp, workers, watching)
    # page specs are generated lazily and rendered a batch at a time, so their contexts never all coexist
    views = [Views(config, handbook, tree, today, cache) for tree in TREES]
    specs = chain(*(v.pages() for v in views))

    _progress(len(source_keys), "渲染页面（内容未变的页面将跳过）… (rendering; unchanged pages are skipped)")
    if clean:
        build_cache.clean(out)
    build_cache.start_writing(config, out)
    try:
        result = parallel.render_and_write(out, specs, cache, workers)            # write
        assets = _assets(config)
        media = {f"{v.tree}/{rel}": path for v in views for rel, path in v.media().items()}
        result.written += sum(copy_file(path, out / rel) for rel, path in media.items())
        outputs = result.outputs | set(assets) | set(media) | {ROOT_PAGE} | {f"{t}/{search.INDEX_FILE}" for t in TREES}
        result.removed = build_cache.remove_stale(out, cache, outputs)
        saving = build_cache.save(config, out, cache, source_keys, outputs)  # written while the index is packed
        extras = assets | indexing.result() | _root_page(config)
    except BaseException:
        indexing.cancel()  # a build that failed leaves no process behind
        raise
    result.written += sum(write_page(out / rel, data) for rel, data in extras.items())
    if not watching:  # --watch goes on while the cache is written
        saving.result()
    result.parsed = parsed.fresh
    result.seconds = time.perf_counter() - started
    log.debug(result.summary())
    return result


def check_output_folder(config: EstateConfig, out: Path, clean: bool = False) -> None:
    """Refuse an output folder that holds the estate or lies inside its sources or runtime data: the build
    writes and deletes pages there, and --clean empties it (`--out .` would have deleted procedures/).
    --clean also refuses another folder with files but no site in it (the estate's own site/ is output only):
    `--out /media/usb` meant for `--out /media/usb/site` would have emptied the stick."""
    if out.exists() and not out.is_dir():
        raise BuildFailed([BuildProblem(str(out), 1, "输出位置是一个文件，不是文件夹 (output is a file, not a folder)")])
    root, target = config.root.resolve(), out.resolve()
    kept = [config.path(p).resolve() for p in ("content", config.build.procedures_dir, config.build.notices_dir,
                                               config.processor.var_dir, config.processor.inbox_dir)]
    holds_estate = target == root or target in root.parents
    inside_kept = any(target == k or k in target.parents for k in kept)
    if holds_estate or inside_kept:
        raise BuildFailed([BuildProblem(str(out), 1, "输出文件夹不能是规程库根目录或它的上级，也不能在 content/、"
                                        "procedures/、var/、inbox/ 之内：构建会在那里写入和删除文件 "
                                        "(output folder would overwrite the estate's sources)")])
    own = target == config.path(config.build.site_dir).resolve()
    if clean and not own and not _holds_a_site(out):
        raise BuildFailed([BuildProblem(str(out), 1, "--clean 只清空以前构建的站点文件夹：这个文件夹里有别的文件，"
                                        "没有 index.html 与 staff/ 或 public/ (--clean refused: not a site folder)")])


def _settle(watching: bool) -> None:
    """In a one-off build, move what is loaded so far (the cache, the parsed handbook: ~10^5 objects that
    live until the process ends) out of the garbage collector's sight. Its full passes walked all of them
    again and again while pages were made (~40% of making the search documents; a one-page rebuild at
    1,000 procedures 0.51 -> 0.46 s, a cold build ~5%); forked workers also keep sharing those pages, as
    the collector no longer writes to them. --watch, which lives on, never does: what it drops must stay
    collectable."""
    if not watching:
        gc.freeze()


def _holds_a_site(out: Path) -> bool:
    """Is OUT missing, empty, or a site this builder wrote (its root page and a tree)?"""
    if not out.is_dir() or next(out.iterdir(), None) is None:
        return True
    return (out / ROOT_PAGE).is_file() and any((out / tree).is_dir() for tree in TREES)


ROOT_PAGE = "index.html"  # the page that links the two trees
PROGRESS_MIN = 200  # a build this size takes more than a moment: say what it is doing


def _progress(n: int, message: str) -> None:
    if n >= PROGRESS_MIN:
        log.info(message.format(n=n))


def _assets(config: EstateConfig) -> dict[str, bytes]:
    files = static_files()  # read once for both trees
    return {f"{tree}/assets/{rel}": data for tree in TREES
            for rel, data in tree_assets(files, {**estate_context(config), "tree": tree}).items()}


def _root_page(config: EstateConfig) -> dict[str, bytes]:
    from render.jinja import render

    html = render("root.html", estate_context(config))
    return {ROOT_PAGE: html.encode("utf-8")}


def _synonyms(config: EstateConfig) -> list[list[str]]:
    try:
        return search.load_synonyms(config.path(config.build.synonyms_file))
    except search.SearchConfigError as exc:  # e.g. a broken content/synonyms.toml
        raise BuildFailed([BuildProblem(config.build.synonyms_file, 1, str(exc))]) from exc


def _search_files(config: EstateConfig, handbook: Handbook, synonyms: list[list[str]], parse_stamp: str,
                  cache_file: Path | None = None) -> dict[str, bytes]:
    """Search index files of each tree (the public one holds public pages only).

    PARSE_STAMP (the build cache's) lets a page's packed text be reused on its source's word. With
    CACHE_FILE (one-off builds), the packed chunks of the last build are read from it and this build's
    are written back.
    """
    files = _pack_search(config, handbook, synonyms, parse_stamp, cache_file)
    if cache_file is not None:
        _keep_packed_chunks(cache_file)
    return files


def _pack_search(config: EstateConfig, handbook: Handbook, synonyms: list[list[str]], parse_stamp: str,
                 cache_file: Path | None = None) -> dict[str, bytes]:
    """_search_files, but the chunks read from CACHE_FILE are not written back (_keep_packed_chunks does)."""
    if cache_file is not None:
        search.load_cache(cache_file, build_cache.code_digest())
    files: dict[str, bytes] = {}
    for tree in TREES:
        built = search.index_pages(search_pages(config, handbook, tree, parse_stamp), config, synonyms)
        files.update((f"{tree}/{rel}", content) for rel, content in built.items())
    return files


def _keep_packed_chunks(cache_file: Path) -> None:
    """A one-off build: keep the chunks for the next one on disk, not in memory."""
    search.save_cache(cache_file, build_cache.code_digest())
    search.clear_cache()


CONCURRENT_INDEX_MAX = 2000  # procedures: beyond this, pack the search index before rendering, not during


def _index_search(config: EstateConfig, handbook: Handbook, synonyms: list[list[str]], parse_stamp: str,
                  workers: int, watching: bool):  # noqa: ANN202
    """Start packing the search index (≈10% of a full build); `.result()` gives its files.

    A one-off build packs it in a forked process while the pages render. Its working memory (~16 KB a
    procedure) would then add to the render workers', so very large estates pack it after the pages
    instead, as --watch always does: in-process, where the search module's chunk cache makes the next
    rebuild cheap, and after the render workers have ended, so its memory never adds to theirs.
    One-off builds read the last build's packed chunks from var/build/ and save theirs there; --watch keeps
    them in memory.
    """
    if watching:
        return parallel.Later(_search_files, config, handbook, synonyms, parse_stamp)
    saved = build_cache.folder(config) / "search.cache"
    keep = partial(_keep_packed_chunks, saved)
    if len(handbook.procedures) > CONCURRENT_INDEX_MAX:
        return parallel.Later(_pack_search, config, handbook, synonyms, parse_stamp, saved, then=keep)
    return parallel.Background(workers, _pack_search, config, handbook, synonyms, parse_stamp, saved, then=keep)


__all__ = ["BuildFailed", "BuildResult", "build", "Notice", "PageSpec", "Procedure", "SourceFile"]
