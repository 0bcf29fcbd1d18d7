"""Keeper's schedules both ways: its schedule JSON to a record's schedule fields, and a record's back to
Keeper's CRON (Quartz) with pamrotate's exact form beside it."""

from __future__ import annotations

import datetime as dt
import re

from records import schedules
from records.keeper import SCHEDULE_KEYS, KeeperError, _shown, integer, text
from records.models import SCHEDULE_FIELDS

WEEKDAY_NAMES = [name.upper() for name in schedules.WEEKDAYS]  # Monday first, as pamrotate stores them
MONTH_NAMES = [
    "JANUARY",
    "FEBRUARY",
    "MARCH",
    "APRIL",
    "MAY",
    "JUNE",
    "JULY",
    "AUGUST",
    "SEPTEMBER",
    "OCTOBER",
    "NOVEMBER",
    "DECEMBER",
]
OCCURRENCES = {"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4, "LAST": -1}
# Quartz numbers weekdays 1 (Sunday) to 7 (Saturday).
QUARTZ_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def _time(value, where: str) -> dt.time | None:
    if value in (None, ""):
        return None
    try:
        return dt.time.fromisoformat(str(value).strip())
    except ValueError:
        raise KeeperError(f'{where}: time must be "HH:MM" or "HH:MM:SS", not {_shown(value)}') from None


def _named(value, names: list[str], where: str, what: str) -> int:
    """Return the index of a name (case-insensitive) in names, or raise KeeperError listing them."""
    name = str(value if value is not None else "").strip().upper()
    if name not in names:
        raise KeeperError(f"{where}: {what} must be one of {', '.join(names)}")
    return names.index(name)


def schedule_fields(value, where: str) -> dict:
    """Map Keeper's schedule JSON onto the ScheduleFields of a record.

    ``{"type": "ON_DEMAND"}`` or ``"on-demand"`` → on demand; ``CRON`` with ``cron`` (5 fields, or
    Quartz's 6) and ``tz``; ``DAILY`` (``time`` or ``utcTime``, ``tz``, ``intervalCount`` or
    ``occurrences``), ``WEEKLY`` (``weekday``), ``MONTHLY_BY_DAY`` (``monthDay`` or ``day``),
    ``MONTHLY_BY_WEEKDAY`` (``weekday``, ``occurrence`` or ``week``) and ``YEARLY`` (``month``,
    ``monthDay``; stored as a cron). A Quartz ``D#N`` / ``DL`` / ``L`` becomes the monthly schedule it
    names. RUN_ONCE has no equivalent and is rejected.
    """
    where = f"{where}: schedule"
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise KeeperError(f'{where}: expected an object such as {{"type": "on-demand"}}')
    unknown = [key for key in value if not key.startswith("_") and key not in SCHEDULE_KEYS]
    if unknown:
        raise KeeperError(f"{where}: unknown key {_shown(unknown[0])}")
    kind = text(value.get("type"), f"{where}.type").upper().replace("-", "_")
    if kind in ("ON_DEMAND", "ONDEMAND", "MANUAL"):
        return {"schedule_type": schedules.ON_DEMAND}
    tz = text(value.get("tz"), where) or "UTC"
    if kind == "CRON":
        return _cron_fields(value, tz, where)
    if kind == "YEARLY":
        return _yearly_fields(value, tz, where)
    if kind not in (
        schedules.DAILY,
        schedules.WEEKLY,
        schedules.MONTHLY_BY_DAY,
        schedules.MONTHLY_BY_WEEKDAY,
    ):
        raise KeeperError(
            f"{where}: type {_shown(value.get('type'))} is not supported; use on-demand, CRON, DAILY, WEEKLY, "
            "MONTHLY_BY_DAY, MONTHLY_BY_WEEKDAY or YEARLY"
        )
    at = value.get("time") if value.get("time") not in (None, "") else value.get("utcTime")
    fields = {"schedule_type": kind, "schedule_tz": tz, "schedule_time": _time(at, where)}
    interval = integer(value.get("intervalCount"), where, "intervalCount")
    occurrences = integer(value.get("occurrences"), where, "occurrences")
    if kind == schedules.DAILY:
        # Keeper writes a "*/N" day-of-month cron as DAILY with occurrences N: every N days.
        fields["schedule_interval"] = (interval if interval not in (None, 1) else occurrences) or 1
    elif interval not in (None, 1) or occurrences is not None:
        raise KeeperError(f"{where}: intervalCount and occurrences are supported for DAILY schedules only")
    if kind in (schedules.WEEKLY, schedules.MONTHLY_BY_WEEKDAY):
        fields["schedule_weekday"] = _named(value.get("weekday"), WEEKDAY_NAMES, where, "weekday")
    if kind == schedules.MONTHLY_BY_DAY:
        day = value.get("monthDay") if value.get("monthDay") is not None else value.get("day")
        fields["schedule_day"] = integer(day, where, "monthDay")
    if kind == schedules.MONTHLY_BY_WEEKDAY:
        occurrence = value.get("occurrence") if value.get("occurrence") is not None else value.get("week")
        fields["schedule_week"] = OCCURRENCES[
            list(OCCURRENCES)[_named(occurrence, list(OCCURRENCES), where, "occurrence")]
        ]
    return _checked(fields, where)


def _checked(fields: dict, where: str) -> dict:
    """Return schedule fields after checking they make a runnable schedule."""
    schedule = schedules.Schedule(
        type=fields["schedule_type"],
        time=fields.get("schedule_time"),
        interval=fields.get("schedule_interval", 1),
        weekday=fields.get("schedule_weekday"),
        day=fields.get("schedule_day"),
        week=fields.get("schedule_week"),
        cron=fields.get("schedule_cron", ""),
        tz=fields.get("schedule_tz", "UTC"),
    )
    try:
        schedule.validate()
    except schedules.ScheduleError as exc:
        raise KeeperError(f"{where}: {exc}") from None
    except ValueError:  # croniter finds no run at all
        raise KeeperError(f"{where}: this cron expression never fires") from None
    return fields


def _cron_fields(value: dict, tz: str, where: str) -> dict:
    cron = text(value.get("cron"), where)
    if not cron:
        raise KeeperError(f'{where}: a CRON schedule needs "cron"')
    exact = value.get("pamrotate")
    if isinstance(exact, dict) and "pamrotate" not in exact:
        # pam_export's own schedule next to its Quartz form: used while the Quartz form still matches.
        try:
            fields = schedule_fields({**exact, "tz": tz}, where)
        except KeeperError:
            fields = None
        if fields is not None and _quartz(fields) == " ".join(cron.split()):
            return fields
    monthly = _monthly_from_quartz(cron)
    if monthly is not None:
        return _checked({**monthly, "schedule_tz": tz}, where)
    return _checked({"schedule_type": schedules.CRON, "schedule_cron": cron, "schedule_tz": tz}, where)


def _yearly_fields(value: dict, tz: str, where: str) -> dict:
    at = _time(value.get("time") if value.get("time") not in (None, "") else value.get("utcTime"), where)
    if at is None:
        raise KeeperError(f"{where}: pick the time of day the rotation runs")
    month = value.get("month")
    if isinstance(month, int) and not isinstance(month, bool) and 1 <= month <= 12:
        number = month
    else:
        number = _named(month, MONTH_NAMES, where, "month") + 1
    day = integer(
        value.get("monthDay") if value.get("monthDay") is not None else value.get("day"), where, "monthDay"
    )
    if day is None or not 1 <= day <= 31:
        raise KeeperError(f"{where}: monthDay must be a day of the month from 1 to 31")
    cron = f"{at.minute} {at.hour} {day} {number} *"
    return _checked({"schedule_type": schedules.CRON, "schedule_cron": cron, "schedule_tz": tz}, where)


_QUARTZ_MONTHLY = re.compile(
    r"^0 (?P<minute>\d{1,2}) (?P<hour>\d{1,2}) (?P<dom>\?|L) \* (?P<dow>\?|(?:[1-7]|[A-Z]{3})(?:#[1-4]|L))(?: [*?])?$"
)


def _monthly_from_quartz(cron: str) -> dict | None:
    """Return the monthly schedule a Quartz "last day" or "Nth weekday" expression names, else None."""
    match = _QUARTZ_MONTHLY.match(" ".join(cron.upper().split()))
    if match is None or not (int(match["minute"]) < 60 and int(match["hour"]) < 24):
        return None
    at = dt.time(int(match["hour"]), int(match["minute"]))
    dom, dow = match["dom"], match["dow"]
    if dom == "L" and dow == "?":
        return {"schedule_type": schedules.MONTHLY_BY_DAY, "schedule_day": 31, "schedule_time": at}
    if dom != "?" or dow == "?":
        return None
    day, week = (dow[:-1], -1) if dow.endswith("L") else (dow.split("#")[0], int(dow.split("#")[1]))
    number = int(day) if day.isdigit() else QUARTZ_DAYS.get(day)
    if number is None:
        return None
    return {
        "schedule_type": schedules.MONTHLY_BY_WEEKDAY,
        "schedule_weekday": (number - 2) % 7,
        "schedule_week": week,
        "schedule_time": at,
    }


def _quartz_weekday(weekday: int) -> int:
    """Return Quartz's weekday number (1 = Sunday) for pamrotate's (0 = Monday)."""
    return (weekday + 1) % 7 + 1


def _quartz_day_field(field: str) -> str | None:
    """Return a 5-field cron weekday field in Quartz numbering, or None when it cannot be carried over."""
    if "/" in field:
        return None
    return re.sub(r"\d", lambda digit: str(int(digit.group()) % 7 + 1), field)


def quartz_cron(expression: str) -> str:
    """Return a cron expression in Keeper's 6-field Quartz form (seconds first, ? in one day field).

    A 5-field expression naming both a day of month and a weekday (or a weekday step) has no
    faithful Quartz form; it is returned as it is, which Keeper's importer also reads.
    """
    fields = expression.split()
    if len(fields) != 5:
        return " ".join(fields)
    minute, hour, dom, month, dow = fields
    if dow == "*":
        dom_q, dow_q = dom, "?"
    elif dom == "*":
        dom_q, dow_q = "?", _quartz_day_field(dow)
    else:
        dow_q = None
    if dow_q is None:
        return " ".join(fields)
    quartz = f"0 {minute} {hour} {dom_q} {month} {dow_q}"
    try:
        schedules.normalize_cron(quartz)
    except schedules.ScheduleError:
        return " ".join(fields)
    return quartz


def _quartz(fields: dict) -> str:
    """Return the Quartz expression for a record's schedule fields (not on demand)."""
    kind = fields["schedule_type"]
    if kind == schedules.CRON:
        return quartz_cron(fields.get("schedule_cron", ""))
    at = fields.get("schedule_time") or dt.time(0, 0)
    prefix = f"0 {at.minute} {at.hour}"
    if kind == schedules.DAILY:
        interval = fields.get("schedule_interval") or 1
        return f"{prefix} {'*' if interval == 1 else f'*/{interval}'} * ?"
    if kind == schedules.WEEKLY:
        return f"{prefix} ? * {_quartz_weekday(fields.get('schedule_weekday') or 0)}"
    if kind == schedules.MONTHLY_BY_DAY:
        day = fields.get("schedule_day") or 1
        # pamrotate runs day 29-31 on the month's last day when the month is shorter; Quartz's L is day 31's match.
        return f"{prefix} {'L' if day >= 31 else day} * ?"
    weekday = _quartz_weekday(fields.get("schedule_weekday") or 0)
    week = fields.get("schedule_week")
    return f"{prefix} ? * {weekday}L" if week == -1 else f"{prefix} ? * {weekday}#{week}"


def _record_schedule(record) -> dict:
    """Return a record's schedule fields by name."""
    return {name: getattr(record, name) for name in SCHEDULE_FIELDS}


def _exact_json(record) -> dict:
    """Return a record's schedule in pamrotate's own terms (Keeper's stored dialect, without tz)."""
    kind = record.schedule_type
    if kind == schedules.CRON:
        return {"type": "CRON", "cron": record.schedule_cron}
    out = {"type": kind}
    if record.schedule_time is not None:
        out["time"] = record.schedule_time.strftime("%H:%M:%S")
    if kind == schedules.DAILY:
        out["intervalCount"] = record.schedule_interval or 1
    if kind in (schedules.WEEKLY, schedules.MONTHLY_BY_WEEKDAY) and record.schedule_weekday is not None:
        out["weekday"] = WEEKDAY_NAMES[record.schedule_weekday]
    if kind == schedules.MONTHLY_BY_DAY:
        out["monthDay"] = record.schedule_day
    if kind == schedules.MONTHLY_BY_WEEKDAY:
        out["occurrence"] = {v: k for k, v in OCCURRENCES.items()}.get(record.schedule_week)
    return out


def schedule_json(record) -> dict | None:
    """Return a record's schedule as Keeper CRON (Quartz + tz), or None for "use the configuration's default".

    Keeper's importer reads only on-demand and CRON, so every automatic schedule is written as
    CRON; the ``pamrotate`` key keeps its exact form so pam_import reads it back unchanged.
    """
    kind = record.schedule_type
    if kind == schedules.USE_DEFAULT:
        return None
    if kind == schedules.ON_DEMAND:
        return {"type": "ON_DEMAND"}
    cron = _quartz(_record_schedule(record))
    out = {"type": "CRON", "cron": cron, "tz": record.schedule_tz}
    exact = _exact_json(record)
    if exact != {"type": "CRON", "cron": cron}:
        out["pamrotate"] = exact
    return out
