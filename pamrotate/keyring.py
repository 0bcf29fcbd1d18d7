"""The key ring: AES-256 keys from the settings (or a key file), the first encrypts, all decrypt.

Keys come from ``settings.ENCRYPTION_KEYS`` (PAMROTATE_ENCRYPTION_KEY: base64url keys separated by
commas or white space) or, when that is empty, from ``settings.ENCRYPTION_KEY_FILE`` (one key a
line). In dev mode a missing key file is created with one random key, mode 0600. The key id is the
first 8 hex digits of SHA-256 over the key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from pamrotate import envelope

_BASE64 = re.compile(r"[A-Za-z0-9_+/-]+={0,2}")
_lock = threading.Lock()
_ring: KeyRing | None = None
_ring_stamp: float | None = None


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
        return envelope.seal(self.current.kid, self.current.material, plaintext)

    def decrypt(self, ciphertext: str) -> str:
        """Return the plaintext of a stored secret."""
        return envelope.unseal({kid: key.material for kid, key in self.by_id.items()}, ciphertext)

    def key_id_of(self, ciphertext: str) -> str:
        """Return the id of the key a ciphertext was made with."""
        return envelope.key_id_of(ciphertext)


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
