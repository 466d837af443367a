"""The estate's rules rendered into the handbook: `[[policy:NAME]]` lines become HTML blocks.

One source of truth: the deadline table, the routing table, the escalation rules, the calendar,
the lifecycle diagram and the form contract are generated from content/policy.toml, the lifecycle
table (processor/lifecycle.py) and the JSON Schema files (processor/schemas/), so the handbook can
never disagree with the processor.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from html import escape
from typing import Any

from estate.contract import FORM_TYPES, load_schemas
from estate.lifecycle import ACTION_LABELS, OPEN_STATES, PREVIOUS, STATE_LABELS, STATES, TRANSITIONS
from estate.policy import DeadlineRule, Policy

log = logging.getLogger(__name__)

_LINE = re.compile(r"^\[\[policy:([\w-]+)\]\]\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")

CHANNEL_LABELS = {"phone": "电话", "counter": "前台", "online": "网上/微信", "app": "App", "mailbox": "意见箱",
                  "patrol": "巡查", "visit": "走访"}
FLAG_LABELS = {"emergency": "突发事件（火警、受伤）", "important": "重要书面投诉", "vulnerable": "特殊关照住户",
               "safety": "安全类投诉", "management_notified": "已报管理层", "repeat_complaint": "重复投诉",
               "possible_duplicate": "疑似重复", "escalated": "已升级"}
DEADLINE_LABELS = {"acknowledge": "确认受理", "assign": "派人", "on_site": "到场", "resolve": "解决", "answer": "答复",
                   "contact": "联系投诉人", "follow_up": "跟进联系", "return_visit": "回访"}
WEEKDAYS = "一二三四五六日"


def expand_placeholders(markdown_text: str, policy: Policy, departments: Mapping[str, str] | None = None) -> str:
    """Replace each line that is exactly `[[policy:NAME]]` (outside code fences) with its HTML block.

    DEPARTMENTS maps department ids to the names estate.toml gives them, so tables read 工程部, not engineering.
    """
    names = dict(departments or {})
    out, in_fence = [], False
    for line in markdown_text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _LINE.match(line)
        if m and m.group(1) in VIEWS:
            # blank lines around: Python-Markdown passes a block of raw HTML through untouched
            out.append(f"\n{VIEWS[m.group(1)](policy, names)}\n")
        else:
            out.append(line)
    return "\n".join(out)


def form_labels() -> dict[str, str]:
    """Chinese names of the form types, from the schema titles ('报修 (repair)' -> '报修')."""
    schemas = load_schemas()
    return {k: schemas[k]["title"].split(" (")[0] for k in FORM_TYPES}


def _table(caption: str, head: list[str], rows: list[list[str]], cls: str = "policy-table") -> str:
    """An HTML table; cells are already-escaped HTML."""
    th = "".join(f"<th scope=\"col\">{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<table class="{cls}"><caption>{escape(caption)}</caption><thead><tr>{th}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _span(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440 * 24} 小时" if minutes <= 2880 else f"{minutes // 1440} 天"
    return f"{minutes // 60} 小时" if minutes % 60 == 0 else f"{minutes} 分钟"


def _clock(rule: DeadlineRule) -> str:
    if rule.same_day:
        return "当天下班前（下班后收到的，次个工作日下班前）"
    if rule.working_days:
        return f"{rule.working_days} 个工作日"
    text = _span(rule.minutes)
    return f"{text}，之后每 {_span(rule.repeat_minutes)} 一次" if rule.repeat_minutes else text


def _applies(rule: DeadlineRule, policy: Policy) -> str:
    labels = form_labels()
    parts = []
    if rule.kinds:
        parts.append("、".join(labels.get(k, k) for k in rule.kinds))
    if rule.urgency:
        parts.append("紧急程度 " + "、".join(str(u) for u in rule.urgency))
    if rule.categories:
        names = {r.category: r.name for r in policy.routes if not rule.kinds or r.kind in rule.kinds}
        parts.append("分类：" + "、".join(names.get(c, c) for c in rule.categories))
    if rule.channels:
        parts.append("渠道：" + "、".join(CHANNEL_LABELS.get(c, c) for c in rule.channels))
    if rule.flags:
        parts.append("、".join(FLAG_LABELS.get(f, f) for f in rule.flags))
    return escape("；".join(parts) or "所有工单")


def _deadlines(policy: Policy, names: Mapping[str, str]) -> str:
    """Deadlines by urgency level, then every deadline row in the order the processor applies them."""
    by_level = []
    for level, label in enumerate(policy.urgency.labels, start=1):
        rules = [r for r in policy.deadlines if level in r.urgency]
        by_level.append([f"<strong>{level}</strong>", escape(label),
                         "<br>".join(f"{escape(DEADLINE_LABELS.get(r.name, r.label))}：{escape(_clock(r))}"
                                     for r in rules) or "—",
                         "<br>".join(escape(r.note) for r in rules)])
    labels = form_labels()
    by_kind = []
    for kind in dict.fromkeys(r.kind for r in policy.routes):
        rules = [r for r in policy.deadlines if kind in r.kinds]
        by_kind.append([escape(labels.get(kind, kind)),
                        "<br>".join(f"{escape(r.label)}：{escape(_clock(r))}（{_applies(r, policy)}）" for r in rules)
                        or "按紧急程度"])
    rows = [[escape(r.label), _applies(r, policy), "受理时起" if r.start == "received" else "完成时起",
             escape(_clock(r)), escape("、".join(ACTION_LABELS.get(a, a) for a in r.met_by)), escape(r.note)]
            for r in policy.deadlines]
    return ('<div class="policy-view policy-deadlines">'
            + _table("按紧急程度的处理时限", ["紧急程度", "含义", "时限", "说明"], by_level)
            + _table("按工单类型的专门时限（另按紧急程度计时）", ["工单类型", "时限"], by_kind)
            + _table("全部时限规则（同一时限按表中顺序，第一条适用的规则生效）",
                     ["时限", "适用于", "起算", "时长", "以哪个动作为准", "依据"], rows)
            + f'<p class="policy-note">到达时限的 {round(policy.escalation.at_risk_fraction * 100)}% 时标为“即将超时”，'
              "超过时限标为“已超时”；工单暂停期间不计时。</p></div>")


def _routing(policy: Policy, names: Mapping[str, str]) -> str:
    """Each ticket kind's categories and the department that works them."""
    labels = form_labels()
    rows = [[escape(labels.get(r.kind, r.kind)), f"<code>{escape(r.category)}</code>", escape(r.name),
             escape(names.get(r.department, r.department))] for r in policy.routes]
    return ('<div class="policy-view policy-routing">'
            + _table("工单分类与派单部门", ["工单类型", "分类代码", "分类", "责任部门"], rows) + "</div>")


def _escalation(policy: Policy, names: Mapping[str, str]) -> str:
    """Automatic escalations and the keyword rules."""
    esc = policy.escalation
    labels = form_labels()
    safety = "、".join(r.name for r in policy.routes if r.kind == "complaint" and r.category in esc.safety_categories)
    rows = [
        ["特殊关照住户（高龄独居、残障）", f"紧急程度提高 {esc.vulnerable_raise} 级（最高为 1 级），标记“特殊关照住户”"
         f"（适用于：{'、'.join(labels.get(k, k) for k in esc.vulnerable_kinds)}）"],
        [f"安全类投诉（{safety}）", f"紧急程度定为 1 级，立即通报{names.get(esc.notify_department, esc.notify_department)}"],
        [f"同一楼栋、单元、分类 {esc.repeat_days} 天内再次投诉",
         f"标记“重复投诉”，自动升级给{esc.supervisor}（适用于：{'、'.join(labels.get(k, k) for k in esc.repeat_kinds)}）"],
        [f"同一单元、同一分类 {esc.duplicate_hours:g} 小时内再次报来", "标记“疑似重复”，不自动合并，由客服确认后合并"],
        [f"时限已过 {round(esc.at_risk_fraction * 100)}%", "标记“即将超时”；超过时限标记“已超时”"],
    ]
    keywords = [[escape("、".join(k.words)), str(k.urgency) if k.urgency else "—",
                 escape(FLAG_LABELS.get(k.flag, k.flag) or "—"),
                 escape("、".join(labels.get(x, x) for x in k.kinds) or "所有工单")]
                for k in policy.urgency.keywords]
    defaults = "；".join(f"{labels.get(k, k)} {v} 级" for k, v in policy.urgency.defaults.items())
    return ('<div class="policy-view policy-escalation">'
            + _table("自动升级规则", ["情形", "系统处理"], [[escape(a), escape(b)] for a, b in rows])
            + _table("关键词判断紧急程度（表单未填紧急程度时）", ["关键词", "紧急程度", "标记", "适用于"], keywords)
            + f'<p class="policy-note">既未填写也未命中关键词时的默认紧急程度：{escape(defaults)}。</p></div>')


def _calendar(policy: Policy, names: Mapping[str, str]) -> str:
    """Working hours, working days, holidays and make-up days."""
    cal = policy.calendar
    days = "、".join(f"周{WEEKDAYS[d - 1]}" for d in sorted(cal.workdays))
    rows = [["工作时间", escape(f"{cal.work_start}–{cal.work_end}（{cal.timezone}）")],
            ["工作日", escape(days)],
            ["法定节假日（不上班）", escape("、".join(cal.holidays) or "—")],
            ["调休上班日", escape("、".join(cal.makeup_days) or "—")]]
    return ('<div class="policy-view policy-calendar">'
            + _table("工作日历（用于“工作日”时限）", ["项目", "设置"], rows)
            + '<p class="policy-note">“N 个工作日”按工作时间累计：例如周五 10:00 收到、2 个工作日内答复，'
              "截止时间为下周二 10:00；节假日不计，调休日照常计算。</p></div>")


# --- the lifecycle diagram ----------------------------------------------------------------------------------

_POS = {"received": (95, 80), "acknowledged": (275, 80), "assigned": (455, 80), "on_site": (635, 80),
        "reopened": (455, 185), "resolved": (850, 135), "closed": (1030, 135), "paused": (275, 340),
        "merged": (635, 340)}
_BOX = (60, 22)                      # half width, half height of a state box
_GROUP = (20, 30, 720, 235)          # the box drawn around the open states: x0, y0, x1, y1
_GROUP_NAME = "(open)"


def _edges() -> tuple[dict[tuple[str, str], list[str]], list[str], list[str]]:
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
            looping.setdefault(ACTION_LABELS[action], []).append(state)
            continue
        edges.setdefault((state, _GROUP_NAME if target == PREVIOUS else target), []).append(ACTION_LABELS[action])
    for action, target in shared:
        if target in OPEN_STATES:
            inside.append(f"任一未完成状态：{ACTION_LABELS[action]} → {STATE_LABELS[target]}")
        else:
            edges.setdefault((_GROUP_NAME, target), []).append(ACTION_LABELS[action])
    loops = [f"{action}（{'任一状态' if set(states) == set(STATES) else '、'.join(STATE_LABELS[s] for s in states)}）"
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


def _edge_svg(source: str, target: str, labels: list[str], paired: bool) -> str:
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
    text = "、".join(labels)
    width = 13 * len(text) + 8
    lx, ly = (mx + cx) / 2 + nx * (width / 2 + 6 if paired else 0), (my + cy) / 2 + ny * (14 if paired else 0)
    return (f'<path d="M{start[0]:.0f},{start[1]:.0f} Q{cx:.0f},{cy:.0f} {end[0]:.0f},{end[1]:.0f}" '
            f'class="edge{" back" if backwards else ""}" marker-end="url(#arrow)"/>'
            f'<rect x="{lx - width / 2:.0f}" y="{ly - 10:.0f}" width="{width}" height="18" rx="3" class="edge-label-bg"/>'
            f'<text x="{lx:.0f}" y="{ly + 4:.0f}" class="edge-label">{escape(text)}</text>')


def lifecycle_svg() -> str:
    """Draw the lifecycle table as an inline SVG state diagram with Chinese state names."""
    edges, _, inside = _edges()
    x0, y0, x1, y1 = _GROUP
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1100 380" role="img" class="lifecycle-diagram" '
        'aria-labelledby="lifecycle-title">',
        '<title id="lifecycle-title">工单状态流转图</title>',
        "<style>.state{fill:#fff;stroke:#1f4e79;stroke-width:2}.final{fill:#eef2f6}.state-name{font-size:15px;"
        "text-anchor:middle;fill:#111}.state-id{font-size:10px;text-anchor:middle;fill:#555}.edge{fill:none;"
        "stroke:#1f4e79;stroke-width:1.5}.edge.back{stroke:#a04000;stroke-dasharray:5 3}.edge-label{font-size:12px;"
        "text-anchor:middle;fill:#222}.edge-label-bg{fill:#fff;opacity:.9}.group{fill:#f6f9fc;stroke:#7a8ea3;"
        "stroke-dasharray:6 4}.group-name{font-size:12px;fill:#4a5d70}</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f4e79"/></marker></defs>',
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="10" class="group"/>',
        f'<text x="{x0 + 10}" y="{y0 + 16}" class="group-name">未完成（处理中）</text>',
    ]
    for i, line in enumerate(inside):
        parts.append(f'<text x="{x0 + 10}" y="{y1 - 10 - 16 * i}" class="group-name">{escape(line)}</text>')
    for (source, target), labels in edges.items():
        parts.append(_edge_svg(source, target, labels, (target, source) in edges))
    for state, (cx, cy) in _POS.items():
        cls = "state final" if state in ("closed", "merged") else "state"
        parts.append(f'<rect x="{cx - _BOX[0]}" y="{cy - _BOX[1]}" width="{2 * _BOX[0]}" height="{2 * _BOX[1]}" '
                     f'rx="8" class="{cls}"/><text x="{cx}" y="{cy + 2}" class="state-name">'
                     f'{escape(STATE_LABELS[state])}</text><text x="{cx}" y="{cy + 16}" class="state-id">{state}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _lifecycle(policy: Policy, names: Mapping[str, str]) -> str:
    """The state diagram, the same table as text, and the closing rule."""
    _, loops, _ = _edges()
    rows = []
    for state, label in STATE_LABELS.items():
        moves = [f"{ACTION_LABELS[a]} → {'暂停前的状态' if t == PREVIOUS else STATE_LABELS[t]}"
                 for (s, a), t in TRANSITIONS.items() if s == state]
        rows.append([f"{escape(label)} <code>{state}</code>", escape("；".join(moves) or "—")])
    labels = form_labels()
    need = "、".join(labels.get(k, k) for k in policy.lifecycle.return_visit_kinds)
    return ('<div class="policy-view policy-lifecycle"><figure>' + lifecycle_svg()
            + "<figcaption>工单状态流转图（由处理程序的状态表自动生成）。虚线为回退；不改变状态的动作："
            + escape("；".join(loops)) + "。</figcaption></figure>"
            + _table("各状态可执行的动作", ["状态", "动作 → 新状态"], rows)
            + f'<p class="policy-note">{escape(need)}工单须在完成后回访且住户满意才能关闭；回访不满意时工单自动重开，'
              "并派回原处理人。</p></div>")


# --- the form contract --------------------------------------------------------------------------------------


def _type_text(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    names = {"string": "文本", "integer": "整数", "number": "数字", "boolean": "true/false", "object": "对象",
             "array": "列表"}
    if kind == "array" and isinstance(schema.get("items"), dict) and schema["items"].get("type"):
        return f"{names[schema['items']['type']]}列表"
    return names.get(kind, "—")


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append("取值：" + "、".join(str(v) for v in schema["enum"]))
    if "minimum" in schema and "maximum" in schema:
        parts.append(f"{schema['minimum']}–{schema['maximum']}")
    if "x-zh" in schema:
        parts.append(schema["x-zh"])
    items = schema.get("items", {})
    if isinstance(items, dict) and "x-zh" in items:
        parts.append(items["x-zh"])
    return "；".join(parts)


def _resolve(schema: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("common.schema.json#/$defs/"):
        return common["$defs"][ref.rsplit("/", 1)[1]]
    return schema


def _field_rows(props: dict[str, Any], required: list[str], common: dict[str, Any], prefix: str = "",
                policy: Policy | None = None, kind: str = "") -> list[list[str]]:
    rows = []
    for name, raw in props.items():
        if name == "form" and prefix == "" and "const" in raw:
            continue
        schema = _resolve(raw, common)
        note = _constraints(schema)
        if name == "category" and policy is not None:
            note = "取值：" + "、".join(f"{r.category}（{r.name}）" for r in policy.routes if r.kind == kind)
        rows.append([f"<code style=\"white-space:nowrap\">{escape(prefix + name)}</code>", escape(_type_text(schema)),
                     "是" if name in required else "", escape(schema.get("description", "")),
                     escape(note)])
        if schema.get("type") == "object" and "properties" in schema:
            rows.extend(_field_rows(schema["properties"], schema.get("required", []), common, f"{prefix}{name}."))
        items = schema.get("items")
        if isinstance(items, dict) and items.get("type") == "object" and "properties" in items:
            rows.extend(_field_rows(items["properties"], items.get("required", []), common, f"{prefix}{name}[]."))
    return rows


def _forms(policy: Policy, names: Mapping[str, str]) -> str:
    """The form contract: common fields, then each type's own fields, from the JSON Schema files."""
    schemas = load_schemas()
    common = schemas["common"]
    head = ["字段", "类型", "必填", "说明", "取值与格式"]
    parts = ['<div class="policy-view policy-forms">',
             _table("所有表单的公共字段（common.schema.json）", head,
                    _field_rows(common["properties"], common["required"], common))]
    for kind in FORM_TYPES:
        schema = schemas[kind]
        rows = _field_rows(schema["properties"], schema.get("required", []), common, policy=policy, kind=kind)
        parts.append(_table(f"{schema['title']}：{kind}.schema.json", head, rows))
        if kind == "update":
            parts.append(_table("工单更新：各动作须另填的字段", ["动作", "须填字段"], _action_rows(schema)))
    parts.append("</div>")
    return "".join(parts)


def _action_rows(schema: dict[str, Any]) -> list[list[str]]:
    rows = []
    for part in schema.get("allOf", []):
        action = part.get("if", {}).get("properties", {}).get("action", {}).get("const")
        if not action:
            continue
        then = part["then"]
        need = then.get("required") or [" 或 ".join(a["required"][0] for a in then.get("anyOf", []))]
        rows.append([f"{escape(ACTION_LABELS.get(action, action))} <code>{action}</code>",
                     escape("、".join(need))])
    return rows


VIEWS: dict[str, Callable[[Policy, Mapping[str, str]], str]] = {
    "deadlines": _deadlines,
    "lifecycle": _lifecycle,
    "routing": _routing,
    "escalation": _escalation,
    "calendar": _calendar,
    "forms": _forms,
}
PLACEHOLDERS: frozenset[str] = frozenset(VIEWS)
