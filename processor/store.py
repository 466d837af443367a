"""The processor's durable state: an append-only journal (the truth) and a TinyDB store of tickets.

The only module that imports tinydb. The flow of one batch of forms:

  stage(form, outcome)   the outcome is held in an overlay that `get`/`earlier`/`next_number` see
  commit()               the batch's journal lines are written and fsync'd; the overlay becomes
                         committed state (indexed at once)
  flush()                committed tickets go into TinyDB FLUSH_EVERY at a time (one table update,
                         never one per insert)
  snapshot()             every SNAPSHOT_EVERY records and on close: closed and merged tickets move
                         to var/closed/YYYY-MM.jsonl, then TinyDB's tables are written atomically
                         with the journal offset (and month-file sizes) they cover

At open the snapshot is loaded in bulk and the journal tail after its offset is replayed through
the engine, so a kill -9 at any moment loses nothing: a record is either in the journal (and
replayed) or not (and its file is still in the inbox).
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import functools
import hashlib
import heapq
import itertools
import json
import logging
import os
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from processor.models import Earlier, Form, Outcome, Place, Ticket, Tickets
from render.writer import Taken, atomic_file, fsync_dir

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
SNAPSHOT = "store.jsonl"
TORN = "journal.torn"
LOCK = "lock"
SNAPSHOT_EVERY = 5000           # records between snapshots: bounds the replay at start (~2 s)
SNAPSHOT_FORMAT = "estate-desk-store"
COLD = "closed"                  # var/closed/YYYY-MM.jsonl: finished tickets, by the month they opened
FINAL_STATES = frozenset(("closed", "merged"))
FLUSH_EVERY = 2048               # committed tickets handed to TinyDB in one table update
TICKET_CACHE = 4096              # committed Ticket objects kept for the engine's repeated reads

Apply = Callable[[Form, Tickets, datetime], Outcome]



try:  # POSIX: flock; Windows (the README's `py run.py`): msvcrt's byte-range lock on the lock file
    import fcntl
except ImportError:  # pragma: no cover - exercised on Windows only
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _try_lock(fd: int) -> bool:
    """Take the lock on FD without waiting; False if another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except BlockingIOError:
        return False
    except OSError:
        if fcntl is not None:
            raise
        return False  # pragma: no cover - msvcrt says "locked" with a plain OSError
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

class StoreError(Exception):
    """The store or journal cannot be opened or written; the message names the file and the problem."""


class StoreLocked(StoreError):
    """Another processor holds var/lock."""


def dumps(value: Any) -> str:
    """Encode VALUE as compact JSON with Chinese kept readable (not \\uXXXX)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def ticket_doc(ticket: Ticket) -> dict[str, Any]:
    """Ticket.to_dict() without its deep copies (1.2 ms a ticket, most of the time of a batch)."""
    return _plain(ticket)


_ATOMS = frozenset((str, int, float, bool, type(None)))


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:     # atoms inline: a call per value was most of the cost
        return {k: v if type(v) in _ATOMS else _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _ATOMS else _plain(v) for v in value]
    if kind is datetime or kind is date:
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return {name: v if type(v := getattr(value, name)) in _ATOMS else _plain(v) for name in _field_names(kind)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.isoformat() if isinstance(value, datetime | date) else value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def form_from_record(rec: dict[str, Any]) -> Form:
    """Rebuild the Form a journal record was made from."""
    return Form(
        type=rec["type"], id=rec["id"], submitted_at=datetime.fromisoformat(rec["submitted_at"]),
        data=rec["data"], source=rec.get("source", ""), digest=rec["digest"],
        notes=tuple(rec.get("notes", ())),
    )


# --- the journal ------------------------------------------------------------------------------


@dataclass
class JournalTail:
    """What reading the journal from an offset found."""

    records: list[dict[str, Any]] = field(default_factory=list)
    end: int = 0                 # byte offset after the last good line
    torn: bytes = b""            # an incomplete or unreadable last line
    problems: list[str] = field(default_factory=list)   # damage before the last line


class Journal:
    """Append-only JSON lines; a batch of lines is written with one write and made durable with one fsync."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self.broken = False

    def size(self) -> int:
        """Return the journal's size in bytes (0 if it does not exist)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, start: int = 0, expect_seq: int = 1) -> JournalTail:
        """Parse every line from byte START into a list (the tail after a snapshot is short)."""
        tail = JournalTail(end=start)
        tail.records = list(self.scan(start, expect_seq, tail))
        return tail

    def scan(self, start: int, expect_seq: int, tail: JournalTail) -> Iterator[dict[str, Any]]:
        """Yield records from byte START, one line at a time; note damage, a torn last line and the end in TAIL.

        The last line may be torn (no newline, or unreadable): that is a crash, cut at the next start.
        Damage before it is a problem nobody should paper over.
        """
        tail.end = start
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            fh.seek(start)
            pos, lines = start, iter(fh)
            line = next(lines, None)
            while line is not None:
                following = next(lines, None)
                rec = _parse_line(line[:-1]) if line.endswith(b"\n") else None
                if rec is None and following is None:
                    tail.torn = line
                    return
                if rec is None:
                    tail.problems.append(f"{self.path}: 字节 {pos} 处的一行无法解析 (unreadable line at byte {pos})")
                elif rec["seq"] != expect_seq:
                    tail.problems.append(
                        f"{self.path}: 序号不连续，应为 {expect_seq}，实为 {rec['seq']} (sequence gap at byte {pos})")
                if rec is not None:
                    expect_seq = rec["seq"] + 1 if isinstance(rec["seq"], int) else expect_seq + 1
                    yield rec
                pos += len(line)
                tail.end = pos
                line = following

    def cut(self, size: int, torn: bytes) -> None:
        """Cut a torn tail off at SIZE, keeping the cut bytes in journal.torn (nothing is deleted)."""
        keep = self.path.with_name(TORN)
        with keep.open("ab") as fh:
            fh.write(torn + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        with self.path.open("r+b") as fh:
            fh.truncate(size)
            os.fsync(fh.fileno())
        log.warning("%s：末行不完整，已截去 %d 字节（原样保存在 %s）", self.path, len(torn), keep)

    def append(self, lines: bytes) -> None:
        """Write LINES at the end and fsync; on failure cut back to the old size and raise StoreError."""
        if self.broken:
            raise StoreError(f"{self.path}: 日志末尾有未能截去的半行，请重启处理程序 (restart to cut the torn line)")
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            before = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as exc:
            raise StoreError(f"{self.path}: 无法打开日志 (cannot open journal): {exc}") from exc
        try:
            view = memoryview(lines)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            self._undo(before)
            raise StoreError(f"{self.path}: 写入日志失败（磁盘已满或不可写？）(journal write failed): {exc}") from exc

    def _undo(self, size: int) -> None:
        """Drop a half-written batch so it is not replayed (if this fails too, the next start cuts it as torn)."""
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as exc:
            self.broken = True      # appending after a stray half line would bury it mid-journal
            log.error("%s: 无法截回到 %d 字节: %s", self.path, size, exc)

    def close(self) -> None:
        """Close the append handle."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) and "seq" in rec and "id" in rec else None


# --- the index of journaled forms -------------------------------------------------------------


class FormIndex:
    """Every journaled form id with its content digest, in 16 bytes a form (idempotency needs them all).

    A dict of id -> hex digest costs ~210 bytes a form: 140 MB for the ~700,000 forms (tickets plus
    their updates) behind 100,000 tickets. So settled entries live in two sorted arrays of 64-bit
    keys (blake2b of the id, the digest's first 64 bits) and only forms added since the last snapshot
    sit in a dict. Two ids sharing a 64-bit key: about 1 in 10^8 at a million forms.
    """

    def __init__(self) -> None:
        self.ids = array("Q")
        self.digests = array("Q")
        self.recent: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.ids) + len(self.recent)

    def seen(self, form_id: str, digest: str) -> bool | None:
        """None if FORM_ID was never journaled; True if with DIGEST; False if with other content."""
        if form_id in self.recent:
            return self.recent[form_id] == digest
        key = _key(form_id)
        i = bisect.bisect_left(self.ids, key)
        if i < len(self.ids) and self.ids[i] == key:
            return self.digests[i] == _digest_key(digest)
        return None

    def add(self, form_id: str, digest: str) -> None:
        """Record a journaled form."""
        self.recent[form_id] = digest

    def settle(self) -> None:
        """Merge the recent forms into the sorted arrays (at snapshot time)."""
        if not self.recent:
            return
        new = sorted((_key(i), _digest_key(d)) for i, d in self.recent.items())
        ids, digests = array("Q"), array("Q")
        for key, digest in heapq.merge(zip(self.ids, self.digests, strict=True), new):
            ids.append(key)
            digests.append(digest)
        self.ids, self.digests, self.recent = ids, digests, {}

    def dump(self) -> list[str]:
        """The settled arrays as base64 text for the snapshot (little-endian)."""
        self.settle()
        return [_b64(self.ids), _b64(self.digests)]

    def load(self, ids: str, digests: str) -> None:
        """Restore the arrays `dump` wrote."""
        self.ids, self.digests = _unb64(ids), _unb64(digests)

    def pairs(self) -> list[tuple[int, int]]:
        """Every entry as (id key, digest key), sorted: for comparing a store with a replay."""
        recent = ((_key(i), _digest_key(d)) for i, d in self.recent.items())
        return sorted([*zip(self.ids, self.digests, strict=True), *recent])


def _key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _digest_key(digest: str) -> int:
    try:
        return int(digest[:16], 16) if len(digest) >= 16 else _key(digest)
    except ValueError:
        return _key(digest)


def _b64(values: array) -> str:
    data = values if sys.byteorder == "little" else array("Q", values)
    if sys.byteorder != "little":
        data.byteswap()
    return base64.b64encode(data.tobytes()).decode("ascii")


def _unb64(text: str) -> array:
    values = array("Q")
    values.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        values.byteswap()
    return values


# --- the snapshot storage ---------------------------------------------------------------------


class SnapshotStorage(Storage):
    """A TinyDB storage that keeps the tables in memory and writes them only on `snapshot()`, atomically.

    TinyDB calls `write` after every insert; writing the file there would cost a full rewrite per
    ticket (1.9 s at 50,000 tickets), so `write` only keeps the data and `snapshot` persists it.
    The file is JSON lines (one document a line) so it loads and saves without one giant string.
    """

    def __init__(self, path: Path | None = None):
        self.path = path
        self.meta: dict[str, Any] = {}
        self.forms = FormIndex()
        self._data: dict[str, dict[str, Any]] | None = None

    def read(self) -> dict[str, dict[str, Any]]:
        """Return the tables, loading the snapshot file on first use."""
        if self._data is None:
            self._data = self._load()
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Keep TinyDB's tables in memory; `snapshot` makes them durable."""
        self._data = data

    def _load(self) -> dict[str, dict[str, Any]]:
        tables: dict[str, dict[str, Any]] = {}
        if self.path is None or not self.path.exists():
            return tables
        with self.path.open("rb") as fh:
            header = _json_line(fh.readline(), self.path, 1)
            if header.get("format") != SNAPSHOT_FORMAT:
                raise StoreError(f"{self.path}: 不是本系统的存储快照 (not an estate-desk store)")
            count = 0
            for count, line in enumerate(fh, start=2):
                row = _json_line(line, self.path, count)
                if "end" in row:
                    if row["end"] != count:
                        break
                    self.meta = header
                    return tables
                kind, *rest = row["row"]
                if kind == "forms":
                    self.forms.load(*rest)
                else:
                    tables.setdefault(rest[0], {})[rest[1]] = rest[2]
        raise StoreError(f"{self.path}: 快照不完整（缺少结束行）(snapshot truncated)")

    def snapshot(self, meta: dict[str, Any], forms: FormIndex) -> None:
        """Write the tables, the form index and META to a temp file, fsync, rename, fsync the folder."""
        if self.path is None:
            return
        data = self.read()
        with atomic_file(self.path, text=True, fsync=True) as fh:
            fh.write(dumps({"format": SNAPSHOT_FORMAT, "version": 1, **meta}) + "\n")
            fh.write(dumps({"row": ["forms", *forms.dump()]}) + "\n")
            n = 2
            for table, docs in data.items():
                for doc_id, doc in docs.items():
                    fh.write(dumps({"row": ["doc", table, doc_id, doc]}) + "\n")
                    n += 1
            fh.write(dumps({"end": n + 1}) + "\n")
        self.meta = {"format": SNAPSHOT_FORMAT, **meta}

    def close(self) -> None:
        """Nothing to release: snapshots are explicit."""


def _interned(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a dict whose keys and short values are shared strings (a loaded ticket takes ~40% less memory)."""
    return {sys.intern(k): sys.intern(v) if type(v) is str and len(v) <= 40 else v for k, v in pairs}


def _json_line(line: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line, object_pairs_hook=_interned)
    except ValueError as exc:
        raise StoreError(f"{path}: 第 {number} 行无法解析 (line {number} unreadable): {exc}") from exc
    if not isinstance(value, dict):
        raise StoreError(f"{path}: 第 {number} 行不是对象 (line {number} is not an object)")
    return value


# --- the store --------------------------------------------------------------------------------


@dataclass
class OpenReport:
    """What opening the store did: how much journal it replayed and whether it cut a torn line."""

    replayed: list[dict[str, Any]] = field(default_factory=list)   # records after the snapshot
    torn_bytes: int = 0
    snapshot_seq: int = 0


@dataclass
class _Index:
    """In-memory indexes over the tickets table, rebuilt on load."""

    doc_ids: dict[str, int] = field(default_factory=dict)                  # number -> TinyDB doc id (hot)
    cold: dict[str, tuple[str, int]] = field(default_factory=dict)          # number -> (month, byte offset)
    last_of_day: dict[str, int] = field(default_factory=dict)              # YYYYMMDD -> highest NNNN
    by_form: dict[str, str] = field(default_factory=dict)                   # opening form id -> number
    # (opened_at timestamp, number) of each Place's tickets, and of its merged ones, in that order: the
    # duplicate and repeat rules ask for every new ticket, so a thousand complaints from one unit must not
    # each look at all the ones before (2,000 took 14 s when they did)
    places: dict[Place, list[tuple[float, str]]] = field(default_factory=dict)
    merged: dict[Place, list[tuple[float, str]]] = field(default_factory=dict)
    merged_numbers: set[str] = field(default_factory=set)

    def add(self, doc_id: int, doc: dict[str, Any], cold: tuple[str, int] | None = None) -> None:
        """Index one ticket document, held in TinyDB as DOC_ID or in a month file at COLD."""
        number = sys.intern(doc["number"])     # one string object shared by every index
        known = number in self.doc_ids or number in self.cold
        if cold is None:
            self.doc_ids[number] = doc_id
        else:
            self.cold[number] = cold
        day, n = _number_parts(number)
        if n > self.last_of_day.get(day, 0):
            self.last_of_day[day] = n
        if known and (doc.get("state") != "merged" or number in self.merged_numbers):
            return
        place = Place.of(doc.get("resident") or {}, doc.get("kind", ""), doc.get("category", ""))
        entry = (datetime.fromisoformat(doc["opened_at"]).timestamp(), number)
        if not known:
            if doc.get("form_id"):
                self.by_form[doc["form_id"]] = number
            bisect.insort(self.places.setdefault(place, []), entry)
        if doc.get("state") == "merged":   # merged is final: a ticket joins this list once
            self.merged_numbers.add(number)
            bisect.insort(self.merged.setdefault(place, []), entry)


    def count(self) -> int:
        """How many tickets there are, hot and cold."""
        return len(self.doc_ids) + sum(1 for n in self.cold if n not in self.doc_ids)


def set_aside(path: Path) -> Path:
    """Rename PATH (a file or folder `rebuild` replaces) to PATH.before-rebuild-TIME, or -TIME-2, -3, ... if
    that is taken: two rebuilds within a second must neither fail nor overwrite the first one's copy."""
    stamp = f"{path.name}.before-rebuild-{time.strftime('%Y%m%dT%H%M%S')}"
    (name,) = Taken(os.listdir(path.parent)).first_free(stamp, lambda n: (f"{stamp}-{n}" if n > 1 else stamp,), 1)
    aside = path.with_name(name)
    path.rename(aside)
    return aside


def _span(entries: list[tuple[float, str]], lo: tuple, hi: tuple) -> list[tuple[float, str]]:
    """The sorted ENTRIES from LO to HI: a slice, copied at C speed (no Python per entry)."""
    return entries[bisect.bisect_left(entries, lo):bisect.bisect_right(entries, hi)]


def _number_parts(number: str) -> tuple[str, int]:
    """Split WO-YYYYMMDD-NNNN into ("YYYYMMDD", NNNN)."""
    _, day, n = number.rsplit("-", 2) if number.count("-") >= 2 else ("", "", "0")
    return day, int(n) if n.isdigit() else 0


class Store(Tickets):
    """Journal + TinyDB tickets, implementing the engine's `Tickets` protocol."""

    def __init__(self, var_dir: Path | None, apply: Apply | None = None, *,
                 snapshot_every: int = SNAPSHOT_EVERY):
        self.var_dir = var_dir
        self.apply = apply
        self.snapshot_every = snapshot_every
        self.journal = Journal(var_dir / JOURNAL) if var_dir else None
        self.storage: SnapshotStorage | None = None
        self.db: TinyDB | None = None
        self.seq = 0                                    # last committed record
        self.offset = 0                                 # journal bytes covered by committed records
        self.forms = FormIndex()                         # every journaled form id and its digest
        self.index = _Index()
        self._lock_fd: int | None = None
        self.cold_sizes: dict[str, int] = {}            # month file -> bytes the snapshot vouches for
        self._cache: dict[str, Ticket] = {}             # number -> committed Ticket (read-only, bounded)
        self._cold_files: dict[str, Any] = {}
        self._pending: list[dict[str, Any]] = []
        self._lines: list[bytes] = []       # the staged records as journal lines (encoded at stage time)
        self._pending_forms: dict[str, str] = {}
        self._overlay: dict[str, Ticket] = {}           # number -> staged ticket (its document is made at commit)
        self._staged = _Index()                          # the overlay's new tickets, indexed like the store
        self._overlay_records: list[dict[str, Any]] = []
        self._unflushed: dict[str, dict[str, Any]] = {}  # committed tickets not yet handed to TinyDB
        self._unflushed_records: list[dict[str, Any]] = []
        self._since_snapshot = 0
        self._snapshot_seq = 0
        self.before_snapshot: Callable[[], None] | None = None   # intake: fsync the folders files moved into
        self.changed: set[str] = set()      # tickets committed since someone last looked (deadline alerts)

    # opening and closing

    def open(self, *, lock: bool = True, repair: bool = True, fresh: bool = False) -> OpenReport:
        """Lock var/, load the snapshot in bulk, replay the journal tail; cut a torn last line if REPAIR.

        FRESH ignores the snapshot and replays the whole journal (rebuild); once the journal has replayed,
        the month files it no longer reads are kept aside as closed.before-rebuild-TIME, not deleted. (Set
        aside first, they stayed aside when the replay failed, and later runs dropped every closed ticket.)
        """
        if self.var_dir is not None and lock:
            self._prepare_dir()
        self.storage = SnapshotStorage(self.var_dir / SNAPSHOT if self.var_dir else None)
        if fresh:
            self.storage.write({})
        self.db = TinyDB(storage=lambda: self.storage)
        self.storage.read()
        self.forms = self.storage.forms
        meta = self.storage.meta
        self.seq = self._snapshot_seq = int(meta.get("seq", 0))
        self.offset = int(meta.get("journal_offset", 0))
        self.cold_sizes = dict(meta.get("cold", {}))
        self._rebuild_index()
        if not fresh:
            self._load_cold(trim=lock and repair)
        report = OpenReport(snapshot_seq=self.seq)
        if self.journal is None:
            return report
        if self.offset > self.journal.size():
            raise StoreError(f"{self.var_dir / SNAPSHOT}: 快照覆盖到日志第 {self.offset} 字节，但日志只有 "
                             f"{self.journal.size()} 字节 (snapshot ahead of journal); 请运行 rebuild")
        tail = self.journal.read(self.offset, self.seq + 1)
        if tail.problems:
            raise StoreError("\n".join(tail.problems))
        if tail.torn:
            report.torn_bytes = len(tail.torn)
            if repair:
                self.journal.cut(tail.end, tail.torn)
            else:
                log.warning("%s：末行不完整（%d 字节），只读模式未截去", self.journal.path, len(tail.torn))
        self._replay(tail.records)
        self.offset = tail.end
        report.replayed = tail.records
        if fresh:
            self._set_aside_cold()
        return report

    def _prepare_dir(self) -> None:
        try:
            self.var_dir.mkdir(parents=True, exist_ok=True)
            self._lock()
        except StoreLocked:
            raise
        except OSError as exc:
            raise StoreError(f"{self.var_dir}: 无法创建或写入运行目录 (var/ not writable): {exc}") from exc
        for stale in self.var_dir.glob(f".{SNAPSHOT}.*.tmp"):
            stale.unlink()      # a snapshot cut short by a crash; the journal still holds everything

    def _lock(self) -> None:
        path = self.var_dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise StoreLocked(f"{path}: 另一个表单处理程序正在使用此目录，本进程退出 "
                              f"(another processor holds the lock)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def close(self, *, snapshot: bool = True) -> None:
        """Snapshot if anything changed since the last one, close the journal, release the lock."""
        if snapshot and self.var_dir is not None and self.seq != self._snapshot_seq:
            self.snapshot()
        if self.journal is not None:
            self.journal.close()
        for fh in self._cold_files.values():
            fh.close()
        self._cold_files = {}
        if self._lock_fd is not None:
            _unlock(self._lock_fd)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _rebuild_index(self) -> None:
        self.index = _Index()
        for doc_id, doc in self._table("tickets").items():
            self.index.add(int(doc_id), doc)

    def _table(self, name: str) -> dict[str, Any]:
        return self.storage.read().get(name, {})

    # the Tickets protocol

    def get(self, number: str) -> Ticket | None:
        """Return the ticket NUMBER as it stands, staged changes included.

        Committed tickets come from a small cache: the engine reads the same unit's tickets for every
        form (duplicate and repeat rules) and never changes what it is given (it returns new copies).
        """
        if number in self._overlay:
            return self._overlay[number]
        ticket = self._cache.get(number)
        if ticket is None:
            doc = self.document(number)
            if doc is None:
                return None
            ticket = Ticket.from_dict(doc)
            self._remember(ticket)
        return ticket

    def _remember(self, ticket: Ticket) -> None:
        self._cache[ticket.number] = ticket
        if len(self._cache) > TICKET_CACHE:
            del self._cache[next(iter(self._cache))]      # the oldest entry

    def document(self, number: str) -> dict[str, Any] | None:
        """Return ticket NUMBER as its stored dict (shared; do not modify)."""
        if number in self._overlay:
            return ticket_doc(self._overlay[number])
        if number in self._unflushed:
            return self._unflushed[number]
        doc_id = self.index.doc_ids.get(number)
        if doc_id:
            return self._table("tickets").get(str(doc_id))
        where = self.index.cold.get(number)
        return self._cold_doc(*where) if where else None

    def by_form(self, form_id: str) -> Ticket | None:
        """The ticket opened by form FORM_ID, staged ones included."""
        number = self._staged.by_form.get(form_id) or self.index.by_form.get(form_id)
        return self.get(number) if number else None

    def earlier(self, place: Place, since: datetime, until: datetime, *, besides: str, most: int) -> Earlier:
        """See Tickets.earlier: counted by bisecting the index (committed and staged); only the latest few
        are named one by one."""
        lo, hi = (since.timestamp(),), (until.timestamp(), "\U0010ffff")   # (time, number) from LO to HI
        spans = [_span(index.places.get(place, []), lo, hi) for index in (self.index, self._staged)]
        left_out = self._merged_between(place, lo, hi)
        own = self._staged.by_form.get(besides) or self.index.by_form.get(besides)
        if own and own not in left_out and self._between(self.get(own), place, lo, hi):
            left_out.add(own)
        newest_first = heapq.merge(*(reversed(span) for span in spans), reverse=True)
        latest = list(itertools.islice((n for _, n in newest_first if n not in left_out), most))
        return Earlier(tuple(reversed(latest)), sum(map(len, spans)) - len(left_out))

    def _merged_between(self, place: Place, lo: tuple, hi: tuple) -> set[str]:
        """PLACE's merged tickets opened from LO to HI: committed ones, and those merged in this batch."""
        found = {number for _, number in _span(self.index.merged.get(place, []), lo, hi)}
        found.update(n for n, t in self._overlay.items() if t.state == "merged" and self._between(t, place, lo, hi))
        return found

    @staticmethod
    def _between(ticket: Ticket | None, place: Place, lo: tuple, hi: tuple) -> bool:
        """Is TICKET at PLACE, opened from LO to HI (as Store.earlier bounds it)?"""
        return ticket is not None and lo <= (ticket.opened_at.timestamp(), ticket.number) <= hi \
            and Place.of(ticket.resident, ticket.kind, ticket.category) == place

    def next_number(self, day: date) -> str:
        """The next free WO-YYYYMMDD-NNNN for DAY."""
        key = day.strftime("%Y%m%d")
        last = max(self.index.last_of_day.get(key, 0), self._staged.last_of_day.get(key, 0))
        return f"WO-{key}-{last + 1:04d}"

    # queries

    def seen(self, form_id: str, digest: str) -> bool | None:
        """None if FORM_ID is new; True if journaled or staged with DIGEST; False if with other content."""
        if form_id in self._pending_forms:
            return self._pending_forms[form_id] == digest
        return self.forms.seen(form_id, digest)

    def tickets(self) -> Iterator[dict[str, Any]]:
        """Every committed ticket document, hot and cold, in number order."""
        for number in sorted(self.index.doc_ids.keys() | self.index.cold.keys()):
            yield self.document(number)

    def records(self) -> list[dict[str, Any]]:
        """Every committed non-ticket record (surveys, duty logs, ...), in journal order."""
        return sorted([*self._table("records").values(), *self._unflushed_records], key=lambda r: r.get("seq", 0))

    def state(self) -> dict[str, Any]:
        """The whole committed state as plain data, for comparing a store with a replay."""
        return {"tickets": list(self.tickets()), "records": self.records(), "forms": self.forms.pairs()}

    # writing

    def stage(self, form: Form, outcome: Outcome, now: datetime, **extra: Any) -> dict[str, Any]:
        """Hold FORM's journal record and OUTCOME until `commit`; later forms of the batch see it."""
        rec = {
            "seq": self.seq + len(self._pending) + 1, "at": now.isoformat(), "id": form.id, "type": form.type,
            "submitted_at": form.submitted_at.isoformat(), "digest": form.digest, "source": form.source,
            "notes": list(form.notes), **extra, "data": form.data,
        }
        # Encoded now, not at commit: a record UTF-8 cannot hold fails its own form, not the whole batch.
        self._lines.append((dumps(rec) + "\n").encode("utf-8"))
        self._pending.append(rec)
        self._pending_forms[form.id] = form.digest
        self._overlay_outcome(outcome, rec)
        return rec

    def _overlay_outcome(self, outcome: Outcome, rec: dict[str, Any]) -> None:
        # Kept as the engine made it (it never changes a ticket it is given), its document made at commit:
        # one per form made each update of a ticket cost as much as the ticket's whole history.
        for ticket in outcome.tickets:
            number = ticket.number
            self._overlay[number] = ticket
            if number not in self.index.doc_ids and number not in self.index.cold and number not in self._staged.doc_ids:
                self._staged.add(0, ticket_doc(ticket))
        if outcome.record is not None:
            self._overlay_records.append({**outcome.record, "form_id": rec["id"], "seq": rec["seq"]})

    def commit(self) -> list[dict[str, Any]]:
        """Journal the staged records with one fsync, then move the staged tickets into TinyDB."""
        if not self._pending:
            return []
        batch = self._pending
        if self.journal is not None:
            lines = b"".join(self._lines)
            try:
                self.journal.append(lines)
            except StoreError:
                self.rollback()
                raise
            self.offset += len(lines)
        self.seq = batch[-1]["seq"]
        self._settle_batch()
        return batch

    def _settle_batch(self) -> None:
        """Make the staged batch committed state: index it now, hand it to TinyDB in bulk later."""
        for form_id, digest in self._pending_forms.items():
            self.forms.add(form_id, digest)
        self.changed.update(self._overlay)
        for number, ticket in self._overlay.items():
            doc = self._unflushed[number] = ticket_doc(ticket)
            self._cache.pop(number, None)  # re-inserted as the newest
            self._remember(ticket)
            self.index.add(self.index.doc_ids.get(number, 0), doc)     # 0: not in TinyDB yet
        self._unflushed_records.extend(self._overlay_records)
        self._since_snapshot += len(self._pending)
        self._pending, self._pending_forms, self._lines = [], {}, []
        self._overlay, self._overlay_records = {}, []
        self._staged = _Index()
        if len(self._unflushed) >= FLUSH_EVERY:
            self.flush()

    def rollback(self) -> None:
        """Forget everything staged since the last commit."""
        self._pending, self._pending_forms, self._lines = [], {}, []
        self._overlay, self._overlay_records = {}, []
        self._staged = _Index()

    def flush(self) -> None:
        """Write the committed tickets and records into TinyDB: one table update each, however many.

        TinyDB re-keys the whole table on every update, so doing it per batch of 64 forms cost more
        than the journal's fsync at 10,000 tickets; FLUSH_EVERY tickets at a time it is noise.
        """
        if self._unflushed:
            tickets = self.db.table("tickets", cache_size=0)
            ids = self.index.doc_ids
            new = [(n, doc) for n, doc in self._unflushed.items() if not ids.get(n)]
            changed = {ids[n]: doc for n, doc in self._unflushed.items() if ids.get(n)}
            if changed:
                def replace(doc: dict[str, Any]) -> None:
                    fresh = changed[ids[doc["number"]]]
                    doc.clear()
                    doc.update(fresh)
                tickets.update(replace, doc_ids=list(changed))
            if new:
                for doc_id, (number, _) in zip(tickets.insert_multiple([d for _, d in new]), new, strict=True):
                    ids[number] = doc_id
            self._unflushed = {}
        if self._unflushed_records:
            self.db.table("records", cache_size=0).insert_multiple(self._unflushed_records)
            self._unflushed_records = []

    def maybe_snapshot(self) -> bool:
        """Snapshot when SNAPSHOT_EVERY records were committed since the last one."""
        if self._since_snapshot >= self.snapshot_every:
            self.snapshot()
            return True
        return False

    def snapshot(self) -> None:
        """Write TinyDB's tables atomically with the journal offset and sequence they cover."""
        if self._pending:
            raise StoreError("内部错误：尚有未提交的记录，不能写快照 (snapshot with a batch staged)")
        if self.before_snapshot is not None:
            self.before_snapshot()
        self.flush()
        try:
            self._archive_finished()
            self.storage.snapshot({"seq": self.seq, "journal_offset": self.offset, "cold": self.cold_sizes},
                                  self.forms)
        except OSError as exc:
            raise StoreError(f"{self.storage.path}: 写入快照失败（磁盘已满或不可写？）: {exc}") from exc
        self._since_snapshot = 0
        self._snapshot_seq = self.seq
        log.info("已写入快照：%d 条记录，%d 张工单（其中 %d 张在用）", self.seq, self.index.count(),
                 len(self.index.doc_ids))

    # the cold store: finished tickets leave TinyDB for month files, so the hot store stays small

    def _archive_finished(self) -> None:
        """Move closed and merged tickets from TinyDB to var/closed/YYYY-MM.jsonl (fsync'd before the snapshot)."""
        if self.var_dir is None:
            return
        finished: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for doc_id, doc in self._table("tickets").items():
            if doc.get("state") in FINAL_STATES:
                finished.setdefault(doc["opened_at"][:7], []).append((int(doc_id), doc))
        if not finished:
            return
        folder = self.var_dir / COLD
        folder.mkdir(exist_ok=True)
        placed: list[tuple[int, dict[str, Any], tuple[str, int]]] = []
        sizes = dict(self.cold_sizes)
        for month, docs in sorted(finished.items()):
            with (folder / f"{month}.jsonl").open("ab") as fh:
                offset = fh.tell()
                for doc_id, doc in docs:
                    line = (dumps(doc) + "\n").encode("utf-8")
                    fh.write(line)
                    placed.append((doc_id, doc, (month, offset)))
                    offset += len(line)
                fh.flush()
                os.fsync(fh.fileno())
            sizes[month] = offset
        fsync_dir(folder)
        self.db.table("tickets", cache_size=0).remove(doc_ids=[doc_id for doc_id, _, _ in placed])
        for _, doc, where in placed:
            del self.index.doc_ids[doc["number"]]
            self.index.cold[doc["number"]] = where
        self.cold_sizes = sizes
        log.info("已将 %d 张已结束的工单移入月度存档", len(placed))

    def _set_aside_cold(self) -> None:
        folder = self.var_dir / COLD if self.var_dir else None
        if folder is not None and folder.exists():
            aside = set_aside(folder)
            log.info("旧的月度存档已移到 %s", aside.name)

    def _load_cold(self, *, trim: bool) -> None:
        """Index the month files up to the sizes the snapshot vouches for; TRIM bytes a crash left after them."""
        if self.var_dir is None:
            return
        folder = self.var_dir / COLD
        for month, size in sorted(self.cold_sizes.items()):
            if size and not (folder / f"{month}.jsonl").exists():
                raise StoreError(f"{folder / month}.jsonl: 快照记录的月度存档不见了，其中的已结束工单会丢失；"
                                 f"请找回该文件，或运行 rebuild 从日志重建 (closed-ticket file missing: run rebuild)")
        for path in sorted(folder.glob("*.jsonl")) if folder.exists() else ():
            month, size = path.stem, self.cold_sizes.get(path.stem, 0)
            if trim and path.stat().st_size > size:
                os.truncate(path, size)         # written by an archiving cut short: still in the hot store
            with path.open("rb") as fh:
                offset = 0
                for number, line in enumerate(fh, start=1):
                    if offset + len(line) > size:
                        break
                    doc = _cold_line(line, path, f"第 {number} 行", f"line {number}")
                    if doc["number"] not in self.index.doc_ids:
                        self.index.add(0, doc, cold=(month, offset))
                    offset += len(line)
            if offset < size:
                raise StoreError(f"{path}: 月度存档比快照记录的短，请运行 rebuild 从日志重建 "
                                 f"(closed-ticket file shorter than the snapshot says: run rebuild)")

    def _cold_doc(self, month: str, offset: int) -> dict[str, Any]:
        fh = self._cold_files.get(month)
        if fh is None:
            fh = self._cold_files[month] = (self.var_dir / COLD / f"{month}.jsonl").open("rb")
        fh.seek(offset)
        return _cold_line(fh.readline(), self.var_dir / COLD / f"{month}.jsonl", f"字节 {offset} 处",
                          f"at byte {offset}")

    # replay

    def _replay(self, records: Iterable[dict[str, Any]]) -> None:
        """Re-apply journaled forms through the engine, with the time each was first processed."""
        for rec in records:
            if self.apply is None:
                raise StoreError("内部错误：重放日志需要处理引擎 (replay needs an engine)")
            form = form_from_record(rec)
            outcome = self.apply(form, self, datetime.fromisoformat(rec["at"]))
            if outcome.rejection is not None:
                log.error("重放第 %d 条记录（%s）时被驳回：规则可能已改变", rec["seq"], rec["id"])
            self._pending.append(rec)
            self._pending_forms[rec["id"]] = rec["digest"]
            self._overlay_outcome(outcome, rec)
            self.seq = rec["seq"]
            if len(self._pending) >= 256:
                self._apply_replayed()
        self._apply_replayed()

    def _apply_replayed(self) -> None:
        self._settle_batch()


def _cold_line(line: bytes, path: Path, where: str, where_en: str) -> dict[str, Any]:
    """One ticket of a month file; a line cut short or damaged is a StoreError naming the file and the cure."""
    try:
        doc = json.loads(line)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("number"), str):
        raise StoreError(f"{path}: {where}无法解析（文件被截断或损坏），请运行 rebuild 从日志重建 "
                         f"({where_en} unreadable: the file is cut short or damaged; run rebuild)")
    return doc


def replay_state(var_dir: Path, apply: Apply) -> tuple[dict[str, Any], list[str]]:
    """Replay the whole journal (streamed) into a scratch store; return its state and any journal problems."""
    tail = JournalTail()
    scratch = Store(None, apply)
    scratch.open(lock=False)
    scratch._replay(Journal(var_dir / JOURNAL).scan(0, 1, tail))
    return scratch.state(), tail.problems


def file_digest(data: bytes) -> str:
    """Return the sha256 of a dropped file's bytes (to recognise it again after a crash)."""
    return hashlib.sha256(data).hexdigest()
