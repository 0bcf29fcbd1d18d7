"""Rotation schedules in Keeper's types: validation, description and the next run time.

Pure Python (no Django models): the records store the fields, this module gives them meaning.
All times are computed in the schedule's IANA time zone and returned as aware UTC datetimes, so
daylight-saving changes move the UTC instant, never the local wall time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter

UTC = dt.UTC
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
MIN_INTERVAL = dt.timedelta(hours=1)
NEVER_FIRES = "this cron expression never fires; pick a date that exists"

ON_DEMAND = "ON_DEMAND"
USE_DEFAULT = "USE_DEFAULT"
DAILY = "DAILY"
WEEKLY = "WEEKLY"
MONTHLY_BY_DAY = "MONTHLY_BY_DAY"
MONTHLY_BY_WEEKDAY = "MONTHLY_BY_WEEKDAY"
CRON = "CRON"
TYPES = [
    (ON_DEMAND, "On demand only"),
    (USE_DEFAULT, "Use the configuration's default"),
    (DAILY, "Daily"),
    (WEEKLY, "Weekly"),
    (MONTHLY_BY_DAY, "Monthly on a day"),
    (MONTHLY_BY_WEEKDAY, "Monthly on a weekday"),
    (CRON, "Cron expression"),
]


WINDOW_NONE = "none"
WINDOW_ALLOW = "allow"
WINDOW_BLACKOUT = "blackout"
WINDOW_MODES = [
    (WINDOW_NONE, "Any time"),
    (WINDOW_ALLOW, "Only inside a window"),
    (WINDOW_BLACKOUT, "Never inside a blackout period"),
]
ALL_WEEKDAYS = "0123456"


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message says what to write instead."""


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone of that name or raise ScheduleError."""
    if not name or name not in _zone_names():
        raise ScheduleError(f'"{name}" is not an IANA time zone; write one like "Europe/Berlin" or "UTC"')
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f'"{name}" is not an IANA time zone') from None


_ZONES: set[str] = set()


def _zone_names() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


def normalize_cron(expression: str) -> str:
    """Return a 5-field cron expression for a 5-field one or Keeper's 6-field Quartz form.

    Quartz puts seconds first and writes ``?`` for "no specific value" in day-of-month or
    day-of-week; it numbers weekdays 1-7 from Sunday and has L, W, # and a year field.
    """
    fields = expression.split()
    if len(fields) == 5:
        result = fields
    elif len(fields) in (6, 7):
        if len(fields) == 7 and fields[6] not in ("*", "?"):
            raise ScheduleError("a year field is not supported; remove the seventh field")
        if fields[0] not in ("0", "00"):
            raise ScheduleError(
                "seconds must be 0: rotations run at most once an hour, so write 0 as the first field"
            )
        minute, hour, dom, month, dow = fields[1:6]
        if dom == "?" and dow == "?":
            raise ScheduleError("only one of day-of-month and day-of-week may be ?")
        dom = "*" if dom == "?" else dom
        dow = "*" if dow == "?" else _quartz_weekdays(dow)
        result = [minute, hour, dom, month, dow]
    else:
        raise ScheduleError(
            "a cron expression has 5 fields (minute hour day month weekday), or Keeper's 6 "
            'with seconds first; for example "0 2 * * 0" for Sundays at 02:00'
        )
    for field in result:
        if "?" in field:
            raise ScheduleError('"?" belongs to 6-field Quartz expressions; in 5 fields write * instead')
        for token in ("L", "W", "#"):
            if token in _without_names(field):
                raise ScheduleError(
                    f'"{field}" uses {token!r}, which standard cron cannot express; use the '
                    '"Monthly on a weekday" schedule for "last Friday"-style rules'
                )
    text = " ".join(result)
    if not croniter.is_valid(text):
        raise ScheduleError(f'"{expression}" is not a valid cron expression')
    return text


def _without_names(field: str) -> str:
    """Return a cron field upper-cased without month and weekday names (which contain L and W)."""
    return re.sub(r"[A-Z]{3}", "", field.upper())


def _quartz_weekdays(field: str) -> str:
    """Map Quartz weekday numbers (1=Sunday..7=Saturday) to cron's (0=Sunday..6=Saturday)."""
    out = []
    for char in field:
        out.append(str(int(char) - 1) if char.isdigit() and "1" <= char <= "7" else char)
    return "".join(out)


@dataclass(frozen=True)
class Window:
    """When rotations may run: inside allowed periods, or outside blackout periods.

    A period starts on each listed weekday (``weekdays``: digits, 0 = Monday) at ``start`` local
    time and ends at ``end`` — the next day when ``end`` is not after ``start`` (22:00–05:00);
    ``start == end`` is a whole day. Times are wall times in ``tz``.
    """

    mode: str = WINDOW_NONE
    weekdays: str = ALL_WEEKDAYS
    start: dt.time | None = None
    end: dt.time | None = None
    tz: str = "UTC"

    @property
    def active(self) -> bool:
        return self.mode in (WINDOW_ALLOW, WINDOW_BLACKOUT)

    def validate(self) -> None:
        """Raise ScheduleError when the window cannot be applied."""
        if self.mode not in dict(WINDOW_MODES):
            raise ScheduleError(f"unknown window mode {self.mode!r}")
        if not self.active:
            return
        zone(self.tz)
        if self.start is None or self.end is None:
            raise ScheduleError("a window needs a start and an end time")
        if not self.days or any(ch not in ALL_WEEKDAYS for ch in self.weekdays):
            raise ScheduleError("pick at least one weekday for the window")
        if self.admit(dt.datetime(2026, 1, 5, tzinfo=UTC)) is None:
            raise ScheduleError("this blackout covers the whole week: rotations could never run")

    @property
    def days(self) -> set[int]:
        return {int(ch) for ch in self.weekdays if ch.isdigit() and ch in ALL_WEEKDAYS}

    def describe(self) -> str:
        """Return the window in plain English, e.g. 'only Mon, Tue 22:00–05:00'."""
        if not self.active:
            return ""
        days = ", ".join(WEEKDAYS[day][:3] for day in sorted(self.days)) or "no day"
        span = f"{self.start:%H:%M}–{self.end:%H:%M}" if self.start and self.end else ""
        return f"{'only' if self.mode == WINDOW_ALLOW else 'never'} {days} {span}".rstrip()

    def periods(self, around: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """Return the periods (UTC start, end) that start from two days before to nine days after a moment."""
        tz = zone(self.tz)
        first = around.astimezone(tz).date() - dt.timedelta(days=2)
        result = []
        for offset in range(12):
            day = first + dt.timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day if self.end > self.start else day + dt.timedelta(days=1)
            result.append((_wall(day, self.start, tz), _wall(end_day, self.end, tz)))
        return result

    def admit(self, moment: dt.datetime) -> dt.datetime | None:
        """Return the first moment at or after ``moment`` that the window allows (None: never)."""
        if not self.active:
            return moment
        for _ in range(60):
            periods = self.periods(moment)
            inside = [end for start, end in periods if start <= moment < end]
            if self.mode == WINDOW_ALLOW:
                if inside:
                    return moment
                starts = [start for start, _ in periods if start > moment]
                if not starts:
                    return None
                moment = min(starts)
                continue
            if not inside:
                return moment
            moment = max(inside)
        return None


def _wall(day: dt.date, time: dt.time, tz: ZoneInfo) -> dt.datetime:
    """Return a local wall time on a day as UTC (a time in a spring-forward gap moves past it)."""
    return dt.datetime.combine(day, time).replace(tzinfo=tz, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """One schedule: its type, time of day, interval, day, weekday, cron text and time zone."""

    type: str = ON_DEMAND
    time: dt.time | None = None
    interval: int = 1
    weekday: int | None = None  # 0 = Monday
    day: int | None = None  # 1..31; a day past the month's end means its last day
    week: int | None = None  # 1..4, or -1 for the last
    cron: str = ""
    tz: str = "UTC"
    # The configuration's rotation window: a run it does not allow waits for the window.
    window: Window | None = None

    def validate(self) -> None:
        """Raise ScheduleError when the schedule cannot run as written."""
        if self.type not in dict(TYPES):
            raise ScheduleError(f"unknown schedule type {self.type!r}")
        if self.type in (ON_DEMAND, USE_DEFAULT):
            return
        zone(self.tz)
        if self.type == CRON:
            expression = normalize_cron(self.cron)
            runs = croniter(expression, dt.datetime(2026, 1, 1, tzinfo=UTC)).all_next(dt.datetime)
            try:
                first, second = next(runs), next(runs)
                gaps = [second - first]
                for _ in range(50):
                    nxt = next(runs)
                    gaps.append(nxt - second)
                    second = nxt
            except CroniterBadDateError:  # no run at all, e.g. "0 0 31 2 *"
                raise ScheduleError(NEVER_FIRES) from None
            if min(gaps) < MIN_INTERVAL:
                raise ScheduleError("rotations can run at most once an hour; pick fewer run times")
            return
        if self.time is None:
            raise ScheduleError("pick the time of day the rotation runs")
        if self.type == DAILY and not 1 <= self.interval <= 365:
            raise ScheduleError("a daily schedule repeats every 1 to 365 days")
        if self.type == WEEKLY and self.weekday not in range(7):
            raise ScheduleError("pick the weekday the rotation runs")
        if self.type == MONTHLY_BY_DAY and self.day not in range(1, 32):
            raise ScheduleError("pick a day of the month from 1 to 31")
        if self.type == MONTHLY_BY_WEEKDAY:
            if self.weekday not in range(7):
                raise ScheduleError("pick the weekday the rotation runs")
            if self.week not in ORDINALS:
                raise ScheduleError("pick which week: first to fourth, or last")

    @property
    def automatic(self) -> bool:
        """Return whether the schedule ever runs by itself."""
        return self.type not in (ON_DEMAND, USE_DEFAULT)

    def describe(self) -> str:
        """Return the schedule in plain English, e.g. 'Every Sunday at 02:00, Europe/Berlin'."""
        if self.type == ON_DEMAND:
            return "On demand only"
        if self.type == USE_DEFAULT:
            return "The configuration's default schedule"
        at = f"at {self.time:%H:%M}" if self.time else ""
        if self.type == DAILY:
            every = "Every day" if self.interval == 1 else f"Every {self.interval} days"
            text = f"{every} {at}"
        elif self.type == WEEKLY:
            text = f"Every {WEEKDAYS[self.weekday]} {at}"
        elif self.type == MONTHLY_BY_DAY:
            text = f"Monthly on day {self.day} {at}"
        elif self.type == MONTHLY_BY_WEEKDAY:
            text = f"Monthly on the {ORDINALS[self.week]} {WEEKDAYS[self.weekday]} {at}"
        else:
            text = f"Cron {self.cron.strip()}"
        text = f"{text}, {self.tz}"
        if self.window is not None and self.window.active:
            text += f"; {self.window.describe()} ({self.window.tz})"
        return text

    def next_after(self, after: dt.datetime, anchor: dt.datetime | None = None) -> dt.datetime | None:
        """Return the first run strictly after ``after`` as an aware UTC datetime.

        ``anchor`` is when the schedule started counting (for "every N days"). A run outside the
        window waits for the window's next start (the one rule every caller goes through).
        """
        slot = self._next_slot(after, anchor)
        if slot is None or self.window is None:
            return slot
        return self.window.admit(slot)

    def _next_slot(self, after: dt.datetime, anchor: dt.datetime | None) -> dt.datetime | None:
        if not self.automatic:
            return None
        tz = zone(self.tz)
        local = after.astimezone(tz)
        if self.type == CRON:
            # croniter walks naive local wall times; _resolve maps each to UTC once, so a DST
            # change neither skips nor repeats a run.
            start = local.replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=3)
            runs = croniter(normalize_cron(self.cron), start)
            for _ in range(2000):
                try:
                    when = _resolve(runs.get_next(dt.datetime), tz, after)
                except CroniterBadDateError:
                    return None
                if when is not None:
                    return when
            return None
        day = local.date() - dt.timedelta(days=1)
        for _ in range(800):
            if self._matches(day, anchor.astimezone(tz).date() if anchor else None):
                when = _resolve(dt.datetime.combine(day, self.time), tz, after)
                if when is not None:
                    return when
            day += dt.timedelta(days=1)
        return None

    def next_runs(self, after: dt.datetime, count: int = 3) -> list[dt.datetime]:
        """Return the next ``count`` run times after a moment."""
        runs: list[dt.datetime] = []
        moment = after
        while len(runs) < count:
            nxt = self.next_after(moment, anchor=after)
            if nxt is None:
                break
            runs.append(nxt)
            moment = nxt
        return runs

    def _matches(self, day: dt.date, anchor: dt.date | None) -> bool:
        if self.type == DAILY:
            return anchor is None or (day - anchor).days % self.interval == 0
        if self.type == WEEKLY:
            return day.weekday() == self.weekday
        if self.type == MONTHLY_BY_DAY:
            return day.day == min(self.day, calendar.monthrange(day.year, day.month)[1])
        if self.type == MONTHLY_BY_WEEKDAY:
            if day.weekday() != self.weekday:
                return False
            if self.week == -1:
                return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
            return (day.day - 1) // 7 + 1 == self.week
        return False


def _resolve(naive: dt.datetime, tz: ZoneInfo, after: dt.datetime) -> dt.datetime | None:
    """Turn a local wall time into UTC, or None when it is not after ``after``.

    A wall time in a spring-forward gap runs as far after the gap as it fell into it (02:30 on
    a day that jumps 02:00 to 03:00 runs at 03:30); one that happens twice when clocks fall back
    runs the first time only.
    """
    as_utc = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return as_utc if as_utc > after else None
