"""Notices sent once per account and slot: "rotation of X in N hours" and "rotation of X is overdue".

Each notice takes a row in ``Notice`` (unique per kind, account and slot) before it is sent, so
several qclusters ticking at once send it once. Mail goes to PAMROTATE_NOTIFY_EMAIL_TO (one mail
per configuration and run, listing its accounts); webhooks get one delivery per account.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ops import webhooks
from ops.models import Notice, NoticeKind, WebhookEndpoint, WebhookEvent
from records.models import PamConfiguration, PamUser
from rotation import notifications

log = logging.getLogger(__name__)
EVERY_SECONDS = 30.0
_last_run = [0.0]


def _claim(kind: str, user: PamUser, slot: dt.datetime) -> bool:
    try:
        with transaction.atomic():
            Notice.objects.create(kind=kind, user=user, slot=slot)
    except IntegrityError:
        return False
    return True


def upcoming(now: dt.datetime) -> list[PamUser]:
    """Return the accounts whose next rotation falls within their configuration's notice hours."""
    found = []
    for configuration in PamConfiguration.objects.filter(notice_hours__gt=0, rotation_enabled=True):
        horizon = now + dt.timedelta(hours=configuration.notice_hours)
        users = PamUser.objects.rotatable().filter(
            configuration=configuration, next_rotation_at__gt=now, next_rotation_at__lte=horizon
        )
        found += list(users.select_related("configuration"))
    return found


def send_due(now: dt.datetime | None = None, *, force: bool = False) -> dict:
    """Send the upcoming and overdue notices not sent yet (every 30 s at most, unless forced)."""
    if not force and time.monotonic() - _last_run[0] < EVERY_SECONDS:
        return {}
    _last_run[0] = time.monotonic()
    now = now or timezone.now()
    endpoints = list(WebhookEndpoint.objects.filter(failing_since__isnull=True))
    sent = {"upcoming": 0, "overdue": 0}
    by_configuration: dict[str, list[str]] = {}
    for user in upcoming(now):
        if not _claim(NoticeKind.UPCOMING, user, user.next_rotation_at):
            continue
        hours = max(1, round((user.next_rotation_at - now).total_seconds() / 3600))
        when = user.next_rotation_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        summary = f"Rotation of {user.title} in {hours} hour{'s' if hours != 1 else ''} ({when})"
        by_configuration.setdefault(user.configuration.title, []).append(summary)
        payload = webhooks.event_payload(
            WebhookEvent.UPCOMING, summary, record_title=user.title, record_id=user.pk, slot=when
        )
        with transaction.atomic():
            webhooks.queue(endpoints, WebhookEvent.UPCOMING, summary, payload)
        sent["upcoming"] += 1
    overdue = (
        PamUser.objects.overdue(now).exclude(next_rotation_at__isnull=True).select_related("configuration")
    )
    for user in overdue.filter(next_rotation_at__lt=now).order_by(F("next_rotation_at").asc())[:200]:
        if not _claim(NoticeKind.OVERDUE, user, user.next_rotation_at):
            continue
        summary = f"Rotation of {user.title} is overdue (due {user.next_rotation_at:%Y-%m-%d %H:%M} UTC)"
        payload = webhooks.event_payload(
            WebhookEvent.OVERDUE, summary, record_title=user.title, record_id=user.pk
        )
        with transaction.atomic():
            webhooks.queue(endpoints, WebhookEvent.OVERDUE, summary, payload)
        sent["overdue"] += 1
    to = notifications.recipients()
    for title, lines in by_configuration.items():
        if to:
            try:
                send_mail(f"[pamrotate] Upcoming rotations in {title}", "\n".join(lines) + "\n", None, to)
            except Exception as exc:  # a mail outage must not stop the tick
                log.warning("upcoming notice not mailed: %s", type(exc).__name__)
    return sent
