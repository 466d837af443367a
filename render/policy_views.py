"""The estate's rules rendered into the handbook: `[[policy:NAME]]` lines become HTML blocks.

One source of truth: the deadline table, the routing table, the escalation rules, the calendar,
the lifecycle diagram and the form contract are generated from content/policy.toml, the lifecycle
table (estate/lifecycle.py) and the JSON Schema files (processor/schemas/), so the handbook can
never disagree with the processor.

Captions, headers, notes and units are UI strings in estate.language (`policy.*` keys of render/locales/);
the estate's own words (rule labels and notes, category and department names, keywords) and the schemas'
field descriptions are shown as written.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from html import escape
from typing import Any

from estate.contract import FORM_TYPES, load_schemas
from estate.lifecycle import ACTION_LABELS, OPEN_STATES, PREVIOUS, STATE_LABELS, STATES, TRANSITIONS
from estate.policy import DeadlineRule, Policy
from render.i18n import DEFAULT, catalogue, translator

log = logging.getLogger(__name__)

_LINE = re.compile(r"^\[\[policy:([\w-]+)\]\]\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class Words:
    """The views' UI strings in one language: the `policy.*` keys of render/locales/ (estate.language)."""

    def __init__(self, language: str = DEFAULT) -> None:
        self._strings = catalogue(language)
        self._t = translator(language)

    def __call__(self, key: str, **values: object) -> str:
        return self._t(f"policy.{key}", **values)

    def label(self, group: str, name: str, fallback: str | None = None) -> str:
        """The word for NAME (a channel, a flag, a state…); a name the catalogue lacks shows FALLBACK or itself,
        so a new channel in the policy file still builds, in the words it came with."""
        return self._strings.get(f"policy.{group}.{name}", name if fallback is None else fallback)

    def count(self, unit: str, n: float) -> str:
        """N of UNIT ('30 分钟', '1 hour'): English needs its singular, so each unit has a `_one` form."""
        return self(f"unit.{unit}_one" if n == 1 else f"unit.{unit}", n=f"{n:g}" if isinstance(n, float) else n)

    def join(self, items: Iterable[str]) -> str:
        """A list inside a sentence: 、 in Chinese, a comma in English."""
        return self("sep.list").join(items)

    def parts(self, items: Iterable[str]) -> str:
        """Separate clauses: ； in Chinese, a semicolon in English."""
        return self("sep.parts").join(items)

    def state(self, name: str) -> str:
        return self.label("state", name, STATE_LABELS.get(name))

    def action(self, name: str) -> str:
        return self.label("action", name, ACTION_LABELS.get(name))


View = Callable[[Policy, Mapping[str, str], Words], str]


def expand_placeholders(markdown_text: str, policy: Policy, departments: Mapping[str, str] | None = None,
                        language: str = DEFAULT) -> str:
    """Replace the first line that is exactly `[[policy:NAME]]` (outside code fences) with NAME's HTML block.
    A repeat stays as written (the builder reports it): 500 copies of a 20 KB table had taken 19 s to convert.

    DEPARTMENTS maps department ids to the names estate.toml gives them, so tables read 工程部, not engineering.
    LANGUAGE (estate.language) is the tables' UI language; the estate's own words stay as it wrote them.
    """
    names = dict(departments or {})
    words = Words(language)
    out, in_fence, done = [], False, set()
    for line in markdown_text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _LINE.match(line)
        if m and m.group(1) in VIEWS and m.group(1) not in done:
            done.add(m.group(1))
            # blank lines around: Python-Markdown passes a block of raw HTML through untouched
            out.append(f"\n{VIEWS[m.group(1)](policy, names, words)}\n")
        else:
            out.append(line)
    return "\n".join(out)


def form_labels(words: Words | None = None) -> dict[str, str]:
    """The form types' names; one the catalogue lacks is named by its schema title ('报修 (repair)' -> '报修')."""
    words, schemas = words or Words(), load_schemas()
    return {k: words.label("kind", k, schemas[k]["title"].split(" (")[0]) for k in FORM_TYPES}


def _table(caption: str, head: list[str], rows: list[list[str]], cls: str = "policy-table") -> str:
    """An HTML table; CAPTION and HEAD are text, cells are already-escaped HTML."""
    th = "".join(f"<th scope=\"col\">{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<table class="{cls}"><caption>{escape(caption)}</caption><thead><tr>{th}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _head(words: Words, prefix: str, *names: str) -> list[str]:
    return [words(f"{prefix}.{name}") for name in names]


def _note(text: str) -> str:
    return f'<p class="policy-note">{escape(text)}</p>'


def _span(minutes: int, words: Words) -> str:
    if minutes % 1440 == 0:
        return words.count("hours", minutes // 1440 * 24) if minutes <= 2880 else words.count("days", minutes // 1440)
    return words.count("hours", minutes // 60) if minutes % 60 == 0 else words.count("minutes", minutes)


def _clock(rule: DeadlineRule, words: Words) -> str:
    if rule.same_day:
        return words("clock.same_day")
    if rule.working_days:
        return words.count("working_days", rule.working_days)
    text = _span(rule.minutes, words)
    return words("clock.repeat", span=text, every=_span(rule.repeat_minutes, words)) if rule.repeat_minutes else text


def _applies(rule: DeadlineRule, policy: Policy, words: Words, labels: Mapping[str, str]) -> str:
    """Which tickets RULE applies to, in words; LABELS: form_labels(WORDS), made once a table (each reads the
    schemas afresh)."""
    parts = []
    if rule.kinds:
        parts.append(words.join(labels.get(k, k) for k in rule.kinds))
    if rule.urgency:
        parts.append(words("applies.urgency", levels=words.join(str(u) for u in rule.urgency)))
    if rule.categories:
        names = {r.category: r.name for r in policy.routes if not rule.kinds or r.kind in rule.kinds}
        parts.append(words("applies.categories", names=words.join(names.get(c, c) for c in rule.categories)))
    if rule.channels:
        parts.append(words("applies.channels", names=words.join(words.label("channel", c) for c in rule.channels)))
    if rule.flags:
        parts.append(words.join(words.label("flag", f) for f in rule.flags))
    return escape(words.parts(parts) or words("all_tickets"))


def _deadlines(policy: Policy, names: Mapping[str, str], words: Words) -> str:
    """Deadlines by urgency level, then every deadline row in the order the processor applies them."""
    percent = round(policy.escalation.at_risk_fraction * 100)
    return ('<div class="policy-view policy-deadlines">'
            + _table(words("deadlines.level_caption"),
                     _head(words, "deadlines.level_head", "level", "meaning", "deadlines", "notes"),
                     _level_rows(policy, words))
            + _table(words("deadlines.kind_caption"), _head(words, "deadlines.kind_head", "kind", "deadlines"),
                     _kind_rows(policy, words))
            + _table(words("deadlines.rules_caption"),
                     _head(words, "deadlines.rules_head", "deadline", "applies", "start", "span", "met_by", "basis"),
                     _rule_rows(policy, words))
            + _note(words("deadlines.note", percent=percent)) + "</div>")


def _level_rows(policy: Policy, words: Words) -> list[list[str]]:
    """One row an urgency level: its meaning (the estate's label), its deadlines and their notes."""
    rows = []
    for level, label in enumerate(policy.urgency.labels, start=1):
        rules = [r for r in policy.deadlines if level in r.urgency]
        items = [words("deadlines.level_item", label=words.label("deadline", r.name, r.label), clock=_clock(r, words))
                 for r in rules]
        rows.append([f"<strong>{level}</strong>", escape(label), "<br>".join(map(escape, items)) or "—",
                     "<br>".join(escape(r.note) for r in rules)])
    return rows


def _kind_rows(policy: Policy, words: Words) -> list[list[str]]:
    """One row a ticket kind: the deadlines only its own rules set."""
    labels = form_labels(words)
    rows = []
    for kind in dict.fromkeys(r.kind for r in policy.routes):
        items = [words("deadlines.kind_item", label=escape(r.label), clock=escape(_clock(r, words)),
                       applies=_applies(r, policy, words, labels)) for r in policy.deadlines if kind in r.kinds]
        rows.append([escape(labels.get(kind, kind)), "<br>".join(items) or escape(words("deadlines.kind_none"))])
    return rows


def _rule_rows(policy: Policy, words: Words) -> list[list[str]]:
    labels = form_labels(words)
    return [[escape(r.label), _applies(r, policy, words, labels), escape(words(f"start.{_start(r)}")),
             escape(_clock(r, words)), escape(words.join(words.action(a) for a in r.met_by)), escape(r.note)]
            for r in policy.deadlines]


def _start(rule: DeadlineRule) -> str:
    """Which clock start the rule names (the policy allows received and resolved)."""
    return "received" if rule.start == "received" else "resolved"


def _routing(policy: Policy, names: Mapping[str, str], words: Words) -> str:
    """Each ticket kind's categories and the department that works them."""
    labels = form_labels(words)
    rows = [[escape(labels.get(r.kind, r.kind)), f"<code>{escape(r.category)}</code>", escape(r.name),
             escape(names.get(r.department, r.department))] for r in policy.routes]
    return ('<div class="policy-view policy-routing">'
            + _table(words("routing.caption"), _head(words, "routing.head", "kind", "code", "category", "department"),
                     rows) + "</div>")


def _escalation(policy: Policy, names: Mapping[str, str], words: Words) -> str:
    """Automatic escalations and the keyword rules."""
    labels = form_labels(words)
    keywords = [[escape(words.join(k.words)), str(k.urgency) if k.urgency else "—",
                 escape(words.label("flag", k.flag) or "—"),
                 escape(_kinds(k.kinds, labels, words) or words("all_tickets"))]
                for k in policy.urgency.keywords]
    defaults = words.parts(words("escalation.default_item", kind=labels.get(k, k), level=v)
                           for k, v in policy.urgency.defaults.items())
    return ('<div class="policy-view policy-escalation">'
            + _table(words("escalation.caption"), _head(words, "escalation.head", "case", "action"),
                     [[escape(a), escape(b)] for a, b in _escalation_rows(policy, names, labels, words)])
            + _table(words("escalation.keywords_caption"),
                     _head(words, "escalation.keywords_head", "words", "urgency", "flag", "kinds"), keywords)
            + _note(words("escalation.defaults_note", defaults=defaults)) + "</div>")


def _escalation_rows(policy: Policy, names: Mapping[str, str], labels: Mapping[str, str],
                     words: Words) -> list[tuple[str, str]]:
    """(case, what the processor does), as text."""
    esc = policy.escalation
    safety = words.join(r.name for r in policy.routes if r.kind == "complaint" and r.category in esc.safety_categories)
    department = names.get(esc.notify_department, esc.notify_department)
    return [
        (words("escalation.vulnerable"), words("escalation.vulnerable_action", levels=esc.vulnerable_raise,
                                               kinds=_kinds(esc.vulnerable_kinds, labels, words))),
        (words("escalation.safety", categories=safety), words("escalation.safety_action", department=department)),
        (words("escalation.repeat", span=words.count("days", esc.repeat_days)),
         words("escalation.repeat_action", supervisor=esc.supervisor, kinds=_kinds(esc.repeat_kinds, labels, words))),
        (words("escalation.duplicate", span=words.count("hours", esc.duplicate_hours)),
         words("escalation.duplicate_action")),
        (words("escalation.at_risk", percent=round(esc.at_risk_fraction * 100)), words("escalation.at_risk_action")),
    ]


def _kinds(kinds: Iterable[str], labels: Mapping[str, str], words: Words) -> str:
    return words.join(labels.get(k, k) for k in kinds)


def _calendar(policy: Policy, names: Mapping[str, str], words: Words) -> str:
    """Working hours, working days, holidays and make-up days."""
    cal = policy.calendar
    days = words.join(words(f"weekday.{d}") for d in sorted(cal.workdays))
    hours = words("calendar.hours_value", start=cal.work_start, end=cal.work_end, timezone=cal.timezone)
    rows = [[words("calendar.hours"), escape(hours)],
            [words("calendar.workdays"), escape(days)],
            [words("calendar.holidays"), escape(words.join(cal.holidays) or "—")],
            [words("calendar.makeup_days"), escape(words.join(cal.makeup_days) or "—")]]
    return ('<div class="policy-view policy-calendar">'
            + _table(words("calendar.caption"), _head(words, "calendar.head", "item", "setting"),
                     [[escape(a), b] for a, b in rows])
            + _note(words("calendar.note")) + "</div>")


# --- the lifecycle diagram ----------------------------------------------------------------------------------

_POS = {"received": (95, 80), "acknowledged": (275, 80), "assigned": (455, 80), "on_site": (635, 80),
        "reopened": (455, 185), "resolved": (850, 135), "closed": (1030, 135), "paused": (275, 340),
        "merged": (635, 340)}
_BOX = (60, 22)                      # half width, half height of a state box
_GROUP = (20, 30, 720, 235)          # the box drawn around the open states: x0, y0, x1, y1
_GROUP_NAME = "(open)"


def _edges(words: Words) -> tuple[dict[tuple[str, str], list[str]], list[str], list[str]]:
    """Group the table's rows into edges; rows shared by every open state become edges from the group."""
    shared: dict[tuple[str, str], None] = {}
    for (state, action), target in TRANSITIONS.items():
        if state in OPEN_STATES and all(TRANSITIONS.get((s, action)) == target for s in OPEN_STATES):
            shared[(action, target)] = None
    edges: dict[tuple[str, str], list[str]] = {}
    looping: dict[str, list[str]] = {}
    inside = []
    for (state, action), target in TRANSITIONS.items():
        if state in OPEN_STATES and (action, target) in shared:
            continue
        if target == state:
            looping.setdefault(words.action(action), []).append(state)
            continue
        edges.setdefault((state, _GROUP_NAME if target == PREVIOUS else target), []).append(words.action(action))
    for action, target in shared:
        if target in OPEN_STATES:
            inside.append(words("lifecycle.from_any_open", action=words.action(action), state=words.state(target)))
        else:
            edges.setdefault((_GROUP_NAME, target), []).append(words.action(action))
    loops = [words("lifecycle.loop", action=action, states=words("lifecycle.any_state") if set(states) == set(STATES)
                   else words.join(words.state(s) for s in states))
             for action, states in looping.items()]
    return edges, loops, inside


def _anchor(name: str, toward: tuple[float, float]) -> tuple[float, float]:
    """Where an edge toward TOWARD leaves NAME's box (the group box, or a state box)."""
    if name == _GROUP_NAME:
        x0, y0, x1, y1 = _GROUP
        return (min(max(toward[0], x0), x1), min(max(toward[1], y0), y1))
    (cx, cy), (hw, hh) = _POS[name], _BOX
    dx, dy = toward[0] - cx, toward[1] - cy
    scale = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return (cx + dx * scale, cy + dy * scale)


def _centre(name: str) -> tuple[float, float]:
    if name == _GROUP_NAME:
        x0, y0, x1, y1 = _GROUP
        return ((x0 + x1) / 2, (y0 + y1) / 2)
    return _POS[name]


def _text_width(text: str) -> int:
    """Rough width in pixels of TEXT at the labels' 12px: a Chinese character takes twice a Latin letter's room."""
    return sum(13 if unicodedata.east_asian_width(c) in "WF" else 7 for c in text)


def _edge_svg(source: str, target: str, labels: list[str], paired: bool, words: Words) -> str:
    """One arrow with its label; a pair of opposite arrows is drawn side by side, backward arrows curve."""
    a, b = _centre(source), _centre(target)
    if target == _GROUP_NAME:       # aim at the nearest point of the group box, not at its centre
        end = _anchor(target, a)
        start = _anchor(source, end)
    elif source == _GROUP_NAME:
        start = _anchor(source, b)
        end = _anchor(target, start)
    else:
        start, end = _anchor(source, b), _anchor(target, a)
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy) or 1
    nx, ny = dy / length, -dx / length          # the arrow's left-hand normal
    backwards = dx < -1 or (abs(dx) <= 1 and dy < 0)
    shift = 14 if paired else 0
    start, end = (start[0] + nx * shift, start[1] + ny * shift), (end[0] + nx * shift, end[1] + ny * shift)
    bend = 0 if paired or not backwards else 0.18 * length    # curve away from the forward arrows
    mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
    cx, cy = mx + nx * bend, my + ny * bend
    text = words.join(labels)
    width = _text_width(text) + 8
    lx, ly = (mx + cx) / 2 + nx * (width / 2 + 6 if paired else 0), (my + cy) / 2 + ny * (14 if paired else 0)
    return (f'<path d="M{start[0]:.0f},{start[1]:.0f} Q{cx:.0f},{cy:.0f} {end[0]:.0f},{end[1]:.0f}" '
            f'class="edge{" back" if backwards else ""}" marker-end="url(#arrow)"/>'
            f'<rect x="{lx - width / 2:.0f}" y="{ly - 10:.0f}" width="{width}" height="18" rx="3" class="edge-label-bg"/>'
            f'<text x="{lx:.0f}" y="{ly + 4:.0f}" class="edge-label">{escape(text)}</text>')


def lifecycle_svg(words: Words | None = None) -> str:
    """Draw the lifecycle table as an inline SVG state diagram, states named in the UI language."""
    words = words or Words()
    edges, _, inside = _edges(words)
    x0, y0, x1, y1 = _GROUP
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1100 380" role="img" class="lifecycle-diagram" '
        'aria-labelledby="lifecycle-title">',
        f'<title id="lifecycle-title">{escape(words("lifecycle.title"))}</title>',
        "<style>.state{fill:#fff;stroke:#1f4e79;stroke-width:2}.final{fill:#eef2f6}.state-name{font-size:15px;"
        "text-anchor:middle;fill:#111}.state-id{font-size:10px;text-anchor:middle;fill:#555}.edge{fill:none;"
        "stroke:#1f4e79;stroke-width:1.5}.edge.back{stroke:#a04000;stroke-dasharray:5 3}.edge-label{font-size:12px;"
        "text-anchor:middle;fill:#222}.edge-label-bg{fill:#fff;opacity:.9}.group{fill:#f6f9fc;stroke:#7a8ea3;"
        "stroke-dasharray:6 4}.group-name{font-size:12px;fill:#4a5d70}</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f4e79"/></marker></defs>',
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="10" class="group"/>',
        f'<text x="{x0 + 10}" y="{y0 + 16}" class="group-name">{escape(words("lifecycle.open_group"))}</text>',
    ]
    for i, line in enumerate(inside):
        parts.append(f'<text x="{x0 + 10}" y="{y1 - 10 - 16 * i}" class="group-name">{escape(line)}</text>')
    for (source, target), labels in edges.items():
        parts.append(_edge_svg(source, target, labels, (target, source) in edges, words))
    for state, (cx, cy) in _POS.items():
        cls = "state final" if state in ("closed", "merged") else "state"
        parts.append(f'<rect x="{cx - _BOX[0]}" y="{cy - _BOX[1]}" width="{2 * _BOX[0]}" height="{2 * _BOX[1]}" '
                     f'rx="8" class="{cls}"/><text x="{cx}" y="{cy + 2}" class="state-name">'
                     f'{escape(words.state(state))}</text><text x="{cx}" y="{cy + 16}" class="state-id">{state}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _lifecycle(policy: Policy, names: Mapping[str, str], words: Words) -> str:
    """The state diagram, the same table as text, and the closing rule."""
    _, loops, _ = _edges(words)
    rows = []
    for state in STATE_LABELS:
        moves = [words("lifecycle.move", action=words.action(a),
                       state=words("lifecycle.previous_state") if t == PREVIOUS else words.state(t))
                 for (s, a), t in TRANSITIONS.items() if s == state]
        rows.append([f"{escape(words.state(state))} <code>{state}</code>", escape(words.parts(moves) or "—")])
    labels = form_labels(words)
    need = words.join(labels.get(k, k) for k in policy.lifecycle.return_visit_kinds)
    return ('<div class="policy-view policy-lifecycle"><figure>' + lifecycle_svg(words)
            + f"<figcaption>{escape(words('lifecycle.figcaption', loops=words.parts(loops)))}</figcaption></figure>"
            + _table(words("lifecycle.moves_caption"), _head(words, "lifecycle.moves_head", "state", "moves"), rows)
            + _note(words("lifecycle.note", kinds=need)) + "</div>")


# --- the form contract --------------------------------------------------------------------------------------


def _type_text(schema: dict[str, Any], words: Words) -> str:
    kind = schema.get("type", "")
    if kind == "array" and isinstance(schema.get("items"), dict) and schema["items"].get("type"):
        return words("forms.list_of", type=words.label("type", schema["items"]["type"]))
    return words.label("type", kind, "—") if isinstance(kind, str) else "—"


def _constraints(schema: dict[str, Any], words: Words) -> str:
    """Allowed values and ranges; the schema's own notes (x-zh) are its words, shown as written."""
    parts = []
    if "enum" in schema:
        parts.append(words("forms.values", values=words.join(str(v) for v in schema["enum"])))
    if "minimum" in schema and "maximum" in schema:
        parts.append(f"{schema['minimum']}–{schema['maximum']}")
    if "x-zh" in schema:
        parts.append(schema["x-zh"])
    items = schema.get("items", {})
    if isinstance(items, dict) and "x-zh" in items:
        parts.append(items["x-zh"])
    return words.parts(parts)


def _resolve(schema: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("common.schema.json#/$defs/"):
        return common["$defs"][ref.rsplit("/", 1)[1]]
    return schema


def _field_rows(props: dict[str, Any], required: list[str], common: dict[str, Any], words: Words, prefix: str = "",
                policy: Policy | None = None, kind: str = "") -> list[list[str]]:
    rows = []
    for name, raw in props.items():
        if name == "form" and prefix == "" and "const" in raw:
            continue
        schema = _resolve(raw, common)
        note = _constraints(schema, words)
        if name == "category" and policy is not None:
            note = words("forms.values", values=words.join(words("forms.category_value", code=r.category, name=r.name)
                                                           for r in policy.routes if r.kind == kind))
        rows.append([f"<code style=\"white-space:nowrap\">{escape(prefix + name)}</code>",
                     escape(_type_text(schema, words)), escape(words("forms.required")) if name in required else "",
                     escape(schema.get("description", "")), escape(note)])
        rows.extend(_nested_rows(name, schema, common, words, prefix))
    return rows


def _nested_rows(name: str, schema: dict[str, Any], common: dict[str, Any], words: Words,
                 prefix: str) -> list[list[str]]:
    """The rows of an object's fields, or of the objects a list holds, named NAME.x or NAME[].x."""
    if schema.get("type") == "object" and "properties" in schema:
        return _field_rows(schema["properties"], schema.get("required", []), common, words, f"{prefix}{name}.")
    items = schema.get("items")
    if isinstance(items, dict) and items.get("type") == "object" and "properties" in items:
        return _field_rows(items["properties"], items.get("required", []), common, words, f"{prefix}{name}[].")
    return []


def _forms(policy: Policy, names: Mapping[str, str], words: Words) -> str:
    """The form contract: common fields, then each type's own fields, from the JSON Schema files."""
    schemas = load_schemas()
    common = schemas["common"]
    labels = form_labels(words)
    head = _head(words, "forms.head", "field", "type", "required", "description", "values")
    parts = ['<div class="policy-view policy-forms">',
             _table(words("forms.common_caption"), head,
                    _field_rows(common["properties"], common["required"], common, words))]
    for kind in FORM_TYPES:
        schema = schemas[kind]
        rows = _field_rows(schema["properties"], schema.get("required", []), common, words, policy=policy, kind=kind)
        parts.append(_table(words("forms.kind_caption", name=labels[kind], kind=kind), head, rows))
        if kind == "update":
            parts.append(_table(words("forms.actions_caption"),
                                _head(words, "forms.actions_head", "action", "fields"), _action_rows(schema, words)))
    parts.append("</div>")
    return "".join(parts)


def _action_rows(schema: dict[str, Any], words: Words) -> list[list[str]]:
    rows = []
    for part in schema.get("allOf", []):
        action = part.get("if", {}).get("properties", {}).get("action", {}).get("const")
        if not action:
            continue
        then = part["then"]
        need = then.get("required") or [words("sep.or").join(a["required"][0] for a in then.get("anyOf", []))]
        rows.append([f"{escape(words.action(action))} <code>{action}</code>", escape(words.join(need))])
    return rows


VIEWS: dict[str, View] = {
    "deadlines": _deadlines,
    "lifecycle": _lifecycle,
    "routing": _routing,
    "escalation": _escalation,
    "calendar": _calendar,
    "forms": _forms,
}
PLACEHOLDERS: frozenset[str] = frozenset(VIEWS)
