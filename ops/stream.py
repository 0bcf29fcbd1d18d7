"""Read the audit log in order from a stored cursor, one consumer at a time (a lease per cursor).

Every audit event is read this way, however it was written (``record_event``, an attempt's
``save()``, the batch driver's ``bulk_create``), so no path of the engine needs to call ops.
Events are read by id. An id can become visible after a higher one (two transactions commit in
the other order on PostgreSQL), so reading stops before a gap until the event after it is
``GAP_GRACE`` old: a gap still open then was a rolled-back insert.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from audit.models import AuditEvent
from ops.models import StreamCursor

GAP_GRACE = dt.timedelta(seconds=10)
LEASE = dt.timedelta(seconds=30)


def holder_name() -> str:
    """Return who this process is, for the lease (host and process id)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def cursor(name: str, *, from_now: bool = False) -> StreamCursor:
    """Return a cursor, creating it at the start of the log (or at its end with ``from_now``)."""
    found = StreamCursor.objects.filter(name=name).first()
    if found:
        return found
    start = 0
    if from_now:
        start = AuditEvent.objects.aggregate(last=models.Max("id"))["last"] or 0
    try:
        with transaction.atomic():
            return StreamCursor.objects.create(name=name, last_event_id=start)
    except IntegrityError:  # another process created it first
        return StreamCursor.objects.get(name=name)


def has_new_events(name: str) -> bool:
    """Return whether the log holds an event past a cursor (two indexed reads, no write), or the cursor is new."""
    last = StreamCursor.objects.filter(name=name).values_list("last_event_id", flat=True).first()
    return last is None or AuditEvent.objects.filter(pk__gt=last).exists()


def take_lease(name: str, holder: str, now: dt.datetime | None = None, *, from_now: bool = False):
    """Take or renew a cursor's lease with a conditional UPDATE; return the cursor, or None when another holds it."""
    now = now or timezone.now()
    row = cursor(name, from_now=from_now)
    free = models.Q(holder=holder) | models.Q(lease_until__isnull=True) | models.Q(lease_until__lt=now)
    if not StreamCursor.objects.filter(free, pk=row.pk).update(holder=holder, lease_until=now + LEASE):
        return None
    row.refresh_from_db()
    return row


def release_lease(name: str, holder: str) -> None:
    StreamCursor.objects.filter(name=name, holder=holder).update(lease_until=None)


def events_after(last_id: int, limit: int, now: dt.datetime | None = None) -> list[AuditEvent]:
    """Return up to ``limit`` events after an id, in id order, stopping before a gap that may still fill."""
    now = now or timezone.now()
    rows = list(AuditEvent.objects.filter(pk__gt=last_id).order_by("pk")[:limit])
    ready = []
    expected = last_id + 1 if last_id else None  # a cursor at 0 has nothing before its first event
    for row in rows:
        if expected is not None and row.pk != expected and now - row.created_at < GAP_GRACE:
            break
        ready.append(row)
        expected = row.pk + 1
    return ready


def advance(name: str, holder: str, last_id: int, *, sent: int = 0) -> bool:
    """Move a cursor forward, if this holder still holds it; return whether it moved."""
    return bool(
        StreamCursor.objects.filter(name=name, holder=holder, last_event_id__lt=last_id).update(
            last_event_id=last_id,
            sent=models.F("sent") + sent,
            last_sent_at=timezone.now(),
            last_error="",
        )
    )


def record_failure(name: str, error: str) -> None:
    """Count a failed send and keep its reason (no secret: a class name and an address)."""
    StreamCursor.objects.filter(name=name).update(failures=models.F("failures") + 1, last_error=error[:300])
