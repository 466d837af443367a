"""The form processor's small models, passed between intake, engine and store.

The flow, top to bottom:
  intake.py   a dropped file  -> read_form()      -> Form | Rejection      (processor/forms.py)
  engine.py   Form + Tickets  -> apply_form()     -> Outcome               (pure: no I/O, clock passed in)
  store.py    Outcome         -> journal + TinyDB (the only module that imports tinydb)

The journal records accepted forms with the time they were processed, so replaying the journal
through `apply_form` rebuilds exactly the same tickets: the engine must be deterministic given
(form, tickets, policy, now).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a form, said in Chinese and English, tied to a field path ("resident.phone")."""

    field: str
    zh: str
    en: str


@dataclass(frozen=True)
class Form:
    """A dropped form that passed the contract (JSON Schema + type checks)."""

    type: str                 # repair, complaint, inquiry, suggestion, praise, service, update, survey,
                              # duty_log, handover, quiz_result
    id: str                   # the submitter's idempotency key
    submitted_at: datetime    # timezone-aware
    data: dict[str, Any]      # the whole JSON object as submitted (unknown extra fields kept)
    source: str = ""          # the file name it arrived as
    digest: str = ""          # sha256 of the canonical JSON (sorted keys): same id + other digest = conflict
    notes: tuple[str, ...] = ()  # e.g. "converted from GBK": recorded in the journal and the ticket history


@dataclass(frozen=True)
class Rejection:
    """A form that cannot be accepted; written beside it as NAME.error.json in var/rejected/."""

    source: str
    problems: tuple[Problem, ...]
    form_id: str | None = None
    incomplete: bool = False  # the file ends before its JSON does: its writer may not have finished

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.source, "form_id": self.form_id, "problems": [asdict(p) for p in self.problems]}


@dataclass(frozen=True)
class Event:
    """One entry of a ticket's history: who did what when. Frozen: the engine's copies of a ticket share
    their history's events (see engine._private)."""

    action: str               # received, acknowledge, assign, arrive, pause, resume, resolve, return_visit,
                              # reopen, close, escalate, note, merge, flag, deadline
    at: datetime
    by: str = ""              # staff name, "resident", or "system" for rule-made events
    form_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Deadline:
    """A clock the ticket is held to: e.g. on_site within 30 min of receipt."""

    name: str                 # acknowledge, assign, on_site, resolve, answer, contact, follow_up, return_visit
    due: datetime
    met_at: datetime | None = None
    paused_seconds: float = 0.0   # time spent paused, already added into `due`
    start: datetime | None = None  # when the clock started (for the 75% "at risk" mark)
    waived: bool = False          # no longer owed (e.g. weekly follow-up once the ticket is resolved)
    met_by: list[str] = field(default_factory=list)  # update actions that meet it (from the policy row)
    repeat_seconds: float = 0.0   # once met, a new clock this long starts (weekly complaint follow-up)


@dataclass
class Ticket:
    """A work order (《服务工作单》)."""

    number: str               # WO-YYYYMMDD-NNNN
    kind: str                 # the form type that opened it: repair, complaint, inquiry, ...
    state: str                # received, acknowledged, assigned, on_site, paused, resolved, reopened, closed, merged
    opened_at: datetime
    form_id: str
    category: str = ""
    urgency: int = 3
    department: str = ""
    assignee: str = ""
    channel: str = ""
    resident: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    location: str = ""
    photos: list[str] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)        # possible_duplicate, repeat_complaint, vulnerable, ...
    history: list[Event] = field(default_factory=list)
    paused_at: datetime | None = None
    merged_into: str = ""
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (datetimes as ISO 8601 strings) for the store and exports."""
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Ticket:
        data = dict(raw)
        for key in ("opened_at", "paused_at", "updated_at"):
            data[key] = _dt(data.get(key))
        data["deadlines"] = [
            Deadline(**{**d, "due": _dt(d["due"]), "met_at": _dt(d.get("met_at")), "start": _dt(d.get("start"))})
            for d in data.get("deadlines", [])
        ]
        data["history"] = [
            Event(e["action"], _dt(e["at"]), e.get("by", ""), e.get("form_id", ""), e.get("data", {}))
            for e in data.get("history", [])
        ]
        return cls(**data)


@dataclass(frozen=True)
class Place:
    """Where and what a ticket is about, as the duplicate and repeat rules compare tickets. None of it
    changes once the ticket is open, so stores may index tickets by it."""

    building: str
    unit: str
    kind: str
    category: str

    @classmethod
    def of(cls, resident: dict[str, Any], kind: str, category: str) -> Place:
        return cls(str(resident.get("building", "")), str(resident.get("unit", "")), kind, category)


@dataclass(frozen=True)
class Earlier:
    """Tickets opened earlier at one place: the numbers of the latest few, oldest first, and how many in all."""

    latest: tuple[str, ...]
    count: int


def earlier_among(tickets: Iterable[Ticket], place: Place, since: datetime, until: datetime, *, besides: str,
                  most: int) -> Earlier:
    """Tickets.earlier answered by looking at each of TICKETS (a dict-backed fake; the store uses its index)."""
    found = sorted((t.opened_at, t.number) for t in tickets
                   if Place.of(t.resident, t.kind, t.category) == place and since <= t.opened_at <= until
                   and t.state != "merged" and t.form_id != besides)
    return Earlier(tuple(number for _, number in found[-most:] if most), len(found))


@dataclass
class Outcome:
    """What the engine decided for one form. Exactly one of `tickets` or `rejection` is meaningful."""

    tickets: list[Ticket] = field(default_factory=list)   # created or changed tickets, complete new versions
    rejection: Rejection | None = None
    record: dict[str, Any] | None = None                  # non-ticket forms (survey, duty_log, handover,
                                                          # quiz_result): the record to store
    messages: list[str] = field(default_factory=list)     # human-readable log lines


class Tickets(Protocol):
    """What the engine may ask of the store. The store implements it; tests may use a dict-backed fake."""

    def get(self, number: str) -> Ticket | None: ...

    def by_form(self, form_id: str) -> Ticket | None:
        """The ticket opened by the form with id FORM_ID (updates may name a ticket by `ticket_form`)."""
        ...

    def earlier(self, place: Place, since: datetime, until: datetime, *, besides: str, most: int) -> Earlier:
        """The tickets at PLACE opened from SINCE to UNTIL (both included), merged ones and the one form
        BESIDES opened left out: the numbers of the latest MOST, and how many there were (duplicate and
        repeat rules). Asked for every new ticket: a store answers from an index, not ticket by ticket."""
        ...

    def next_number(self, day: date) -> str:
        """The next free WO-YYYYMMDD-NNNN for DAY (the estate's local date)."""
        ...


def named_ticket(tickets: Tickets, number: Any, form_id: Any) -> Ticket | None:
    """The ticket an update names, by its number or by the id of the form that opened it; None if neither finds one."""
    return tickets.get(number) if number else tickets.by_form(form_id) if form_id else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
