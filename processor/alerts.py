"""Deadline alerts: which running clocks are at risk (75% of their time gone) or overdue.

The handbook promises them (procedures/urgency-deadlines.md §4.5): '即将超时' at 75%, '已超时' past the deadline.
They depend on the time, not on any form, so they are never journaled: `export` computes them at --now (or the
clock), and `once`/`watch` log each ticket's new alert once, remembering what they said in var/alerts.json.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from estate.policy import Policy
from processor.models import Deadline, Ticket
from processor.rules import ALERT_LABELS, alert_timeline
from render.writer import atomic_file

log = logging.getLogger(__name__)

ALERTS = "alerts.json"      # in var/: ticket number -> the alerts last logged for it
# New alerts logged one by one in a check; the rest are counted in one line. The first check of an office's
# store can find thousands overdue: a line each flooded the log (and, with its standard error on a pipe no one
# read, blocked the watcher: the benchmark hung). export lists them all.
LINES_MAX = 20


def deadline_labels(policy: Policy) -> dict[str, str]:
    """Deadline name -> its Chinese label, from the policy's rows (the first row of a name names it)."""
    labels: dict[str, str] = {}
    for rule in policy.deadlines:
        labels.setdefault(rule.name, rule.label or rule.name)
    return labels


def ticket_alerts(ticket: Ticket, policy: Policy, now: datetime, labels: dict[str, str]) -> list[dict[str, Any]]:
    """TICKET's alerts at NOW as plain data: [{"alert": "overdue", "deadline": "resolve", "label": "解决", "due": ...}].
    LABELS: deadline_labels(POLICY), made once by the caller for all tickets."""
    return [{"alert": alert, "deadline": d.name, "label": labels.get(d.name, d.name), "due": d.due.isoformat()}
            for alert, d in alert_timeline(ticket, policy, now)[0]]


def alerts_text(alerts: Iterable[dict[str, Any]]) -> str:
    """ALERTS said in Chinese for a spreadsheet cell: 已超时：解决（2026-11-22T08:00:00+08:00）."""
    return "；".join(f"{ALERT_LABELS[a['alert']]}：{a['label']}（{a['due']}）" for a in alerts)


def running_clocks(doc: dict[str, Any] | None) -> Ticket | None:
    """A stored ticket as far as its alerts go (its running deadlines, no history), or None if no clock runs.

    The whole Ticket (history and all) for each of 50,000 open tickets made the first check take 4.5 s, as long
    again as opening the store: every `once` paid it.
    """
    running = [d for d in (doc or {}).get("deadlines", ()) if d.get("met_at") is None and not d.get("waived")]
    return Ticket.from_dict({**doc, "history": [], "deadlines": running}) if running else None  # type: ignore[arg-type]


class AlertLog:
    """Log a ticket's alerts when they change (not at every pass), and remember them across runs.

    The first check looks at every ticket in the hot store; after that only at those the store changed and
    those whose next alert time (75% or the deadline) has come, kept in a heap.
    """

    def __init__(self, store: Any, policy: Policy, path: Path | None):
        self.store = store
        self.policy = policy
        self.path = path
        self.labels = deadline_labels(policy)
        self.said: dict[str, list[str]] = {}
        self._due: list[tuple[float, str]] = []
        self._started = False

    def check(self, now: datetime) -> int:
        """Log the alerts that are new since the last check; return how many tickets changed."""
        if not self._started:
            self.said, self._started = self._load(), True
            numbers = set(self.store.index.doc_ids) | set(self.said)
        else:
            numbers = set()
            while self._due and self._due[0][0] <= now.timestamp():
                numbers.add(heapq.heappop(self._due)[1])
        numbers |= self.store.changed
        self.store.changed.clear()
        news: list[tuple[str, str, Deadline]] = []
        changed = sum(self._look(number, now, news) for number in sorted(numbers))
        self._say(news)
        if changed:
            self._save()
        return changed

    def _look(self, number: str, now: datetime, news: list[tuple[str, str, Deadline]]) -> bool:
        """Evaluate ticket NUMBER; add what is new to NEWS; tell whether its alerts changed."""
        ticket = running_clocks(self.store.document(number))
        found, upcoming = alert_timeline(ticket, self.policy, now) if ticket is not None else ([], None)
        current = [f"{alert}:{d.name}" for alert, d in found]
        before = self.said.get(number, [])
        news += [(number, alert, d) for alert, d in found if f"{alert}:{d.name}" not in before]
        if upcoming is not None:
            heapq.heappush(self._due, (upcoming.timestamp(), number))
        if current == before:
            return False
        if current:
            self.said[number] = current
        else:
            self.said.pop(number, None)
        return True

    def _say(self, news: list[tuple[str, str, Deadline]]) -> None:
        """Log the first LINES_MAX new alerts, and count the rest (made into text only when logged)."""
        for number, alert, d in news[:LINES_MAX]:
            log.warning("工单 %s %s：%s（期限 %s）(%s: %s)", number, ALERT_LABELS[alert],
                        self.labels.get(d.name, d.name), d.due.isoformat(), alert, d.name)
        if len(news) > LINES_MAX:
            log.warning("……另有 %d 条新的时限预警未逐条列出，全部工单的预警见 export 的“时限预警”列 "
                        "(%d more new deadline alerts: see export)", len(news) - LINES_MAX, len(news) - LINES_MAX)

    def _load(self) -> dict[str, list[str]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:     # only a memory of what was said: lose it, say it all again
            log.warning("%s: 无法读取，已超时/即将超时的工单会再提示一次: %s", self.path, exc)
            return {}
        tickets = data.get("tickets") if isinstance(data, dict) else None
        return {k: v for k, v in tickets.items() if isinstance(v, list)} if isinstance(tickets, dict) else {}

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            with atomic_file(self.path, text=True) as fh:
                json.dump({"tickets": self.said}, fh, ensure_ascii=False, indent=1, sort_keys=True)
        except OSError as exc:      # the alerts were logged; only the memory of them is lost
            log.warning("%s: 无法写入: %s", self.path, exc)

