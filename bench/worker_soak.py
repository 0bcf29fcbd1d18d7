"""Worker soak: a real qcluster whose first fork is delayed, for minutes, next to a busy second process.

The long form of tests/test_fork_safety.py (issue 19). On a fresh data directory (SQLite by
default) a qcluster starts with the slow-fork ``sitecustomize.py`` (3 s before its first fork);
this process then writes audit events continuously and presses "Rotate now" for a random account
on a real slapd every few seconds, and every 30 s checks that no process of the cluster shares a
database descriptor with its parent and that /healthz would answer 200. At the end: SIGTERM
(time to exit), ``PRAGMA integrity_check``, and the log's database errors. Last line:
``worker_soak minutes=<n> rotations=<ok>/<asked> audit_events=<n> errors=<n> integrity=<ok> ...``.

Usage: python bench/worker_soak.py [--minutes 5] [--accounts 20] [--database postgresql]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _setup import ROOT, directory_records, django_in_tempdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rotate-every", type=float, default=3.0, help="seconds between Rotate now presses")
    args = parser.parse_args()
    data = django_in_tempdir(2, args.database)

    from django.db import connection
    from django.utils import timezone

    from audit.actors import Actor
    from audit.events import record_event
    from audit.models import AuditEvent
    from records import schedules
    from records.models import PamUser
    from rotation import services, status
    from rotation.models import AttemptState, RotationAttempt
    from tests.ldapservers import SlapdServer
    from tests.test_fork_safety import BROKEN, SITECUSTOMIZE, shared_with_parent, write_audit_events

    soak = Actor.system("soak")
    slow = Path(tempfile.mkdtemp(prefix="pamrotate-soak-slowfork-"))
    (slow / "sitecustomize.py").write_text(SITECUSTOMIZE)
    server = SlapdServer(tempfile.mkdtemp(prefix="pamrotate-soak-slapd-"))
    server.start()
    cluster = None
    try:
        dns = [server.add_user(f"soak{i}", "Soak-Start-1!") for i in range(args.accounts)]
        users = directory_records(server, dns, "Soak-Start-1!", schedule_type=schedules.ON_DEMAND)
        database = connection.settings_dict["NAME"] if args.database == "sqlite" else None
        pg_port = connection.settings_dict["PORT"] if args.database == "postgresql" else None
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(slow), str(ROOT)]),
            SLOW_FORK_SECONDS="3",
            SLOW_FORK_REPORT=str(data / "fork.json"),
            PAMROTATE_LOG_LEVEL="INFO",
            PAMROTATE_Q_LOG_LEVEL="INFO",
        )
        log_path = data / "qcluster.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed below
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        print(f"qcluster {cluster.pid} on {args.database}; soaking {args.minutes} min", flush=True)
        end = time.monotonic() + args.minutes * 60
        next_press, next_check = time.monotonic() + 5, time.monotonic() + 35  # health once started
        asked, events, shared, unhealthy, checks = [], 0, [], 0, 0
        while time.monotonic() < end and cluster.poll() is None:
            events += write_audit_events(0.5)["written"]
            now = time.monotonic()
            if now >= next_press:
                next_press = now + args.rotate_every
                user = PamUser.objects.get(pk=random.choice(users).pk)  # noqa: S311 - not crypto
                attempt = services.request_rotation(user, actor=soak)
                if attempt.state == AttemptState.QUEUED:
                    asked.append(attempt.pk)
            if now >= next_check:
                next_check = now + 30
                checks += 1
                shared += shared_with_parent(
                    cluster.pid, (database,) if database else (), pg_port and int(pg_port)
                )
                unhealthy += not status.health()["ok"]
        record_event(AuditEvent.RECORD_UPDATED, actor=soak, message="soak ends")
        time.sleep(5)  # the last presses finish
        started = time.monotonic()
        cluster.send_signal(signal.SIGTERM)
        code = cluster.wait(60)
        stop_s = time.monotonic() - started
        log.close()
        text = log_path.read_text(errors="replace")
        errors = [line for line in text.splitlines() if any(word in line for word in BROKEN)]
        states = list(RotationAttempt.objects.filter(pk__in=asked).values_list("state", flat=True))
        ok = sum(state == AttemptState.SUCCEEDED for state in states)
        integrity = "n/a"
        if database:
            check = sqlite3.connect(database)
            integrity = check.execute("PRAGMA integrity_check").fetchone()[0]
            check.close()
        for line in errors[:5]:
            print("log:", line)
        for line in shared[:5]:
            print("shared:", line)
        print(
            f"states of the presses: {dict((s, states.count(s)) for s in set(states))}; at {timezone.now():%H:%M:%S}"
        )
        print(
            f"worker_soak database={args.database} minutes={args.minutes} rotations={ok}/{len(asked)} "
            f"audit_events={events} errors={len(errors)} shared_fds={len(shared)} unhealthy_checks={unhealthy}/{checks} "
            f"integrity={integrity} sigterm_exit_s={stop_s:.1f} exit_code={code}"
        )
    finally:
        if cluster is not None and cluster.poll() is None:
            cluster.kill()
        server.close()


if __name__ == "__main__":
    main()
