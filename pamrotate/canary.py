"""The canary file: a known text encrypted under the keys this host uses, checked at every start."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from pamrotate.envelope import DecryptionError
from pamrotate.keyring import KeyRing, key_source

logger = logging.getLogger(__name__)

CANARY = "pamrotate encryption canary"


def canary_path() -> Path:
    """Return the canary file: a known text encrypted under the keys this host uses."""
    return Path(settings.ENCRYPTION_CANARY_FILE)


def write_canary(ring: KeyRing) -> None:
    """(Re)write the canary under the ring's current key, atomically, mode 0600."""
    path = canary_path()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.encrypt(CANARY) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def refusal(what: str, ciphertext: str, ring: KeyRing) -> ImproperlyConfigured:
    """Return the start-up refusal for a ciphertext the ring cannot read (key ids, never a key)."""
    kid = ring.key_id_of(ciphertext) or "?"
    configured = ", ".join(key.kid for key in ring.keys)
    return ImproperlyConfigured(
        f"{key_source()} cannot decrypt {what}, which was encrypted under key id {kid} "
        f"(configured key ids: {configured}). The key is wrong, truncated or missing: restore "
        "the key that was in use (keep old keys after the new one while rotating)."
    )


def check_canary(ring: KeyRing) -> None:
    """Refuse the ring unless it decrypts the canary (written on the first start with these keys)."""
    path = canary_path()
    try:
        ciphertext = path.read_text().strip()
    except FileNotFoundError:
        # The first start with these keys: later starts must find the same (or a rotated) ring.
        try:
            write_canary(ring)
        except OSError as exc:
            logger.warning("cannot write the encryption canary %s: %s", path, exc.strerror)
        return
    try:
        if ring.decrypt(ciphertext) == CANARY:
            return
    except DecryptionError:
        pass
    raise refusal(f"the canary file {path}", ciphertext, ring)
