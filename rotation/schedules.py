"""When rotations happen: dispatch due accounts once per slot, release waiting retries.

The dispatcher runs as a django-q2 schedule (two rows, 30 s apart, so each scheduler tick runs
one). It is safe to run twice at once: an account's slot is taken by a conditional UPDATE of its
``next_rotation_at``, and a unique constraint allows one attempt per account, slot and try.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError
from django.utils import timezone

from records.models import PamUser
from rotation import services
from rotation.models import AttemptState, RotationAttempt, Trigger

log = logging.getLogger(__name__)

DISPATCH_FUNC = "rotation.tasks.dispatch"
DISPATCH_SCHEDULES = ("pamrotate-dispatch-a", "pamrotate-dispatch-b")


def dispatch_due(now: dt.datetime | None = None) -> dict:
    """Queue one scheduled attempt for every account whose next rotation is due.

    After downtime an account that missed several slots rotates once: its next rotation moves
    to the first slot after now, not to the next missed one.
    """
    now = now or timezone.now()
    dispatched = skipped = 0
    due = PamUser.objects.filter(next_rotation_at__lte=now).select_related("configuration", "resource")
    for user in due.iterator(chunk_size=200):
        slot = user.next_rotation_at
        following = user.compute_next_rotation(after=now)
        # Whoever moves next_rotation_at off this slot owns the slot.
        if not PamUser.objects.filter(pk=user.pk, next_rotation_at=slot).update(next_rotation_at=following):
            continue
        if user.rotation_blocked_reason:
            skipped += 1
            continue
        try:
            services.request_rotation(user, trigger=Trigger.SCHEDULED, slot=slot)
        except IntegrityError:
            continue  # another dispatcher already made this slot's attempt
        dispatched += 1
    retried = release_retries(now)
    return {"dispatched": dispatched, "skipped": skipped, "retried": retried}


def release_retries(now: dt.datetime) -> int:
    """Send every queued retry whose wait is over to its worker pool."""
    released = 0
    waiting = RotationAttempt.objects.filter(state=AttemptState.QUEUED, retry_at__lte=now).select_related(
        "user__configuration"
    )
    for attempt in waiting:
        if RotationAttempt.objects.filter(pk=attempt.pk, retry_at=attempt.retry_at).update(retry_at=None):
            services.enqueue_attempt(attempt)
            released += 1
    return released


def ensure_dispatch_schedules(**kwargs) -> None:
    """Create the dispatcher's django-q2 schedules if they are missing (run after migrate)."""
    from django_q.models import Schedule

    start = timezone.now().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    for offset, name in enumerate(DISPATCH_SCHEDULES):
        Schedule.objects.get_or_create(
            name=name,
            defaults={
                "func": DISPATCH_FUNC,
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
                "next_run": start + dt.timedelta(seconds=30 * offset),
            },
        )
