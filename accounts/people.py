"""People in the app: add a local person, give and take scoped roles; every change is an audit event."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts import roles
from accounts.models import Grant, Profile, Source
from audit.events import record_event
from audit.models import AuditEvent, Category, Outcome

ONE_TIME_PASSWORD_BYTES = 15


def _new_one_time_password() -> str:
    """Return a random first password (120 bits), shown once to the Administrator who adds the person."""
    return secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)


def _audit(actor, event: str, message: str) -> None:
    record_event(event, actor=actor, outcome=Outcome.OK, category=Category.SECURITY, message=message)


def add_person(*, username: str, first_name: str, last_name: str, email: str, role: str, actor) -> tuple:
    """Create a local person with a role and a one-time password; return (user, password in clear, once)."""
    clear = _new_one_time_password()
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username, email, clear, first_name=first_name, last_name=last_name
        )
        Profile.mark(user, Source.LOCAL)
        roles.set_roles(user, [role] if role else [])
        _audit(
            actor,
            AuditEvent.PERSON_ADDED,
            f"{username} added, role {role or 'none'}, one-time password issued",
        )
    return user, clear


def give_grant(
    *, person=None, group_dn: str = "", role: int, configurations, everywhere: bool, actor
) -> Grant:
    """Give a role on some configurations (or all) to a person or a directory group, audited."""
    with transaction.atomic():
        grant = Grant(user=person, group_dn=group_dn.strip(), role=role, all_configurations=everywhere)
        grant.full_clean()
        grant.save()
        grant.configurations.set(configurations)
        where = "all configurations" if everywhere else ", ".join(sorted(str(c) for c in configurations))
        _audit(
            actor, AuditEvent.ROLE_CHANGED, f"granted {grant.get_role_display()} on {where} to {_who(grant)}"
        )
    return grant


def take_grant(grant: Grant, *, actor) -> None:
    """Take a grant back, audited."""
    with transaction.atomic():
        _audit(actor, AuditEvent.ROLE_CHANGED, f"took back {grant.get_role_display()} from {_who(grant)}")
        grant.delete()


def _who(grant: Grant) -> str:
    return grant.user.get_username() if grant.user_id else f"directory group {grant.group_dn}"
