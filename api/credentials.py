"""Read an account's password for an API caller: each password handed out is an audit event."""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

from api.authentication import ApplicationCaller, client_address
from records.models import PamUser
from rotation.models import AuditEvent
from rotation.reveal import reveal_password


def caller_identity(request) -> dict:
    """Return the audit actor of a request: a person, or an application by name."""
    if isinstance(request.user, ApplicationCaller):
        return {"actor": None, "actor_name": request.user.get_username()}
    return {"actor": request.user, "actor_name": request.user.get_username()}


@sensitive_variables()
def read_credential(pam_user: PamUser, request, *, with_previous: bool = False) -> dict:
    """Return the account's current (and, if asked, previous) password, recording each read.

    The caller has passed api.permissions.may_read_credential. The event names the person or
    application and the client address (rotation.reveal writes it).
    """
    who = {**caller_identity(request), "remote_address": client_address(request)}
    values = {
        "password": reveal_password(pam_user, event=AuditEvent.CREDENTIAL_READ, **who),
        "last_password": "",
    }
    if with_previous:
        previous = pam_user.password_versions.order_by("-replaced_at", "-id").first()
        if previous is not None:
            values["last_password"] = reveal_password(
                pam_user, version=previous, event=AuditEvent.CREDENTIAL_READ, **who
            )
    return values
