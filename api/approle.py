"""AppRole: give an application a role ID, issue and revoke secret IDs, and the tokens a login issues.

Each change is one audit event (no secret in any); a secret ID and a token are shown once and
stored as their SHA-256 digests (api.models).
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from api.models import Application, AppRole, SecretId, Token
from audit import events as audit
from audit.actors import SYSTEM_ACTOR, Actor
from audit.models import AuditEvent, Category, Outcome


def _record(message: str, *, actor: Actor, event: str = AuditEvent.TOKEN_CREATED) -> None:
    audit.record_event(
        event,
        actor=actor,
        outcome=Outcome.OK,
        message=message,
        category=Category.SECURITY,
    )


def configure(
    application: Application, *, token_ttl: int, token_max_ttl: int, actor: Actor = SYSTEM_ACTOR
) -> AppRole:
    """Turn AppRole on for an application (or change its token lifetimes, as ``actor``); return it."""
    with transaction.atomic():
        approle = AppRole.objects.filter(application=application).first() or AppRole(application=application)
        approle.token_ttl, approle.token_max_ttl = token_ttl, token_max_ttl
        approle.full_clean()
        approle.save()
        _record(
            f"AppRole of {application.name}: token TTL {token_ttl} s, maximum {token_max_ttl} s",
            actor=actor,
        )
    return approle


def issue_secret_id(
    approle: AppRole,
    *,
    ttl_seconds: int | None = None,
    uses: int | None = None,
    allowed_networks: str = "",
    actor: Actor = SYSTEM_ACTOR,
) -> tuple[SecretId, str]:
    """Issue a secret ID (TTL, use count, networks); return it and its clear text (shown once)."""
    expires_at = timezone.now() + dt.timedelta(seconds=ttl_seconds) if ttl_seconds else None
    with transaction.atomic():
        secret_id, clear = SecretId.issue(
            approle,
            expires_at=expires_at,
            uses_left=uses or None,
            allowed_networks=allowed_networks,
            created_by_name=actor.name,
        )
        limits = [f"expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "no expiry"]
        limits.append(f"{uses} logins" if uses else "unlimited logins")
        _record(
            f"Secret ID {secret_id.hint}… issued to {approle.application.actor_name}, {', '.join(limits)}",
            actor=actor,
        )
    return secret_id, clear


def revoke_secret_id(secret_id: SecretId, *, actor: Actor = SYSTEM_ACTOR) -> bool:
    """Revoke a secret ID and every token its logins issued (``actor`` did); return False when it already was."""
    with transaction.atomic():
        now = timezone.now()
        if not SecretId.objects.filter(pk=secret_id.pk, revoked_at__isnull=True).update(revoked_at=now):
            return False
        for token in secret_id.tokens.filter(revoked_at__isnull=True):
            token.revoke()
        _record(
            f"Secret ID {secret_id.hint}… of {secret_id.approle.application.actor_name} revoked",
            event=AuditEvent.TOKEN_REVOKED,
            actor=actor,
        )
    return True


def revoke_application_secret_ids(application: Application, *, actor: Actor = SYSTEM_ACTOR) -> int:
    """Revoke every usable secret ID of an application (its revocation); return how many."""
    secret_ids = SecretId.objects.filter(approle__application=application, revoked_at__isnull=True)
    return sum(revoke_secret_id(secret_id, actor=actor) for secret_id in secret_ids.select_related("approle"))


def issue_login_token(secret_id: SecretId, *, actor: Actor) -> tuple[Token, str]:
    """Issue an AppRole login's token for ``actor`` (the application): the role's TTLs, revoked with the secret ID."""
    approle, now = secret_id.approle, timezone.now()
    with transaction.atomic():
        token, clear = Token.issue(
            application=approle.application,
            name=f"approle login with {secret_id.hint}…",
            secret_id=secret_id,
            expires_at=now + dt.timedelta(seconds=approle.token_ttl),
            ttl_seconds=approle.token_ttl,
            max_expires_at=now + dt.timedelta(seconds=approle.token_max_ttl),
        )
        _record(
            f"Token {token.hint}… issued to {token.owner_name} by an AppRole login with {secret_id.hint}…",
            actor=actor,
        )
    return token, clear


def issue_child_token(
    parent: Token,
    *,
    name: str,
    expires_at: dt.datetime,
    ttl_seconds: int | None,
    max_expires_at: dt.datetime | None,
    actor: Actor,
) -> tuple[Token, str]:
    """Issue a child token (auth/token/create) for ``actor``: its parent's owner and scope, revoked with it."""
    with transaction.atomic():
        token, clear = Token.issue(
            application=parent.application,
            user=parent.user,
            name=name or f"child of {parent.hint}…",
            parent=parent,
            expires_at=expires_at,
            ttl_seconds=ttl_seconds,
            max_expires_at=max_expires_at,
        )
        _record(
            f"Token {token.hint}… issued to {token.owner_name} as a child of {parent.hint}…",
            actor=actor,
        )
    return token, clear
