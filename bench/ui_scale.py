"""UI at scale: queries per page and median server time with 10,000 PAM users and 100,000 audit events.

Pages: the user list, a user detail, the audit log (``rotation:audit-log``, when it exists) and the
dashboard, each requested 20 times by a superuser through Django's test Client on SQLite. Query
counts are taken first with a small data set and again at full size: they must not grow.

Last line: ``ui_scale max_queries=<n> max_median_ms=<n>``.

Usage: python bench/ui_scale.py [--users 10000] [--events 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from _setup import django_in_tempdir


def seed(users: int, events: int, start: int = 0) -> None:
    """Add PAM users (with attempts for the first ones) and audit events, in bulk."""
    from django.utils import timezone

    from audit.models import AuditEvent, Category, Outcome
    from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser
    from rotation.models import AttemptState, RotationAttempt, Trigger

    configuration, _ = PamConfiguration.objects.get_or_create(title="Scale")
    directory, _ = PamDirectory.objects.get_or_create(
        title="Scale directory",
        defaults={
            "configuration": configuration,
            "hostname": "127.0.0.1",
            "directory_type": DirectoryType.OPENLDAP,
        },
    )
    template = PamUser(configuration=configuration, title="x", login="x")
    template.set_password("Scale-Pass-1!")
    encrypted = template.password_encrypted  # one encryption, shared: this is about page cost
    PamUser.objects.bulk_create(
        [
            PamUser(
                configuration=configuration,
                resource=directory,
                title=f"user {i:06d}",
                login=f"user{i}",
                distinguished_name=f"cn=user{i},ou=people,dc=example,dc=test",
                password_encrypted=encrypted,
                rotation_enabled=i % 2 == 0,
                rotation_status=("succeeded", "failed", "never")[i % 3],
            )
            for i in range(start, start + users)
        ],
        batch_size=1000,
    )
    now = timezone.now()
    first = PamUser.objects.filter(resource=directory).order_by("pk").first()
    if not RotationAttempt.objects.filter(user=first).exists():
        RotationAttempt.objects.bulk_create(
            [
                RotationAttempt(
                    user=first,
                    state=(AttemptState.SUCCEEDED, AttemptState.FAILED)[i % 2],
                    trigger=Trigger.SCHEDULED,
                    started_at=now - dt.timedelta(days=i),
                    finished_at=now - dt.timedelta(days=i),
                )
                for i in range(60)
            ]
        )
    user_ids = list(PamUser.objects.values_list("pk", flat=True)[:1000])
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                event=(
                    AuditEvent.ROTATION_SCHEDULED_OK,
                    AuditEvent.RECORD_UPDATED,
                    AuditEvent.PASSWORD_REVEALED,
                )[i % 3],
                category=Category.ROTATION,
                outcome=Outcome.OK,
                actor_name="alice",
                record_type="pamuser",
                record_id=user_ids[i % len(user_ids)],
                record_title=f"user {i % len(user_ids):06d}",
                message=f"Event {i}",
            )
            for i in range(events)
        ],
        batch_size=2000,
    )


def pages() -> dict[str, str]:
    from django.urls import NoReverseMatch, reverse

    from records.models import PamUser

    first = PamUser.objects.exclude(resource=None).order_by("pk").first()
    urls = {
        "user-list": reverse("records:user-list"),
        "user-detail": reverse("records:user-detail", args=[first.pk]),
        "dashboard": reverse("records:dashboard"),
    }
    try:
        urls["audit-log"] = reverse("rotation:audit-log")
    except NoReverseMatch:
        print("note: rotation:audit-log does not exist yet; skipped")
    return urls


def measure(client, urls: dict[str, str], repeat: int) -> dict[str, tuple[int, float]]:
    """Return {page: (queries, median ms)}."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = {}
    for name, url in urls.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        count = len(queries)  # now: the log is cleared when the next request starts
        if response.status_code != 200:
            raise RuntimeError(f"{name} {url} answered {response.status_code}")
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        results[name] = (count, statistics.median(times))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    django_in_tempdir()

    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)  # the manifest the templates need
    from django.test import Client

    admin = User.objects.create_superuser("bench", "bench@example.test", "Bench-Admin-Pass-1!")
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)

    small_users, small_events = 100, 1000
    seed(small_users, small_events)
    small = measure(client, pages(), 1)
    started = time.monotonic()
    seed(args.users - small_users, args.events - small_events, start=small_users)
    print(f"seeded {args.users} users and {args.events} audit events in {time.monotonic() - started:.1f} s")
    full = measure(client, pages(), args.repeat)

    print(f"{'page':<12} {'queries@small':>13} {'queries@full':>12} {'median ms':>10}")
    for name, (queries, median) in full.items():
        print(f"{name:<12} {small[name][0]:>13} {queries:>12} {median:>10.1f}")
    grew = [name for name in full if full[name][0] > small[name][0]]
    if grew:
        print(f"query count grew with the data on: {', '.join(grew)}")
    max_queries = max(q for q, _ in full.values())
    max_median = max(m for _, m in full.values())
    print(f"ui_scale max_queries={max_queries} max_median_ms={max_median:.1f}")


if __name__ == "__main__":
    main()
