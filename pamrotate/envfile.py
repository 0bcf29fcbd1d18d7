"""Read the project's ``.env`` into the environment before the settings load.

``make run`` writes one (``PAMROTATE_MODE=dev`` ...), so the README's ``python manage.py ...`` lines
work as written afterwards. Lines are ``NAME=value`` (``export`` and quotes allowed, ``#`` starts a
comment line); a variable already set in the environment always wins. ``PAMROTATE_ENV_FILE`` names
another file; set to an empty value, no file is read.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent.parent / ".env"


def parse(text: str) -> dict[str, str]:
    """Return the variables of a .env text."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def load_env_file(path: Path | None = None) -> None:
    """Set the variables of the .env file that the environment does not set already."""
    if path is None:
        named = os.environ.get("PAMROTATE_ENV_FILE")
        if named == "":
            return
        path = Path(named) if named else DEFAULT
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    for name, value in parse(text).items():
        os.environ.setdefault(name, value)
