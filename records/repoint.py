"""A credential goes only where it was entered for.

A directory's administrative credential (and, for a PAM user, its own password, which is bound to
verify it) is sent to the directory's address. Changing where it is sent — host, port, alternative
IPs, TLS mode, certificate checking, CA, the directory type (how the bind is made), or which stored
credential a directory uses, or which directory a user's password is verified on — needs a
session verified with a second factor and that password typed again in the same save.
``changes.save_record`` asks ``check`` on every save, so every entry point gets the rule.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from accounts import policy
from records.models import PamDirectory, PamUser

# Where a directory's credentials are sent, and how.
DIRECTORY_DESTINATION = (
    "hostname",
    "port",
    "alternative_ips",
    "use_ssl",
    "start_tls",
    "verify_certificate",
    "ca_certificate",
    "directory_type",
)
# Which stored credential goes there.
DIRECTORY_CREDENTIAL = ("administrative_credential",)
# A user's password is verified by binding to its directory's address.
USER_DESTINATION = ("resource",)


@dataclass(frozen=True)
class Proof:
    """What the save carries: a session verified with a second factor, and the credential typed again."""

    verified: bool = False
    password: str = ""

    def __repr__(self) -> str:  # never the password, in a log or a traceback
        return f"Proof(verified={self.verified}, password={'set' if self.password else 'empty'})"

    @classmethod
    def of(cls, who, password: str = "") -> Proof:
        """Return what a request's save carries: its second factor (accounts.policy), the password typed."""
        return cls(verified=policy.is_verified(who), password=password if isinstance(password, str) else "")


NO_PROOF = Proof()


class RepointRefused(ValidationError):
    """A save that would send a stored credential somewhere new without the proof it needs."""


def _stored(instance):
    if instance.pk is None:
        return None
    return type(instance).objects.filter(pk=instance.pk).first()


def changes(instance) -> list[tuple[str, object, object]]:
    """Return (field, before, after) for each credential-bearing field this save changes."""
    if isinstance(instance, PamDirectory):
        names = DIRECTORY_DESTINATION + DIRECTORY_CREDENTIAL
    elif isinstance(instance, PamUser):
        names = USER_DESTINATION
    else:
        return []
    before = _stored(instance)
    found = []
    for name in names:
        field = instance._meta.get_field(name)
        after = getattr(instance, field.attname)
        if before is None:
            # A new directory that uses an already stored credential sends it to a new place.
            if name in DIRECTORY_CREDENTIAL and after is not None:
                found.append((name, None, after))
            continue
        was = getattr(before, field.attname)
        if was != after:
            found.append((name, was, after))
    return found


def _credential_passwords(instance) -> list[str]:
    """Return the stored passwords this save would send to the new place (empty: nothing to protect)."""
    if isinstance(instance, PamUser):
        return [instance.get_password()] if instance.has_password else []
    credential = instance.administrative_credential
    if credential is not None:
        return [credential.get_password()] if credential.has_password else []
    if instance.pk is None:
        return []
    # No administrative credential: the accounts on it bind with their own passwords.
    return [user.get_password() for user in instance.users.all() if user.has_password]


def _matches(typed: str, passwords: list[str]) -> bool:
    typed_digest = hashlib.sha256(typed.encode()).digest()
    return any(hmac.compare_digest(typed_digest, hashlib.sha256(p.encode()).digest()) for p in passwords)


def check(instance, proof: Proof | None) -> list[tuple[str, object, object]]:
    """Raise RepointRefused unless the save may send its credential where it now points; return the changes."""
    found = changes(instance)
    if not found:
        return found
    proof = proof or NO_PROOF
    names = ", ".join(name.replace("_", " ") for name, _, _ in found)
    passwords = _credential_passwords(instance)
    if not passwords:
        return found  # no stored password goes anywhere
    if not proof.verified:
        raise RepointRefused(
            f"Changing {names} sends a stored password to a new place: it needs a session verified "
            "with your second factor."
        )
    if not proof.password or not _matches(proof.password, passwords):
        whose = (
            "the account's password"
            if isinstance(instance, PamUser)
            else "the administrative credential's password"
        )
        raise RepointRefused(
            f"Changing {names} sends a stored password to a new place: type {whose} again in the same save."
        )
    return found


def describe(found: list[tuple[str, object, object]]) -> str:
    """Return the audit line of a repointing: each field before and after (a CA by its fingerprint)."""

    def shown(name: str, value) -> str:
        if name == "ca_certificate":
            if not value:
                return "none"
            return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
        return repr(value) if value not in (None, "") else "none"

    parts = [f"{name} {shown(name, before)} → {shown(name, after)}" for name, before, after in found]
    return "Credential destination changed: " + "; ".join(parts)
