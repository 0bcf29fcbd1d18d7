"""Show a stored password to someone allowed to see it, and record that they saw it."""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

from audit import events as audit
from audit.models import AuditEvent, Outcome
from records.models import PamUser
from rotation.models import PasswordVersion


@sensitive_variables()
def reveal_password(
    user: PamUser,
    *,
    actor=None,
    actor_name: str = "",
    remote_address: str | None = None,
    version: PasswordVersion | None = None,
    event: str = AuditEvent.PASSWORD_REVEALED,
    category: str = "security",
) -> str:
    """Return a stored password in clear and record who saw it (a person, or an application by name)."""
    password = version.get_password() if version is not None else user.get_password()
    what = (
        f"password version replaced {version.replaced_at:%Y-%m-%d %H:%M}" if version else "current password"
    )
    audit.record_event(
        event,
        instance=user,
        actor=actor,
        actor_name=actor_name,
        remote_address=remote_address,
        outcome=Outcome.OK,
        message=f"Revealed the {what}",
        category=category,
    )
    return password
