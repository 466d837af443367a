"""Watch mode: watchdog events are only hints; one worker lists the inbox itself.

Measured facts that shape this: `created` fires before a file is complete, files present at start
produce no events, an event-queue overflow is only logged, network drives give no events. So the
handler only enqueues a hint, the worker scans at start, after every hint and every
rescan_seconds, and a native observer that fails to start is replaced by polling.
"""

from __future__ import annotations

import importlib
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from estate.config import EstateConfig
from processor.intake import Intake, PassSummary
from processor.store import StoreError

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
TICK = 0.25     # longest wait before noticing a stop request
# watchdog's inotify emitter holds every IN_MOVED_FROM for 0.5 s to pair it with its IN_MOVED_TO, and
# its queue is FIFO: each form we move out of the inbox delayed the next drop's events by up to 0.5 s
# (measured: p50 200 ms from drop to store, against 10 ms of work). The kernel queues both halves of a
# rename together, so a short wait pairs them all the same; an unpaired one only costs a settle wait.
MOVE_PAIRING_SECONDS = 0.02
# Events that can make a file ready to read: written, closed after writing, renamed into place. Not "opened" or
# "closed_no_write": the processor's own reads make those, and taking them as hints started the next pass at
# once, forever (100 % CPU while a file waited to settle). Not "deleted": a file gone is no work.
HINT_EVENTS = frozenset((EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED))
REMIND_SECONDS = 600.0      # a pass failing the same way all along is said again this often, not at every retry


def _shorten_move_pairing() -> None:
    """Make watchdog pair rename events within MOVE_PAIRING_SECONDS (watchdog 4-7 keep it in different places)."""
    for module, name in (("watchdog.observers.inotify_move_event_grouper", "InotifyMoveEventGrouper"),
                         ("watchdog.observers.inotify_buffer", "InotifyBuffer")):
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if hasattr(cls, "delay"):
            cls.delay = MOVE_PAIRING_SECONDS


class Hints(FileSystemEventHandler):
    """Turn the events that can make a file ready into hints; a rename into place also says "it is complete"."""

    def __init__(self, hints: queue.SimpleQueue[str]):
        self.hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in HINT_EVENTS:
            return
        if event.event_type == "moved":
            self.hints.put(Path(str(event.dest_path)).name)    # writers rename NAME.json.tmp to NAME.json
        else:
            self.hints.put("")


def start_observer(folder: Path, handler: FileSystemEventHandler, *, polling: bool = False) -> Any:
    """Start a native observer on FOLDER, or a polling one if asked or if the native one fails."""
    if not polling:
        try:
            _shorten_move_pairing()
            observer = Observer()
            observer.schedule(handler, str(folder), recursive=False)
            observer.start()
            return observer
        except Exception as exc:  # inotify limits, network drives: any failure means "poll instead"
            log.warning("无法使用系统文件监视（%s），改用轮询", exc)
    observer = PollingObserver(timeout=1)
    observer.schedule(handler, str(folder), recursive=False)
    observer.start()
    return observer


class Stopper:
    """Set by SIGINT/SIGTERM; the worker checks it between waits and passes."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        """Route the stop signals here (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Put the previous signal handlers back."""
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        log.info("收到信号 %s，处理完当前批次后停止", signal.Signals(signum).name)
        self.event.set()


def watch(intake: Intake, config: EstateConfig, *, stop: threading.Event | None = None,
          polling: bool = False) -> PassSummary:
    """Process the inbox until STOP is set (or a stop signal arrives); return the run's counts."""
    stopper = Stopper()
    if stop is None:
        stopper.install()
        stop = stopper.event
    hints: queue.SimpleQueue[str] = queue.SimpleQueue()
    intake.inbox.mkdir(parents=True, exist_ok=True)
    observer = start_observer(intake.inbox, Hints(hints), polling=polling)
    log.info("开始监视 %s", intake.inbox)
    try:
        return _work(intake, config, hints, stop)
    finally:
        observer.stop()
        observer.join(timeout=5)
        stopper.restore()


@dataclass
class Backoff:
    """After a failed pass, wait before the next: FIRST seconds, doubling up to LIMIT; say each error once.

    A failed pass used to be retried at once, about 350 times a second, each with an ERROR line (150 KB of log
    a second while the inbox was read-only or the disk full). Hints do not cut the wait short.
    """

    first: float
    limit: float
    delay: float = 0.0
    until: float = 0.0          # monotonic time before which no pass starts
    said: str = ""              # the error last logged
    said_at: float = 0.0
    repeats: int = 0

    def failed(self, exc: BaseException, now: float) -> float:
        """Note a failed pass; log it unless it repeats the last error; return when to try again."""
        self.delay = min(self.limit, max(self.first, self.delay * 2))
        self.until = now + self.delay
        message = str(exc)
        if message != self.said:
            log.error("本批未能完成，文件留在收件箱，%g 秒后重试：%s", self.delay, message)
            self.said, self.said_at, self.repeats = message, now, 0
        else:
            self.repeats += 1
            if now - self.said_at >= REMIND_SECONDS:
                log.error("仍未能完成（已重试 %d 次），文件留在收件箱：%s", self.repeats, message)
                self.said_at = now
        return self.until

    def succeeded(self) -> None:
        """Note a pass that worked: the next failure starts the back-off afresh."""
        if self.said:
            log.info("恢复正常：处理已继续（此前同一错误重试 %d 次）", self.repeats)
        self.delay, self.until, self.said, self.repeats = 0.0, 0.0, "", 0


def _work(intake: Intake, config: EstateConfig, hints: queue.SimpleQueue[str], stop: threading.Event) -> PassSummary:
    """The one worker: a pass at start, after each hint, when waiting files settle, and every rescan."""
    total = PassSummary()
    rescan, settle = config.processor.rescan_seconds, config.processor.settle_seconds
    backoff = Backoff(first=max(settle, TICK), limit=max(rescan, TICK))
    complete: set[str] = set()
    next_pass = time.monotonic()            # the scan at start: files that arrived while stopped
    while not stop.is_set():
        wait = next_pass - time.monotonic()
        if wait > 0:
            if _wait(hints, min(wait, TICK), complete):
                next_pass = max(time.monotonic(), backoff.until)
            continue
        try:
            summary = intake.run_pass(complete)
        except (StoreError, OSError) as exc:
            if intake.store.journal is not None and intake.store.journal.broken:
                raise
            next_pass = backoff.failed(exc, time.monotonic())
            continue                        # the names renamed into place are still complete next time
        backoff.succeeded()
        complete.clear()
        total.add(summary)
        next_pass = time.monotonic() + (settle if summary.waiting else rescan)
    return total


def _wait(hints: queue.SimpleQueue[str], timeout: float, complete: set[str]) -> bool:
    """Wait up to TIMEOUT for a hint; drain all hints; collect names renamed into place."""
    try:
        names = [hints.get(timeout=timeout)]
    except queue.Empty:
        return False
    while True:
        try:
            names.append(hints.get_nowait())
        except queue.Empty:
            break
    complete.update(n for n in names if n)
    return True
