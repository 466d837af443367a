"""Benchmark the form processor: batch intake, watch latency at 50,000 tickets, memory at 100,000.

    .venv/bin/python bench/processor_bench.py            # the issue's sizes (a few minutes)
    .venv/bin/python bench/processor_bench.py --quick    # a tenth of them, to try it out

Targets (issue 4): >= 1,500 forms/s end to end with the journal fsync'd per batch; p95 <= 250 ms from
drop to store with 50,000 tickets stored; RSS <= 200 MB with 100,000 tickets. Prints a table;
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from estate.config import load_config  # noqa: E402
from estate.policy import load_policy  # noqa: E402
from processor import intake as intake_module  # noqa: E402
from processor.engine import apply_form  # noqa: E402
from processor.forms import parse_form  # noqa: E402
from processor.intake import Intake  # noqa: E402
from processor.store import Store  # noqa: E402

TZ = timezone(timedelta(hours=8))
START = datetime(2025, 11, 1, 8, 0, tzinfo=TZ)
KINDS = (("repair", ("water", "electric", "door_window", "lift", "public_facility", "smart_device")),
         ("complaint", ("service_attitude", "noise", "environment", "fees")),
         ("inquiry", ("fees", "decoration", "other")))


def make_root(base: Path) -> Path:
    root = base / "estate"
    (root / "content").mkdir(parents=True)
    for name in ("estate.toml", "policy.toml"):
        shutil.copy(REPO / "content" / name, root / "content" / name)
    (root / "inbox").mkdir()
    return root


def form(n: int, rng: random.Random, *, spread_days: int = 365, at: datetime | None = None) -> dict[str, Any]:
    """A realistic resident form; N keeps ids unique."""
    kind, categories = rng.choices(KINDS, weights=(6, 3, 1))[0]
    when = at or START + timedelta(seconds=rng.randrange(spread_days * 86400))
    return {
        "form": kind, "id": f"B-{n:09d}", "submitted_at": when.isoformat(), "channel": rng.choice(
            ("phone", "counter", "online", "app")), "staff": rng.choice(("李前台", "王值班", "陈客服")),
        "resident": {"name": rng.choice(("张伟", "王芳", "李娜", "刘洋", "陈静")) + "（业主）",
                     "phone": f"138{rng.randrange(10**8):08d}", "building": f"{rng.randint(1, 30)}栋",
                     "unit": f"{rng.randint(1, 6)}单元", "room": f"{rng.randint(1, 32)}{rng.randint(1, 4):02d}",
                     "vulnerable": rng.random() < 0.05},
        "category": rng.choice(categories),
        "description": rng.choice(("卫生间天花板渗水，楼上邻居不在家", "走廊灯不亮已经三天了", "楼下装修噪音很大，晚上九点还在施工",
                                   "物业费账单金额与上月不同，请解释", "门禁卡失灵，刷卡没有反应", "电梯按钮失灵")),
    }


def fill(store: Store, policy: Any, count: int, rng: random.Random, first: int) -> None:
    """Put COUNT tickets into STORE through the engine, without files (setup, not measured)."""
    apply = store.apply
    batch = []
    for n in range(first, first + count):
        data = form(n, rng)
        parsed = parse_form(json.dumps(data, ensure_ascii=False).encode(), f"{n}.json", config_of(store), policy)
        batch.append(parsed)
    batch.sort(key=lambda f: f.submitted_at)
    for i, f in enumerate(batch):
        now = f.submitted_at + timedelta(minutes=1)
        store.stage(f, apply(f, store, now), now, dest="")
        if i % 1000 == 999:
            store.commit()
    store.commit()


_CONFIG: dict[int, Any] = {}


def config_of(store: Store) -> Any:
    return _CONFIG[id(store)]


class Timer:
    """Accumulate seconds per phase."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self.spent[phase] += time.perf_counter() - t
        return timed


def bench_batch(base: Path, count: int) -> dict[str, Any]:
    """Drop COUNT valid forms, then one intake pass over them; split the time by phase."""
    root = make_root(base / "batch")
    rng = random.Random(1)
    old = time.time() - 60
    for n in range(count):
        path = root / "inbox" / f"form-{n:06d}.json"
        path.write_text(json.dumps(form(n, rng, spread_days=20), ensure_ascii=False), encoding="utf-8")
        os.utime(path, (old, old))
    config = load_config(root)
    policy = load_policy(config.path(config.processor.policy_file))
    timer = Timer()

    def parse(raw: bytes, source: str, cfg: Any, pol: Any) -> Any:
        t = time.perf_counter()
        json.loads(raw)
        timer.spent["parse (JSON)"] += time.perf_counter() - t
        return parse_form(raw, source, cfg, pol)

    store = Store(config.path(config.processor.var_dir), lambda f, t, now: apply_form(f, t, policy, now))
    store.open()
    store.journal.append = timer.wrap("journal (write+fsync)", store.journal.append)
    store._flush_overlay = timer.wrap("store (TinyDB)", store._flush_overlay)
    store.stage = timer.wrap("store (ticket -> document)", store.stage)
    plain_snapshot = store.snapshot
    store.snapshot = timer.wrap(f"snapshots (every {store.snapshot_every} records)", store.snapshot)
    intake = Intake(config, store, policy, lambda: datetime.now(TZ), timer.wrap("parse+validate", parse),
                    timer.wrap("engine (rules)", apply_form))
    intake._read = timer.wrap("read files", intake._read)
    intake._move = timer.wrap("move files", intake._move)
    original_fsync_dir = intake_module.fsync_dir
    intake_module.fsync_dir = timer.wrap("move files", original_fsync_dir)
    t0 = time.perf_counter()
    summary = intake.run_pass()
    elapsed = time.perf_counter() - t0
    store.snapshot = plain_snapshot          # the final snapshot is reported on its own line
    t1 = time.perf_counter()
    store.close()
    snapshot = time.perf_counter() - t1
    intake_module.fsync_dir = original_fsync_dir
    spent = dict(timer.spent)
    # The timers nest: "read files" holds parse+validate, which holds our own extra json.loads (measured
    # once more inside parse_form): subtract to get each phase alone.
    spent["read files"] -= spent["parse+validate"]
    spent["parse+validate"] -= spent["parse (JSON)"]
    spent["validate (schema+rules)"] = spent.pop("parse+validate") - spent["parse (JSON)"]
    return {"count": summary.accepted, "elapsed": elapsed, "snapshot": snapshot, "spent": spent,
            "batch": config.processor.batch_size}


def prefill(base: Path, count: int) -> tuple[Path, float]:
    """An estate root whose store holds COUNT tickets (made through the engine); return it and the time."""
    root = make_root(base / f"filled-{count}")
    config = load_config(root)
    policy = load_policy(config.path(config.processor.policy_file))
    store = Store(config.path(config.processor.var_dir), lambda f, t, now: apply_form(f, t, policy, now),
                  snapshot_every=10**9)
    _CONFIG[id(store)] = config.processor
    store.open()
    t = time.perf_counter()
    fill(store, policy, count, random.Random(2), 10**6)
    store.close()
    return root, time.perf_counter() - t


def grow(root: Path, more: int) -> None:
    """Add MORE tickets to ROOT's store."""
    config = load_config(root)
    policy = load_policy(config.path(config.processor.policy_file))
    store = Store(config.path(config.processor.var_dir), lambda f, t, now: apply_form(f, t, policy, now),
                  snapshot_every=10**9)
    _CONFIG[id(store)] = config.processor
    store.open()
    fill(store, policy, more, random.Random(3), 5 * 10**6)
    store.close()


def bench_latency(root: Path, drops: int) -> dict[str, Any]:
    """Start `python -m processor watch` on ROOT; drop forms one by one; time drop -> left the inbox."""
    proc = subprocess.Popen([sys.executable, "-m", "processor", "--root", str(root), "-q", "watch"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    rng = random.Random(4)
    latencies = []
    try:
        lock = root / "var" / "lock"
        t = time.monotonic()
        while not (lock.exists() and lock.read_text().strip() == str(proc.pid)) and time.monotonic() - t < 120:
            time.sleep(0.05)
        time.sleep(2.0)          # let it finish loading and replay before the first drop
        for n in range(drops):
            body = json.dumps(form(9 * 10**6 + n, rng, at=datetime.now(TZ)), ensure_ascii=False)
            path = root / "inbox" / f"drop-{n}.json"
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(body, encoding="utf-8")
            start = time.perf_counter()
            os.replace(tmp, path)
            while path.exists():
                time.sleep(0.001)
            latencies.append(time.perf_counter() - start)
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    latencies.sort()
    return {"p50": statistics.median(latencies), "p95": latencies[int(len(latencies) * 0.95) - 1],
            "max": latencies[-1], "n": len(latencies)}


RSS_PROBE = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from estate.config import load_config
from estate.policy import load_policy
from processor.engine import apply_form
from processor.store import Store
root = Path({root!r})
config = load_config(root)
policy = load_policy(config.path(config.processor.policy_file))
store = Store(config.path(config.processor.var_dir), lambda f, t, now: apply_form(f, t, policy, now))
store.open(lock=False, repair=False)
status = Path("/proc/self/status").read_text()
rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
print(json.dumps({{"tickets": store.index.count(), "hot": len(store.index.doc_ids), "rss_kb": rss,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def bench_rss(root: Path) -> dict[str, Any]:
    """RSS of a fresh process that has opened ROOT's store (loaded, indexed, ready to serve)."""
    out = subprocess.run([sys.executable, "-c", RSS_PROBE.format(repo=str(REPO), root=str(root))],
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    p.add_argument("--keep", action="store_true", help="keep the temporary estates")
    args = p.parse_args()
    scale = 10 if args.quick else 1
    base = Path(tempfile.mkdtemp(prefix="processor-bench-"))
    try:
        batch = bench_batch(base, 10_000 // scale)
        root, fill_time = prefill(base, 50_000 // scale)
        latency = bench_latency(root, 40)
        grow(root, 50_000 // scale)
        rss = bench_rss(root)
        size = (root / "var" / "store.jsonl").stat().st_size
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    rate = batch["count"] / batch["elapsed"]
    print(f"\n## Form processor benchmark ({'quick' if args.quick else 'full'}, {os.cpu_count()} cores)\n")
    print("| measure | result | target |\n|---|---|---|")
    print(f"| batch intake, {batch['count']} forms, fsync per {batch['batch']} | {rate:,.0f} forms/s "
          f"({batch['elapsed']:.2f} s) | >= 1,500 forms/s |")
    print(f"| final snapshot after the batch | {batch['snapshot']:.2f} s | |")
    print(f"| drop -> store, {latency['n']} drops, {50_000 // scale:,} tickets stored | p50 "
          f"{latency['p50'] * 1000:.0f} ms, p95 {latency['p95'] * 1000:.0f} ms, max {latency['max'] * 1000:.0f} ms "
          f"| p95 <= 250 ms |")
    print(f"| RSS with {rss['tickets']:,} tickets loaded | {rss['rss_kb'] / 1024:.0f} MB (peak "
          f"{rss['peak_kb'] / 1024:.0f} MB) | <= 200 MB |")
    print(f"| snapshot file with {rss['tickets']:,} tickets | {size / 2**20:.0f} MB | |")
    print(f"| setup: {50_000 // scale:,} tickets through the engine, no files | {fill_time:.1f} s | |")
    print("\n| batch phase | seconds | share |\n|---|---|---|")
    total = sum(batch["spent"].values())
    for phase, spent in sorted(batch["spent"].items(), key=lambda kv: -kv[1]):
        print(f"| {phase} | {spent:.2f} | {spent / batch['elapsed']:.0%} |")
    print(f"| other (listing, sorting, decisions) | {batch['elapsed'] - total:.2f} | "
          f"{(batch['elapsed'] - total) / batch['elapsed']:.0%} |")


if __name__ == "__main__":
    main()
