"""The one start-up step that touches the disk: data directory, dev keys, the SQLite file's mode.

``prepare()`` runs in every entry point (manage.py, wsgi.py, asgi.py) after the ``.env`` is read and
before Django loads the settings, which then only read what is here. It is safe to run in several
processes at once (gunicorn's workers): a key file appears whole, and only once.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pamrotate import paths

SETTINGS_MODULE = "pamrotate.settings"


def prepare() -> None:
    """Create the data directory (0700), the missing dev keys (0600) and the SQLite file (0600)."""
    if os.environ.get("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE) != SETTINGS_MODULE:
        return  # a settings module of its own (the tests') brings its own keys and data directory
    private_data_dir(paths.data_dir())
    if paths.dev_mode():
        write_dev_keys()
    database = paths.sqlite_file()
    if database is not None:
        private_database_file(database)


def private_data_dir(path: Path) -> None:
    """Create the data directory, private to the service's user, in every mode."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return  # e.g. /var/lib not writable: the operator creates it; what needs it says so when used
    if paths.dev_mode() and path == paths.DEFAULT_DATA_DIR:
        path.chmod(0o700)  # the ./data an earlier `make run` created 0755


def write_dev_keys() -> None:
    """Write the secret key and the encryption key file the environment does not give (dev mode)."""
    if not paths.given("PAMROTATE_SECRET_KEY"):
        path = paths.secret_key_file()
        if write_once(path, lambda tmp: write_private(tmp, secrets.token_urlsafe(50) + "\n")):
            print(f"pamrotate: created {path} (dev mode). Keep it safe; it cannot be recovered.")
    if not paths.given("PAMROTATE_ENCRYPTION_KEY"):
        from pamrotate.keyring import Key, write_key_file

        path = paths.encryption_key_file()
        if write_once(path, lambda tmp: write_key_file(tmp, [Key.generate()])):
            print(f"pamrotate: created encryption key file {path} (dev mode). Back it up.")


def write_once(path: Path, write: Callable[[Path], None]) -> bool:
    """Create PATH whole through a temporary file; return False when it exists already."""
    if path.exists():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        write(tmp)
        os.link(tmp, path)  # fails if another process got there first: its key stays, ours goes
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def write_private(path: Path, text: str) -> None:
    """Write a new file, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def private_database_file(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (0644); its -wal and -shm files copy that mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if paths.dev_mode() and path.parent == paths.DEFAULT_DATA_DIR and path.stat().st_mode & 0o077:
            path.chmod(0o600)  # made 0644 by an earlier `make run`
    except OSError:
        pass  # a directory that does not exist yet: SQLite will say so when it is used
