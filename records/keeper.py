"""Keeper's `pam project import` JSON format: its keys and limits; parse a file and coerce its values.

The shape is Keeper Commander's project file: ``project``, one ``pam_configuration`` and
``pam_data`` holding ``resources`` (``pamDirectory`` records, each with nested ``users``),
top-level ``users`` (``pamUser`` records) and ``rotation_profiles``. Keys that start with ``_``
are comments. This module knows the format only: records/imports.py turns a parsed file into
records, records/keeper_schedules.py maps its schedules both ways and records/keeper_export.py
writes records back into it.

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
import json
import re

MAX_MB = 5
MAX_BYTES = MAX_MB * 1024 * 1024
MAX_DEPTH = 64
MAX_DIGITS = 30

KEEPER_ROTATION_TYPES = ("general", "iam_user", "scripts_only")
UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")
COMMANDER_EXPORT = "commander-export"

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
