"""How long a /metrics scrape takes on a large database (issue 24: 100,000 accounts in at most 300 ms).

    .venv/bin/python bench/metrics_scrape.py [--users 100000] [--events 100000] [--repeat 10]

Seeds accounts, one finished attempt each and audit events (bench/ui_scale.py's seeding), then
times the whole exposition (every query and the text) through the collector the view uses.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _setup import django_in_tempdir, percentile


def attempts_for_every_account() -> None:
    """Add one finished attempt (40-80 s long) and its audit event per account, as the engine writes them."""
    import datetime as dt

    from django.utils import timezone

    from audit.models import AuditEvent, Category, Outcome
    from records.models import PamUser
    from rotation.models import AttemptState, RotationAttempt, Trigger

    now = timezone.now()
    ids = list(PamUser.objects.values_list("pk", flat=True))
    for start in range(0, len(ids), 5000):
        attempts = RotationAttempt.objects.bulk_create(
            [
                RotationAttempt(
                    user_id=pk,
                    number=1,
                    state=(AttemptState.SUCCEEDED, AttemptState.FAILED)[pk % 2],
                    trigger=(Trigger.SCHEDULED, Trigger.ON_DEMAND)[pk % 2],
                    started_at=now - dt.timedelta(seconds=40 + pk % 40),
                    finished_at=now - dt.timedelta(seconds=40),
                )
                for pk in ids[start : start + 5000]
            ],
            batch_size=1000,
        )
        users = {user.pk: user for user in PamUser.objects.filter(pk__in=ids[start : start + 5000])}
        for attempt in attempts:
            attempt.user = users[attempt.user_id]
        AuditEvent.objects.bulk_create(
            [
                AuditEvent(
                    event=AuditEvent.ROTATION_SCHEDULED_OK
                    if attempt.succeeded
                    else AuditEvent.ROTATION_SCHEDULED_FAIL,
                    category=Category.ROTATION,
                    outcome=Outcome.OK if attempt.succeeded else Outcome.FAIL,
                    record_type="pamuser",
                    record_id=attempt.user_id,
                    record_title=attempt.user.title,
                    attempt_id=attempt.pk,
                    message=f"Attempt #{attempt.pk} {attempt.state}",
                )
                for attempt in attempts
            ],
            batch_size=1000,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    django_in_tempdir()
    from prometheus_client import generate_latest
    from ui_scale import seed

    from ops import metrics

    started = time.monotonic()
    seed(args.users, args.events)
    attempts_for_every_account()
    print(f"seeded {args.users} accounts and {args.events} events in {time.monotonic() - started:.1f} s")
    from ops import tally

    started = time.monotonic()
    while tally.update(limit=5000):  # what the qclusters' ticks do as events arrive
        pass
    print(f"tallied the audit log ({args.users} rotations) in {time.monotonic() - started:.1f} s")
    registry = metrics.registry()
    generate_latest(registry)  # warm the page cache once
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        text = generate_latest(registry)
        times.append((time.perf_counter() - started) * 1000)
    print(f"exposition: {len(text)} bytes, {len(text.splitlines())} lines")
    print(
        f"scrape of {args.users} accounts: median {statistics.median(times):.0f} ms, "
        f"p95 {percentile(times, 95):.0f} ms, max {max(times):.0f} ms (limit 300 ms)"
    )


if __name__ == "__main__":
    main()
