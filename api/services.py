"""Create applications, issue and revoke tokens: each change one audit event, no token in any of them."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from api.models import Application, Token
from audit import events as audit
from audit.actors import SYSTEM_ACTOR, Actor
from audit.models import AuditEvent, Category, Outcome


def _record(event: str, message: str, *, actor: Actor) -> None:
    audit.record_event(
        event,
        actor=actor,
        outcome=Outcome.OK,
        message=message,
        category=Category.SECURITY,
    )


def expiry_in(days: int | None) -> dt.datetime | None:
    """Return the moment a number of days from now, or None for no expiry."""
    return timezone.now() + dt.timedelta(days=days) if days else None


def create_application(
    name: str,
    configurations,
    *,
    allowed_networks: str = "",
    expires_at: dt.datetime | None = None,
    is_active: bool = True,
    actor: Actor = SYSTEM_ACTOR,
) -> tuple[Application, str]:
    """Create a validated application with its first token; return both, the token in clear (``actor`` creates)."""
    with transaction.atomic():
        application = Application(
            name=name,
            allowed_networks=allowed_networks,
            expires_at=expires_at,
            is_active=is_active,
            created_by=actor.user,
            created_by_name=actor.name,
        )
        application.full_clean()
        application.save()
        application.configurations.set(configurations)
        titles = ", ".join(sorted(str(c) for c in application.configurations.all())) or "none"
        _record(
            AuditEvent.APPLICATION_CREATED,
            f"Application {application.name} created for configurations: {titles}",
            actor=actor,
        )
        _token, clear = issue_token(application=application, actor=actor)
    return application, clear


def record_application_change(application: Application, changed: list[str], *, actor: Actor) -> None:
    """Record that ``actor`` changed an application's settings, naming the fields."""
    _record(
        AuditEvent.APPLICATION_UPDATED,
        f"Application {application.name} changed: {', '.join(sorted(changed)) or 'nothing'}",
        actor=actor,
    )


def issue_token(
    *,
    application: Application | None = None,
    user=None,
    name: str = "",
    expires_at: dt.datetime | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> tuple[Token, str]:
    """Issue a token to an application or a person; return it and its clear text (shown once)."""
    with transaction.atomic():
        token, clear = Token.issue(
            application=application, user=user, created_by=actor.user, name=name, expires_at=expires_at
        )
        _record(
            AuditEvent.TOKEN_CREATED,
            f"Token {token.hint}… issued to {token.owner_name}"
            + (f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""),
            actor=actor,
        )
    return token, clear


def revoke_token(token: Token, *, actor: Actor = SYSTEM_ACTOR) -> bool:
    """Revoke a token and record that ``actor`` did; return False when it was already revoked."""
    with transaction.atomic():
        if not token.revoke():
            return False
        _record(
            AuditEvent.TOKEN_REVOKED,
            f"Token {token.hint}… of {token.owner_name} revoked",
            actor=actor,
        )
    return True
