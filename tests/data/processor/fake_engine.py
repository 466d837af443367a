"""A small stand-in for processor.engine.apply_form, used only while the real engine is missing.

Deterministic like the real one: a ticket form opens a ticket numbered by `next_number`, an
update changes the named ticket's state, other forms become records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from processor.models import Event, Form, Outcome, Problem, Rejection, Ticket, Tickets

TICKET_KINDS = {"repair", "complaint", "inquiry", "suggestion", "praise", "service"}
STATES = {"acknowledge": "acknowledged", "assign": "assigned", "arrive": "on_site", "resolve": "resolved",
          "close": "closed", "note": None}


def apply_form(form: Form, tickets: Tickets, policy: Any, now: datetime) -> Outcome:
    """Open, update or record FORM."""
    if form.type in TICKET_KINDS:
        resident = form.data.get("resident", {})
        ticket = Ticket(number=tickets.next_number(now.date()), kind=form.type, state="received", opened_at=now,
                        form_id=form.id, category=form.data.get("category", ""), resident=resident,
                        description=form.data.get("description", ""), updated_at=now,
                        history=[Event("received", now, form.data.get("staff", ""), form.id)])
        return Outcome(tickets=[ticket])
    if form.type == "update":
        ticket = tickets.get(form.data.get("ticket", "")) or tickets.by_form(form.data.get("ticket_form", ""))
        if ticket is None:
            return Outcome(rejection=Rejection(form.source, (Problem("ticket", "工单不存在", "no such ticket"),),
                                               form.id))
        state = STATES.get(form.data.get("action", ""), ticket.state)
        ticket.state = state or ticket.state
        ticket.updated_at = now
        ticket.history.append(Event(form.data.get("action", ""), now, form.data.get("staff", ""), form.id))
        return Outcome(tickets=[ticket])
    return Outcome(record={"type": form.type, "data": form.data})
