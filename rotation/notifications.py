"""Email the security team when a rotation fails or an account is overdue, never with a secret.

At most one mail per account per hour: the first notice about an account takes a cache key for
an hour (``cache.add`` is atomic on every shared cache backend), later ones are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.urls import reverse

from records.models import AccountState, PamUser
from rotation.models import RotationAttempt

log = logging.getLogger(__name__)

QUIET_SECONDS = 3600


def recipients() -> list[str]:
    """Return the addresses notices go to (NOTIFY_EMAIL_TO: a list or a comma-separated string)."""
    value = getattr(settings, "NOTIFY_EMAIL_TO", "")
    if isinstance(value, str):
        value = value.split(",")
    return [address.strip() for address in value if address and address.strip()]


def _first_notice_this_hour(user_id: int) -> bool:
    return cache.add(f"pamrotate:notified:{user_id}", 1, QUIET_SECONDS)


def _send(subject: str, lines: list[str], to: list[str]) -> None:
    try:
        send_mail(subject, "\n".join(lines) + "\n", None, to)
    except Exception as exc:  # a mail server outage must not break a rotation
        log.warning("notification not sent: %s", type(exc).__name__)


def notify_failure(attempt: RotationAttempt, *, will_retry: bool) -> bool:
    """Mail that a rotation failed, unless a retry follows; return whether a mail was sent.

    Whether a retry follows is decided once, where the failure is recorded (rotation/services.py).
    """
    to = recipients()
    if not to or will_retry or not _first_notice_this_hour(attempt.user_id):
        return False
    user = PamUser.objects.only("title", "login", "distinguished_name").get(pk=attempt.user_id)
    lines = [
        f"The password rotation of {user.title} failed.",
        "",
        f"Account: {user.login}",
        f"Distinguished name: {user.distinguished_name or '-'}",
        f"Attempt: #{attempt.pk} ({attempt.get_trigger_display().lower()})",
        f"Reason: {attempt.get_error_class_display()}: {attempt.shown_error}",
        "",
        "The stored password is unchanged and still opens the account.",
        f"Details: {reverse('rotation:attempt-detail', args=[attempt.pk])}",
    ]
    _send(f"[pamrotate] Rotation failed: {user.title}", lines, to)
    return True


def notify_account_state(user: PamUser, previous: str, detail: str) -> bool:
    """Mail that the heartbeat found an account's state changed; the caller calls it once per change."""
    to = recipients()
    if not to:
        return False
    lines = [
        f"The heartbeat found that {user.title} is now: {user.get_account_state_display()}.",
        "",
        f"Account: {user.login}",
        f"Distinguished name: {user.distinguished_name or '-'}",
        f"Before: {AccountState(previous).label}",
        f"Found: {detail}",
        "",
        f"Details: {reverse('records:user-detail', args=[user.pk])}",
    ]
    _send(f"[pamrotate] {user.get_account_state_display()}: {user.title}", lines, to)
    return True


def notify_script_failure(attempt: RotationAttempt) -> bool:
    """Mail that a rotation committed but a post-rotation script failed; return whether a mail was sent."""
    to = recipients()
    if not to or not _first_notice_this_hour(attempt.user_id):
        return False
    user = PamUser.objects.only("title", "login").get(pk=attempt.user_id)
    committed = attempt.succeeded
    lines = [
        f"The password of {user.title} was {'rotated' if committed else 'not confirmed'}: "
        "a post-rotation script did not succeed.",
        "",
        f"Account: {user.login}",
        f"Attempt: #{attempt.pk} ({attempt.get_trigger_display().lower()})",
        f"Scripts: {attempt.scripts_message}",
        "",
        "The new password is stored and current; whatever the script updates may still use the old one."
        if committed
        else "Scripts only: both passwords are kept (the new one as pending) until the scripts succeed "
        "or an administrator decides.",
        'Fix the script and use "Run scripts again" on the attempt\'s page.',
        f"Details: {reverse('rotation:attempt-detail', args=[attempt.pk])}",
    ]
    _send(f"[pamrotate] Post-rotation script failed: {user.title}", lines, to)
    return True


def notify_overdue(users: Iterable[PamUser]) -> int:
    """Mail one list of overdue accounts not already notified this hour; return how many it names."""
    to = recipients()
    if not to:
        return 0
    fresh = [user for user in users if _first_notice_this_hour(user.pk)]
    if not fresh:
        return 0
    lines = ["These accounts missed their scheduled password rotation:", ""]
    for user in fresh:
        due = f"{user.next_rotation_at:%Y-%m-%d %H:%M %Z}" if user.next_rotation_at else "unknown"
        lines.append(
            f"- {user.title} ({user.login}), due {due}: {reverse('records:user-detail', args=[user.pk])}"
        )
    lines += ["", "Is the pamrotate worker (qcluster) for their gateway running?"]
    _send(f"[pamrotate] {len(fresh)} account(s) overdue for rotation", lines, to)
    return len(fresh)
