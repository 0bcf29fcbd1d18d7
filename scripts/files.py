"""Which script files may run: regular files inside PAMROTATE_SCRIPTS_DIR that nobody else can change.

Checked when a script is attached (the model's ``clean``) and again right before it runs, because
the file system can change in between.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from django.conf import settings

LISTED_AT_MOST = 500


class ScriptRefused(Exception):
    """A script file that must not run; the message says why (no secret in it)."""


# One program, no arguments: a name looked up on PATH (no "/", not "." or "..") or an absolute path
# without "." or ".." parts. A relative path such as ../bin/sh would depend on the working directory.
PROGRAM_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,199}")
PROGRAM_PATH = re.compile(r"(/[A-Za-z0-9_+][A-Za-z0-9_.+-]*)+")


def check_command(command: str) -> None:
    """Refuse a command that is not one program name or one absolute path (ScriptRefused says why)."""
    if not isinstance(command, str) or not command:
        return
    if len(command) > 200 or not (PROGRAM_NAME.fullmatch(command) or PROGRAM_PATH.fullmatch(command)):
        raise ScriptRefused(
            "give one program, such as python3, bash or pwsh (or an absolute path such as "
            "/usr/bin/python3), without arguments or a relative path"
        )
    if any(part in (".", "..") for part in command.split("/")):
        raise ScriptRefused("the command's path must not contain . or .. parts")


def scripts_dir() -> Path:
    """Return the scripts directory as configured (it may not exist yet)."""
    return Path(settings.SCRIPTS_DIR)


def _world_writable(mode: int) -> bool:
    return bool(mode & stat.S_IWOTH)


def resolve(name: str, *, executable: bool = False) -> Path:
    """Return the real path of a script file, or raise ScriptRefused with the reason.

    ``name`` is relative to the scripts directory. Refused: a path that leaves the directory
    (through ``..`` or a symlink), a missing file, anything but a regular file, a world-writable
    file or directory on the way, and (``executable``) a file without execute permission.
    """
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise ScriptRefused("no script file was given")
    shown = name if len(name) <= 200 else name[:200] + "…"
    base = scripts_dir()
    try:
        real_base = base.resolve(strict=True)
    except OSError:
        raise ScriptRefused(f"the scripts directory {base} does not exist") from None
    if Path(name).is_absolute():
        raise ScriptRefused(f"{shown!r}: give a path relative to the scripts directory")
    try:
        real = (real_base / name).resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop
        raise ScriptRefused(f"{shown!r} cannot be resolved") from None
    if not real.is_relative_to(real_base) or real == real_base:
        raise ScriptRefused(f"{shown!r} is outside the scripts directory {base}")
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise ScriptRefused(f"{shown!r} does not exist in the scripts directory") from None
    except OSError as exc:
        raise ScriptRefused(f"{shown!r} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ScriptRefused(f"{shown!r} is not a regular file")
    if _world_writable(info.st_mode):
        raise ScriptRefused(f"{shown!r} is world-writable: anyone on the host could change what runs")
    for directory in [
        real_base,
        *[p for p in real.parents if p.is_relative_to(real_base) and p != real_base],
    ]:
        if _world_writable(os.stat(directory).st_mode):
            raise ScriptRefused(f"{shown!r} is in a world-writable directory ({directory})")
    if executable and not os.access(real, os.X_OK):
        raise ScriptRefused(f"{shown!r} is not executable: make it executable or give a command such as bash")
    return real


def relative_name(path: Path) -> str:
    """Return a checked script path as the name stored on the record (relative to the directory)."""
    return path.relative_to(scripts_dir().resolve()).as_posix()


def from_keeper(value: str) -> str:
    """Return the stored name for a Keeper ``file`` value, or raise ScriptRefused with the reason.

    A path relative to the scripts directory is used as it is; any other path (Keeper's files
    are paths on the machine that ran Commander) is looked up by its file name at the top of
    the scripts directory.
    """
    if not isinstance(value, str) or not value.strip():
        raise ScriptRefused("file is required")
    value = value.strip()
    posix_absolute = value.startswith("/")
    windows = PureWindowsPath(value)
    if not posix_absolute and not windows.drive and "\\" not in value:
        return relative_name(resolve(value))
    file_name = windows.name if (windows.drive or "\\" in value) else PurePosixPath(value).name
    try:
        return relative_name(resolve(file_name))
    except ScriptRefused as exc:
        raise ScriptRefused(f"{value!r}: its file name {file_name!r} is not usable here: {exc}") from None


def available() -> list[str]:
    """Return the names of the files in the scripts directory that may be attached."""
    base = scripts_dir()
    if not base.is_dir():
        return []
    names = []
    for root, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file_name in sorted(files):
            name = (Path(root) / file_name).relative_to(base).as_posix()
            try:
                resolve(name)
            except ScriptRefused:
                continue
            names.append(name)
            if len(names) >= LISTED_AT_MOST:
                return names
    return names
