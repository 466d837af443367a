"""The estate's rules applied to tickets: urgency, routing, escalation and deadline clocks.

Every number and word comes from the policy (content/policy.toml); this module only knows how to
apply rows of it.  Pure functions: the time is always passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from estate.calendar import calendar_for
from estate.policy import DeadlineRule, Policy
from processor.models import Deadline, Earlier, Event, Place, Ticket, Tickets

log = logging.getLogger(__name__)

SYSTEM = "system"


@dataclass
class Triage:
    """What the rules decided about a new ticket before it is stored."""

    urgency: int
    department: str
    flags: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def keyword_matches(policy: Policy, kind: str, text: str) -> tuple[int | None, list[str]]:
    """Return the most urgent level and the flags that keyword rules for KIND find in TEXT."""
    hits = [r for r in policy.urgency.keywords
            if (not r.kinds or kind in r.kinds) and any(w in text for w in r.words)]
    levels = [r.urgency for r in hits if r.urgency]
    return (min(levels) if levels else None), list(dict.fromkeys(r.flag for r in hits if r.flag))


def base_urgency(policy: Policy, kind: str, data: dict[str, Any]) -> tuple[int, str]:
    """Urgency from the form, else from keywords, else the kind's default; say which."""
    given = whole_number(data.get("urgency"))
    if given is not None:
        return given, "form"
    level, _ = keyword_matches(policy, kind, _text(data))
    if level:
        return level, "keyword"
    return policy.urgency.defaults.get(kind, 3), "default"


def whole_number(value: Any) -> int | None:
    """VALUE as an int if it is one: JSON Schema's "integer" also admits 1.0, so an integral float counts."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _text(data: dict[str, Any]) -> str:
    return f"{data.get('description', '')} {data.get('location', '')}"


def triage(policy: Policy, kind: str, data: dict[str, Any], at: datetime, tickets: Tickets) -> Triage:
    """Decide urgency, department and escalation flags for a new ticket of KIND opened at AT."""
    urgency, _ = base_urgency(policy, kind, data)
    route = policy.route(kind, data["category"])
    result = Triage(urgency, route.department if route else "")
    _, flags = keyword_matches(policy, kind, _text(data))
    result.flags.extend(flags)
    for flag in ("important", "emergency"):   # ticked on the form by staff
        if data.get(flag) is True:
            result.flags.append(flag)
    for rule in ESCALATIONS:
        rule(policy, kind, data, at, tickets, result)
    return result


def _vulnerable(policy: Policy, kind: str, data: dict[str, Any], at: datetime, tickets: Tickets, t: Triage) -> None:
    """A vulnerable resident's request is raised one level (configurable)."""
    if kind in policy.escalation.vulnerable_kinds and data.get("resident", {}).get("vulnerable") is True:
        raised = max(1, t.urgency - policy.escalation.vulnerable_raise)
        t.flags.append("vulnerable")
        t.events.append(Event("escalate", at, SYSTEM, data["id"],
                              {"reason": "vulnerable", "urgency": raised, "was": t.urgency}))
        t.urgency = raised


def _safety(policy: Policy, kind: str, data: dict[str, Any], at: datetime, tickets: Tickets, t: Triage) -> None:
    """A safety complaint is urgency 1 and management is told."""
    esc = policy.escalation
    if kind == "complaint" and data["category"] in esc.safety_categories:
        t.flags.extend(["safety", "management_notified"])
        t.events.append(Event("escalate", at, SYSTEM, data["id"],
                              {"reason": "safety", "to": esc.notify_department, "urgency": 1, "was": t.urgency}))
        t.urgency = 1


def _same_place(data: dict[str, Any], at: datetime, tickets: Tickets, since: datetime, kind: str) -> Earlier:
    place = Place.of(data.get("resident", {}), kind, data["category"])
    return tickets.earlier(place, since, at, besides=data["id"], most=LATEST_MAX)


def _repeat(policy: Policy, kind: str, data: dict[str, Any], at: datetime, tickets: Tickets, t: Triage) -> None:
    """The same building+unit+category complained about again within N days goes to the supervisor."""
    esc = policy.escalation
    if kind not in esc.repeat_kinds:
        return
    earlier = _same_place(data, at, tickets, at - timedelta(days=esc.repeat_days), kind)
    if earlier.count:
        t.flags.append("repeat_complaint")
        t.events.append(Event("escalate", at, SYSTEM, data["id"],
                              {"reason": "repeat", "to": esc.supervisor, **_latest(earlier, "previous")}))


def _duplicate(policy: Policy, kind: str, data: dict[str, Any], at: datetime, tickets: Tickets, t: Triage) -> None:
    """Same unit and category within a few hours is flagged a possible duplicate, never merged."""
    since = at - timedelta(hours=policy.escalation.duplicate_hours)
    earlier = _same_place(data, at, tickets, since, kind)
    if earlier.count:
        t.flags.append("possible_duplicate")
        t.events.append(Event("flag", at, SYSTEM, data["id"], {"flag": "possible_duplicate", **_latest(earlier, "of")}))


LATEST_MAX = 10  # earlier tickets an event names: the most recent, and how many there were in all


def _latest(earlier: Earlier, key: str) -> dict[str, Any]:
    """{KEY: the numbers of the latest LATEST_MAX earlier tickets} and, when there were more, their count. Naming
    every one made each ticket at a busy place larger than the last: 2,000 suggestions on one building, a 40 MB store."""
    found: dict[str, Any] = {key: list(earlier.latest)}
    if earlier.count > LATEST_MAX:
        found["count"] = earlier.count
    return found


ESCALATIONS = (_vulnerable, _safety, _repeat, _duplicate)   # applied in this order to a new ticket


def rule_matches(rule: DeadlineRule, ticket: Ticket) -> bool:
    """Tell whether a deadline row applies to TICKET."""
    return ((not rule.kinds or ticket.kind in rule.kinds)
            and (not rule.urgency or ticket.urgency in rule.urgency)
            and (not rule.categories or ticket.category in rule.categories)
            and (not rule.channels or ticket.channel in rule.channels)
            and all(f in ticket.flags for f in rule.flags))


def applicable_rules(policy: Policy, ticket: Ticket, start: str) -> list[DeadlineRule]:
    """The first matching row of each deadline name whose clock starts at START."""
    chosen: dict[str, DeadlineRule] = {}
    for rule in policy.deadlines:
        if rule.name not in chosen and rule_matches(rule, ticket):
            chosen[rule.name] = rule
    return [r for r in chosen.values() if r.start == start]


def due_time(policy: Policy, rule: DeadlineRule, start: datetime) -> datetime:
    """When a clock of RULE started at START runs out."""
    if rule.same_day:
        return calendar_for(policy.calendar).end_of_working_day(start)
    if rule.working_days:
        return calendar_for(policy.calendar).add_working_days(start, rule.working_days)
    return start + timedelta(minutes=rule.minutes)


def start_clocks(policy: Policy, ticket: Ticket, start: str, at: datetime, skip: tuple[str, ...] = ()) -> None:
    """Add the deadlines whose clock starts at START (received or resolved) to TICKET."""
    for rule in applicable_rules(policy, ticket, start):
        if rule.name not in skip:
            ticket.deadlines.append(_deadline(policy, rule, at))


def _deadline(policy: Policy, rule: DeadlineRule, at: datetime) -> Deadline:
    return Deadline(rule.name, due_time(policy, rule, at), start=at, met_by=list(rule.met_by),
                    repeat_seconds=rule.repeat_minutes * 60.0)


def open_deadlines(ticket: Ticket) -> list[Deadline]:
    """The clocks still running: neither met nor waived. Only these are ever changed (met, waived, moved by a
    pause): a finished clock stays as it is, so the engine's copies of a ticket share them."""
    return [d for d in ticket.deadlines if running(d)]


def running(d: Deadline) -> bool:
    return d.met_at is None and not d.waived


def meet(ticket: Ticket, action: str, at: datetime) -> None:
    """Mark the running clocks that ACTION meets, restarting repeating ones (weekly follow-up)."""
    for d in open_deadlines(ticket):
        if action in d.met_by:
            d.met_at = at
            if d.repeat_seconds:
                ticket.deadlines.append(Deadline(d.name, at + timedelta(seconds=d.repeat_seconds), start=at,
                                                 met_by=list(d.met_by), repeat_seconds=d.repeat_seconds))


def waive_open(ticket: Ticket) -> None:
    """Stop every running clock (the ticket was resolved, closed, merged or reopened)."""
    for d in open_deadlines(ticket):
        d.waived = True


def shift_for_pause(ticket: Ticket, paused_from: datetime, resumed_at: datetime) -> None:
    """Move the running clocks later by the time the ticket was paused."""
    delta = max(resumed_at - paused_from, timedelta(0))
    for d in open_deadlines(ticket):
        d.due += delta
        d.paused_seconds += delta.total_seconds()


# The alerts a running clock can raise, in rising order: what each means is data, the thresholds are policy.
ALERT_LABELS = {"at_risk": "即将超时", "overdue": "已超时"}


def alert_timeline(ticket: Ticket, policy: Policy, now: datetime) -> tuple[list[tuple[str, Deadline]], datetime | None]:
    """The running clocks of TICKET at risk (at_risk_fraction elapsed) or overdue at NOW, with which of the two; and
    the first moment after NOW at which they change by time alone (None: never, or the ticket is paused): a
    watcher looks at the ticket again then. Each clock's moments are worked out once."""
    clock = ticket.paused_at if ticket.paused_at else now   # a paused ticket's clock stands still
    found, moments = [], []
    for d in open_deadlines(ticket):
        at_risk, overdue = _at_risk_from(ticket, d, policy), d.due + timedelta(microseconds=1)
        if clock >= overdue:
            found.append(("overdue", d))
        elif clock >= at_risk:
            found.append(("at_risk", d))
        moments += [m for m in (at_risk, overdue) if m > now]
    return found, None if ticket.paused_at else min(moments, default=None)


def _at_risk_from(ticket: Ticket, d: Deadline, policy: Policy) -> datetime:
    """When D counts as at risk: once at_risk_fraction of its time (pauses left out) has gone by."""
    start = d.start or ticket.opened_at
    total = (d.due - start).total_seconds() - d.paused_seconds
    if total <= 0:
        return d.due + timedelta(microseconds=1)     # no time to speak of: only overdue
    return start + timedelta(seconds=d.paused_seconds + policy.escalation.at_risk_fraction * total)
