"""Use both cores: parse and render in forked worker processes where the platform allows it.

Work is handed to workers through module globals set before the fork, so nothing large is
pickled on the way in; only results come back. Without fork (Windows) everything runs serially.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from handbook.cache import BuildCache, SavedBatch, decode_batch, encode_batch
from render.jinja import preload, render
from render.writer import write_page

log = logging.getLogger(__name__)

PARALLEL_MIN = 64          # below this many items a pool costs more than it saves
_JOB: dict[str, Any] = {}  # set in the parent right before forking


def worker_count(configured: int) -> int:
    """0 means one worker per core."""
    return configured if configured > 0 else (os.cpu_count() or 1)


def forks(workers: int) -> bool:
    """Is work handed to other processes? Not when WORKERS asks for one, nor where there is no fork."""
    return workers >= 2 and "fork" in multiprocessing.get_all_start_methods()


def _pool(workers: int, items: int, before_fork: Any = None):  # noqa: ANN202
    if items < PARALLEL_MIN or not forks(workers):
        return None
    if before_fork is not None:
        before_fork()
    return multiprocessing.get_context("fork").Pool(workers)


_LINGERING: list = []  # Background processes still doing their THEN: the next build in this process waits


class Background:
    """FN(*ARGS) running in a forked process while the parent goes on; `result()` waits for its return value.

    Used for work the parent would otherwise do alone while the render workers run (the search
    index). Serial where there is no fork, or when WORKERS asks for one process.

    THEN is work for a later build (saving the packed search chunks: ~40 ms of a one-page rebuild at 1,000
    procedures): the process hands over its result first, then lets go of the build's output (a pipe reading
    it sees its end when the build ends) and does THEN while the build finishes without it. A one-off
    process may end before THEN does: what it writes is atomic, and a build that finds the older file only
    packs a few more chunks. A later build in this process waits for it first (`wait_for_lingering`).
    """

    def __init__(self, workers: int, fn: Any, *args: Any, then: Callable[[], object] | None = None) -> None:
        self._process = None
        if not forks(workers):
            self._value = fn(*args)
            if then is not None:
                then()
            return
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        # not a daemon when it has more to do: Python's exit waits for it instead of killing it mid-write
        self._process = context.Process(target=_send_result, args=(send, fn, args, then), daemon=then is None)
        self._then = then
        self._process.start()
        send.close()

    def cancel(self) -> None:
        """Stop the job (the build failed meanwhile): no process or pipe is left behind."""
        if self._process is not None:
            self._process.terminate()
            self._process.join()
            self._receive.close()
            self._process = None
            self._value = None

    def result(self) -> Any:
        if self._process is None:
            return self._value
        try:
            ok, value = self._receive.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(f"background job ended without a result (exit code {self._process.exitcode})") from None
        finally:
            self._receive.close()
        if self._then is not None and ok:
            _LINGERING.append(self._process)
        else:
            self._process.join()
        if not ok:
            raise RuntimeError(f"background job failed:\n{value}")
        return value


def wait_for_lingering() -> None:
    """Return once every Background's THEN has ended."""
    while _LINGERING:
        _LINGERING.pop().join()


class Later:
    """Background's interface for work done here, when its result is asked for (e.g. after the workers end)."""

    def __init__(self, fn: Any, *args: Any, then: Callable[[], object] | None = None) -> None:
        self._call = (fn, args, then)

    def result(self) -> Any:
        fn, args, then = self._call
        value = fn(*args)
        if then is not None:
            then()
        return value

    def cancel(self) -> None:
        """Nothing has started."""


def _send_result(send: Any, fn: Any, args: tuple, then: Callable[[], object] | None = None) -> None:
    try:
        send.send((True, fn(*args)))
    except BaseException:  # noqa: BLE001 - whatever it was, the parent reports it
        send.send((False, traceback.format_exc()))
        return
    if then is not None:
        send.close()
        _let_go_of_output()
        then()


def _let_go_of_output() -> None:
    """Point stdin, stdout and stderr at /dev/null: `build.py | tail` must not wait for this process."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _chunks(n: int, workers: int) -> list[range]:
    size = max(1, -(-n // (workers * 4)))
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _parse_chunk(indices: Sequence[int]) -> list:
    from handbook.parse import parse_one

    return [parse_one(_JOB["sources"][i], _JOB["config"], _JOB["expander"]) for i in indices]


def _parse_some(indices: Sequence[int]) -> tuple[Sequence[int], bytes | list]:
    """In a worker: the results of INDICES as the build cache encodes a batch (see cache.encode_batch), or
    as objects (pickled on the way back) when one holds a value the cache cannot."""
    results = _parse_chunk(indices)
    sources = _JOB["sources"]
    try:
        return indices, encode_batch([(sources[i].digest + sources[i].kind, r) for i, r in zip(indices, results, strict=True)])
    except ValueError:
        return indices, results


def _received(part: bytes | list, lazy: bool, batches: list[SavedBatch]) -> list:
    """A worker's results as objects; an encoded batch also goes to BATCHES, for the cache to save as it is."""
    if isinstance(part, list):
        return part
    batch = decode_batch(part, lazy)
    if lazy:
        batches.append(batch)
    return [result for _, result, _ in batch.results]


LINK_COST = 600  # bytes of prose a link costs to convert: Python-Markdown's inline pass tries it pattern by pattern


def _cost(source: Any) -> int:
    """About how long SOURCE takes to parse (in bytes of prose): its length, and its links' extra cost. An
    estimate for ordering only ("](" in code counts as a link too)."""
    raw = source.raw or b""
    return len(raw) + LINK_COST * raw.count(b"](")


CHUNK_MOST = 150  # files a parse worker hands back at once: its encoded batch is built in memory (and copied
                  # on the way), so the first chunks of 5,000 procedures (~800 files each) raised the peak


def _balanced_chunks(costs: list[int], workers: int, least: int = 4, most: int = CHUNK_MOST) -> list[list[int]]:
    """Indices into COSTS in chunks for WORKERS: costliest files first, each chunk about a third of a worker's
    share of what is left (at least LEAST files, at most MOST), so chunks shrink toward the end (guided scheduling).

    Why: in fixed chunks in file order, procedures/index.md (1,000 links: ~75 procedures' work) made its chunk
    the last to end, while the other worker sat idle for ~0.4 s of a 1,000-procedure build.
    """
    order = sorted(range(len(costs)), key=costs.__getitem__, reverse=True)
    left = sum(costs)
    chunks: list[list[int]] = []
    chunk: list[int] = []
    weight = 0
    for i in order:
        chunk.append(i)
        weight += costs[i]
        if (weight >= left / (3 * workers) and len(chunk) >= least) or len(chunk) >= most:
            chunks.append(chunk)
            left -= weight
            chunk, weight = [], 0
    if chunk:
        chunks.append(chunk)
    return chunks


def _load_parser() -> None:
    """Before forking parse workers: each then has the parser without importing it again."""
    import handbook.parse  # noqa: F401


# files: parsing more, results are decoded as they come and their bytes dropped. Kept, the bytes add to the
# peak what the decoded pages take again (~11 MB a 1,000 procedures): 247 -> 315 MB at 5,000, over the 300 target.
KEPT_MAX = 2000


def map_parse(sources: list, config: Any, expander: Any, workers: int, one_off: bool = False,
              meanwhile: Callable[[], object] | None = None, batches: list[SavedBatch] | None = None) -> list:
    """Parse SOURCES, in parallel when there are enough of them.

    A few files of a ONE_OFF build (a process that ends with it) whose process has not loaded the parser yet
    are parsed in one forked process while this one loads the templates and does MEANWHILE: the parser's
    YAML and Python-Markdown take ~50 ms to import, the templates ~40 ms, and neither waits for the other.
    --watch parses them here, so that the parser it loads serves every later edit.

    Results parsed in other processes come back encoded as the build cache saves them. A one-off build of up
    to KEPT_MAX files keeps each page's HTML and section text as those bytes until read (by the render
    workers, mostly), and adds the batches to BATCHES, which its cache then writes as they are.
    """
    if not sources:  # nothing changed: the parser is not even imported
        return []
    _JOB.update(sources=sources, config=config, expander=expander)
    pool = _pool(workers, len(sources), before_fork=_load_parser)
    received: list[SavedBatch] = batches if batches is not None else []
    keep = one_off and len(sources) <= KEPT_MAX
    try:
        # (encoded for the way back only when there is a way back: serially, _parse_chunk's objects as they are)
        if pool is None and one_off and forks(workers) and "handbook.parse" not in sys.modules:
            job = Background(workers, _parse_some, range(len(sources)))
            preload()
            if meanwhile is not None:
                meanwhile()
            return _received(job.result()[1], keep, received)
        if pool is None:
            return _parse_chunk(range(len(sources)))
        results: list = [None] * len(sources)
        with pool:
            for indices, part in pool.imap_unordered(_parse_some, _balanced_chunks(list(map(_cost, sources)), workers)):
                for i, result in zip(indices, _received(part, keep, received), strict=True):
                    results[i] = result
        return results
    finally:
        _JOB.clear()


def fingerprint(template: str, context: dict[str, Any]) -> str:
    """Everything a page shows comes from its template and its plain-data context.

    repr(), not pickle: pickle's output depends on which equal strings happen to be the same object
    (memoisation), so a context loaded from the cache would not fingerprint like a freshly built one.
    """
    return hashlib.blake2b((template + repr(context)).encode(), digest_size=16).hexdigest()


def _render_chunk(indices: range) -> int:
    out: Path = _JOB["out"]
    written = 0
    for i in indices:
        spec = _JOB["specs"][i]
        context = spec.full_context()  # first: a memoised page learns its template here too
        written += write_page(out / spec.tree / spec.path, render(spec.template, context))
    return written


BATCH = 500  # pages whose contexts are held at once: bounds memory at 5,000+ procedures


def render_and_write(out: Path, specs: Iterable, cache: BuildCache, workers: int):  # noqa: ANN201
    """Render and write the pages whose fingerprint changed (or whose file is gone), a batch at a time."""
    from handbook.build import BuildResult

    result = BuildResult()
    pending: list = []
    for spec in specs:
        key = f"{spec.tree}/{spec.path}"
        result.outputs.add(key)
        fp = spec.fingerprint or fingerprint(spec.template, spec.context)
        if cache.pages.get(key) == fp and os.path.isfile(f"{out}/{key}"):  # os.path: 1,000s of calls
            result.skipped += 1
            continue
        cache.pages[key] = fp
        spec.full_context()  # a memoised page whose file is gone: build what it shows after all
        pending.append(spec)
        result.rendered.append(key)
        if len(pending) >= BATCH:
            result.written += _render_batch(out, pending, workers)
            pending = []
    result.written += _render_batch(out, pending, workers)
    result.skipped += len(result.rendered) - result.written
    return result


def _render_batch(out: Path, pending: list, workers: int) -> int:
    _JOB.update(out=out, specs=pending)
    pool = _pool(workers, len(pending), before_fork=preload)  # workers inherit the compiled templates
    try:
        if pool is None:
            return _render_chunk(range(len(pending)))
        with pool:
            return sum(pool.map(_render_chunk, _chunks(len(pending), workers)))
    finally:
        _JOB.clear()
