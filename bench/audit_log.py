"""Audit log at scale: 100,000 events, then the first page, a filtered page and a deep page.

Each page is requested 20 times with Django's test client as a superuser; prints the median
server time and the number of SQL queries of each. Last line:
``audit_log events=<n> median_ms=<worst median> queries=<most queries>``.

Usage: python bench/audit_log.py [--events 100000] [--runs 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time

from _setup import django_in_tempdir

EVENTS = [
    ("record_rotation_scheduled_ok", "rotation", "ok"),
    ("record_rotation_scheduled_ok", "rotation", "ok"),
    ("record_rotation_scheduled_ok", "rotation", "ok"),
    ("record_rotation_on_demand_ok", "rotation", "ok"),
    ("record_rotation_scheduled_fail", "rotation", "fail"),
    ("password_revealed", "security", "ok"),
    ("record_update", "record", "ok"),
    ("connection_test", "directory", "ok"),
]


def seed(count: int) -> dict:
    """Create records and insert the events in batches of raw rows (created_at spread over 90 days)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from audit.models import AuditEvent
    from records.models import PamConfiguration, PamDirectory, PamUser

    rng = random.Random(5)
    configurations = [PamConfiguration.objects.create(title=f"Bench configuration {i}") for i in range(5)]
    directories = [
        PamDirectory.objects.create(
            title=f"Bench directory {i}", configuration=configurations[i % 5], hostname="10.0.0.1"
        )
        for i in range(10)
    ]
    users = [
        PamUser.objects.create(
            title=f"svc-bench-{i:04d}",
            login=f"svc-bench-{i:04d}",
            configuration=directories[i % 10].configuration,
            resource=directories[i % 10],
        )
        for i in range(500)
    ]
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    columns = (
        "created_at, event, category, outcome, actor_id, actor_name, remote_address, "
        "record_type, record_id, record_title, attempt_id, message"
    )
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * 12)})"  # noqa: S608
    now = timezone.now()
    span = dt.timedelta(days=90).total_seconds()
    rows = []
    for number in range(count):
        event, category, outcome = rng.choice(EVENTS)
        user = rng.choice(users)
        actor = "scheduler" if "scheduled" in event else rng.choice(["alice", "bob", "erin"])
        moment = now - dt.timedelta(seconds=span * (count - number) / count)
        rows.append(
            (
                connection.ops.adapt_datetimefield_value(moment),
                event,
                category,
                outcome,
                None,
                "" if actor == "scheduler" else actor,
                "192.0.2.10" if actor != "scheduler" else None,
                "pamuser",
                user.pk,
                user.title,
                number if category == "rotation" else None,
                f"Attempt #{number} {'failed: the directory refused the new password' if outcome == 'fail' else 'succeeded'}",
            )
        )
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), 5000):
            cursor.executemany(sql, rows[start : start + 5000])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"configuration": configurations[2], "directory": directories[3], "user": users[17]}


def measure(client, url: str, runs: int) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timings = []
    queries = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(captured)
    return statistics.median(timings), queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    django_in_tempdir()

    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import override_settings, setup_test_environment
    from django.urls import reverse

    from audit.events import make_cursor
    from audit.models import AuditEvent

    setup_test_environment()
    # No collectstatic here: serve static URLs unhashed, as the test settings do.
    override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    t0 = time.perf_counter()
    records = seed(args.events)
    print(f"seeded {AuditEvent.objects.count()} audit events in {time.perf_counter() - t0:.1f} s", flush=True)
    admin = User.objects.create_superuser("bench", "bench@example.test", "bench-password-1")
    client = Client()
    client.force_login(admin)
    url = reverse("rotation:audit-log")
    deep = AuditEvent.objects.order_by("-created_at", "-id").values_list("created_at", "id")[
        args.events * 9 // 10
    ]
    pages = {
        "first": url,
        "filtered": f"{url}?configuration={records['configuration'].pk}&outcome=fail",
        "filtered_directory_search": f"{url}?directory={records['directory'].pk}&q=refused",
        "account": f"{url}?account={records['user'].pk}",
        "search_without_match": f"{url}?q=no-such-text&actor=nobody",
        "date_range_event": f"{url}?from=2000-01-01&to=2100-01-01&event=password_revealed",
        "deep": f"{url}?before={make_cursor(*deep)}",
    }
    medians, most_queries = [], 0
    for name, page_url in pages.items():
        client.get(page_url)  # warm up
        median, queries = measure(client, page_url, args.runs)
        medians.append(median)
        most_queries = max(most_queries, queries)
        print(f"{name:28s} median_ms={median:7.1f} queries={queries}", flush=True)
    print(f"audit_log events={args.events} median_ms={max(medians):.0f} queries={most_queries}")


if __name__ == "__main__":
    main()
