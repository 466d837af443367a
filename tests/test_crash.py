"""kill -9 and a full disk at random moments: nothing lost, nothing processed twice, the store opens."""

from __future__ import annotations

import json
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.test_intake import drop, journal_ids, make_root, repair

REPO = Path(__file__).parents[1]
PROCESSOR = [sys.executable, "-m", "processor"]


class Dropper:
    """Drops a realistic mix of forms and remembers what each should become."""

    def __init__(self, root: Path):
        self.root = root
        self.dropped: dict[str, bytes] = {}        # file name -> content
        self.accepted: set[str] = set()            # form ids that must be journaled exactly once
        self.originals: list[dict] = []
        self.n = 0

    def wave(self, rng: random.Random, size: int) -> None:
        """Drop SIZE files: mostly new repairs, some duplicates, conflicts, broken files and updates."""
        for _ in range(size):
            self.n += 1
            kind = rng.random()
            if kind < 0.12 and self.originals:
                body = rng.choice(self.originals)                       # the same form again
            elif kind < 0.2 and self.originals:
                body = {**rng.choice(self.originals), "description": "内容改了"}
                body["submitted_at"] = body["submitted_at"].replace("T10:", "T11:")   # a conflict, sorted later
            elif kind < 0.3:
                body = b'{"form": "repair", "id": "BROKEN-' + str(self.n).encode() + b'"'
            elif kind < 0.4 and self.originals:
                target = rng.choice(self.originals)
                body = {"form": "update", "id": f"U-{self.n:08d}", "submitted_at": "2026-11-22T12:00:00+08:00",
                        "staff": "李前台", "action": "note", "ticket_form": target["id"], "text": "已电话联系"}
            else:
                body = repair(self.n, minutes=self.n % 50)
                self.originals.append(body)
                self.accepted.add(body["id"])
            if isinstance(body, dict) and body.get("form") == "update":
                self.accepted.add(body["id"])
            name = f"f{self.n:04d}.json"
            drop(self.root, name, body, age=1)
            self.dropped[name] = (self.root / "inbox" / name).read_bytes()

    def assert_everything_accounted_for(self) -> None:
        """Every dropped file is in exactly one place, and every accepted id is journaled once."""
        var = self.root / "var"
        assert not [p.name for p in (self.root / "inbox").iterdir() if p.suffix == ".json"]
        landed = Counter(p.read_bytes() for folder in ("archive", "rejected") if (var / folder).exists()
                         for p in (var / folder).rglob("*.json") if not p.name.endswith(".error.json"))
        for name, content in self.dropped.items():
            assert landed[content] >= 1, f"{name} was lost"
        assert sum(landed.values()) == len(self.dropped), "a file was copied instead of moved"
        for rejected in (var / "rejected").glob("*.json") if (var / "rejected").exists() else ():
            if not rejected.name.endswith(".error.json"):
                assert rejected.with_name(rejected.stem + ".error.json").exists(), rejected
        ids = journal_ids(self.root)
        assert len(ids) == len(set(ids)), "a form was journaled twice"
        assert set(ids) == self.accepted
        check = subprocess.run([*PROCESSOR, "--root", str(self.root), "check"], cwd=REPO, capture_output=True,
                               timeout=120)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    root = make_root(tmp_path)
    with (root / "content" / "estate.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[processor]\nbatch_size = 4\n")     # many journal-then-move cycles to land a kill in
    rng = random.Random(20261122)
    dropper = Dropper(root)
    mid_work = rounds = 0
    # Keep killing until enough kills landed mid-work (how many do depends on the machine's speed:
    # a quiet machine finishes a wave sooner), within a bounded number of rounds.
    while rounds < 25 or (mid_work < 8 and rounds < 80):
        round_, rounds = rounds, rounds + 1
        dropper.wave(rng, rng.randint(20, 50))
        before = journal_ids(root, torn_tail_allowed=True)   # the last round was killed too
        command = "watch" if round_ % 3 == 0 else "once"
        proc = subprocess.Popen([*PROCESSOR, "--root", str(root), "-q", command], cwd=REPO,
                                stderr=subprocess.DEVNULL)
        if round_ % 4 == 3:
            time.sleep(rng.uniform(0.05, 0.8))               # any moment, start-up and replay included
        else:
            _wait_for_growth(root / "var" / "journal.jsonl", timeout=5)
            time.sleep(rng.uniform(0.0, 0.06))               # somewhere in the middle of the work
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        left = [p for p in (root / "inbox").iterdir() if p.suffix == ".json"]
        mid_work += bool(left) and len(journal_ids(root, torn_tail_allowed=True)) > len(before)
    print(f"{mid_work} of {rounds} kills landed mid-work")
    assert mid_work >= 5, f"only {mid_work} kills landed mid-work: the test would prove little"
    final = subprocess.run([*PROCESSOR, "--root", str(root), "once"], cwd=REPO, capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr.decode()
    dropper.assert_everything_accounted_for()


def _wait_for_growth(path: Path, timeout: float) -> None:
    start = path.stat().st_size if path.exists() else 0
    end = time.monotonic() + timeout
    while time.monotonic() < end and (path.stat().st_size if path.exists() else 0) == start:
        time.sleep(0.005)


def _limit(size: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


@pytest.mark.slow
def test_a_full_disk_mid_write_leaves_a_store_that_opens_and_loses_nothing(tmp_path):
    root = make_root(tmp_path)
    rng = random.Random(7)
    dropper = Dropper(root)
    dropper.wave(rng, 20)
    assert subprocess.run([*PROCESSOR, "--root", str(root), "-q", "once"], cwd=REPO, timeout=120).returncode == 0
    journal = root / "var" / "journal.jsonl"
    outcomes = []
    for margin in (50, 1500, 6000, 30000, 120000):
        dropper.wave(rng, 25)
        size = max(journal.stat().st_size, (root / "var" / "store.jsonl").stat().st_size) + margin
        full = subprocess.run([*PROCESSOR, "--root", str(root), "once"], cwd=REPO, capture_output=True,
                              timeout=120, preexec_fn=_limit(size))
        outcomes.append(full.returncode)
        assert full.returncode in (0, 2), full.stderr.decode()
        assert "Traceback" not in full.stderr.decode()
        check = subprocess.run([*PROCESSOR, "--root", str(root), "check"], cwd=REPO, capture_output=True,
                               timeout=120)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        lines = journal.read_bytes().split(b"\n")
        assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
    assert 2 in outcomes, "no run hit the size limit: the test would prove little"
    final = subprocess.run([*PROCESSOR, "--root", str(root), "once"], cwd=REPO, capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr.decode()
    dropper.assert_everything_accounted_for()
