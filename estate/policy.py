"""The estate's service rules: `content/policy.toml`, as a documented schema.

Deadlines, urgency, routing, escalation and the business calendar are rows of data here, read by
the form processor (processor/rules.py) and rendered into the handbook (render/policy_views.py), so
the handbook can never disagree with the processor.  Like estate/config.py, every field carries its
documentation and `load_policy` reports every problem at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from estate.config import doc, load_toml_schema
from estate.contract import TICKET_KINDS

log = logging.getLogger(__name__)

POLICY_FILE = "content/policy.toml"
DEADLINE_STARTS = ("received", "resolved")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_OFFSET = re.compile(r"^[+-]([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class CalendarPolicy:
    """[calendar]: working hours, public holidays and make-up working days (调休)."""

    timezone: str = doc("UTC offset used for local dates and working hours; keep it equal to estate.timezone.",
                        default="+08:00")
    work_start: str = doc("Start of the working day, HH:MM.", default="08:30")
    work_end: str = doc("End of the working day, HH:MM; 'same day' deadlines fall here.", default="17:30")
    workdays: tuple[int, ...] = doc("ISO weekdays that are working days (1 = Monday).", factory=lambda: (1, 2, 3, 4, 5))
    holidays: tuple[str, ...] = doc("Public holidays (YYYY-MM-DD) that are not working days.", factory=tuple)
    makeup_days: tuple[str, ...] = doc("Weekend days that are working days (调休), YYYY-MM-DD.", factory=tuple)


@dataclass(frozen=True)
class DeadlineRule:
    """[[deadlines]]: one clock a ticket is held to; for each name the first matching row wins."""

    name: str = doc("Deadline name: acknowledge, assign, on_site, resolve, answer, contact, follow_up, return_visit.")
    label: str = doc("Chinese label shown in the handbook and on tickets, e.g. 到场.")
    # bounded so that a due time stays a date (minutes = 10^12 overflowed timedelta on every ticket): a year
    minutes: int = doc("Wall-clock minutes from the start (0 when working_days or same_day is used).", default=0,
                       at_least=0, at_most=525_600)
    working_days: int = doc("Working days from the start, counted in working hours of the calendar.", default=0,
                            at_least=0, at_most=250)
    same_day: bool = doc("Due at the end of the working day of the start (the next one after hours).",
                         default=False)
    start: str = doc("When the clock starts: received (the form's submitted_at) or resolved.", default="received")
    kinds: tuple[str, ...] = doc("Ticket kinds the row applies to; empty means every kind.", factory=tuple)
    urgency: tuple[int, ...] = doc("Urgency levels the row applies to; empty means every level.", factory=tuple)
    categories: tuple[str, ...] = doc("Categories the row applies to; empty means every category.", factory=tuple)
    channels: tuple[str, ...] = doc("Intake channels the row applies to; empty means every channel.", factory=tuple)
    flags: tuple[str, ...] = doc("Flags the ticket must carry (e.g. emergency, important).", factory=tuple)
    met_by: tuple[str, ...] = doc("Update actions that meet the deadline, e.g. [\"arrive\"].", factory=tuple)
    repeat_minutes: int = doc("When met, a new clock of this length starts while the ticket is open (0: once).",
                              default=0, at_least=0, at_most=525_600)
    note: str = doc("Where the rule comes from, shown in the handbook table.", default="")


@dataclass(frozen=True)
class KeywordRule:
    """[[urgency.keywords]]: words in a description that set urgency or a flag when the form gives none."""

    words: tuple[str, ...] = doc("Any of these words matches (plain substring, Chinese as written).")
    urgency: int = doc("Urgency given by a match (1-4); 0 leaves urgency alone.", default=0)
    flag: str = doc("Flag given by a match, e.g. emergency; empty for none.", default="")
    kinds: tuple[str, ...] = doc("Ticket kinds whose text is searched; empty means every kind.", factory=tuple)


@dataclass(frozen=True)
class UrgencyPolicy:
    """[urgency]: levels, defaults per ticket kind and keyword rules."""

    labels: tuple[str, ...] = doc("Chinese names of levels 1 to 4, in order.",
                                  factory=lambda: ("人身安全", "基本生活受影响", "一般维修", "咨询建议"))
    defaults: dict[str, int] = doc("Urgency of a ticket kind when neither the form nor a keyword sets it.",
                                   factory=dict)
    keywords: tuple[KeywordRule, ...] = doc("Keyword rules, applied in order; the most urgent match wins.",
                                            factory=tuple)


@dataclass(frozen=True)
class Route:
    """[[routes]]: a category of a ticket kind and the department that works it."""

    kind: str = doc("Ticket kind: repair, complaint, inquiry, suggestion, praise or service.")
    category: str = doc("Category id used in forms, e.g. water.")
    name: str = doc("Chinese name of the category, e.g. 给排水.")
    department: str = doc("Department id from content/estate.toml that the ticket goes to.")


@dataclass(frozen=True)
class EscalationPolicy:
    """[escalation]: when a ticket is raised, flagged or sent up."""

    vulnerable_raise: int = doc("Levels a vulnerable resident's ticket is made more urgent.", default=1,
                                at_least=0, at_most=3)
    vulnerable_kinds: tuple[str, ...] = doc("Ticket kinds raised for vulnerable residents.",
                                            factory=lambda: ("repair", "complaint", "service", "inquiry"))
    safety_categories: tuple[str, ...] = doc("Complaint categories treated as safety: urgency 1, management told.",
                                             factory=lambda: ("safety",))
    notify_department: str = doc("Department told of safety complaints.", default="management")
    repeat_kinds: tuple[str, ...] = doc("Ticket kinds for the repeat rule.", factory=lambda: ("complaint",))
    repeat_days: int = doc("Same building+unit+category again within this many days goes to the supervisor.",
                           default=30, at_least=0, at_most=3660)
    supervisor: str = doc("Who repeat complaints are escalated to.", default="客服主管")
    at_risk_fraction: float = doc("Share of a deadline's time elapsed after which it is 'at risk'.", default=0.75)
    duplicate_hours: float = doc("Same unit and category within this many hours is flagged a possible duplicate.",
                                 default=4.0, at_least=0, at_most=8784)


@dataclass(frozen=True)
class LifecyclePolicy:
    """[lifecycle]: closing rules."""

    return_visit_kinds: tuple[str, ...] = doc("Ticket kinds that cannot close without a satisfied return visit.",
                                              factory=lambda: ("repair", "complaint", "service"))


@dataclass(frozen=True)
class Policy:
    """The whole of content/policy.toml."""

    calendar: CalendarPolicy = doc("The [calendar] table.", factory=CalendarPolicy)
    urgency: UrgencyPolicy = doc("The [urgency] table.", factory=UrgencyPolicy)
    deadlines: tuple[DeadlineRule, ...] = doc("The [[deadlines]] rows, in priority order.", factory=tuple)
    routes: tuple[Route, ...] = doc("The [[routes]] rows: every accepted category of every ticket kind.",
                                    factory=tuple)
    escalation: EscalationPolicy = doc("The [escalation] table.", factory=EscalationPolicy)
    lifecycle: LifecyclePolicy = doc("The [lifecycle] table.", factory=LifecyclePolicy)

    def categories(self, kind: str) -> tuple[str, ...]:
        """List the category ids accepted for ticket kind KIND."""
        return tuple(r.category for r in self.routes if r.kind == kind)

    def route(self, kind: str, category: str) -> Route | None:
        """Find the routing row of KIND/CATEGORY."""
        for r in self.routes:
            if r.kind == kind and r.category == category:
                return r
        return None


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy TOML file."""
    return load_toml_schema(Policy, Path(path), _check_semantics)


def check_departments(policy: Policy, department_ids: set[str]) -> list[str]:
    """List routing rows and settings that name a department missing from content/estate.toml."""
    problems = [
        f"routes: {r.kind}/{r.category} goes to unknown department {r.department!r} (部门不存在)"
        for r in policy.routes if r.department not in department_ids
    ]
    if policy.escalation.notify_department not in department_ids:
        problems.append(f"escalation.notify_department: unknown department {policy.escalation.notify_department!r}")
    return problems


def _check_semantics(policy: Policy, problems: list[str]) -> None:
    cal = policy.calendar
    if not _OFFSET.match(cal.timezone):
        problems.append(f"calendar.timezone: {cal.timezone!r} is not an offset like +08:00")
    for key in ("work_start", "work_end"):
        if not _HHMM.match(getattr(cal, key)):
            problems.append(f"calendar.{key}: {getattr(cal, key)!r} is not HH:MM")
    if not problems and cal.work_start >= cal.work_end:
        problems.append("calendar: work_start must be before work_end")
    for key in ("holidays", "makeup_days"):
        for day in getattr(cal, key):
            try:
                date.fromisoformat(day)
            except ValueError:
                problems.append(f"calendar.{key}: {day!r} is not a date YYYY-MM-DD")
    problems.extend(f"calendar.workdays: {d} is not 1-7" for d in cal.workdays if not 1 <= d <= 7)
    _check_urgency(policy.urgency, problems)
    for i, rule in enumerate(policy.deadlines):
        _check_deadline(rule, f"deadlines[{i}]", problems)
    seen: set[tuple[str, str]] = set()
    for i, route in enumerate(policy.routes):
        if route.kind not in TICKET_KINDS:
            problems.append(f"routes[{i}].kind: {route.kind!r} is not one of {', '.join(TICKET_KINDS)}")
        if (route.kind, route.category) in seen:
            problems.append(f"routes[{i}]: {route.kind}/{route.category} is listed twice")
        seen.add((route.kind, route.category))
    for kind in TICKET_KINDS:
        if not policy.categories(kind):
            problems.append(f"routes: ticket kind {kind!r} has no category")
    if not 0 < policy.escalation.at_risk_fraction < 1:
        problems.append("escalation.at_risk_fraction: must be between 0 and 1")


def _check_urgency(urgency: UrgencyPolicy, problems: list[str]) -> None:
    if len(urgency.labels) != 4:
        problems.append("urgency.labels: expected 4 labels, for levels 1 to 4")
    for kind, level in urgency.defaults.items():
        if kind not in TICKET_KINDS:
            problems.append(f"urgency.defaults.{kind}: unknown ticket kind")
        if not isinstance(level, int) or not 1 <= level <= 4:
            problems.append(f"urgency.defaults.{kind}: {level!r} is not 1-4")
    for i, rule in enumerate(urgency.keywords):
        if not 0 <= rule.urgency <= 4:
            problems.append(f"urgency.keywords[{i}].urgency: {rule.urgency} is not 0-4")
        if not rule.words:
            problems.append(f"urgency.keywords[{i}].words: empty")
        elif not all(w.strip() for w in rule.words):  # "" is in every description: every ticket would match
            problems.append(f"urgency.keywords[{i}].words: an empty word matches every description")


def _check_deadline(rule: DeadlineRule, where: str, problems: list[str]) -> None:
    clocks = sum((rule.minutes > 0, rule.working_days > 0, rule.same_day))
    if clocks != 1:
        problems.append(f"{where}: give exactly one of minutes, working_days or same_day")
    if rule.start not in DEADLINE_STARTS:
        problems.append(f"{where}.start: {rule.start!r} is not one of {', '.join(DEADLINE_STARTS)}")
    if not rule.met_by:
        problems.append(f"{where}.met_by: name at least one action that meets the deadline")
    problems.extend(f"{where}.kinds: unknown ticket kind {k!r}" for k in rule.kinds if k not in TICKET_KINDS)
    problems.extend(f"{where}.urgency: {u} is not 1-4" for u in rule.urgency if not 1 <= u <= 4)
