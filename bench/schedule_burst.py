"""Schedule burst: N accounts on a fresh slapd all due in the same minute, drained by a real qcluster.

Prints seconds from the due time until all are rotated, how many rotated twice or were missed,
and the p50/p99 lateness of each rotation's start after its due time. Last line:
``schedule_burst drain_s=<n> twice=<n> missed=<n> p99_late_s=<n>``.

Usage: python bench/schedule_burst.py --users 1000
       python bench/schedule_burst.py --users 10000 --database postgresql --clusters 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time

from _setup import ROOT, directory_records, django_in_tempdir, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lead", type=int, default=20, help="seconds from set-up to the due time")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--clusters", type=int, default=1, help="qcluster processes on the same gateway")
    args = parser.parse_args()
    data = django_in_tempdir(args.workers, args.database)

    from django.db.models import Count, Max, Min, Q
    from django.utils import timezone

    from records.models import PamUser
    from rotation.models import AttemptState, RotationAttempt, Trigger
    from tests.ldapservers import SlapdServer

    server = SlapdServer(tempfile.mkdtemp(prefix="pamrotate-bench-slapd-"))
    server.start()
    try:
        t0 = time.monotonic()
        dns = [server.add_user(f"bench{i}", "Bench-Start-1!") for i in range(args.users)]
        print(f"seeded {args.users} slapd accounts in {time.monotonic() - t0:.1f} s", flush=True)
        due = (timezone.now() + dt.timedelta(seconds=args.lead)).replace(microsecond=0)
        users = directory_records(
            server, dns, "Bench-Start-1!", schedule_time=due.time(), next_rotation_at=due
        )
        directory = users[0].resource
        print(
            f"due at {due:%H:%M:%S} UTC; starting {args.clusters} qcluster(s) with {args.workers} workers each",
            flush=True,
        )

        log = open(data / "qcluster.log", "wb")
        workers = [
            subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, stdout=log, stderr=log)
            for _ in range(args.clusters)
        ]
        try:
            deadline = time.monotonic() + args.lead + 600
            while time.monotonic() < deadline:
                done = RotationAttempt.objects.filter(
                    trigger=Trigger.SCHEDULED, state=AttemptState.SUCCEEDED
                ).count()
                if done >= args.users:
                    break
                time.sleep(1)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(60)
            log.close()

        per_user = PamUser.objects.filter(resource=directory).annotate(
            ok=Count(
                "attempts",
                filter=Q(attempts__trigger=Trigger.SCHEDULED, attempts__state=AttemptState.SUCCEEDED),
            ),
        )
        twice = per_user.filter(ok__gt=1).count()
        missed = per_user.filter(ok=0).count()
        attempts = RotationAttempt.objects.filter(trigger=Trigger.SCHEDULED, state=AttemptState.SUCCEEDED)
        late = [(a.started_at - due).total_seconds() for a in attempts.only("started_at")]
        span = attempts.aggregate(first=Min("started_at"), last=Max("finished_at"))
        drain = (span["last"] - due).total_seconds() if span["last"] else float("nan")
        failed = RotationAttempt.objects.exclude(state=AttemptState.SUCCEEDED).values_list(
            "state", "error_message"
        )[:5]
        for state, message in failed:
            print(f"not succeeded: {state}: {message}")
        print(
            f"first start {(span['first'] - due).total_seconds():.1f} s after due"
            if span["first"]
            else "no start"
        )
        print(f"lateness p50={percentile(late, 50):.1f} s p99={percentile(late, 99):.1f} s")
        print(
            f"schedule_burst database={args.database} clusters={args.clusters} users={args.users} "
            f"drain_s={drain:.1f} twice={twice} missed={missed} p99_late_s={percentile(late, 99):.1f}"
        )
    finally:
        server.close()


if __name__ == "__main__":
    main()
