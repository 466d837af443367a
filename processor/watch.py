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
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
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
    """Turn every event into a hint on a queue; a rename into place also says "this file is complete"."""

    def __init__(self, hints: queue.SimpleQueue[str]):
        self.hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
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


def _work(intake: Intake, config: EstateConfig, hints: queue.SimpleQueue[str], stop: threading.Event) -> PassSummary:
    """The one worker: a pass at start, after each hint, when waiting files settle, and every rescan."""
    total = PassSummary()
    rescan, settle = config.processor.rescan_seconds, config.processor.settle_seconds
    complete: set[str] = set()
    next_pass = time.monotonic()            # the scan at start: files that arrived while stopped
    while not stop.is_set():
        wait = next_pass - time.monotonic()
        if wait > 0:
            if _wait(hints, min(wait, TICK), complete):
                next_pass = time.monotonic()
            continue
        try:
            summary = intake.run_pass(complete)
        except (StoreError, OSError) as exc:
            if intake.store.journal is not None and intake.store.journal.broken:
                raise
            log.error("本批未能完成，文件留在收件箱，稍后重试：%s", exc)
            summary = PassSummary(waiting=1)
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
