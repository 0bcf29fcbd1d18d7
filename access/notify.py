"""Mail approvers and requesters about access requests and break-glass; never with a secret.

ops (issue 24) publishes no way to send an arbitrary alert event to its webhooks yet, so these go
by mail (rotation/notifications.py's sender, to each person's address and NOTIFY_EMAIL_TO).
"""

from __future__ import annotations

from django.urls import reverse

from rotation import notifications


def _addresses(people) -> list[str]:
    return sorted({person.email for person in people if getattr(person, "email", "")})


def _link(request) -> str:
    return reverse("access:request-detail", args=[request.pk])


def request_made(request, approvers) -> list[str]:
    """Tell every approver that a request waits for them; return the addresses mailed."""
    to = _addresses(approvers)
    if to:
        notifications._send(
            f"Access request for {request.user}",
            [
                f"{request.requester} asks for access to {request.user} for {request.wanted_minutes} minutes.",
                f"Reason: {request.reason}",
                "",
                f"Approve or deny it: {_link(request)}",
            ],
            to,
        )
    return to


def request_decided(request) -> list[str]:
    """Tell the requester the decision."""
    to = _addresses([request.requester])
    if to:
        until = f" until {request.granted_until:%Y-%m-%d %H:%M} UTC" if request.granted_until else ""
        notifications._send(
            f"Access request for {request.user}: {request.get_state_display().lower()}",
            [
                f"Your request #{request.pk} was {request.get_state_display().lower()} by {request.decided_by}{until}.",
                f"Comment: {request.comment or '-'}",
                _link(request),
            ],
            to,
        )
    return to


def break_glass(request, approvers) -> list[str]:
    """Alert every approver (and the security team) at once: someone broke the glass."""
    to = sorted(set(_addresses(approvers)) | set(notifications.recipients()))
    if to:
        notifications._send(
            f"BREAK-GLASS: {request.requester} took the password of {request.user}",
            [
                f"{request.requester} used break-glass on {request.user} without approval.",
                f"Justification: {request.reason}",
                f"The password is rotated when the window ends at {request.granted_until:%Y-%m-%d %H:%M} UTC.",
                _link(request),
            ],
            to,
        )
    return to
