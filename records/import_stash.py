"""The browser's upload waiting between preview and confirm: encrypted, in the session when small, else a private file."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest

from pamrotate import crypto

SESSION_KEY = "pam_import"
# An upload larger than this (encrypted) waits in a private file instead of the session row.
SESSION_LIMIT = 64 * 1024
FILE_NAME = re.compile(r"^[0-9a-f]{32}\.enc$")


def _imports_dir() -> Path:
    return Path(settings.DATA_DIR) / "imports"


def _sweep_imports() -> None:
    """Delete waiting uploads older than a session: their sessions ended without a confirm or cancel."""
    cutoff = time.time() - settings.SESSION_COOKIE_AGE
    for path in _imports_dir().glob("*.enc"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def discard(request: HttpRequest) -> None:
    """Forget the waiting upload and delete its file."""
    stash = request.session.pop(SESSION_KEY, None)
    if isinstance(stash, dict) and FILE_NAME.match(str(stash.get("file", ""))):
        (_imports_dir() / stash["file"]).unlink(missing_ok=True)


def stash(request: HttpRequest, name: str, text: str) -> None:
    """Keep an upload, encrypted, until it is confirmed or cancelled: in the session when small, else a file."""
    discard(request)
    sealed = crypto.encrypt(text)
    stash = {"name": name}
    if len(sealed) <= SESSION_LIMIT:
        stash["document"] = sealed
    else:
        directory = _imports_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _sweep_imports()
        stash["file"] = f"{secrets.token_hex(16)}.enc"
        descriptor = os.open(directory / stash["file"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(sealed)
    request.session[SESSION_KEY] = stash


def stashed(request: HttpRequest) -> tuple[str, str] | None:
    """Return the waiting upload's name and text, or None when there is none (or it is gone)."""
    stash = request.session.get(SESSION_KEY)
    if not isinstance(stash, dict):
        return None
    sealed = stash.get("document")
    if sealed is None and FILE_NAME.match(str(stash.get("file", ""))):
        try:
            sealed = (_imports_dir() / stash["file"]).read_text()
        except OSError:
            return None
    try:
        return str(stash.get("name", "")), crypto.decrypt(sealed)
    except (crypto.DecryptionError, AttributeError, TypeError):
        return None
