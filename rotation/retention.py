"""Retention: purge old audit events and the finished attempts of the same age, and record it once."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from audit import events
from audit.actors import SYSTEM_ACTOR, Actor
from rotation.models import FINISHED_STATES, RotationAttempt


def purge_attempts(cutoff: dt.datetime) -> int:
    """Delete the finished rotation attempts created before ``cutoff``; return how many."""
    deleted, _ = RotationAttempt.objects.filter(state__in=FINISHED_STATES, created_at__lt=cutoff).delete()
    return deleted


def purge(older_than_days: int, *, actor: Actor = SYSTEM_ACTOR) -> dict:
    """Delete audit events and finished attempts older than a number of days, and record it."""
    cutoff = events.purge_cutoff(older_than_days)
    with transaction.atomic():
        counts = {"events": events.purge_events(cutoff), "attempts": purge_attempts(cutoff)}
    removed = {"audit event(s)": counts["events"], "finished rotation attempt(s)": counts["attempts"]}
    events.record_purge(older_than_days, cutoff, removed, actor=actor)
    return {**counts, "older_than_days": older_than_days}
