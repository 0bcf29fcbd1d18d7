"""Keeper's `pam project import` JSON: parse it, validate it, apply it, and export records back to it.

The shape is Keeper Commander's project file: one ``pam_configuration`` and ``pam_data`` holding
``resources`` (``pamDirectory`` records, each with nested ``users``), top-level ``users``
(``pamUser`` records) and ``rotation_profiles``. Keys that start with ``_`` are comments.

pamrotate extensions (Keeper's shape has no place for them): a ``pamDirectory`` may carry
``ca_certificate`` (PEM text), ``verify_certificate`` (default true) and ``start_tls``; a
``pam_configuration`` may carry ``default_password_complexity``, ``application_folder`` and
``manual_rotation_resets_schedule``. A file may also hold a JSON list of such projects (what
``pam_export`` writes when there is more than one configuration).

Import follows Keeper's ``extend`` mode: records are matched by title and existing ones are
skipped, so importing a file twice changes nothing. Any error rejects the whole file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from records import schedules
from records.models import DirectoryType, Environment, PamConfiguration, PamDirectory, PamUser
from records.signals import record_changed

KEEPER_ROTATION_TYPES = ("general", "iam_user", "scripts_only")
WEEKDAY_NAMES = [name.upper() for name in schedules.WEEKDAYS]
OCCURRENCES = {"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4, "LAST": -1}

TOP_KEYS = {"project", "pam_configuration", "pam_data", "shared_folder_users", "shared_folder_resources"}
CONFIGURATION_KEYS = {
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
}
DATA_KEYS = {"resources", "users", "rotation_profiles"}
DIRECTORY_KEYS = {
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
}
USER_KEYS = {"type", "title", "login", "password", "distinguished_name", "managed", "rotation_settings"}
ROTATION_KEYS = {"rotation", "profile", "resource", "enabled", "schedule", "password_complexity"}
PROFILE_KEYS = {"name", "enabled", "schedule", "password_complexity"}


class KeeperError(ValueError):
    """A project file that cannot be imported; the message says where and why."""


@dataclass
class Item:
    """One record named in a report: its kind, title and (for skips and rejections) why."""

    kind: str
    title: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.title!r}" + (f": {self.reason}" if self.reason else "")


@dataclass
class ImportReport:
    """What an import created, skipped and rejected, and the warnings it raised."""

    created: list[Item] = field(default_factory=list)
    skipped: list[Item] = field(default_factory=list)
    rejected: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.rejected

    def lines(self) -> list[str]:
        """Return the report as plain text lines."""
        out = []
        for heading, items in (
            ("Created", self.created),
            ("Skipped", self.skipped),
            ("Rejected", self.rejected),
        ):
            out.append(f"{heading}: {len(items)}")
            out.extend(f"  {item}" for item in items)
        if self.warnings:
            out.append(f"Warnings: {len(self.warnings)}")
            out.extend(f"  {warning}" for warning in self.warnings)
        return out


class ImportRejected(KeeperError):
    """The file was rejected whole; nothing was written. Carries the report."""

    def __init__(self, report: ImportReport):
        self.report = report
        count = len(report.rejected)
        super().__init__(
            f"{count} error{'s' if count != 1 else ''}: the file was rejected and nothing was written"
        )


# -- Parsing ------------------------------------------------------------------------------------


def parse(text: str | bytes) -> list[dict]:
    """Return the projects in a file's text, or raise KeeperError naming the line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise KeeperError(f"the file is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeeperError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    projects = data if isinstance(data, list) else [data]
    for index, project in enumerate(projects):
        if not isinstance(project, dict):
            raise KeeperError(
                f"project {index + 1}: expected a JSON object with pam_configuration and pam_data"
            )
    return projects


def _keys(obj: dict, known: set[str], where: str, warnings: list[str]) -> None:
    """Warn about unknown keys of an object; keys starting with _ are comments."""
    for key in obj:
        if not key.startswith("_") and key not in known:
            warnings.append(f'{where}: key "{key}" is not used by pamrotate; ignored')


def _switch(value, where: str, default: bool | None = None) -> bool | None:
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
    raise KeeperError(f'{where}: expected "on" or "off", not {value!r}')


def _text(value, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise KeeperError(f"{where}: expected text, not {type(value).__name__}")
    return str(value).strip()


def _pem(value, where: str) -> str:
    """Return PEM text as given (a list of lines is joined), or raise KeeperError."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        value = "\n".join(value) + "\n"
    if not isinstance(value, str):
        raise KeeperError(f"{where}: expected PEM text")
    if value.strip() and "-----BEGIN CERTIFICATE-----" not in value:
        raise KeeperError(f"{where}: expected a PEM certificate (-----BEGIN CERTIFICATE-----)")
    return value


def _lines(value, where: str) -> str:
    """Return a list of strings, or a string, as one entry a line."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "\n".join(part.strip() for part in value.replace(",", "\n").splitlines() if part.strip())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(item.strip() for item in value if item.strip())
    raise KeeperError(f"{where}: expected a list of strings")


def _object(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KeeperError(f"{where}: expected a JSON object")
    return value


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise KeeperError(f"{where}: expected a JSON list")
    return value


def _time(value, where: str) -> dt.time | None:
    if value in (None, ""):
        return None
    try:
        return dt.time.fromisoformat(str(value).strip())
    except ValueError:
        raise KeeperError(f'{where}: time must be "HH:MM" or "HH:MM:SS", not {value!r}') from None


def _int(value, where: str, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise KeeperError(f"{where}: {name} must be a whole number, not {value!r}") from None


def schedule_fields(value, where: str) -> dict:
    """Map Keeper's schedule JSON onto the ScheduleFields of a record.

    ``{"type": "ON_DEMAND"}`` or ``"on-demand"`` → on demand; ``CRON`` with ``cron`` and ``tz``;
    ``DAILY`` (``time``, ``tz``, ``intervalCount``), ``WEEKLY`` (``weekday``), ``MONTHLY_BY_DAY``
    (``monthDay``) and ``MONTHLY_BY_WEEKDAY`` (``weekday``, ``occurrence``). YEARLY and RUN_ONCE
    have no equivalent and are rejected.
    """
    where = f"{where}: schedule"
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise KeeperError(f'{where}: expected an object such as {{"type": "on-demand"}}')
    kind = str(value.get("type", "")).strip().upper().replace("-", "_")
    known = {"type", "cron", "tz", "time", "intervalCount", "weekday", "monthDay", "occurrence", "utcTime"}
    unknown = [key for key in value if not key.startswith("_") and key not in known]
    if unknown:
        raise KeeperError(f"{where}: unknown key {unknown[0]!r}")
    if kind in ("ON_DEMAND", "ONDEMAND", "MANUAL"):
        return {"schedule_type": schedules.ON_DEMAND}
    tz = _text(value.get("tz"), where) or "UTC"
    if kind == "CRON":
        cron = _text(value.get("cron"), where)
        if not cron:
            raise KeeperError(f'{where}: a CRON schedule needs "cron"')
        try:
            schedules.normalize_cron(cron)
        except schedules.ScheduleError as exc:
            raise KeeperError(f"{where}: {exc}") from None
        return {"schedule_type": schedules.CRON, "schedule_cron": cron, "schedule_tz": tz}
    if kind not in (
        schedules.DAILY,
        schedules.WEEKLY,
        schedules.MONTHLY_BY_DAY,
        schedules.MONTHLY_BY_WEEKDAY,
    ):
        raise KeeperError(
            f"{where}: type {value.get('type')!r} is not supported; use on-demand, CRON, DAILY, WEEKLY, "
            "MONTHLY_BY_DAY or MONTHLY_BY_WEEKDAY"
        )
    fields = {"schedule_type": kind, "schedule_tz": tz, "schedule_time": _time(value.get("time"), where)}
    interval = _int(value.get("intervalCount"), where, "intervalCount")
    if kind == schedules.DAILY:
        fields["schedule_interval"] = interval or 1
    elif interval not in (None, 1):
        raise KeeperError(f"{where}: intervalCount other than 1 is supported for DAILY schedules only")
    if kind in (schedules.WEEKLY, schedules.MONTHLY_BY_WEEKDAY):
        name = str(value.get("weekday", "")).strip().upper()
        if name not in WEEKDAY_NAMES:
            raise KeeperError(f"{where}: weekday must be one of {', '.join(WEEKDAY_NAMES)}")
        fields["schedule_weekday"] = WEEKDAY_NAMES.index(name)
    if kind == schedules.MONTHLY_BY_DAY:
        fields["schedule_day"] = _int(value.get("monthDay"), where, "monthDay")
    if kind == schedules.MONTHLY_BY_WEEKDAY:
        occurrence = str(value.get("occurrence", "")).strip().upper()
        if occurrence not in OCCURRENCES:
            raise KeeperError(f"{where}: occurrence must be one of {', '.join(OCCURRENCES)}")
        fields["schedule_week"] = OCCURRENCES[occurrence]
    try:
        schedules.Schedule(
            type=kind,
            time=fields["schedule_time"],
            interval=fields.get("schedule_interval", 1),
            weekday=fields.get("schedule_weekday"),
            day=fields.get("schedule_day"),
            week=fields.get("schedule_week"),
            tz=tz,
        ).validate()
    except schedules.ScheduleError as exc:
        raise KeeperError(f"{where}: {exc}") from None
    return fields


def schedule_json(record) -> dict | None:
    """Return a record's schedule as Keeper's JSON, or None for "use the configuration's default"."""
    kind = record.schedule_type
    if kind == schedules.USE_DEFAULT:
        return None
    if kind == schedules.ON_DEMAND:
        return {"type": "ON_DEMAND"}
    if kind == schedules.CRON:
        return {"type": "CRON", "cron": record.schedule_cron, "tz": record.schedule_tz}
    out = {"type": kind, "tz": record.schedule_tz}
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


# -- Importing ----------------------------------------------------------------------------------


def _title_of(entry) -> str:
    return str(entry.get("title", "")) if isinstance(entry, dict) else ""


def _messages(exc: ValidationError) -> str:
    """Return a ValidationError as one line, naming each field."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
    return " ".join(exc.messages)


class _Importer:
    """Apply one file's projects inside the caller's transaction, filling a report."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.created: list = []
        self.seen: dict[tuple[str, str], str] = {}
        self.unsupported: set[str] = set()

    def reject(self, kind: str, title: str, reason: str) -> None:
        self.report.rejected.append(Item(kind, title, reason))

    def once(self, kind: str, title: str, where: str) -> bool:
        """Return False (and reject) when a title appears twice in the file."""
        key = (kind, title)
        if key in self.seen:
            self.reject(
                kind, title, f"{where}: the title appears twice in the file (first at {self.seen[key]})"
            )
            return False
        self.seen[key] = where
        return True

    def save(self, instance, kind: str) -> bool:
        """Validate and save a new record; reject it with the model's messages when invalid."""
        try:
            instance.full_clean()
        except ValidationError as exc:
            self.reject(kind, instance.title, _messages(exc))
            return False
        instance.save()
        self.created.append(instance)
        self.report.created.append(Item(kind, instance.title))
        return True

    # The file's pieces, outermost first.

    def project(self, project: dict, where: str) -> None:
        warnings = self.report.warnings
        _keys(project, TOP_KEYS, where, warnings)
        for key in ("shared_folder_users", "shared_folder_resources"):
            if key in project:
                warnings.append(f'{where}: "{key}" has no meaning in pamrotate; ignored')
        configuration = self.configuration(
            _object(project.get("pam_configuration"), f"{where}.pam_configuration")
        )
        if configuration is None:
            return
        data = _object(project.get("pam_data"), f"{where}.pam_data")
        _keys(data, DATA_KEYS, f"{where}.pam_data", warnings)
        profiles = self.profiles(data.get("rotation_profiles"), f"{where}.pam_data.rotation_profiles")
        # Directories first (without their credential), then users, then the credential links.
        pending_links = []
        users = []
        for index, entry in enumerate(_list(data.get("resources"), f"{where}.pam_data.resources")):
            spot = f"{where}.pam_data.resources[{index}]"
            try:
                result = self.directory(_object(entry, spot), spot, configuration)
            except KeeperError as exc:
                self.reject("directory", _title_of(entry), str(exc))
                continue
            if result is None:
                continue
            directory, created, entry = result
            if created:
                pending_links.append((directory, entry, spot))
            for number, nested in enumerate(_list(entry.get("users"), f"{spot}.users")):
                users.append(
                    (_object(nested, f"{spot}.users[{number}]"), f"{spot}.users[{number}]", directory)
                )
        for index, entry in enumerate(_list(data.get("users"), f"{where}.pam_data.users")):
            spot = f"{where}.pam_data.users[{index}]"
            users.append((_object(entry, spot), spot, None))
        for entry, spot, directory in users:
            try:
                self.user(entry, spot, configuration, directory, profiles)
            except KeeperError as exc:
                self.reject("user", _title_of(entry), str(exc))
        for directory, entry, spot in pending_links:
            self.link_credential(directory, entry, spot)

    def configuration(self, entry: dict) -> PamConfiguration | None:
        where = "pam_configuration"
        _keys(entry, CONFIGURATION_KEYS, where, self.report.warnings)
        title = _text(entry.get("title"), f"{where}.title")
        if not title:
            self.reject("configuration", "", f"{where}: a title is required")
            return None
        if not self.once("configuration", title, where):
            return None
        existing = PamConfiguration.objects.filter(title=title).first()
        if existing is not None:
            self.report.skipped.append(Item("configuration", title, "a configuration with this title exists"))
            return existing
        environment = _text(entry.get("environment"), f"{where}.environment").lower() or Environment.LOCAL
        if environment not in Environment.values:
            self.reject("configuration", title, f'environment {environment!r} is not supported; use "local"')
            return None
        configuration = PamConfiguration(
            title=title,
            environment=environment,
            gateway=_text(entry.get("gateway_name"), f"{where}.gateway_name") or "default",
            application_folder=_text(entry.get("application_folder"), f"{where}.application_folder"),
            network_id=_text(entry.get("network_id"), f"{where}.network_id"),
            network_cidr=_text(entry.get("network_cidr"), f"{where}.network_cidr"),
            port_mapping=_lines(entry.get("port_mapping"), f"{where}.port_mapping"),
            rotation_enabled=_switch(entry.get("rotation"), f"{where}.rotation", default=True),
            manual_rotation_resets_schedule=_switch(
                entry.get("manual_rotation_resets_schedule"),
                f"{where}.manual_rotation_resets_schedule",
                default=False,
            ),
        )
        complexity = _text(entry.get("default_password_complexity"), f"{where}.default_password_complexity")
        if complexity:
            configuration.default_password_complexity = complexity
        if entry.get("default_rotation_schedule") is not None:
            for name, value in schedule_fields(entry["default_rotation_schedule"], where).items():
                setattr(configuration, name, value)
        return configuration if self.save(configuration, "configuration") else None

    def profiles(self, value, where: str) -> dict[str, dict]:
        """Return the rotation profiles by name (an object of name → settings, or a list with names)."""
        if value is None:
            return {}
        if isinstance(value, dict):
            named = {name: settings for name, settings in value.items() if not name.startswith("_")}
        elif isinstance(value, list):
            named = {}
            for index, settings in enumerate(value):
                name = _text(_object(settings, f"{where}[{index}]").get("name"), f"{where}[{index}].name")
                if not name:
                    raise KeeperError(f"{where}[{index}]: a rotation profile needs a name")
                named[name] = settings
        else:
            raise KeeperError(f"{where}: expected an object of profiles by name")
        for name, settings in named.items():
            _keys(_object(settings, f"{where}.{name}"), PROFILE_KEYS, f"{where}.{name}", self.report.warnings)
        return named

    def directory(self, entry: dict, where: str, configuration: PamConfiguration):
        """Create (or find) a directory; return (directory, created, entry) or None to skip it."""
        title = _text(entry.get("title"), f"{where}.title")
        kind = _text(entry.get("type"), f"{where}.type") or "pamDirectory"
        if kind != "pamDirectory":
            self.report.skipped.append(Item("resource", title, f"{kind} resources are not supported"))
            self.report.warnings.append(
                f"{where}: {kind} {title!r} skipped with its users: pamrotate rotates directory accounts only"
            )
            self.unsupported.add(title)
            return None
        _keys(entry, DIRECTORY_KEYS, where, self.report.warnings)
        if not title:
            self.reject("directory", "", f"{where}: a title is required")
            return None
        if not self.once("directory", title, where):
            return None
        existing = PamDirectory.objects.filter(title=title).first()
        if existing is not None:
            self.report.skipped.append(Item("directory", title, "a directory with this title exists"))
            return existing, False, entry
        directory_type = _text(entry.get("directory_type"), f"{where}.directory_type").lower()
        if directory_type not in DirectoryType.values:
            self.reject(
                "directory",
                title,
                f"unknown directory_type {entry.get('directory_type')!r}; use active_directory or openldap",
            )
            return None
        port = _int(entry.get("port"), where, "port")
        settings = _object(entry.get("pam_settings"), f"{where}.pam_settings")
        for key, value in settings.items():
            if key == "connection":
                connection = _object(value, f"{where}.pam_settings.connection")
                _keys(
                    connection,
                    {"administrative_credentials"},
                    f"{where}.pam_settings.connection",
                    self.report.warnings,
                )
            elif not key.startswith("_"):
                self.report.warnings.append(
                    f'{where}.pam_settings: key "{key}" is not used by pamrotate; ignored'
                )
        verify = _switch(entry.get("verify_certificate"), f"{where}.verify_certificate", default=True)
        if not verify:
            self.report.warnings.append(f"{where}: certificate verification is turned OFF for {title!r}")
        directory = PamDirectory(
            title=title,
            configuration=configuration,
            hostname=_text(entry.get("host"), f"{where}.host"),
            port=port if port is not None else 636,
            use_ssl=_switch(entry.get("use_ssl"), f"{where}.use_ssl", default=True),
            start_tls=_switch(entry.get("start_tls"), f"{where}.start_tls", default=False),
            ca_certificate=_pem(entry.get("ca_certificate"), f"{where}.ca_certificate"),
            verify_certificate=verify,
            alternative_ips=_lines(entry.get("alternative_ips"), f"{where}.alternative_ips"),
            domain_name=_text(entry.get("domain_name"), f"{where}.domain_name"),
            directory_type=directory_type,
            user_match=_text(entry.get("user_match"), f"{where}.user_match"),
        )
        if not self.save(directory, "directory"):
            return None
        return directory, True, entry

    def resolve_directory(self, title: str) -> PamDirectory | None:
        return PamDirectory.objects.filter(title=title).first()

    def user(self, entry: dict, where: str, configuration, directory, profiles: dict) -> None:
        _keys(entry, USER_KEYS, where, self.report.warnings)
        title = _text(entry.get("title"), f"{where}.title")
        kind = _text(entry.get("type"), f"{where}.type") or "pamUser"
        if kind != "pamUser":
            self.reject("user", title, f"{where}: type {kind!r} is not supported; use pamUser")
            return
        if not title:
            self.reject("user", "", f"{where}: a title is required")
            return
        if not self.once("user", title, where):
            return
        settings = dict(_object(entry.get("rotation_settings"), f"{where}.rotation_settings"))
        _keys(settings, ROTATION_KEYS, f"{where}.rotation_settings", self.report.warnings)
        profile_name = _text(settings.get("profile"), f"{where}.rotation_settings.profile")
        rotation = _text(settings.get("rotation"), f"{where}.rotation_settings.rotation")
        if rotation and rotation not in KEEPER_ROTATION_TYPES:
            if rotation not in profiles:
                self.reject("user", title, f"rotation {rotation!r} names no rotation profile in this file")
                return
            profile_name = profile_name or rotation
        elif rotation in ("iam_user", "scripts_only"):
            self.report.warnings.append(
                f"{where}: rotation {rotation!r} is treated as general (LDAP) rotation"
            )
        if profile_name:
            if profile_name not in profiles:
                self.reject("user", title, f"rotation profile {profile_name!r} is not in this file")
                return
            settings = {**{k: v for k, v in profiles[profile_name].items() if k != "name"}, **settings}
        resource_title = _text(settings.get("resource"), f"{where}.rotation_settings.resource")
        if resource_title in self.unsupported and directory is None:
            self.report.skipped.append(
                Item("user", title, f"its resource {resource_title!r} is not supported")
            )
            return
        if resource_title and directory is not None and resource_title != directory.title:
            self.reject(
                "user", title, f"nested under {directory.title!r} but its resource says {resource_title!r}"
            )
            return
        if resource_title and directory is None:
            directory = self.resolve_directory(resource_title)
            if directory is None:
                self.reject("user", title, f"its resource {resource_title!r} does not exist")
                return
        existing = PamUser.objects.filter(title=title).first()
        if existing is not None:
            self.report.skipped.append(Item("user", title, "a user with this title exists"))
            return
        user = PamUser(
            title=title,
            configuration=configuration,
            login=_text(entry.get("login"), f"{where}.login"),
            distinguished_name=_text(entry.get("distinguished_name"), f"{where}.distinguished_name"),
            managed=_switch(entry.get("managed"), f"{where}.managed", default=False),
            resource=directory,
            rotation_enabled=_switch(
                settings.get("enabled"), f"{where}.rotation_settings.enabled", default=directory is not None
            ),
            password_complexity=_text(settings.get("password_complexity"), f"{where}.password_complexity"),
            schedule_type=schedules.USE_DEFAULT,
        )
        if settings.get("schedule") is not None:
            for name, value in schedule_fields(settings["schedule"], where).items():
                setattr(user, name, value)
        password = entry.get("password")
        if password is not None and not isinstance(password, str):
            self.reject("user", title, "password must be text")
            return
        user.set_password(password or "")
        if self.save(user, "user"):
            user.next_rotation_at = user.compute_next_rotation()
            user.save(update_fields=["next_rotation_at"])

    def link_credential(self, directory: PamDirectory, entry: dict, where: str) -> None:
        """Link a new directory to its administrative credential, named by title or login."""
        connection = _object(_object(entry.get("pam_settings"), where).get("connection"), where)
        name = _text(connection.get("administrative_credentials"), f"{where}.administrative_credentials")
        if not name:
            return
        candidates = PamUser.objects.filter(configuration=directory.configuration)
        matches = list(candidates.filter(title=name)) or list(candidates.filter(login=name))
        if not matches:
            self.reject("directory", directory.title, f"administrative_credentials {name!r} names no user")
            return
        if len(matches) > 1:
            titles = ", ".join(repr(user.title) for user in matches)
            self.reject("directory", directory.title, f"administrative_credentials {name!r} matches {titles}")
            return
        directory.administrative_credential = matches[0]
        try:
            directory.full_clean()
        except ValidationError as exc:
            self.reject("directory", directory.title, _messages(exc))
            return
        directory.save(update_fields=["administrative_credential", "updated_at"])


def import_projects(
    projects: list[dict],
    *,
    actor_name: str = "",
    dry_run: bool = False,
    actor=None,
    remote_address: str | None = None,
) -> ImportReport:
    """Create the records a parsed file describes, in one transaction; return the report.

    Raises ImportRejected (after rolling everything back) when any item is invalid. A dry run
    validates the same way and then rolls back. ``actor`` and ``remote_address`` name the web
    user and their address in the audit events (the command gives neither).
    """
    report = ImportReport(dry_run=dry_run)
    importer = _Importer(report)
    with transaction.atomic():
        for index, project in enumerate(projects):
            where = "project" if len(projects) == 1 else f"project[{index}]"
            try:
                importer.project(project, where)
            except KeeperError as exc:
                report.rejected.append(Item("file", "", str(exc)))
        if report.rejected:
            transaction.set_rollback(True)
            raise ImportRejected(report)
        if dry_run:
            transaction.set_rollback(True)
            return report
        for instance in importer.created:
            record_changed.send(
                sender=type(instance),
                instance=instance,
                action="created",
                actor=actor,
                actor_name=actor_name,
                remote_address=remote_address,
                changed=[],
            )
    return report


def passwords_in(projects: list[dict]) -> set[str]:
    """Return every password a parsed file holds, so pages that show the file can leave them out."""
    found = set()
    for project in projects:
        data = project.get("pam_data") if isinstance(project, dict) else None
        if not isinstance(data, dict):
            continue
        users = list(data["users"]) if isinstance(data.get("users"), list) else []
        resources = data.get("resources") if isinstance(data.get("resources"), list) else []
        for resource in resources:
            if isinstance(resource, dict) and isinstance(resource.get("users"), list):
                users.extend(resource["users"])
        for user in users:
            if isinstance(user, dict) and isinstance(user.get("password"), str) and user["password"]:
                found.add(user["password"])
    return found


# -- Exporting ----------------------------------------------------------------------------------


def _user_json(user: PamUser, include_secrets: bool, nested: bool) -> dict:
    out = {"type": "pamUser", "title": user.title, "login": user.login}
    if include_secrets and user.has_password:
        out["password"] = user.get_password()
    out["distinguished_name"] = user.distinguished_name
    out["managed"] = user.managed
    rotation = {"rotation": "general"}
    if user.resource_id and not nested:
        rotation["resource"] = user.resource.title
    rotation["enabled"] = "on" if user.rotation_enabled else "off"
    schedule = schedule_json(user)
    if schedule is not None:
        rotation["schedule"] = schedule
    if user.password_complexity:
        rotation["password_complexity"] = user.password_complexity
    out["rotation_settings"] = rotation
    return out


def export_project(configuration: PamConfiguration, *, include_secrets: bool = False) -> dict:
    """Return one configuration with its directories and users as a Keeper project document."""
    config = {
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
    users = list(configuration.users.select_related("resource").order_by("title"))
    resources = []
    for directory in configuration.directories.select_related("administrative_credential").order_by("title"):
        entry = {
            "type": "pamDirectory",
            "title": directory.title,
            "host": directory.hostname,
            "port": directory.port,
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
                "connection": {"administrative_credentials": directory.administrative_credential.title}
            }
        entry["users"] = [
            _user_json(user, include_secrets, nested=True)
            for user in users
            if user.resource_id == directory.pk
        ]
        resources.append(entry)
    # A user whose directory belongs to another configuration cannot nest here; it names it instead.
    own = {entry["title"] for entry in resources}
    loose = [
        _user_json(user, include_secrets, nested=False)
        for user in users
        if user.resource_id is None or user.resource.title not in own
    ]
    return {
        "_comment": "Exported by pamrotate in Keeper's pam project import format.",
        "pam_configuration": config,
        "pam_data": {"resources": resources, "users": loose},
    }


def export_document(configurations, *, include_secrets: bool = False) -> dict | list:
    """Return one project document, or a list of them when there are several configurations."""
    projects = [export_project(c, include_secrets=include_secrets) for c in configurations]
    return projects[0] if len(projects) == 1 else projects
