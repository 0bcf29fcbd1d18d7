"""Keep the rotation counters and duration histogram from the audit log (a cursor, exactly once per event).

Counting every attempt at each scrape reads the whole attempt table (about a second at 100,000
attempts); instead each finished attempt's audit event adds one to its series here, in the same
transaction that moves the ``metrics`` cursor. The dispatcher's tick keeps it current and a
scrape first catches up a bounded number of events, so it is fresh even with no qcluster running.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from ops import stream
from ops.models import RotationTally
from rotation.models import RotationAttempt

NAME = "metrics"
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300)
ROTATION_EVENTS = {
    AuditEvent.ROTATION_ON_DEMAND_OK: ("on_demand", "succeeded"),
    AuditEvent.ROTATION_ON_DEMAND_FAIL: ("on_demand", "failed"),
    AuditEvent.ROTATION_SCHEDULED_OK: ("scheduled", "succeeded"),
    AuditEvent.ROTATION_SCHEDULED_FAIL: ("scheduled", "failed"),
}


class _Delta:
    def __init__(self):
        self.title = ""
        self.count = self.timed = 0
        self.seconds = 0.0
        self.buckets = [0] * len(DURATION_BUCKETS)
        self.last: dt.datetime | None = None

    def add(self, title: str, started, finished) -> None:
        self.title = title or self.title
        self.count += 1
        if started and finished:
            seconds = max(0.0, (finished - started).total_seconds())
            self.timed += 1
            self.seconds += seconds
            for index in range(bisect.bisect_left(DURATION_BUCKETS, seconds), len(DURATION_BUCKETS)):
                self.buckets[index] += 1
        if finished and (self.last is None or finished > self.last):
            self.last = finished


def _deltas(events: list[AuditEvent]) -> dict[tuple, _Delta]:
    """Return the additions a chunk of events makes, keyed by (configuration id, trigger, outcome)."""
    rotations = [event for event in events if event.event in ROTATION_EVENTS]
    attempts = {
        row[0]: row[1:]
        for row in RotationAttempt.objects.filter(
            pk__in=[event.attempt_id for event in rotations if event.attempt_id]
        ).values_list(
            "pk",
            "trigger",
            "state",
            "started_at",
            "finished_at",
            "user__configuration_id",
            "user__configuration__title",
        )
    }
    deltas: dict[tuple, _Delta] = defaultdict(_Delta)
    for event in rotations:
        found = attempts.get(event.attempt_id)
        if found is None:  # the attempt was purged since: the event alone says what it can
            trigger, outcome = ROTATION_EVENTS[event.event]
            deltas[(0, trigger, outcome)].add("(purged)", None, event.created_at)
            continue
        trigger, state, started, finished, configuration_id, title = found
        deltas[(configuration_id, trigger, state)].add(title, started, finished or event.created_at)
    return deltas


def update(now: dt.datetime | None = None, limit: int = 5000) -> int:
    """Add the rotations of the audit events after the cursor to the tallies; return how many events were read."""
    if not stream.has_new_events(NAME):
        return 0
    holder = stream.holder_name()
    row = stream.take_lease(NAME, holder, now)
    if row is None:
        return 0
    events = stream.events_after(row.last_event_id, limit, now or timezone.now())
    if not events:
        return 0
    with transaction.atomic():
        for (configuration_id, trigger, outcome), delta in _deltas(events).items():
            tally, _ = RotationTally.objects.select_for_update().get_or_create(
                configuration_id=configuration_id,
                trigger=trigger,
                outcome=outcome,
                defaults={"configuration_title": delta.title, "buckets": [0] * len(DURATION_BUCKETS)},
            )
            tally.configuration_title = delta.title or tally.configuration_title
            tally.count += delta.count
            tally.timed += delta.timed
            tally.seconds += delta.seconds
            tally.buckets = [old + new for old, new in zip(tally.buckets, delta.buckets, strict=True)]
            if delta.last and (tally.last_finished_at is None or delta.last > tally.last_finished_at):
                tally.last_finished_at = delta.last
            tally.save()
        stream.advance(NAME, holder, events[-1].pk, sent=len(events))
    return len(events)
