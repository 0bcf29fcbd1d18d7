"""The ciphertext envelope: ``pr1:<key id>:<base64url(nonce | AES-GCM ciphertext+tag)>``.

The key id is bound into the tag as associated data, so a ciphertext cannot be moved to another key.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "pr1"


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any key in the ring."""


def seal(kid: str, material: bytes, plaintext: str) -> str:
    """Return the envelope of a secret encrypted under one key."""
    nonce = os.urandom(12)
    sealed = AESGCM(material).encrypt(nonce, plaintext.encode(), kid.encode())
    return f"{PREFIX}:{kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(materials: dict[str, bytes], ciphertext: str) -> str:
    """Return the plaintext of an envelope, with the key its id names among ``materials``."""
    try:
        prefix, kid, body = ciphertext.split(":", 2)
    except ValueError:
        raise DecryptionError("not a pamrotate ciphertext") from None
    if prefix != PREFIX:
        raise DecryptionError("not a pamrotate ciphertext")
    material = materials.get(kid)
    if material is None:
        raise DecryptionError(f"no encryption key with id {kid} is configured")
    try:
        raw = base64.urlsafe_b64decode(body)
        return AESGCM(material).decrypt(raw[:12], raw[12:], kid.encode()).decode()
    except Exception:
        raise DecryptionError(f"the secret does not decrypt with key {kid}") from None


def key_id_of(ciphertext: str) -> str:
    """Return the id of the key an envelope was made with ("" when it is not one)."""
    parts = ciphertext.split(":", 2)
    return parts[1] if len(parts) == 3 else ""
