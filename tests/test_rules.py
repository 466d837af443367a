"""Every rule of content/policy.toml, applied with a fixed clock (no test reads the real time)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from estate.calendar import BusinessCalendar
from estate.config import ConfigError, ProcessorConfig, docs, load_config
from estate.policy import CalendarPolicy, Policy, check_departments, load_policy
from processor.alerts import AlertLog
from processor.cli import main
from processor.engine import MemoryTickets, apply_form
from processor.forms import parse_form
from processor.models import Form, Ticket
from processor.rules import alert_timeline
from tests.test_intake import NOW, Desk, drop, make_root
from tests.test_intake import repair as intake_repair

ROOT = Path(__file__).resolve().parents[1]
POLICY = load_policy(ROOT / "content" / "policy.toml")
CONFIG = ProcessorConfig()
RESIDENT = {"name": "王建国", "phone": "13800001111", "building": "3栋", "unit": "2单元", "room": "1502"}
CATEGORY = {"repair": "other", "complaint": "other", "inquiry": "other", "suggestion": "other", "praise": "other",
            "service": "other"}
MON = "2026-11-02"   # a Monday in a week without holidays
_seq = iter(range(1, 1_000_000))


def t(text: str) -> datetime:
    """A local (+08:00) time on Monday 2026-11-02 ('09:00') or a full ISO date-time."""
    return datetime.fromisoformat(text if "T" in text else f"{MON}T{text}:00+08:00")


def form(kind: str, at: str, **fields) -> Form:
    data = {"form": kind, "id": f"test-{next(_seq):08d}", "submitted_at": t(at).isoformat()}
    if kind != "update":
        data.update(resident=dict(RESIDENT), category=CATEGORY[kind], description="测试")
    data.update(fields)
    result = parse_form(json.dumps(data, ensure_ascii=False).encode(), "t.json", CONFIG, POLICY)
    assert isinstance(result, Form), result
    return result


def open_ticket(kind: str, at: str = "09:00", store: MemoryTickets | None = None, policy: Policy = POLICY,
                **fields) -> Ticket:
    store = store if store is not None else MemoryTickets()
    outcome = apply_form(form(kind, at, **fields), store, policy, t(at))
    assert outcome.rejection is None, outcome.rejection
    store.save(outcome)
    return outcome.tickets[0]


def update(store: MemoryTickets, ticket: Ticket, at: str, action: str, **fields) -> Ticket:
    outcome = apply_form(form("update", at, ticket=ticket.number, action=action, staff="李", **fields),
                         store, POLICY, t(at))
    assert outcome.rejection is None, outcome.rejection
    store.save(outcome)
    return store.get(ticket.number)


def due(ticket: Ticket, name: str) -> datetime:
    found = [d.due for d in ticket.deadlines if d.name == name and d.met_at is None and not d.waived]
    assert len(found) == 1, (name, ticket.deadlines)
    return found[0]


def names(ticket: Ticket) -> set[str]:
    return {d.name for d in ticket.deadlines if d.met_at is None and not d.waived}


# --- urgency ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,level", [("厨房水管爆裂了", 1), ("插座漏电", 1), ("电梯困人", 1), ("整栋停水", 2),
                                        ("家里停电了", 2), ("灯不亮", 3)])
def test_urgency_from_keywords_when_the_form_gives_none(text, level):
    assert open_ticket("repair", description=text).urgency == level


def test_urgency_from_the_form_wins_over_keywords():
    assert open_ticket("repair", description="水管爆裂", urgency=3).urgency == 3


@pytest.mark.parametrize("kind", ["repair", "complaint", "inquiry", "suggestion", "praise", "service"])
def test_default_urgency_per_kind(kind):
    assert open_ticket(kind).urgency == POLICY.urgency.defaults[kind]


def test_keywords_only_apply_to_the_kinds_they_name():
    assert open_ticket("praise", description="半夜来修爆管，点赞").urgency == POLICY.urgency.defaults["praise"]


# --- deadlines ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("urgency,name,minutes", [(1, "on_site", 30), (2, "resolve", 120), (3, "resolve", 24 * 60),
                                                  (4, "answer", 48 * 60)])
def test_deadline_by_urgency(urgency, name, minutes):
    ticket = open_ticket("repair", "09:00", urgency=urgency)
    assert due(ticket, name) == t("09:00") + timedelta(minutes=minutes)


@pytest.mark.parametrize("channel,expected", [("online", True), ("app", True), ("phone", False), ("counter", False)])
def test_online_forms_are_acknowledged_in_15_minutes(channel, expected):
    ticket = open_ticket("repair", "09:00", channel=channel)
    assert ("acknowledge" in names(ticket)) is expected
    if expected:
        assert due(ticket, "acknowledge") == t("09:15")


def test_complaints_assigned_in_10_minutes_and_answered_the_same_day():
    ticket = open_ticket("complaint", "10:00")
    assert due(ticket, "assign") == t("10:10")
    assert due(ticket, "answer") == t("17:30")


def test_a_complaint_after_hours_is_answered_by_the_end_of_the_next_working_day():
    ticket = open_ticket("complaint", "2026-11-06T20:00:00+08:00")   # Friday evening
    assert due(ticket, "answer") == t("2026-11-09T17:30:00+08:00")


def test_important_written_complaints_are_answered_in_2_working_days():
    ticket = open_ticket("complaint", "2026-11-06T10:00:00+08:00", important=True)   # Friday 10:00
    assert due(ticket, "answer") == t("2026-11-10T10:00:00+08:00")                   # Tuesday 10:00


def test_service_quality_complaints_are_contacted_in_12_hours():
    ticket = open_ticket("complaint", "09:00", category="service_quality")
    assert due(ticket, "contact") == t("21:00")
    assert "contact" not in names(open_ticket("complaint", "09:00", category="noise"))


def test_emergencies_need_someone_on_site_in_5_minutes():
    ticket = open_ticket("repair", "13:00", description="电表箱冒烟，有焦味")
    assert "emergency" in ticket.flags
    assert due(ticket, "on_site") == t("13:05")


def test_staff_can_mark_an_emergency_on_the_form():
    ticket = open_ticket("complaint", "13:00", category="safety", emergency=True, description="有人摔倒")
    assert "emergency" in ticket.flags and due(ticket, "on_site") == t("13:05")
    assert "emergency" not in open_ticket("repair", "13:00", emergency=False).flags


def test_complaints_are_followed_up_weekly_while_open():
    store = MemoryTickets()
    ticket = open_ticket("complaint", "09:00", store)
    assert due(ticket, "follow_up") == t("09:00") + timedelta(days=7)
    ticket = update(store, ticket, "2026-11-05T11:00:00+08:00", "note", text="已电话联系")
    assert due(ticket, "follow_up") == t("2026-11-12T11:00:00+08:00")
    ticket = update(store, ticket, "2026-11-06T11:00:00+08:00", "resolve", resolution="已处理")
    assert "follow_up" not in names(ticket)


@pytest.mark.parametrize("kind,hours", [("repair", 24), ("service", 24), ("complaint", 72)])
def test_return_visit_clock_starts_at_completion(kind, hours):
    store = MemoryTickets()
    ticket = open_ticket(kind, "09:00", store)
    assert "return_visit" not in names(ticket)
    ticket = update(store, ticket, "11:00", "resolve", resolution="已修好")
    assert due(ticket, "return_visit") == t("11:00") + timedelta(hours=hours)
    ticket = update(store, ticket, "15:00", "return_visit", satisfied=True, score=5)
    assert "return_visit" not in names(ticket)


def test_actions_meet_their_deadlines():
    store = MemoryTickets()
    ticket = open_ticket("repair", "09:00", store, urgency=1, channel="app")
    ticket = update(store, ticket, "09:05", "acknowledge")
    assert names(ticket) == {"on_site"}
    ticket = update(store, ticket, "09:20", "assign", assignee="张师傅", department="engineering")
    ticket = update(store, ticket, "09:25", "arrive")
    met = {d.name: d.met_at for d in ticket.deadlines}
    assert met == {"acknowledge": t("09:05"), "on_site": t("09:25")}


# --- escalation ---------------------------------------------------------------------------------------------


def test_vulnerable_residents_are_one_level_more_urgent():
    ticket = open_ticket("repair", resident=dict(RESIDENT, vulnerable=True), urgency=3)
    assert ticket.urgency == 2 and "vulnerable" in ticket.flags
    assert any(e.action == "escalate" and e.data["reason"] == "vulnerable" for e in ticket.history)
    assert open_ticket("repair", resident=dict(RESIDENT, vulnerable=True), urgency=1).urgency == 1


def test_safety_complaints_are_urgency_1_and_management_is_notified():
    ticket = open_ticket("complaint", "10:00", category="safety", urgency=4)
    assert ticket.urgency == 1
    assert {"safety", "management_notified"} <= set(ticket.flags)
    events = [e for e in ticket.history if e.action == "escalate"]
    assert events[0].data["to"] == POLICY.escalation.notify_department and events[0].by == "system"
    assert due(ticket, "on_site") == t("10:30")


@pytest.mark.parametrize("days_later,repeat", [(29, True), (31, False)])
def test_the_same_unit_and_category_complained_again_within_30_days_goes_to_the_supervisor(days_later, repeat):
    store = MemoryTickets()
    first = open_ticket("complaint", "09:00", store, category="noise")
    later = (t("09:00") + timedelta(days=days_later)).isoformat()
    second = open_ticket("complaint", later, store, category="noise")
    assert ("repeat_complaint" in second.flags) is repeat
    if repeat:
        event = next(e for e in second.history if e.data.get("reason") == "repeat")
        assert event.data["to"] == POLICY.escalation.supervisor and event.data["previous"] == [first.number]
    other_unit = open_ticket("complaint", later, store, category="noise", resident=dict(RESIDENT, unit="1单元"))
    assert "repeat_complaint" not in other_unit.flags


@pytest.mark.parametrize("hours_later,flagged", [(3, True), (5, False)])
def test_a_possible_duplicate_is_flagged_not_merged(hours_later, flagged):
    store = MemoryTickets()
    first = open_ticket("repair", "09:00", store, category="water")
    later = (t("09:00") + timedelta(hours=hours_later)).isoformat()
    second = open_ticket("repair", later, store, category="water", resident=dict(RESIDENT, room="1602"))
    assert ("possible_duplicate" in second.flags) is flagged
    assert second.state == "received" and store.get(first.number).state == "received"
    assert second.number != first.number
    assert "possible_duplicate" not in open_ticket("repair", later, store, category="electric").flags


def test_routing_follows_every_row_of_the_policy():
    for route in POLICY.routes:
        ticket = open_ticket(route.kind, category=route.category)
        assert ticket.department == route.department, route


def test_the_policy_routes_only_to_departments_of_the_estate():
    config = load_config(ROOT)
    assert check_departments(POLICY, {d.id for d in config.departments}) == []
    assert check_departments(POLICY, {"engineering"})


# --- at risk, overdue, pauses --------------------------------------------------------------------------------


def evaluate(ticket: Ticket, policy: Policy, now: datetime) -> list[str]:
    """Which running clocks are at risk or overdue, said short: ["at_risk:resolve", "overdue:on_site"]."""
    return [f"{alert}:{d.name}" for alert, d in alert_timeline(ticket, policy, now)[0]]


def test_a_deadline_is_at_risk_at_75_percent_and_overdue_past_it():
    ticket = open_ticket("repair", "09:00", urgency=2)            # resolve within 120 min
    assert evaluate(ticket, POLICY, t("10:29")) == []
    assert evaluate(ticket, POLICY, t("10:30")) == ["at_risk:resolve"]
    assert evaluate(ticket, POLICY, t("11:00")) == ["at_risk:resolve"]
    assert evaluate(ticket, POLICY, t("11:01")) == ["overdue:resolve"]


def test_met_deadlines_are_not_reported():
    store = MemoryTickets()
    ticket = open_ticket("repair", "09:00", store, urgency=2)
    ticket = update(store, ticket, "10:00", "resolve", resolution="好了")
    assert [s for s in evaluate(ticket, POLICY, t("12:00")) if s.endswith(":resolve")] == []


def test_a_paused_tickets_clock_stops_and_resumes_later():
    store = MemoryTickets()
    ticket = open_ticket("repair", "09:00", store, urgency=2)     # due 11:00
    ticket = update(store, ticket, "09:10", "assign", assignee="张师傅", department="engineering")
    ticket = update(store, ticket, "10:00", "pause", reason="等配件")
    assert evaluate(ticket, POLICY, t("2026-11-03T09:00:00+08:00")) == []   # frozen at 60 of 120 minutes
    ticket = update(store, ticket, "14:00", "resume")
    assert ticket.state == "assigned" and ticket.paused_at is None
    assert due(ticket, "resolve") == t("15:00")
    assert evaluate(ticket, POLICY, t("14:30")) == ["at_risk:resolve"]
    assert evaluate(ticket, POLICY, t("15:01")) == ["overdue:resolve"]


def test_closed_tickets_have_no_running_clocks():
    store = MemoryTickets()
    ticket = open_ticket("inquiry", "09:00", store, channel="app")
    ticket = update(store, ticket, "09:30", "resolve", resolution="已答复")
    ticket = update(store, ticket, "09:31", "close")
    assert evaluate(ticket, POLICY, t("2026-12-30T09:00:00+08:00")) == []


# --- at risk and overdue, shown and logged (nothing showed them: rules.evaluate() was never called) ------------


def _urgent_repair_at_now(tmp_path: Path) -> Path:
    """An estate whose one ticket (urgency 2) must be resolved within 120 minutes of NOW."""
    root = make_root(tmp_path)
    drop(root, "a.json", intake_repair(1, urgency=2))
    assert main(["--root", str(root), "--now", NOW.isoformat(), "once"]) == 0
    return root


def test_export_shows_each_tickets_at_risk_and_overdue_alerts_at_now(tmp_path):
    """No export said a ticket was at risk (75% of its time gone) or overdue, though the handbook promises both.
    JSON lines now carry "alerts" (and "alerts_at", the time they are for); the CSV a 时限预警 column in Chinese."""
    root = _urgent_repair_at_now(tmp_path)
    found = {}
    for minutes in (60, 91, 121):
        out = tmp_path / f"{minutes}.jsonl"
        at = (NOW + timedelta(minutes=minutes)).isoformat()
        assert main(["--root", str(root), "--now", at, "export", "--out", str(out)]) == 0
        ticket = json.loads(out.read_text(encoding="utf-8"))
        assert ticket["alerts_at"] == at
        found[minutes] = [(a["alert"], a["deadline"], a["label"]) for a in ticket["alerts"]]
    assert found == {60: [], 91: [("at_risk", "resolve", "解决")], 121: [("overdue", "resolve", "解决")]}
    out = tmp_path / "t.csv"
    at = (NOW + timedelta(minutes=121)).isoformat()
    assert main(["--root", str(root), "--now", at, "export", "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[1][rows[0].index("时限预警")] == f"已超时：解决（{(NOW + timedelta(minutes=120)).isoformat()}）"


def test_once_logs_a_ticket_becoming_at_risk_then_overdue_once_each(tmp_path, caplog):
    """once (and every pass of watch) logs a ticket whose alert changed, once: not at every run or pass."""
    root = _urgent_repair_at_now(tmp_path)
    caplog.clear()
    for minutes in (60, 91, 95, 121, 130):
        main(["--root", str(root), "--now", (NOW + timedelta(minutes=minutes)).isoformat(), "once"])
    said = [r.getMessage() for r in caplog.records if "超时" in r.getMessage()]
    assert len(said) == 2 and "即将超时：解决" in said[0] and "已超时：解决" in said[1]
    assert said[1].startswith("工单 WO-20261122-0001 ")


def test_a_first_check_that_finds_many_alerts_logs_a_few_and_counts_the_rest(tmp_path, caplog):
    """An office's first run can find thousands of tickets overdue: a line each flooded the log (and blocked a
    watcher whose standard error nobody read). LINES_MAX lines, then one that counts the others."""
    from processor import alerts

    root = make_root(tmp_path)
    for n in range(1, alerts.LINES_MAX + 6):
        drop(root, f"r{n}.json", intake_repair(n, urgency=2))
    assert main(["--root", str(root), "--now", NOW.isoformat(), "once"]) == 0
    caplog.clear()
    assert main(["--root", str(root), "--now", (NOW + timedelta(minutes=121)).isoformat(), "once"]) == 0
    said = [r.getMessage() for r in caplog.records if "超时" in r.getMessage() or "预警" in r.getMessage()]
    assert len(said) == alerts.LINES_MAX + 1 and all("已超时：解决" in line for line in said[:-1])
    assert said[-1].startswith("……另有 5 条新的时限预警")
    export = tmp_path / "all.jsonl"
    assert main(["--root", str(root), "--now", (NOW + timedelta(minutes=121)).isoformat(), "export", "--out", str(export)]) == 0
    assert sum(1 for line in export.read_text(encoding="utf-8").splitlines() if '"overdue"' in line) == alerts.LINES_MAX + 5


def test_a_watcher_logs_an_alert_when_its_time_comes_without_any_new_form(tmp_path, caplog):
    """In watch mode no form may arrive for hours: the alert log keeps each ticket's next alert time and looks
    again when it comes; a resolved ticket's clock raises nothing more."""
    root = make_root(tmp_path)
    desk = Desk(root)
    clock = [NOW]
    desk.intake.clock = lambda: clock[0]
    desk.intake.alerts = log = AlertLog(desk.store, desk.policy, root / "var" / "alerts.json")
    drop(root, "a.json", intake_repair(1, urgency=2))
    desk.run()
    said = []
    for minutes in (30, 89, 90, 100, 121, 122):
        clock[0] = NOW + timedelta(minutes=minutes)
        caplog.clear()
        desk.run()
        said.append([r.getMessage().split("（")[0] for r in caplog.records if "超时" in r.getMessage()])
    number = next(desk.store.tickets())["number"]
    assert said == [[], [], [f"工单 {number} 即将超时：解决"], [], [f"工单 {number} 已超时：解决"], []]
    assert log.said == {number: ["overdue:resolve"]}
    drop(root, "b.json", {"form": "update", "id": "U-00000001", "submitted_at": clock[0].isoformat(),
                          "staff": "张师傅", "ticket": number, "action": "resolve", "resolution": "已修好"})
    desk.run()
    assert log.said == {} and json.loads((root / "var" / "alerts.json").read_text(encoding="utf-8")) == {"tickets": {}}
    desk.close()


# --- the business calendar ------------------------------------------------------------------------------------

HOLIDAY_CAL = CalendarPolicy(holidays=tuple(f"2026-10-0{d}" for d in range(1, 8)), makeup_days=("2026-10-10",))


def test_working_days_holidays_and_makeup_days():
    cal = BusinessCalendar(HOLIDAY_CAL)
    assert cal.is_working_day(date(2026, 9, 30))
    assert not cal.is_working_day(date(2026, 10, 1))        # Thursday, holiday
    assert not cal.is_working_day(date(2026, 10, 4))        # Sunday
    assert cal.is_working_day(date(2026, 10, 10))           # Saturday, 调休
    assert not cal.is_working_day(date(2026, 10, 11))


def test_working_days_skip_the_holiday_and_count_the_makeup_day():
    cal = BusinessCalendar(HOLIDAY_CAL)
    start = t("2026-09-30T16:30:00+08:00")                  # Wednesday, 1 h before closing
    assert cal.add_working_days(start, 1) == t("2026-10-08T16:30:00+08:00")
    assert cal.add_working_days(start, 2) == t("2026-10-09T16:30:00+08:00")
    assert cal.add_working_days(start, 3) == t("2026-10-10T16:30:00+08:00")
    assert cal.add_working_time(t("2026-10-05T12:00:00+08:00"), 60) == t("2026-10-08T08:31:00+08:00")


def test_same_day_is_the_end_of_the_working_day_or_the_next_one():
    cal = BusinessCalendar(HOLIDAY_CAL)
    assert cal.end_of_working_day(t("2026-09-30T07:00:00+08:00")) == t("2026-09-30T17:30:00+08:00")
    assert cal.end_of_working_day(t("2026-09-30T18:00:00+08:00")) == t("2026-10-08T17:30:00+08:00")


def test_the_policy_calendar_drives_working_day_deadlines():
    policy = replace(POLICY, calendar=HOLIDAY_CAL)
    ticket = open_ticket("complaint", "2026-09-30T10:00:00+08:00", policy=policy, important=True)
    assert due(ticket, "answer") == t("2026-10-09T10:00:00+08:00")


def test_times_in_another_offset_are_read_in_local_time():
    cal = BusinessCalendar(CalendarPolicy())
    utc = datetime.fromisoformat("2026-11-02T10:00:00+00:00")   # 18:00 in Beijing: after hours
    assert cal.end_of_working_day(utc) == t("2026-11-03T17:30:00+08:00")
    assert cal.local_date(datetime.fromisoformat("2026-11-02T17:00:00+00:00")) == date(2026, 11, 3)


# --- the policy file ------------------------------------------------------------------------------------------


def test_every_policy_setting_is_documented():
    rows = docs(Policy)
    assert len(rows) > 30
    assert [name for name, _, text in rows if not text] == []


def test_a_bad_policy_file_lists_every_problem(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[calendar]\nwork_start = "9am"\nholidays = ["2026-13-01"]\n\n[[deadlines]]\nname = "x"\n'
                    'label = "x"\nminutes = 5\nsame_day = true\nmet_by = []\n\n[escalation]\nbogus = 1\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = str(info.value)
    assert "escalation.bogus: unknown setting" in text and str(path) in text
    path.write_text('[calendar]\nwork_start = "9am"\nholidays = ["2026-13-01"]\n\n[[deadlines]]\nname = "x"\n'
                    'label = "x"\nminutes = 5\nsame_day = true\nmet_by = []\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    problems = info.value.problems
    assert any("work_start" in p for p in problems)
    assert any("2026-13-01" in p for p in problems)
    assert any("exactly one of" in p for p in problems)
    assert any("met_by" in p for p in problems)
    assert any("has no category" in p for p in problems)


def test_a_missing_or_broken_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="不存在"):
        load_policy(tmp_path / "nope.toml")
    (tmp_path / "p.toml").write_text("[calendar\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="TOML"):
        load_policy(tmp_path / "p.toml")


@pytest.mark.parametrize("given,level", [(1.0, 1), (2.0, 2), (4.0, 4)])
def test_an_integral_float_urgency_counts_as_the_integer(given, level):
    """"urgency": 1.0 passes the schema (JSON Schema's integer) and used to be ignored for the default 3."""
    ticket = open_ticket("repair", description="门锁坏了", urgency=given)
    assert ticket.urgency == level and type(ticket.urgency) is int
    assert {d.name for d in ticket.deadlines} >= ({"on_site"} if level == 1 else set())


def test_a_fractional_urgency_is_rejected():
    data = {"form": "repair", "id": "test-frac-0001", "submitted_at": t("09:00").isoformat(), "urgency": 1.5,
            "resident": dict(RESIDENT), "category": CATEGORY["repair"], "description": "测试"}
    result = parse_form(json.dumps(data, ensure_ascii=False).encode(), "t.json", CONFIG, POLICY)
    assert not isinstance(result, Form) and any(p.field == "urgency" for p in result.problems)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("duplicate_hours = 4.0", "duplicate_hours = 1e308", "escalation.duplicate_hours: 1e+308 is out of range"),
    ("duplicate_hours = 4.0", "duplicate_hours = nan", "escalation.duplicate_hours: nan is not a finite number"),
    ("repeat_days = 30", "repeat_days = -30", "escalation.repeat_days: -30 is out of range"),
    ("minutes = 30", "minutes = 1000000000000", "minutes: 1000000000000 is out of range"),
    ('words = ["', 'words = ["", "', "an empty word matches every description"),
])
def test_a_policy_value_that_would_break_every_ticket_is_a_problem_naming_the_file(tmp_path, old, new, expected):
    """These loaded without a word, then every form was quarantined with a traceback (OverflowError in
    timedelta), or every description matched the empty keyword."""
    text = (ROOT / "content" / "policy.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(path) in str(info.value) and any(expected in p for p in info.value.problems), info.value.problems


def test_a_ticket_at_a_busy_place_names_only_the_latest_earlier_ones():
    """Every earlier ticket's number had gone into each new one's event: 2,000 suggestions on one building made
    the last ticket 36 KB and the store 40 MB. Now the latest ten, and how many there were."""
    store = MemoryTickets()
    earlier = [open_ticket("complaint", f"09:{m:02d}", store, category="noise") for m in range(12)]
    last = open_ticket("complaint", "09:30", store, category="noise")
    for action, key in (("escalate", "previous"), ("flag", "of")):
        event = next(e for e in last.history if e.action == action and key in e.data)
        assert event.data[key] == [o.number for o in earlier[-10:]] and event.data["count"] == 12
    second = next(e for e in earlier[1].history if e.action == "flag")
    assert second.data["of"] == [earlier[0].number] and "count" not in second.data
