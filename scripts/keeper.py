"""The ``scripts`` key of Keeper's project file on configurations, directories and users.

Keeper's shape: a list of ``{"file", "script_command", "additional_credentials"}`` (a bare
string is a file). records/ knows nothing of this app: ``register`` hooks these functions into
its importer (``records.imports.EXTRA_KEY_HANDLERS``) and exporter (``records.keeper_export.EXTRA_EXPORTS``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError

from records.keeper import KeeperError
from records.models import PamConfiguration, PamDirectory, PamUser
from scripts import files
from scripts.models import PostRotationScript, validate_command

KEY = "scripts"
ENTRY_KEYS = {"file", "script_command", "additional_credentials"}


def register() -> None:
    """Hook the ``scripts`` key into the Keeper importer and exporter."""
    from records import imports, keeper_export

    imports.EXTRA_KEY_HANDLERS[KEY] = plan_scripts
    keeper_export.EXTRA_EXPORTS[KEY] = export_scripts


def _owner_field(record) -> str:
    return {PamUser: "user", PamDirectory: "directory", PamConfiguration: "configuration"}[type(record)]


def export_scripts(record) -> list[dict] | None:
    """Return a record's scripts in Keeper's shape, or None when it has none."""
    scripts = PostRotationScript.objects.filter(**{_owner_field(record): record}).prefetch_related(
        "additional_credentials"
    )
    entries = [
        {
            "file": script.file,
            "script_command": script.command,
            "additional_credentials": [
                credential.title for credential in script.additional_credentials.all()
            ],
        }
        for script in scripts
    ]
    return entries or None


def _names(value, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise KeeperError(f"{where}: expected a title or login, or a list of them")
    return [name.strip() for name in value]


def _entry(entry, where: str, find_user: Callable, warn: Callable) -> tuple[str, str, list[PamUser]]:
    """Check one script entry; return (file name, command, additional credentials)."""
    if isinstance(entry, str):
        entry = {"file": entry}
    if not isinstance(entry, dict):
        raise KeeperError(f"{where}: expected a file name or an object with a file")
    for key in entry:
        if not key.startswith("_") and key not in ENTRY_KEYS:
            warn(f'{where}: key "{key}" is not used by pamrotate; ignored')
    try:
        name = files.from_keeper(entry.get("file"))
    except files.ScriptRefused as exc:
        raise KeeperError(f"{where}.file: {exc}") from None
    command = entry.get("script_command") or ""
    if not isinstance(command, str):
        raise KeeperError(f"{where}.script_command: expected text")
    try:
        validate_command(command.strip())
        if not command.strip():
            files.resolve(name, executable=True)
    except (ValidationError, files.ScriptRefused) as exc:
        reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        raise KeeperError(f"{where}: {reason}") from None
    credentials = []
    for credential in _names(entry.get("additional_credentials"), f"{where}.additional_credentials"):
        matches = find_user(credential)
        if not matches:
            raise KeeperError(
                f"{where}.additional_credentials: {credential!r} names no user of this configuration"
            )
        if len(matches) > 1:
            titles = ", ".join(repr(user.title) for user in matches)
            raise KeeperError(f"{where}.additional_credentials: {credential!r} matches {titles}")
        credentials.append(matches[0])
    return name, command.strip(), credentials


def plan_scripts(record, value, where: str, find_user: Callable, warn: Callable) -> Callable[[], None]:
    """Check a new record's ``scripts`` now; return what saves them once the records are saved."""
    entries = value if isinstance(value, list) else [value]
    planned = [_entry(entry, f"{where}[{index}]", find_user, warn) for index, entry in enumerate(entries)]
    owner = _owner_field(record)

    def save() -> None:
        for order, (name, command, credentials) in enumerate(planned, 1):
            script = PostRotationScript.objects.create(
                file=name, command=command, order=order, **{owner: record}
            )
            script.additional_credentials.set(credentials)

    return save
