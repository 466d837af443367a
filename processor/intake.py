"""Intake: list the inbox, read the complete files, decide each form, journal, then move the files.

One pass, top to bottom:
  list      *.json in the inbox, skipping *.tmp, hidden files and files still being written
  read      parse each file into a Form or a Rejection (processor/forms.py)
  order     by submitted_at, then arrival (mtime, name)
  decide    duplicate / conflict / engine outcome, staged in the store batch by batch
  commit    the batch's journal records are fsync'd (store.commit)
  move      only then does a file leave the inbox: accepted and duplicates to var/archive/YYYY-MM/,
            rejected to var/rejected/ with NAME.error.json beside it; photos named in a form go with it

Nothing is ever deleted and nothing overwritten: archive + rejected = everything dropped.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from estate.config import EstateConfig
from estate.lifecycle import ACTION_LABELS
from processor.alerts import AlertLog
from processor.forms import NAME_MAX_BYTES, fits_name, is_photo_name, name_bytes, printable
from processor.models import Form, Outcome, Problem, Rejection, Tickets, named_ticket
from processor.store import Store, StoreError, dumps, file_digest
from render.writer import Taken, fsync_dir, text_name

log = logging.getLogger(__name__)

Parse = Callable[..., "Form | Rejection"]  # parse_form(raw, source, config, policy, size=...)
ApplyForm = Callable[[Form, Tickets, Any, datetime], Outcome]

ARCHIVE = "archive"
REJECTED = "rejected"
DUPLICATES = "duplicates"      # inside the month's archive folder: copies of forms already processed
INTAKE_LOG = "intake.jsonl"    # one line per file handled: what became of it (for people, not for replay)
COUNTERS = {"accepted": "accepted", "duplicate": "duplicates", "rejected": "rejected"}
# How far submitted_at may lie from the processor's clock (back, ahead): further is a typo or a device with a
# wrong clock, and years like 0001 or 9999 would overflow the deadline arithmetic. Ten years back leaves room
# for old paper forms typed in late (and the sample forms of the example estate); one day ahead covers a wrong
# time zone (at most 26 hours apart) or a fast device clock. It was a year: a burst pipe reported from a phone
# set to 2027 opened a ticket no staff update could touch for nine months (none may come before it).
SUBMITTED_WINDOW = (timedelta(days=3653), timedelta(days=1))
# Failures of the store or the disk: they stop the processor (exit 2); anything else a form raises only rejects it
STOP_ERRORS = (StoreError, OSError, MemoryError)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)     # POSIX: opening a symlink fails instead of reading its target
# Names chosen for the files moved out of the inbox stay this short, so that what is made beside them fits the
# file system's limit too: a report adds ".error" (6 bytes), a temp name "." and ".tmp" or ".part" (6). A form
# named with 250 bytes, or NAME-1.json for one of 255, had failed with ENAMETOOLONG and stopped every run.
DEST_NAME_BYTES = NAME_MAX_BYTES - 12


@dataclass
class PassSummary:
    """What one pass over the inbox did."""

    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    waiting: int = 0           # files left for the next pass (still being written)

    @property
    def handled(self) -> int:
        return self.accepted + self.rejected + self.duplicates

    def line(self) -> str:
        """The summary line logged after each pass."""
        return f"已处理 {self.handled} 份：受理 {self.accepted}，驳回 {self.rejected}，重复 {self.duplicates}"

    def add(self, other: PassSummary) -> None:
        """Add OTHER's counts into this one."""
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.waiting = other.waiting


@dataclass
class Dropped:
    """One file taken from the inbox, read and parsed."""

    path: Path
    mtime_ns: int
    raw_sha: str
    result: Form | Rejection
    data: Any = None           # the decoded JSON, if it decoded (to find the photos the form names)
    name: str = ""             # path's name as text UTF-8 can hold (see text_name): journaled, logged, archived as
    size: int = -1             # the file's size when it was read

    @property
    def order(self) -> tuple[int, float, int, str]:
        """Sort key: forms by submitted_at, then arrival; unreadable files after them."""
        if isinstance(self.result, Form):
            return (0, self.result.submitted_at.timestamp(), self.mtime_ns, self.path.name)
        return (1, 0.0, self.mtime_ns, self.path.name)


@dataclass
class _Move:
    """A decided file waiting for its batch's journal fsync before it moves."""

    item: Dropped
    kind: str                                  # accepted, duplicate, rejected
    dest: Path
    photos: dict[str, Path] = field(default_factory=dict)
    rejection: Rejection | None = None
    report: Path | None = None                 # NAME.error.json beside a rejected file


class Intake:
    """Turn the inbox's files into journaled forms and moved files."""

    def __init__(self, config: EstateConfig, store: Store, policy: Any, clock: Callable[[], datetime],
                 parse: Parse, apply: ApplyForm):
        self.config = config
        self.store = store
        self.policy = policy
        self.clock = clock
        self.parse = parse
        self.apply = apply
        self.inbox = config.path(config.processor.inbox_dir)
        self.var = config.path(config.processor.var_dir)
        self._seen: dict[str, tuple[int, int]] = {}      # waiting file -> (size, mtime_ns) at the last pass
        self._stalled: set[str] = set()                  # files read as cut short, waiting for their writer
        self._odd: set[str] = set()                      # *.json that are not files (folders, pipes): told once
        # folder -> names in it or chosen for it: listed once, then kept (we hold the lock: no other writer)
        self._taken: dict[Path, Taken] = {}
        # Journaled records whose files have not all moved yet: no snapshot may cover them until they
        # have, or a restart would take the files left in the inbox for duplicates.
        self.unmoved: list[dict[str, Any]] = []
        self._touched: set[Path] = set()                 # folders with renames not yet fsync'd
        self.alerts: AlertLog | None = None              # told after each pass: deadlines at risk or overdue
        store.before_snapshot = self.sync_dirs

    # listing

    def pending(self, complete: Iterable[str] = ()) -> tuple[list[Path], int]:
        """Return the inbox files ready to read (oldest first) and how many are still being written.

        A file is ready when its size and mtime have not changed for settle_seconds, or when a
        watch event says it was renamed into place (the writer's "done" signal).
        """
        self.inbox.mkdir(parents=True, exist_ok=True)
        settle = self.config.processor.settle_seconds
        done = set(complete)
        ready: list[tuple[int, str, Path]] = []
        waiting = 0
        seen: dict[str, tuple[int, int]] = {}
        odd: set[str] = set()
        now = time.time_ns()
        for entry in os.scandir(self.inbox):
            name = entry.name
            if name.startswith(".") or not name.lower().endswith(".json"):
                continue
            if not entry.is_file(follow_symlinks=False) and not entry.is_symlink():
                odd.add(name)       # a folder or a pipe: never read (a pipe would block), said once
                if name not in self._odd:
                    log.warning("%s: 不是普通文件（文件夹、管道等），不予处理，请移走 (not a regular file: left alone)",
                                text_name(name))
                continue
            st = entry.stat(follow_symlinks=False)     # a symlink is judged by itself, never by its target
            mark = (st.st_size, st.st_mtime_ns)
            changed = name in self._seen and self._seen[name] != mark
            young = abs(now - st.st_mtime_ns) < settle * 1e9  # a clock far ahead (touch -d 2030) is not young
            if name not in done and (changed or young):
                seen[name] = mark       # remembered only while waiting: a later file may reuse the name
                waiting += 1
                continue
            ready.append((st.st_mtime_ns, name, Path(entry.path)))
        self._seen, self._odd = seen, odd
        return [p for _, _, p in sorted(ready)], waiting

    # one pass

    def run_pass(self, complete: Iterable[str] = ()) -> PassSummary:
        """Process every ready file in the inbox; return the counts."""
        if self.unmoved:                     # a move failed last time: finish it before anything looks like a duplicate
            self.recover(self.unmoved)
            self.unmoved = []
        paths, waiting = self.pending(complete)
        done, stalled = set(complete), set()
        items = []
        for item in (self._read(p) for p in paths):
            if item is not None and self._still_writing(item, done):
                waiting += 1
                stalled.add(item.name)
                if item.name not in self._stalled:      # said once, not at every pass while it waits
                    log.info("%s: 文件不完整，可能仍在写入，稍后再读 (still being written?)", item.name)
            elif item is not None:
                items.append(item)
        # a stalled file that grew since is only listed as waiting, not read: it is still the same wait, not news
        self._stalled = stalled | (self._stalled & self._seen.keys())
        summary = PassSummary(waiting=waiting)
        items.sort(key=lambda d: d.order)
        size = max(1, self.config.processor.batch_size)
        for start in range(0, len(items), size):
            summary.add(self._batch(items[start:start + size]))
            summary.waiting = waiting
        if summary.handled:
            log.info(summary.line())
        self._check_alerts()
        return summary

    def _check_alerts(self) -> None:
        """Log the tickets that became at risk or overdue (a failure here must not stop the inbox)."""
        if self.alerts is None:
            return
        try:
            self.alerts.check(self.clock())
        except STOP_ERRORS:
            raise
        except Exception:
            log.exception("检查工单时限时出现内部错误 (internal error while checking deadlines)")

    def _read(self, path: Path) -> Dropped | None:
        limit = self.config.processor.max_form_bytes
        name = text_name(path.name)
        try:
            with os.fdopen(os.open(path, os.O_RDONLY | NOFOLLOW), "rb") as fh:
                raw = fh.read(limit + 1)     # enough to tell an oversized file, never the whole of a huge one
                st = os.fstat(fh.fileno())
                mtime = st.st_mtime_ns
        except FileNotFoundError:
            return None                      # taken away by its writer between listing and reading
        except OSError as exc:
            if path.is_symlink():
                return _symlink(path, name)     # None if it went away meanwhile
            log.error("%s: 无法读取，下次再试: %s", path, exc)
            return None
        if name != path.name:
            log.warning("%s: 文件名不是 UTF-8，按 %s 记录与存档 (file name is not UTF-8)", path, name)
        try:
            result = self.parse(raw, name, self.config.processor, self.policy, size=st.st_size)
        except STOP_ERRORS:
            raise
        except Exception as exc:     # a bug the form triggers must not stop the inbox: quarantine the form
            log.exception("%s: 检查表单时出现内部错误，已驳回", name)
            result = internal_error(name, None, exc)
        # A Form carries its data; only a rejected file is decoded again, to find the photos it names.
        data = result.data if isinstance(result, Form) else _loose_json(raw)
        return Dropped(path, mtime, file_digest(raw), result, data, name, st.st_size)

    def _still_writing(self, item: Dropped, complete: set[str]) -> bool:
        """Tell whether a file read as broken is more likely a writer that stalled: leave it for a later pass.

        It is when it changed since it was read, or when it ends before its JSON does and changed within
        write_grace_seconds (a copy from a slow share pausing for a second). After that it is rejected as
        truncated; a file renamed into place (COMPLETE) was finished by its writer and is rejected at once.
        """
        result = item.result
        if not isinstance(result, Rejection) or item.path.name in complete:
            return False
        try:
            st = item.path.lstat()
        except OSError:
            return True             # gone or unreadable now: whatever it is, the next pass sees it
        if (st.st_size, st.st_mtime_ns) != (item.size, item.mtime_ns):
            return True
        grace = self.config.processor.write_grace_seconds
        return result.incomplete and abs(time.time_ns() - st.st_mtime_ns) < grace * 1e9  # a future time: not

    def _batch(self, items: list[Dropped]) -> PassSummary:
        """Decide a batch, journal it with one fsync, then move its files."""
        now = self.clock()
        month = self._month(now)
        moves = [self._decide(item, now, month) for item in items]
        try:
            self.unmoved = self.store.commit()
            summary = PassSummary()
            for move in moves:
                self._move(move, now)
                counter = COUNTERS[move.kind]
                setattr(summary, counter, getattr(summary, counter) + 1)
        except BaseException:
            self._taken.clear()          # names chosen but not used, or a folder changed behind our back
            raise
        self._log(moves, now)
        self._touched.update({m.dest.parent for m in moves} | {self.inbox} if moves else set())
        self.unmoved = []
        self.store.maybe_snapshot()
        return summary

    def _decide(self, item: Dropped, now: datetime, month: Path) -> _Move:
        """Stage ITEM's form in the store or decide it is a duplicate or a rejection."""
        result = item.result
        if isinstance(result, Rejection):
            return self._rejected(item, result)
        seen = self.store.seen(result.id, result.digest)
        if seen:
            return _Move(item, "duplicate", self._free(month / DUPLICATES, item.name),
                         self._photos(item, month / DUPLICATES))
        if seen is False:
            return self._rejected(item, conflict(result))
        try:
            return self._accept(item, result, now, month)
        except STOP_ERRORS:
            raise
        except Exception as exc:     # a bug the form triggers must not stop the inbox: quarantine the form
            log.exception("%s: 处理表单时出现内部错误，已驳回", item.name)
            return self._rejected(item, internal_error(item.name, result.id, exc))

    def _accept(self, item: Dropped, form: Form, now: datetime, month: Path) -> _Move:
        """Check FORM, apply it through the engine and stage the outcome (or reject it, saying why)."""
        for check in ADMISSION_CHECKS:
            refused = check(form, now, self.config, self.store)
            if refused is not None:
                return self._rejected(item, refused)
        outcome = self.apply(form, self.store, self.policy, now)
        if outcome.rejection is not None:
            return self._rejected(item, outcome.rejection)
        dest, photos = self._free(month, item.name), self._photos(item, month)
        self.store.stage(form, outcome, now, file_sha256=item.raw_sha, dest=self._rel(dest),
                         photos={k: self._rel(v) for k, v in photos.items()})
        for message in outcome.messages:
            log.info("%s: %s", item.name, message)
        return _Move(item, "accepted", dest, photos)

    def _rejected(self, item: Dropped, rejection: Rejection) -> _Move:
        folder = self.var / REJECTED
        dest, report = self._free_pair(folder, item.name)
        return _Move(item, "rejected", dest, self._photos(item, folder), rejection, report)

    def _month(self, now: datetime) -> Path:
        return self.var / ARCHIVE / now.strftime("%Y-%m")

    def _rel(self, path: Path) -> str:
        """PATH relative to var/, as the journal records it (every path here was built under var/)."""
        return str(path)[len(str(self.var)) + 1:]

    def _photos(self, item: Dropped, folder: Path) -> dict[str, Path]:
        """Choose destinations for the photos ITEM names that lie beside it in the inbox (files, not symlinks)."""
        return {name: self._free(folder, name) for name in photo_names(item.data) if _plain_file(self.inbox / name)}

    def _listed(self, folder: Path) -> Taken:
        """The names in FOLDER and those chosen for it (listed once: we hold the lock, no other writer)."""
        names = self._taken.get(folder)
        if names is None:
            names = self._taken[folder] = Taken(os.listdir(folder) if folder.is_dir() else ())
        return names

    def _free(self, folder: Path, name: str) -> Path:
        """A path in FOLDER for NAME that clashes with no file there and no other choice of this batch.

        The folder is listed once, not stat'ed per file (that cost more than the journal's fsync).
        """
        (found,) = self._first_free(folder, name, lambda candidate: (candidate,))
        return folder / found

    def _free_pair(self, folder: Path, name: str) -> tuple[Path, Path]:
        """Free paths in FOLDER for NAME and its NAME.error.json, with the same suffix so they stay side by side.

        Neither may replace a file already there: an earlier rejected original may be called x.error.json.
        """
        found, report = self._first_free(folder, name, lambda candidate: (candidate, _report_name(candidate)))
        return folder / found, folder / report

    def _first_free(self, folder: Path, name: str, wanted: Callable[[str], tuple[str, ...]]) -> tuple[str, ...]:
        """WANTED of the first of NAME, NAME-1, NAME-2, … (each cut to fit) whose names are all free in FOLDER;
        they are taken from then on. Names that differ only past the cut give the same candidates: a walk is
        known by its first one (and how many names each candidate needs: a form alone, or with its report)."""
        stem, dot, ext = _split(name)
        first = _fitted(stem, f"{dot}{ext}")
        return self._listed(folder).first_free(
            (first, len(wanted(first))), lambda n: wanted(_fitted(stem, f"-{n}{dot}{ext}") if n else first))

    # moving

    def _move(self, move: _Move, now: datetime) -> None:
        """Move a decided file (photos first, the form last: its presence in the inbox means 'not done')."""
        if move.rejection is not None and move.report is not None:
            body = {**move.rejection.to_dict(), "rejected_at": now.isoformat(), "moved_to": move.dest.name}
            _write_atomic(move.report, json.dumps(body, ensure_ascii=False, indent=2) + "\n")
        for name, dest in move.photos.items():
            if _plain_file(self.inbox / name):     # another form of the batch may have named it too
                move_file(self.inbox / name, dest)
        move_file(move.item.path, move.dest)

    def _log(self, moves: list[_Move], now: datetime) -> None:
        """Append what became of each file to var/intake.jsonl (for people; the journal is the record)."""
        lines = []
        for move in moves:
            result = move.item.result
            lines.append(dumps({"at": now.isoformat(), "file": move.item.name, "result": move.kind,
                                "form_id": result.id if isinstance(result, Form) else result.form_id,
                                "moved_to": self._rel(move.dest)}) + "\n")
            if move.kind != "accepted":
                log.info("%s → %s（%s）", move.item.name, self._rel(move.dest),
                         "重复" if move.kind == "duplicate" else "驳回")
        try:
            with (self.var / INTAKE_LOG).open("a", encoding="utf-8", errors="backslashreplace") as fh:
                fh.writelines(lines)
        except OSError as exc:      # the files have moved; only this log line is lost
            log.warning("%s: 无法写入处理记录: %s", self.var / INTAKE_LOG, exc)

    def sync_dirs(self) -> None:
        """Make the moves durable before a snapshot claims them done (once per snapshot, not per batch)."""
        for folder in self._touched:
            fsync_dir(folder)
        self._touched.clear()

    # crash recovery

    def recover(self, records: list[dict[str, Any]]) -> int:
        """Finish the moves of journaled forms whose files a crash left in the inbox; return how many."""
        finished = 0
        # The journal holds each file's text name; a name that is not UTF-8 is found by what it reads as.
        named = {text_name(n): n for n in os.listdir(self.inbox)} if records and self.inbox.is_dir() else {}
        for rec in records:
            src = self.inbox / named.get(rec.get("source", ""), rec.get("source", ""))
            if not rec.get("dest") or not _plain_file(src):
                continue
            dest = self._recorded_dest(rec["dest"])
            if dest.exists() or file_digest(src.read_bytes()) != rec.get("file_sha256"):
                continue
            for name, rel in rec.get("photos", {}).items():
                if not is_photo_name(name) or not fits_name(name):   # journaled by older versions: leave it be
                    continue
                if _plain_file(self.inbox / name) and not (photo := self._recorded_dest(rel)).exists():
                    move_file(self.inbox / name, photo)
            move_file(src, dest)
            finished += 1
            log.warning("%s：上次中断于日志写入之后，已补完移动到 %s", src.name, self._rel(dest))
        self._taken.clear()      # names were used behind the listings' backs
        if finished:
            fsync_dir(self.inbox)
        return finished

    def _recorded_dest(self, rel: str) -> Path:
        """Where the journal says a file goes; a name too long for the file system is shortened to a free one.

        Older versions journaled such names (NAME-1.json for a 255-byte NAME), and the move that failed on
        them was retried, and failed, at every start: no form at all was processed after that.
        """
        dest = self.var / rel
        if fits_name(dest.name):
            return dest
        fitted = self._free(dest.parent, dest.name)
        log.warning("%s：日志中的存档文件名超过文件系统上限，改存为 %s (name too long for the file system)",
                    text_name(rel), fitted.name)
        return fitted


def _refuse(form: Form, field: str, zh: str, en: str) -> Rejection:
    """FORM rejected for one problem, in FIELD."""
    return Rejection(form.source, (Problem(field, zh, en),), form.id)


def conflict(form: Form) -> Rejection:
    """The rejection for a form whose id was already processed with different content."""
    return _refuse(form,
        "id",
        f"表单编号 {form.id} 已经受理过，但这份内容不同（编号冲突）；请换一个新编号重新提交",
        f"form id {form.id} was already processed with different content (conflict); resubmit with a new id",
    )


def out_of_window(form: Form, now: datetime, config: EstateConfig, tickets: Tickets) -> Rejection | None:
    """The rejection for a form whose submitted_at lies outside SUBMITTED_WINDOW around NOW, else None."""
    back, ahead = SUBMITTED_WINDOW
    if now - back <= form.submitted_at <= now + ahead:
        return None
    shown, ahead_h = form.submitted_at.isoformat(), round(ahead.total_seconds() / 3600)
    return _refuse(form,
        "submitted_at",
        f"提交时间 {shown} 不可信：应在处理时间（{now.isoformat()}）之前 {back.days} 天到之后 {ahead_h} 小时之内，"
        f"请核对设备的日期、时间和时区后重新提交",
        f"submitted_at {shown} is implausible: it must lie between {back.days} days before and {ahead_h} hours "
        f"after the time of processing ({now.isoformat()}); check the device's date, time and time zone, and resubmit",
    )


def unknown_department(form: Form, now: datetime, config: EstateConfig, tickets: Tickets) -> Rejection | None:
    """The rejection for an update naming a department content/estate.toml does not have (who gets the work?)."""
    name = form.data.get("department") if form.type == "update" else None
    if not isinstance(name, str) or not config.departments or config.department(name) is not None:
        return None
    known = ", ".join(d.id for d in config.departments)
    return _refuse(form,
        "department",
        f"部门「{name}」不存在：应为 content/estate.toml 中某个部门的 id、名称或别名（{known}）",
        f"unknown department {name!r}: expected the id, name or alias of a department in content/estate.toml "
        f"({known})",
    )


def before_its_ticket(form: Form, now: datetime, config: EstateConfig, tickets: Tickets) -> Rejection | None:
    """The rejection for an update stamped before the ticket it changes was opened (its history would run back)."""
    if form.type != "update":
        return None
    data = form.data
    for field_name, number, form_id in (("ticket", data.get("ticket"), data.get("ticket_form")),
                                        ("duplicate", data.get("duplicate"), data.get("duplicate_form"))):
        ticket = named_ticket(tickets, number, form_id)
        if ticket is not None and form.submitted_at < ticket.opened_at:
            at, opened = form.submitted_at.isoformat(), ticket.opened_at.isoformat()
            return _refuse(form,
                "submitted_at",
                f"提交时间 {at} 早于{'被合并的' if field_name == 'duplicate' else ''}工单 {ticket.number} 的受理时间 "
                f"{opened}：工单历史不能倒退，请核对时间后重新提交",
                f"submitted_at {at} is before {'duplicate ' if field_name == 'duplicate' else ''}ticket "
                f"{ticket.number} was opened ({opened}): a ticket's history cannot run backwards; check the time",
            )
    return None


# Updates that record something without moving the work on: they may come in late, stamped before the last step.
TIMELESS_ACTIONS = ("note", "escalate", "merge")
# History entries that are no step of the work: notes and what the rules add (escalations, flags)
NOT_STEPS = ("note", "escalate", "flag", "merge")
STEP_LABELS = {**ACTION_LABELS, "received": "受理"}


def before_the_last_step(form: Form, now: datetime, config: EstateConfig, tickets: Tickets) -> Rejection | None:
    """The rejection for an update stamped before the step that allows it: a return visit or a close before the
    resolve, an arrive before the assign. Accepted, the deadline it meets counted as met before the work was done."""
    data = form.data
    if form.type != "update" or data.get("action") in TIMELESS_ACTIONS:
        return None
    ticket = named_ticket(tickets, data.get("ticket"), data.get("ticket_form"))
    last = next((e for e in reversed(ticket.history) if e.action not in NOT_STEPS), None) if ticket else None
    if last is None or form.submitted_at >= last.at:
        return None
    at, then, action = form.submitted_at.isoformat(), last.at.isoformat(), str(data.get("action"))
    return _refuse(form,
        "submitted_at",
        f"提交时间 {at} 早于工单 {ticket.number} 的上一步「{STEP_LABELS.get(last.action, last.action)}」（{then}）："
        f"「{STEP_LABELS.get(action, action)}」不能发生在它之前（否则时限会在工作完成前就算作达成），请核对时间后重新提交",
        f"submitted_at {at} is before ticket {ticket.number}'s last step ({last.action} at {then}): {action} cannot "
        f"come before it (its deadline would count as met before the work was done); check the time",
    )


# Checks a new form passes before the engine sees it: each says why it cannot be accepted, or None. They sit
# here, not in the engine, so that replaying a journal written before a check existed rebuilds the same tickets.
ADMISSION_CHECKS = (out_of_window, unknown_department, before_its_ticket, before_the_last_step)


def internal_error(source: str, form_id: str | None, exc: BaseException) -> Rejection:
    """The rejection for a form that made the processor fail: the form waits in var/rejected/ for a person."""
    what = printable(f"{type(exc).__name__}: {exc}")
    return Rejection(source, (Problem(
        "", f"处理此表单时出现内部错误（{what}），已隔离到驳回目录，请联系管理员",
        f"internal error while processing this form ({what}); quarantined in var/rejected/, tell the administrator",
    ),), form_id)


def photo_names(data: Any) -> list[str]:
    """The plain file names listed under "photos" (names with a path in them, and forms, are never touched)."""
    photos = data.get("photos") if isinstance(data, dict) else None
    if not isinstance(photos, list):
        return []
    return [p for p in photos if isinstance(p, str) and p and "/" not in p and "\\" not in p
            and p not in (".", "..") and not p.startswith(".") and is_photo_name(p) and fits_name(p)]


def _symlink(path: Path, name: str) -> Dropped | None:
    """A symlink in the inbox, rejected unread: its target may lie anywhere, and may vanish once archived."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return Dropped(path, st.st_mtime_ns, file_digest(b""), Rejection(name, (Problem(
        "", "这是一个符号链接（快捷方式），不予读取；请放入表单文件本身",
        "a symbolic link is not read: drop the form file itself"),)), None, name, st.st_size)


def _plain_file(path: Path) -> bool:
    """Tell whether PATH is a regular file itself, not a symlink to one (a name too long is neither)."""
    try:
        return path.is_file() and not path.is_symlink()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise


def _fitted(stem: str, tail: str, limit: int = DEST_NAME_BYTES) -> str:
    """STEM + TAIL in at most LIMIT bytes: the stem is cut short (at a character boundary) when it must be."""
    room = limit - name_bytes(tail)
    if room < 1:                # an "extension" too long to keep: cut the whole name instead
        stem, tail, room = stem + tail, "", limit
    raw = stem.encode("utf-8", "surrogatepass")
    if len(raw) <= room:
        return stem + tail
    return raw[:room].decode("utf-8", "ignore") + tail


def _beside(path: Path, suffix: str) -> Path:
    """A hidden temp name beside PATH: .NAME+SUFFIX, or one named by the process if that would be too long."""
    name = f".{path.name}{suffix}"
    return path.with_name(name if fits_name(name) else f".{os.getpid()}-{time.time_ns()}{suffix}")


def _split(name: str) -> tuple[str, str, str]:
    """NAME as (stem, ".", extension), or (NAME, "", "") when it has none."""
    return name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")


def _report_name(name: str) -> str:
    """The error report's name for a rejected file called NAME: x.json -> x.error.json."""
    return name.removesuffix(".json") + ".error.json"


def move_file(src: Path, dest: Path) -> None:
    """Move SRC to DEST, never over an existing file; copy and fsync across file systems."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise FileExistsError(f"{dest}: 目标已存在，不覆盖")
    try:
        os.rename(src, dest)         # atomic: a crash leaves the file in exactly one place
    except OSError as exc:
        if exc.errno != errno.EXDEV:     # the inbox on another file system: copy, fsync, then unlink
            raise
        _copy_into_place(src, dest)
        os.unlink(src)


def _copy_into_place(src: Path, dest: Path) -> None:
    """Copy SRC to DEST through a hidden name beside it, so DEST is only ever the whole file.

    A copy cut short (disk full) used to leave a 0-byte DEST: the journal's path then held nothing, and the
    real form, still in the inbox, was filed as a duplicate at the next start.
    """
    part = _beside(dest, ".part")
    try:
        shutil.copy2(src, part, follow_symlinks=False)     # a rejected symlink moves as itself
        if not part.is_symlink():
            with part.open("rb") as fh:
                os.fsync(fh.fileno())
        os.rename(part, dest)
    except BaseException:
        try:
            part.unlink(missing_ok=True)
        except OSError as exc:
            log.error("%s: 无法删除未复制完的文件: %s", part, exc)
        raise


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, ".tmp")
    with tmp.open("w", encoding="utf-8", errors="backslashreplace") as fh:   # a report must never fail on a name
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _loose_json(raw: bytes) -> Any:
    """Decode RAW as JSON if it decodes at all (to find a rejected form's photos); else None."""
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
