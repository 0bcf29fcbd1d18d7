"""GET /api/v1/users/{uid}/credential/ latency: 200 calls with an application token on SQLite.

Each call goes through the whole stack (middleware, bearer-token lookup by SHA-256 digest, scope
check, rate limit, decryption, the audit event) with Django's test client. Prints the median
and 95th percentile. Last line: ``api_credential calls=<n> median_ms=<m> p95_ms=<p>``.

Usage: python bench/api_credential.py [--calls 200] [--users 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _setup import django_in_tempdir, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--users", type=int, default=1000, help="accounts in the configuration")
    args = parser.parse_args()
    # The default limit (120/minute per token) would answer most of the calls 429.
    os.environ["PAMROTATE_API_RATE"] = f"{args.calls * 10}/minute"
    django_in_tempdir()

    from django.test import Client

    from api import services
    from audit.models import AuditEvent
    from records.models import PamConfiguration, PamUser

    configuration = PamConfiguration.objects.create(title="Bench API")
    users = [
        PamUser(configuration=configuration, title=f"bench-{n}", login=f"bench{n}") for n in range(args.users)
    ]
    for user in users:
        user.set_password(f"Bench-Pass-{user.title}-1!")
    PamUser.objects.bulk_create(users, batch_size=500)
    _application, token = services.create_application("bench", [configuration])
    target = PamUser.objects.get(title=f"bench-{args.users // 2}")
    url = f"/api/v1/users/{target.uid}/credential/"
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    assert client.get(url).status_code == 200  # warm-up (imports, first query plans)

    timings = []
    for _ in range(args.calls):
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    reads = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).count()
    assert reads == args.calls + 1, reads
    median, p95 = statistics.median(timings), percentile(timings, 95)
    print(f"audited reads: {reads}; min {min(timings):.2f} ms, max {max(timings):.2f} ms")
    print(f"api_credential calls={args.calls} median_ms={median:.2f} p95_ms={p95:.2f}")


if __name__ == "__main__":
    main()
