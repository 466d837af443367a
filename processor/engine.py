"""The processor's brain: one accepted Form + the current tickets -> an Outcome.

Pure and deterministic: no I/O, no clock (the time is passed in), the store's tickets are never
mutated (changed tickets are returned as new copies).  Replaying the journal through `apply_form`
therefore rebuilds exactly the same tickets.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from estate.calendar import calendar_for
from estate.contract import RECORD_TYPES
from estate.lifecycle import (
    ACTION_LABELS,
    FINAL_STATES,
    PREVIOUS,
    STATE_LABELS,
    allowed_actions,
    next_state,
    table_action,
)
from estate.policy import Policy
from processor.models import (
    Earlier,
    Event,
    Form,
    Outcome,
    Place,
    Problem,
    Rejection,
    Ticket,
    Tickets,
    earlier_among,
    named_ticket,
)
from processor.rules import SYSTEM, meet, running, shift_for_pause, start_clocks, triage, waive_open

log = logging.getLogger(__name__)

__all__ = ["apply_form"]

ENVELOPE = ("form", "id", "submitted_at", "channel", "staff", "form_version", "action", "ticket", "ticket_form")
RESIDENT_CHANNELS = ("online", "app")


class Refused(Exception):
    """An update the tickets or the lifecycle do not allow; becomes a Rejection."""

    def __init__(self, field: str, zh: str, en: str):
        super().__init__(en)
        self.problem = Problem(field, zh, en)


def apply_form(form: Form, tickets: Tickets, policy: Policy, now: datetime) -> Outcome:
    """Decide what FORM does: open a ticket, change one (or two, for a merge), or store a record."""
    if form.type in RECORD_TYPES:
        return _record(form, now)
    try:
        if form.type == "update":
            return _update(form, tickets, policy, now)
        return _open(form, tickets, policy, now)
    except Refused as refused:
        return Outcome(rejection=Rejection(form.source, (refused.problem,), form.id),
                       messages=[f"{form.id}: {refused.problem.zh}"])


def _record(form: Form, now: datetime) -> Outcome:
    record = {"form": form.type, "id": form.id, "submitted_at": form.submitted_at.isoformat(),
              "received_at": now.isoformat(), "notes": list(form.notes), "data": form.data}
    return Outcome(record=record, messages=[f"{form.id}: 已存档 {form.type}"])


def _who(form: Form) -> str:
    if form.data.get("staff"):
        return str(form.data["staff"])
    return "resident" if form.data.get("channel") in RESIDENT_CHANNELS else ""


def _open(form: Form, tickets: Tickets, policy: Policy, now: datetime) -> Outcome:
    """Open a new ticket, triaged and with its clocks started."""
    data, at = form.data, form.submitted_at
    found = triage(policy, form.type, data, at, tickets)
    ticket = Ticket(
        number=tickets.next_number(calendar_for(policy.calendar).local_date(at)),
        kind=form.type, state="received", opened_at=at, form_id=form.id, category=data["category"],
        urgency=found.urgency, department=found.department, channel=data.get("channel", ""),
        resident=dict(data["resident"]), description=data["description"], location=data.get("location", ""),
        photos=list(data.get("photos", [])), flags=list(dict.fromkeys(found.flags)), updated_at=now,
    )
    received = {"notes": list(form.notes)} if form.notes else {}
    ticket.history = [Event("received", at, _who(form), form.id, received), *found.events]
    start_clocks(policy, ticket, "received", at)
    flags = f"，标记 {'、'.join(ticket.flags)}" if ticket.flags else ""
    return Outcome(tickets=[ticket], messages=[
        f"{form.id}: 新建工单 {ticket.number}（{form.type}/{ticket.category} → {ticket.department}，"
        f"紧急程度 {ticket.urgency}{flags}）"])


def _find(tickets: Tickets, number: Any, form_id: Any, field: str) -> Ticket:
    """Fetch (a private copy of) the ticket named by number or by the id of the form that opened it."""
    ticket = named_ticket(tickets, number, form_id)
    if ticket is None:
        ref = number or f"（由表单 {form_id} 开立）"
        en_ref = number or f"(opened by form {form_id})"
        raise Refused(field, f"工单 {ref} 不存在", f"ticket {en_ref} does not exist")
    return _private(ticket)


def _private(ticket: Ticket) -> Ticket:
    """A copy of TICKET the engine may change. What is never changed again is shared, not copied: its
    history's events (frozen; a history is only appended to) and its finished clocks (rules change running
    ones only). Deep-copying them made each update cost as much as everything that had happened to the
    ticket: 1,000 notes on one complaint (each restarting its weekly follow-up clock) took minutes."""
    mine = copy.deepcopy(replace(ticket, history=[], deadlines=[]))
    mine.history = list(ticket.history)
    mine.deadlines = [copy.deepcopy(d) if running(d) else d for d in ticket.deadlines]
    return mine


def _update(form: Form, tickets: Tickets, policy: Policy, now: datetime) -> Outcome:
    """Apply one staff action to its ticket, as the lifecycle table allows."""
    data, at = form.data, form.submitted_at
    ticket = _find(tickets, data.get("ticket"), data.get("ticket_form"), "ticket")
    action = data["action"]
    if action == "merge":
        return _merge(form, ticket, tickets, now)
    key = table_action(action, data.get("satisfied"))
    new_state = next_state(ticket.state, key)
    if new_state is None:
        raise _not_allowed(ticket, key)
    if action == "close" and not _may_close(ticket, policy):
        raise Refused("action", f"工单 {ticket.number} 须先回访且住户满意才能关闭",
                      f"ticket {ticket.number} cannot close before a satisfied return visit")
    event = Event(action, at, _who(form), form.id, _event_data(form, ticket))
    if new_state == PREVIOUS:
        new_state = _paused_from(ticket)
    ticket.history.append(event)
    meet(ticket, action, at)
    EFFECTS.get(key, _nothing)(ticket, data, at, policy)
    ticket.state = new_state
    if key == "return_visit:unsatisfied":
        _redispatch(ticket, form, at, policy)
    ticket.updated_at = now
    return Outcome(tickets=[ticket], messages=[
        f"{form.id}: 工单 {ticket.number} {ACTION_LABELS[key]} → {STATE_LABELS[ticket.state]}"])


def _not_allowed(ticket: Ticket, key: str) -> Refused:
    allowed = allowed_actions(ticket.state)
    return Refused(
        "action",
        f"工单 {ticket.number} 当前状态为「{STATE_LABELS[ticket.state]}」，不能执行「{ACTION_LABELS[key]}」；"
        f"可执行：{'、'.join(ACTION_LABELS[a] for a in allowed) or '无'}",
        f"ticket {ticket.number} is {ticket.state}: {key} is not allowed (allowed: {', '.join(allowed) or 'none'})")


def _event_data(form: Form, ticket: Ticket) -> dict[str, Any]:
    data = {k: v for k, v in form.data.items() if k not in ENVELOPE}
    if form.data["action"] == "pause":
        data["from"] = ticket.state   # where `resume` goes back to
    if form.notes:
        data["notes"] = list(form.notes)
    return data


def _paused_from(ticket: Ticket) -> str:
    for event in reversed(ticket.history):
        if event.action == "pause":
            return event.data.get("from", "assigned")
    return "assigned"


def _may_close(ticket: Ticket, policy: Policy) -> bool:
    """Tell whether TICKET may close: kinds that need a return visit need a satisfied one after the last resolve."""
    if ticket.kind not in policy.lifecycle.return_visit_kinds:
        return True
    for event in reversed(ticket.history):
        if event.action == "return_visit" and event.data.get("satisfied") is True:
            return True
        if event.action == "resolve":
            return False
    return False


def _nothing(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    return None


def _assign(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    ticket.assignee, ticket.department = data["assignee"], data["department"]


def _pause(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    ticket.paused_at = at


def _resume(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    if ticket.paused_at:
        shift_for_pause(ticket, ticket.paused_at, at)
    ticket.paused_at = None


def _resolve(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    waive_open(ticket)
    start_clocks(policy, ticket, "resolved", at)


def _reopen(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    waive_open(ticket)
    start_clocks(policy, ticket, "received", at, skip=("acknowledge",))


def _close(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    waive_open(ticket)


def _escalate(ticket: Ticket, data: dict[str, Any], at: datetime, policy: Policy) -> None:
    if "escalated" not in ticket.flags:
        ticket.flags.append("escalated")


EFFECTS: dict[str, Callable[[Ticket, dict[str, Any], datetime, Policy], None]] = {
    "assign": _assign,
    "pause": _pause,
    "resume": _resume,
    "resolve": _resolve,
    "return_visit:unsatisfied": _reopen,
    "reopen": _reopen,
    "close": _close,
    "escalate": _escalate,
}


def _redispatch(ticket: Ticket, form: Form, at: datetime, policy: Policy) -> None:
    """After an unsatisfied return visit, send the work back to whoever did it."""
    if not ticket.assignee:
        return
    ticket.history.append(Event("assign", at, SYSTEM, form.id, {
        "assignee": ticket.assignee, "department": ticket.department, "reason": "回访不满意，重新派工"}))
    ticket.state = next_state(ticket.state, "assign") or ticket.state
    meet(ticket, "assign", at)


def _merge(form: Form, primary: Ticket, tickets: Tickets, now: datetime) -> Outcome:
    """Merge the duplicate named by the form into PRIMARY (the ticket the update names)."""
    data, at, by = form.data, form.submitted_at, _who(form)
    if primary.state in FINAL_STATES:
        raise Refused("ticket", f"不能合并到{STATE_LABELS[primary.state]}的工单 {primary.number}",
                      f"cannot merge into ticket {primary.number}: it is {primary.state}")
    dup = _find(tickets, data.get("duplicate"), data.get("duplicate_form"), "duplicate")
    if dup.number == primary.number:
        raise Refused("duplicate", "不能把工单合并到它自己", "cannot merge a ticket into itself")
    if next_state(dup.state, "merge") is None:
        raise _not_allowed(dup, "merge")
    dup.state, dup.merged_into, dup.updated_at = "merged", primary.number, now
    waive_open(dup)
    dup.history.append(Event("merge", at, by, form.id, {"into": primary.number}))
    primary.history.append(Event("merge", at, by, form.id, {"duplicate": dup.number}))
    primary.updated_at = now
    return Outcome(tickets=[primary, dup], messages=[f"{form.id}: 工单 {dup.number} 并入 {primary.number}"])


class MemoryTickets:
    """A dict-backed Tickets for tests, replays and dry runs (the real store is processor/store.py)."""

    def __init__(self) -> None:
        self.tickets: dict[str, Ticket] = {}
        self._by_form: dict[str, str] = {}
        self._counters: dict[date, int] = {}

    def get(self, number: str) -> Ticket | None:
        """Return the ticket numbered NUMBER."""
        return self.tickets.get(number)

    def by_form(self, form_id: str) -> Ticket | None:
        """Return the ticket opened by form FORM_ID."""
        number = self._by_form.get(form_id)
        return self.tickets.get(number) if number else None

    def earlier(self, place: Place, since: datetime, until: datetime, *, besides: str, most: int) -> Earlier:
        """See Tickets.earlier."""
        return earlier_among(self.tickets.values(), place, since, until, besides=besides, most=most)

    def next_number(self, day: date) -> str:
        """Return the next free number of DAY (counted from what is stored, so replays agree)."""
        count = self._counters.get(day, 0) + 1
        return f"WO-{day:%Y%m%d}-{count:04d}"

    def save(self, outcome: Outcome) -> None:
        """Store the tickets an outcome created or changed."""
        for ticket in outcome.tickets:
            if ticket.number not in self.tickets:
                day = date(int(ticket.number[3:7]), int(ticket.number[7:9]), int(ticket.number[9:11]))
                self._counters[day] = max(self._counters.get(day, 0), int(ticket.number[12:]))
            self.tickets[ticket.number] = ticket
            self._by_form.setdefault(ticket.form_id, ticket.number)
