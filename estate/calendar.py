"""The business calendar: working days, working hours, holidays and 调休, for deadlines in working time."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from estate.policy import CalendarPolicy

log = logging.getLogger(__name__)

_MAX_DAYS = 3660  # a calendar with no working day at all must not loop forever


def parse_offset(text: str) -> timezone:
    """Turn '+08:00' into a fixed-offset timezone."""
    sign = -1 if text.startswith("-") else 1
    hours, minutes = text[1:].split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


class BusinessCalendar:
    """Answer 'is this a working day' and add working time, in the estate's local time."""

    def __init__(self, policy: CalendarPolicy):
        self.tz = parse_offset(policy.timezone)
        self.start = time.fromisoformat(policy.work_start)
        self.end = time.fromisoformat(policy.work_end)
        self.workdays = frozenset(policy.workdays)
        self.holidays = frozenset(date.fromisoformat(d) for d in policy.holidays)
        self.makeup = frozenset(date.fromisoformat(d) for d in policy.makeup_days)
        self.day_seconds = (datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)).seconds

    def local(self, at: datetime) -> datetime:
        """Express AT in the estate's local time."""
        return at.astimezone(self.tz)

    def local_date(self, at: datetime) -> date:
        """The estate's calendar date at AT (ticket numbers use it)."""
        return self.local(at).date()

    def is_working_day(self, day: date) -> bool:
        """Tell whether DAY is a working day: a make-up day always is, a holiday never is."""
        if day in self.makeup:
            return True
        return day not in self.holidays and day.isoweekday() in self.workdays

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        return (datetime.combine(day, self.start, self.tz), datetime.combine(day, self.end, self.tz))

    def _next_working_day(self, day: date) -> date:
        for _ in range(_MAX_DAYS):
            day += timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise ValueError("日历中没有工作日 (the calendar has no working day)")

    def add_working_time(self, start: datetime, seconds: float) -> datetime:
        """Return the moment SECONDS of working time after START (time outside working hours does not count)."""
        at = self.local(start)
        day = at.date()
        if not self.is_working_day(day):
            day = self._next_working_day(day)
            at = self._bounds(day)[0]
        remaining = timedelta(seconds=seconds)
        for _ in range(_MAX_DAYS):
            begin, end = self._bounds(day)
            at = max(at, begin)
            if at < end:
                if at + remaining <= end:
                    return at + remaining
                remaining -= end - at
            day = self._next_working_day(day)
            at = self._bounds(day)[0]
        raise ValueError("工作时间超出日历范围 (working time beyond the calendar)")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Return the moment DAYS full working days (in working hours) after START."""
        return self.add_working_time(start, days * self.day_seconds)

    def end_of_working_day(self, at: datetime) -> datetime:
        """Return the end of AT's working day, or of the next working day if AT is after hours or off."""
        local = self.local(at)
        day = local.date()
        if self.is_working_day(day) and local < self._bounds(day)[1]:
            return self._bounds(day)[1]
        return self._bounds(self._next_working_day(day))[1]


@lru_cache(maxsize=8)
def calendar_for(policy: CalendarPolicy) -> BusinessCalendar:
    """Build (once) the calendar of a calendar policy."""
    return BusinessCalendar(policy)
