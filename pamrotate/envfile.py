"""Read the project's ``.env`` into the environment before the settings load (python-dotenv).

``make run`` writes one (``PAMROTATE_MODE=dev`` ...), so the README's ``python manage.py ...`` lines
work as written afterwards. The syntax is python-dotenv's (``export``, quotes, ``#`` comments, also
after a value); ``${NAME}`` is not expanded, so a secret holding ``$`` stays as written. A variable
already set in the environment always wins. ``PAMROTATE_ENV_FILE`` names another file; set to an
empty value, no file is read.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from dotenv import dotenv_values

DEFAULT = Path(__file__).resolve().parent.parent / ".env"


def parse(text: str) -> dict[str, str]:
    """Return the variables of a .env text (a line without ``=`` names nothing)."""
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {name: value for name, value in values.items() if value is not None}


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
