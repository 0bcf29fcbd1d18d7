"""Encrypt secrets at rest with AES-GCM under a key ring whose first key encrypts.

A ciphertext reads ``pr1:<key id>:<base64url(nonce | ciphertext+tag)>``. The key id is the first
8 hex digits of SHA-256 over the key, so any key in the ring can be found for decryption and a
ciphertext tells which key made it.

Keys come from ``settings.ENCRYPTION_KEYS`` (PAMROTATE_ENCRYPTION_KEY: base64url keys separated by
commas or white space) or, when that is empty, from ``settings.ENCRYPTION_KEY_FILE`` (one key a
line). In dev mode a missing key file is created with one random key, mode 0600.

Every process checks its keys when it starts (``check_keys``, called by manage.py, wsgi.py and
asgi.py): they must parse, decrypt the canary file written under the first key ever used, and
decrypt a sample of the stored secrets; otherwise it refuses to start, naming what is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)
PREFIX = "pr1"
CANARY = "pamrotate encryption canary"
_BASE64 = re.compile(r"[A-Za-z0-9_+/-]+={0,2}")
_lock = threading.Lock()
_ring: KeyRing | None = None
_ring_stamp: float | None = None


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any key in the ring."""


@dataclass(frozen=True)
class Key:
    """One AES-256 key and its id."""

    kid: str
    material: bytes

    @classmethod
    def from_text(cls, text: str) -> Key:
        """Parse a base64url key of 32 bytes (the messages never quote the key)."""
        text = text.strip()
        # b64decode skips characters outside the alphabet: refuse them, or a damaged key could pass.
        if not _BASE64.fullmatch(text):
            raise ImproperlyConfigured("an encryption key is not valid base64")
        try:
            material = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            raise ImproperlyConfigured("an encryption key is not valid base64") from None
        if len(material) != 32:
            raise ImproperlyConfigured(
                f"an encryption key must be 32 bytes (base64url-encoded), not {len(material)}"
            )
        return cls(kid=hashlib.sha256(material).hexdigest()[:8], material=material)

    @classmethod
    def generate(cls) -> Key:
        """Return a new random key."""
        return cls.from_text(base64.urlsafe_b64encode(os.urandom(32)).decode())

    def to_text(self) -> str:
        """Return the key as base64url text."""
        return base64.urlsafe_b64encode(self.material).decode()


class KeyRing:
    """The keys that decrypt secrets; the first one also encrypts."""

    def __init__(self, keys: list[Key]):
        if not keys:
            raise ImproperlyConfigured("the encryption key ring is empty")
        self.keys = keys
        self.by_id = {key.kid: key for key in keys}

    @property
    def current(self) -> Key:
        """Return the key that encrypts new secrets."""
        return self.keys[0]

    def encrypt(self, plaintext: str) -> str:
        """Return the ciphertext of a secret under the current key."""
        key = self.current
        nonce = os.urandom(12)
        sealed = AESGCM(key.material).encrypt(nonce, plaintext.encode(), key.kid.encode())
        return f"{PREFIX}:{key.kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, ciphertext: str) -> str:
        """Return the plaintext of a stored secret."""
        try:
            prefix, kid, body = ciphertext.split(":", 2)
        except ValueError:
            raise DecryptionError("not a pamrotate ciphertext") from None
        if prefix != PREFIX:
            raise DecryptionError("not a pamrotate ciphertext")
        key = self.by_id.get(kid)
        if key is None:
            raise DecryptionError(f"no encryption key with id {kid} is configured")
        try:
            raw = base64.urlsafe_b64decode(body)
            return AESGCM(key.material).decrypt(raw[:12], raw[12:], kid.encode()).decode()
        except Exception:
            raise DecryptionError(f"the secret does not decrypt with key {kid}") from None

    def key_id_of(self, ciphertext: str) -> str:
        """Return the id of the key a ciphertext was made with."""
        parts = ciphertext.split(":", 2)
        return parts[1] if len(parts) == 3 else ""


def parse_keys(text: str, source: str = "the encryption keys") -> list[Key]:
    """Parse keys separated by commas, white space or lines; '#' starts a comment line."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
    parts = " ".join(lines).replace(",", " ").split()
    keys = []
    for number, part in enumerate(parts, start=1):
        try:
            keys.append(Key.from_text(part))
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f"{source}: key {number} of {len(parts)}: {exc}") from None
    if not keys:
        raise ImproperlyConfigured(f"{source} holds no key")
    return keys


def key_file_path() -> Path | None:
    """Return the key file in use, or None when the keys come from the environment."""
    if settings.ENCRYPTION_KEYS:
        return None
    return Path(settings.ENCRYPTION_KEY_FILE)


def key_source() -> str:
    """Return where the keys come from, for messages: the variable or the file, never a key."""
    path = key_file_path()
    return "PAMROTATE_ENCRYPTION_KEY" if path is None else f"the encryption key file {path}"


def load_ring() -> KeyRing:
    """Read the key ring from the settings (creating the dev key file when allowed)."""
    if settings.ENCRYPTION_KEYS:
        return KeyRing(parse_keys(settings.ENCRYPTION_KEYS, key_source()))
    path = Path(settings.ENCRYPTION_KEY_FILE)
    if not path.exists():
        if settings.PRODUCTION:
            raise ImproperlyConfigured(f"encryption key file {path} does not exist")
        write_key_file(path, [Key.generate()])
        print(f"pamrotate: created encryption key file {path} (dev mode). Back it up.")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot read the encryption key file {path}: {exc.strerror}") from None
    return KeyRing(parse_keys(text, key_source()))


def write_key_file(path: Path, keys: list[Key]) -> None:
    """Write keys to a file atomically, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# pamrotate encryption keys: the first encrypts, all decrypt\n")
        fh.write("".join(key.to_text() + "\n" for key in keys))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _file_stamp() -> float | None:
    path = key_file_path()
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


def ring() -> KeyRing:
    """Return the process-wide key ring, reloading it when the key file changed.

    A long-running worker thus picks up a key rotation made by another process at once.
    """
    global _ring, _ring_stamp
    with _lock:
        stamp = _file_stamp()
        if _ring is None or stamp != _ring_stamp:
            _ring = load_ring()
            _ring_stamp = _file_stamp()
        return _ring


def reset_ring() -> None:
    """Forget the loaded key ring so the next use reads the keys again."""
    global _ring
    with _lock:
        _ring = None


def encrypt(plaintext: str) -> str:
    """Encrypt a secret under the current key."""
    return ring().encrypt(plaintext)


def decrypt(ciphertext: str) -> str:
    """Decrypt a stored secret."""
    return ring().decrypt(ciphertext)


# -- Checks at start: the keys decrypt what is stored ------------------------------------------


def encrypted_columns() -> Iterator[tuple[type, str]]:
    """Yield (model, field name) for every model field that holds a ciphertext."""
    from django.apps import apps

    for model in apps.get_models():
        for field in getattr(model, "encrypted_fields", ()):
            yield model, field


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


def _refuse(what: str, ciphertext: str, ring: KeyRing) -> ImproperlyConfigured:
    kid = ring.key_id_of(ciphertext) or "?"
    configured = ", ".join(key.kid for key in ring.keys)
    return ImproperlyConfigured(
        f"{key_source()} cannot decrypt {what}, which was encrypted under key id {kid} "
        f"(configured key ids: {configured}). The key is wrong, truncated or missing: restore "
        "the key that was in use (keep old keys after the new one while rotating)."
    )


def _check_canary(ring: KeyRing) -> None:
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
    raise _refuse(f"the canary file {path}", ciphertext, ring)


def _check_stored_secrets(ring: KeyRing) -> None:
    """Decrypt the oldest and the newest stored secret of each encrypted column."""
    from django.db import DatabaseError, connections

    try:
        for model, field in encrypted_columns():
            rows = model._base_manager.exclude(**{field: ""}).exclude(**{f"{field}__isnull": True})
            for ordering in ("pk", "-pk"):
                row = rows.order_by(ordering).values_list("pk", field).first()
                if row is None:
                    break
                try:
                    ring.decrypt(row[1])
                except DecryptionError:
                    raise _refuse(f"the stored {model._meta.verbose_name} #{row[0]}", row[1], ring) from None
    except DatabaseError:
        pass  # not migrated yet (or unreachable): there is nothing this process could read either
    finally:
        # A worker forks after this: no child may inherit the parent's connection.
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close()


def check_keys() -> None:
    """Refuse to start (ImproperlyConfigured) unless the keys parse and decrypt the canary and stored secrets."""
    current = ring()
    _check_canary(current)
    _check_stored_secrets(current)
    for problem in key_file_problems():
        logger.warning("%s", problem)


def key_file_problems() -> list[str]:
    """Return what is unsafe about the key file: readable or writable by group or others."""
    path = key_file_path()
    try:
        mode = path.stat().st_mode & 0o777 if path is not None else 0
    except OSError:
        return []
    if mode & 0o077:
        return [
            f"the encryption key file {path} has mode {mode:04o}: other local users can read or "
            f"change it; run chmod 600 {path}"
        ]
    return []


# Registered here, with the rule they check: `check` warns, and `check --deploy` fails.
@checks.register(checks.Tags.security)
def check_key_file_mode(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Warn when the encryption key file can be read by group or others."""
    return [checks.Warning(problem, id="pamrotate.W001") for problem in key_file_problems()]


@checks.register(checks.Tags.security, deploy=True)
def check_key_file_mode_deploy(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Fail a deployment check when the encryption key file can be read by group or others."""
    return [checks.Error(problem, id="pamrotate.E001") for problem in key_file_problems()]
