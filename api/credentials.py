"""Read an account's password for an API caller: each password handed out is an audit event."""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

from api.lookups import insert_event
from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent, Category, Outcome
from pamrotate import crypto
from records.models import PamUser
from rotation.reveal import reveal_password


@sensitive_variables()
def read_credential(
    pam_user: PamUser, request, *, with_previous: bool = False, previous_encrypted: str | None = None
) -> dict:
    """Return the account's current (and, if asked, previous) password, recording each read.

    The caller has passed api.permissions.may_read_credential. The event names the person or
    application and the client address (rotation.reveal writes it). ``previous_encrypted`` is the
    previous password's ciphertext ("" for none) when the caller loaded it with the account.
    """
    who = Actor.from_request(request)
    if not with_previous:
        return {
            "password": reveal_password(pam_user, event=AuditEvent.CREDENTIAL_READ, actor=who),
            "last_password": "",
        }
    # One read, one event: the current and the previous password are handed out together.
    if previous_encrypted is None:
        previous = pam_user.password_versions.order_by("-replaced_at", "-id").first()
        previous_encrypted = previous.password_encrypted if previous else ""
    values = {
        "password": pam_user.get_password(),
        "last_password": crypto.decrypt(previous_encrypted) if previous_encrypted else "",
    }
    what = "current and previous password" if previous_encrypted else "current password (no previous one)"
    # Committed before the password is returned (api.lookups.insert_event: one INSERT, autocommit).
    insert_event(
        audit.new_event(
            AuditEvent.CREDENTIAL_READ,
            instance=pam_user,
            outcome=Outcome.OK,
            message=f"Read the {what}",
            category=Category.SECURITY,
            actor=who,
        )
    )
    return values
