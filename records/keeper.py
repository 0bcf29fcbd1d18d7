"""Keeper's `pam project import` JSON format: parse it, coerce its values, map schedules, export records to it.

The shape is Keeper Commander's project file: ``project``, one ``pam_configuration`` and
``pam_data`` holding ``resources`` (``pamDirectory`` records, each with nested ``users``),
top-level ``users`` (``pamUser`` records) and ``rotation_profiles``. Keys that start with ``_``
are comments. records/imports.py turns a parsed file into records; this module knows the format only.

pamrotate extensions (Keeper's shape has no place for them): a ``pamDirectory`` may carry
``ca_certificate`` (PEM text), ``verify_certificate`` (default true) and ``start_tls``; a
``pam_configuration`` may carry ``default_password_complexity``, ``application_folder`` and
``manual_rotation_resets_schedule``; a schedule may carry ``pamrotate`` (its exact pamrotate form
next to Keeper's CRON). A file may also hold a JSON list of projects.

Limits (anything past them is refused with a clear message): the file is at most ``MAX_MB`` MB,
nested at most ``MAX_DEPTH`` levels deep, and a number has at most ``MAX_DIGITS`` digits.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re

from records import schedules
from records.models import SCHEDULE_FIELDS, DirectoryType, Environment, PamConfiguration, PamUser

MAX_MB = 5
MAX_BYTES = MAX_MB * 1024 * 1024
MAX_DEPTH = 64
MAX_DIGITS = 30

KEEPER_ROTATION_TYPES = ("general", "iam_user", "scripts_only")
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
# Directory connection protocol written on export: Keeper's importer drops a connection without one.
EXPORT_PROTOCOL = {DirectoryType.ACTIVE_DIRECTORY: "rdp", DirectoryType.OPENLDAP: "ssh"}
UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")
COMMANDER_EXPORT = "commander-export"
# Keys other apps read and write on configurations, directories and users (scripts/ registers
# "scripts"; records never imports it): key -> function(record) returning the value to export, or None.
EXTRA_EXPORTS: dict = {}

TOP_KEYS = {
    "project",
    "pam_configuration",
    "pam_data",
    "shared_folder_users",
    "shared_folder_resources",
    "tool_version",
}
CONFIGURATION_KEYS = {
    "uid",
    "environment",
    "title",
    "gateway_name",
    "rotation",
    "port_mapping",
    "default_rotation_schedule",
    "network_id",
    "network_cidr",
    # pamrotate extensions
    "default_password_complexity",
    "application_folder",
    "manual_rotation_resets_schedule",
    "scripts",
}
# environment "domain" (Keeper's pamDomainConfiguration): the Domain Controller it rotates through.
DOMAIN_KEYS = {
    "dom_domain_id",
    "dom_hostname",
    "dom_port",
    "dom_use_ssl",
    "dom_scan_dc_cidr",
    "dom_network_cidr",
    "dom_user_match",
    "dom_administrative_credential",
}
DATA_KEYS = {"resources", "users", "rotation_profiles"}
DIRECTORY_KEYS = {
    "uid",
    "type",
    "title",
    "host",
    "port",
    "use_ssl",
    "domain_name",
    "directory_type",
    "alternative_ips",
    "user_match",
    "pam_settings",
    "users",
    # pamrotate extensions
    "ca_certificate",
    "verify_certificate",
    "start_tls",
    "scripts",
}
CONNECTION_KEYS = {"administrative_credentials", "protocol"}
USER_KEYS = {
    "uid",
    "type",
    "title",
    "login",
    "password",
    "distinguished_name",
    "managed",
    "rotation_settings",
    "scripts",
}
ROTATION_KEYS = {"rotation", "profile", "resource", "enabled", "schedule", "password_complexity"}
PROFILE_KEYS = {"name", "rotation", "enabled", "schedule", "password_complexity"}
SCHEDULE_KEYS = {
    "type",
    "cron",
    "tz",
    "time",
    "utcTime",
    "intervalCount",
    "occurrences",
    "weekday",
    "monthDay",
    "day",
    "month",
    "occurrence",
    "week",
    "pamrotate",
}


class KeeperError(ValueError):
    """A project file that cannot be imported; the message says where and why."""


# -- Parsing ------------------------------------------------------------------------------------


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise KeeperError(f"a number has {len(text.lstrip('-'))} digits; at most {MAX_DIGITS} are accepted")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_DIGITS + 10:
        raise KeeperError(f"a number is {len(text)} characters long; at most {MAX_DIGITS + 10} are accepted")
    return float(text)


def _no_constant(name: str):
    raise KeeperError(f"{name} is not a JSON number")


def _depth(data) -> int:
    """Return how deeply a parsed document nests, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                break
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parse(text: str | bytes) -> list[dict]:
    """Return the projects in a file's text, or raise KeeperError naming the line and column."""
    if len(text) > MAX_BYTES:
        raise KeeperError(f"the file is {len(text) / 1024 / 1024:.1f} MB; the limit is {MAX_MB} MB")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise KeeperError(f"the file is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(
            text, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant
        )
    except json.JSONDecodeError as exc:
        raise KeeperError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise KeeperError(f"the JSON is nested too deeply; at most {MAX_DEPTH} levels are accepted") from None
    if _depth(data) > MAX_DEPTH:
        raise KeeperError(f"the JSON is nested too deeply; at most {MAX_DEPTH} levels are accepted")
    try:
        # A "\ud800" escape decodes to a lone surrogate, which no database or page can hold.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise KeeperError(
            "the file holds a \\u escape that is not a Unicode character (a lone surrogate)"
        ) from None
    projects = data if isinstance(data, list) else [data]
    for index, project in enumerate(projects):
        if not isinstance(project, dict):
            raise KeeperError(
                f"project {index + 1}: expected a JSON object with pam_configuration and pam_data"
            )
    return projects


def is_commander_export(project: dict) -> bool:
    """Return whether a project is what Commander's `pam project export` wrote (a skeleton, not a backup)."""
    return str(project.get("tool_version", "")).startswith(COMMANDER_EXPORT)


# -- Coercing values ----------------------------------------------------------------------------


def unknown_keys(obj: dict, known: set[str], where: str) -> list[str]:
    """Return a warning for each unknown key of an object; keys starting with _ are comments."""
    return [
        f'{where}: key "{key}" is not used by pamrotate; ignored'
        for key in obj
        if not key.startswith("_") and key not in known
    ]


def switch(value, where: str, default: bool | None = None) -> bool | None:
    """Return Keeper's on/off (or a JSON boolean) as a bool; "default" and absent give ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "yes", "1"):
        return True
    if text in ("off", "false", "no", "0"):
        return False
    if text == "default":
        return default
    raise KeeperError(f'{where}: expected "on" or "off", not {_shown(value)}')


def text(value, where: str) -> str:
    """Return a string (or a number written as one) stripped; absent gives ""."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise KeeperError(f"{where}: expected text, not {type(value).__name__}")
    if isinstance(value, str) and "\x00" in value:
        raise KeeperError(f"{where}: the text holds a NUL character")
    return str(value).strip()


def pem(value, where: str) -> str:
    """Return PEM text as given; a list of lines is joined (the model checks it is a certificate)."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value) + "\n"
    if not isinstance(value, str):
        raise KeeperError(f"{where}: expected PEM text")
    return value


def lines(value, where: str) -> str:
    """Return a list of strings, or a string, as one entry a line (the model checks each entry)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(value)
    raise KeeperError(f"{where}: expected a list of strings")


def obj(value, where: str) -> dict:
    """Return a JSON object; absent gives {}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KeeperError(f"{where}: expected a JSON object")
    return value


def items(value, where: str) -> list:
    """Return a JSON list; absent gives []."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise KeeperError(f"{where}: expected a JSON list")
    return value


def integer(value, where: str, name: str) -> int | None:
    """Return a whole number (or one written as text); absent or "" gives None."""
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise KeeperError(f"{where}: {name} must be a whole number, not {type(value).__name__}")
    try:
        return _bounded_int(str(value).strip())
    except ValueError:
        raise KeeperError(f"{where}: {name} must be a whole number, not {_shown(value)}") from None


def uid(value, where: str) -> str:
    """Return a Keeper record UID (16 bytes, URL-safe base64 without padding), or "" when absent."""
    if value in (None, ""):
        return ""
    if isinstance(value, str) and UID_PATTERN.match(value):
        try:
            if len(base64.urlsafe_b64decode(value + "==")) == 16:
                return value
        except (binascii.Error, ValueError):
            pass
    raise KeeperError(
        f"{where}: uid {_shown(value)} is not a Keeper record UID (22 URL-safe base64 characters)"
    )


def _shown(value) -> str:
    """Return a value for a message, cut short."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


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


# -- Schedules ----------------------------------------------------------------------------------


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


# -- Exporting ----------------------------------------------------------------------------------


def _user_json(user: PamUser, include_secrets: bool, nested: bool) -> dict:
    out = {"uid": user.uid, "type": "pamUser", "title": user.title, "login": user.login}
    if include_secrets and user.has_password:
        out["password"] = user.get_password()
    out["distinguished_name"] = user.distinguished_name
    out["managed"] = user.managed
    rotation = {"rotation": user.rotation_type}
    if user.resource_id and not nested:
        rotation["resource"] = user.resource.title
    rotation["enabled"] = "on" if user.rotation_enabled else "off"
    schedule = schedule_json(user)
    if schedule is not None:
        rotation["schedule"] = schedule
    if user.password_complexity:
        rotation["password_complexity"] = user.password_complexity
    out["rotation_settings"] = rotation
    return extra_keys(user, out)


def extra_keys(record, out: dict) -> dict:
    """Add the registered extra keys (EXTRA_EXPORTS) a record has to its exported entry; return the entry."""
    for key, export in EXTRA_EXPORTS.items():
        value = export(record)
        if value is not None:
            out[key] = value
    return out


def _directory_json(directory) -> dict:
    entry = {
        "uid": directory.uid,
        "type": "pamDirectory",
        "title": directory.title,
        "host": directory.hostname,
        "port": str(directory.port),
        "use_ssl": directory.use_ssl,
        "start_tls": directory.start_tls,
        "domain_name": directory.domain_name,
        "directory_type": directory.directory_type,
        "alternative_ips": directory.alternative_ip_list,
        "user_match": directory.user_match,
        "ca_certificate": directory.ca_certificate,
        "verify_certificate": directory.verify_certificate,
    }
    if directory.administrative_credential is not None:
        entry["pam_settings"] = {
            "connection": {
                "protocol": EXPORT_PROTOCOL.get(directory.directory_type, "rdp"),
                "administrative_credentials": directory.administrative_credential.title,
            }
        }
    return extra_keys(directory, entry)


def domain_directory(configuration: PamConfiguration):
    """Return the Domain Controller of a domain configuration (its first Active Directory), or None."""
    return (
        configuration.directories.filter(directory_type=DirectoryType.ACTIVE_DIRECTORY)
        .select_related("administrative_credential")
        .order_by("pk")
        .first()
    )


def export_project(configuration: PamConfiguration, *, include_secrets: bool = False) -> dict:
    """Return one configuration with its directories and users as a Keeper project document."""
    config = {
        "uid": configuration.uid,
        "environment": configuration.environment,
        "title": configuration.title,
        "gateway_name": configuration.gateway,
        "rotation": "on" if configuration.rotation_enabled else "off",
        "port_mapping": [line.strip() for line in configuration.port_mapping.splitlines() if line.strip()],
        "default_rotation_schedule": schedule_json(configuration),
        "network_id": configuration.network_id,
        "network_cidr": configuration.network_cidr,
        "default_password_complexity": configuration.default_password_complexity,
        "application_folder": configuration.application_folder,
        "manual_rotation_resets_schedule": configuration.manual_rotation_resets_schedule,
    }
    extra_keys(configuration, config)
    domain = domain_directory(configuration) if configuration.environment == Environment.DOMAIN else None
    if domain is not None:
        config.update(
            {
                "dom_domain_id": domain.domain_name,
                "dom_hostname": domain.hostname,
                "dom_port": str(domain.port),
                "dom_use_ssl": domain.use_ssl,
                "dom_user_match": domain.user_match,
            }
        )
        if domain.administrative_credential is not None:
            config["dom_administrative_credential"] = domain.administrative_credential.title
        del config["network_cidr"]
        config["dom_network_cidr"] = configuration.network_cidr
    users = list(configuration.users.select_related("resource").order_by("title"))
    resources = []
    directories = configuration.directories.select_related("administrative_credential").order_by("title")
    for directory in directories:
        if domain is not None and directory.pk == domain.pk:
            continue
        entry = _directory_json(directory)
        entry["users"] = [
            _user_json(user, include_secrets, nested=True)
            for user in users
            if user.resource_id == directory.pk
        ]
        resources.append(entry)
    # A user whose directory belongs to another configuration cannot nest here; it names it instead.
    # A domain configuration's users are its own (Keeper: their parent is the configuration).
    own = {entry["title"] for entry in resources}
    loose = [
        _user_json(user, include_secrets, nested=domain is not None and user.resource_id == domain.pk)
        for user in users
        if user.resource_id is None or user.resource.title not in own
    ]
    return {
        "_comment": "Exported by pamrotate in Keeper's pam project import format.",
        "project": configuration.title,
        "pam_configuration": config,
        "pam_data": {"resources": resources, "users": loose},
    }


def export_document(configurations, *, include_secrets: bool = False) -> dict | list:
    """Return one project document, or a list of them (pamrotate's own) when there are several."""
    projects = [export_project(c, include_secrets=include_secrets) for c in configurations]
    return projects[0] if len(projects) == 1 else projects
