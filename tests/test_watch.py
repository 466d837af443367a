"""Watch mode: files dropped into a running watcher are processed once each; it stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from processor.watch import watch
from tests.test_intake import Desk, drop, journal_ids, make_root, repair

REPO = Path(__file__).parents[1]


def wait_until(predicate, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def inbox_json(root: Path) -> list[str]:
    return [p.name for p in (root / "inbox").iterdir() if p.name.endswith(".json")]


def write_slowly(path: Path, body: bytes, pieces: int = 6, pause: float = 0.08) -> None:
    step = len(body) // pieces + 1
    with path.open("wb") as fh:
        for start in range(0, len(body), step):
            fh.write(body[start:start + step])
            fh.flush()
            time.sleep(pause)


@pytest.mark.slow
def test_a_running_watcher_takes_renamed_and_slowly_written_files_once_each(tmp_path):
    root = make_root(tmp_path)
    drop(root, "before.json", repair(1))                    # present at start: no event, the start scan finds it
    proc = subprocess.Popen([sys.executable, "-m", "processor", "--root", str(root), "watch"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: not inbox_json(root)), "the start scan did not take before.json"
        for n in range(2, 7):                               # the writers' protocol: NAME.json.tmp, then rename
            drop(root, f"renamed-{n}.json", repair(n, minutes=n), age=0)
        for n in range(7, 10):                              # careless writers: the .json itself, in pieces
            write_slowly(root / "inbox" / f"slow-{n}.json",
                         json.dumps(repair(n, minutes=n), ensure_ascii=False).encode("utf-8"))
        assert wait_until(lambda: not inbox_json(root)), f"left in the inbox: {inbox_json(root)}"
        assert wait_until(lambda: len(journal_ids(root)) == 9)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    ids = journal_ids(root)
    assert sorted(ids) == [f"R-{n:08d}" for n in range(1, 10)]
    assert not (root / "var" / "rejected").exists(), "a half-written file was read"
    assert "已停止" in err
    header = json.loads((root / "var" / "store.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert header["seq"] == 9                               # the final snapshot on a clean stop
    again = subprocess.run([sys.executable, "-m", "processor", "--root", str(root), "check"], cwd=REPO,
                           capture_output=True, timeout=60)
    assert again.returncode == 0                            # the lock was released


def test_the_polling_fallback_sees_dropped_files(tmp_path):
    root = make_root(tmp_path)
    desk = Desk(root, rescan_seconds=60.0, settle_seconds=0.1)
    stop = threading.Event()
    worker = threading.Thread(target=lambda: watch(desk.intake, desk.config, stop=stop, polling=True))
    worker.start()
    try:
        time.sleep(0.3)
        drop(root, "polled.json", repair(21), age=0)
        assert wait_until(lambda: not inbox_json(root), timeout=10)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert journal_ids(root) == ["R-00000021"]
    desk.close()


def test_sigint_stops_a_watcher_with_an_empty_inbox(tmp_path):
    root = make_root(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "processor", "--root", str(root), "watch"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: (root / "var" / "lock").exists())
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err
