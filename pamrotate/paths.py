"""Where pamrotate keeps its files, from the environment alone: settings and start-up both read it.

No Django here: ``pamrotate/startup.py`` uses these paths before the settings load, so that the
settings find the dev keys it wrote and only ever read them.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
# The checkout's own data directory (`make run`); a directory someone names is theirs.
DEFAULT_DATA_DIR = BASE_DIR / "data"


def data_dir() -> Path:
    """Return the data directory: PAMROTATE_DATA_DIR, or the checkout's ./data."""
    return Path(os.environ.get("PAMROTATE_DATA_DIR", "") or DEFAULT_DATA_DIR)


def dev_mode() -> bool:
    """Return whether PAMROTATE_MODE asks for the local dev mode (production is the default)."""
    return os.environ.get("PAMROTATE_MODE", "") == "dev"


def given(name: str) -> bool:
    """Return whether the environment gives a secret, as NAME or as the file NAME_FILE."""
    return bool(os.environ.get(name) or os.environ.get(f"{name}_FILE"))


def secret_key_file() -> Path:
    """Return the file that holds the secret key in dev mode when the environment gives none."""
    return data_dir() / "secret_key"


def encryption_key_file() -> Path:
    """Return the key file dev mode uses when the environment names no encryption key."""
    return data_dir() / "encryption.key"


def default_database_file() -> Path:
    """Return the SQLite file used when DATABASE_URL is unset."""
    return data_dir() / "pamrotate.sqlite3"


def sqlite_file() -> Path | None:
    """Return the SQLite file in use, or None when DATABASE_URL names another database."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return default_database_file()
    if url.startswith("sqlite:///"):
        return Path(dj_database_url.parse(url)["NAME"])
    return None
