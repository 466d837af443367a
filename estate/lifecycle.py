"""The ticket lifecycle as data: the ONE table of (state, action) -> new state.

The engine asks `next_state`; the handbook draws its state diagram from `TRANSITIONS`
(render/policy_views.py); the property tests walk random paths through it.  A return visit is
split by its answer (`return_visit:satisfied`, `return_visit:unsatisfied`) so the table stays a plain
mapping, and `resume` goes back to whatever state the ticket was paused from (`PREVIOUS`).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

PREVIOUS = "(previous)"

STATE_LABELS = {
    "received": "已受理",
    "acknowledged": "已确认",
    "assigned": "已派工",
    "on_site": "已到场",
    "paused": "已暂停",
    "resolved": "已完成",
    "reopened": "已重开",
    "closed": "已关闭",
    "merged": "已合并",
}
STATES = tuple(STATE_LABELS)

ACTION_LABELS = {
    "acknowledge": "确认受理",
    "assign": "派工",
    "arrive": "到场",
    "pause": "暂停",
    "resume": "恢复",
    "resolve": "完成",
    "return_visit": "回访",
    "return_visit:satisfied": "回访满意",
    "return_visit:unsatisfied": "回访不满意",
    "reopen": "重开",
    "close": "关闭",
    "escalate": "升级",
    "note": "备注",
    "merge": "合并",
}
ACTIONS = ("acknowledge", "assign", "arrive", "pause", "resume", "resolve", "return_visit", "reopen", "close",
           "escalate", "note", "merge")

OPEN_STATES = ("received", "acknowledged", "assigned", "on_site", "reopened")
FINAL_STATES = ("closed", "merged")


def _open_state_rows() -> dict[tuple[str, str], str]:
    """Rows every open state shares: work can be assigned, paused, resolved, merged, noted, escalated."""
    rows = {}
    for state in OPEN_STATES:
        rows[(state, "assign")] = "assigned"
        rows[(state, "pause")] = "paused"
        rows[(state, "resolve")] = "resolved"
        rows[(state, "merge")] = "merged"
        rows[(state, "note")] = state
        rows[(state, "escalate")] = state
    return rows


TRANSITIONS: dict[tuple[str, str], str] = {
    **_open_state_rows(),
    ("received", "acknowledge"): "acknowledged",
    ("assigned", "arrive"): "on_site",
    ("reopened", "arrive"): "on_site",      # the same worker goes straight back
    ("paused", "resume"): PREVIOUS,
    ("paused", "note"): "paused",
    ("paused", "escalate"): "paused",
    ("resolved", "return_visit:satisfied"): "resolved",
    ("resolved", "return_visit:unsatisfied"): "reopened",
    ("resolved", "reopen"): "reopened",
    ("resolved", "close"): "closed",
    ("resolved", "note"): "resolved",
    ("resolved", "escalate"): "resolved",
    ("closed", "reopen"): "reopened",       # the same problem comes back after closing
    ("closed", "note"): "closed",
    ("merged", "note"): "merged",
}


def table_action(action: str, satisfied: bool | None = None) -> str:
    """Name the table's action for an update: return visits are split by the resident's answer."""
    if action == "return_visit":
        return "return_visit:satisfied" if satisfied else "return_visit:unsatisfied"
    return action


def next_state(state: str, action: str) -> str | None:
    """Return the state after ACTION in STATE (PREVIOUS for resume), or None if the table forbids it."""
    return TRANSITIONS.get((state, action))


def allowed_actions(state: str) -> list[str]:
    """List the table actions allowed in STATE, in the order of ACTION_LABELS."""
    return [a for a in ACTION_LABELS if (state, a) in TRANSITIONS]
