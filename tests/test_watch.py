"""Watch mode: files dropped into a running watcher are processed once each; it stops cleanly."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from processor.watch import REMIND_SECONDS, Backoff, Hints, watch
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


def _counting(intake, fail: Exception | None = None) -> list[float]:
    """Make INTAKE's passes note their start times (and raise FAIL, if given); return the list."""
    calls: list[float] = []
    real = intake.run_pass

    def run_pass(complete=()):
        calls.append(time.monotonic())
        if fail is not None:
            raise fail
        return real(complete)
    intake.run_pass = run_pass
    return calls


def test_the_watchers_own_reads_do_not_start_new_passes(tmp_path):
    """Reading a file gives inotify "opened" and "closed_no_write" events; taken as hints they started the
    next pass at once, and a file left waiting (here one cut short, within write_grace_seconds) kept the
    watcher at 100 % CPU. Only events that can make a file ready are hints now: it is read every settle."""
    root = make_root(tmp_path)
    desk = Desk(root, rescan_seconds=60.0, settle_seconds=0.2, write_grace_seconds=60.0)
    drop(root, "half.json", json.dumps(repair(30)).encode()[:40], age=0)
    calls = _counting(desk.intake)
    stop = threading.Event()
    worker = threading.Thread(target=lambda: watch(desk.intake, desk.config, stop=stop))
    worker.start()
    time.sleep(1.5)
    stop.set()
    worker.join(timeout=10)
    desk.close()
    assert 3 <= len(calls) <= 10, f"{len(calls)} passes in 1.5 s"
    assert inbox_json(root) == ["half.json"]


def test_hints_come_only_from_events_that_can_make_a_file_ready():
    """created, modified, closed (after writing) and moved are hints; opened, closed_no_write, deleted are not."""
    from watchdog import events

    hints: queue.SimpleQueue[str] = queue.SimpleQueue()
    handler = Hints(hints)
    for event in (events.FileOpenedEvent("/in/a.json"), events.FileClosedNoWriteEvent("/in/a.json"),
                  events.FileDeletedEvent("/in/a.json"), events.DirModifiedEvent("/in")):
        handler.on_any_event(event)
    assert hints.empty()
    for event in (events.FileCreatedEvent("/in/a.json"), events.FileModifiedEvent("/in/a.json"),
                  events.FileClosedEvent("/in/a.json"), events.FileMovedEvent("/in/a.json.tmp", "/in/a.json")):
        handler.on_any_event(event)
    assert [hints.get_nowait() for _ in range(4)] == ["", "", "", "a.json"]


def test_a_failing_pass_backs_off_and_its_error_is_logged_once(tmp_path, caplog):
    """A pass that fails (read-only inbox, full disk) was retried ~350 times a second with an ERROR line each
    time, hints or not. Now the wait doubles from settle_seconds up to rescan_seconds, hints do not cut it
    short, and the same error is logged once (then every REMIND_SECONDS), with one line when it clears."""
    root = make_root(tmp_path)
    desk = Desk(root, rescan_seconds=5.0, settle_seconds=0.2)
    calls = _counting(desk.intake, OSError(28, "No space left on device"))
    stop = threading.Event()
    worker = threading.Thread(target=lambda: watch(desk.intake, desk.config, stop=stop))
    worker.start()
    end = time.monotonic() + 2.0
    while time.monotonic() < end:                       # a writer busy in the inbox: hints all along
        drop(root, "busy.json.tmp", b"{}", age=0)
        time.sleep(0.01)
    stop.set()
    worker.join(timeout=10)
    desk.close()
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert 2 <= len(calls) <= 5, f"{len(calls)} passes in 2 s"
    assert all(later >= earlier * 1.5 for earlier, later in zip(gaps, gaps[1:], strict=False)), gaps
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()


def test_the_back_off_resets_and_says_so_when_a_pass_works_again(caplog):
    caplog.set_level(logging.INFO, logger="processor.watch")
    backoff = Backoff(first=0.25, limit=5.0)
    assert [round(backoff.failed(OSError("full"), 0.0), 2) for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    backoff.failed(OSError("full"), REMIND_SECONDS + 1)
    backoff.succeeded()
    assert backoff.failed(OSError("full"), 1000.0) == 1000.25
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 4 and "已重试 6 次" in said[1] and "恢复正常" in said[2]
