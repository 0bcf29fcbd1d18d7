"""Show a stored password to someone allowed to see it, and record that they saw it."""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent, Outcome
from records.models import PamUser
from rotation.models import PasswordVersion


@sensitive_variables()
def reveal_password(
    user: PamUser,
    *,
    actor: Actor,
    version: PasswordVersion | None = None,
    event: str = AuditEvent.PASSWORD_REVEALED,
    category: str = "security",
) -> str:
    """Return a stored password in clear and record who saw it (``actor``: a person or an application)."""
    password = version.get_password() if version is not None else user.get_password()
    what = (
        f"password version replaced {version.replaced_at:%Y-%m-%d %H:%M}" if version else "current password"
    )
    audit.record_event(
        event,
        instance=user,
        actor=actor,
        outcome=Outcome.OK,
        message=f"Revealed the {what}",
        category=category,
    )
    return password
