"""Rotation throughput: a raw ldap3 loop against pamrotate end to end, on the same directory server.

1. raw: one persistent admin connection resets each account's password (RFC 3062 Password Modify
   on OpenLDAP, unicodePwd on AD) and one persistent connection re-binds as the account to verify.
2. app: the same accounts all come due at once and a real ``qcluster`` (2 workers) rotates them
   end to end (claim, write-ahead, change, verify, commit, audit), timed from the first attempt's
   creation to the last one's end.

Last line: ``rotation_throughput directory=<d> raw_per_s=<n> app_per_s=<n> ratio=<n>``.
``--profile N`` then runs N rotations in this process under cProfile and prints the top functions.

Usage: python bench/rotation_throughput.py --directory openldap --users 1000 [--database postgresql]
       python bench/rotation_throughput.py --directory samba --users 100   (as root)
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import pstats
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

from _setup import ROOT, directory_records, django_in_tempdir

START_PASSWORD = "Bench-Start-1!"


def strong_password() -> str:
    return "Raw-" + secrets.token_urlsafe(12) + "a1!"


def add_accounts(server, count: int) -> list[str]:
    """Add ``count`` accounts over one admin connection; return their DNs."""
    from ldap3.utils.dn import escape_rdn

    conn = server.connect(server.admin_bind_dn, server.admin_bind_password)
    dns = []
    try:
        for i in range(count):
            name = f"bench{i}"
            if server.kind == "ad":
                dn = f"CN={escape_rdn(name)},{server.people_dn}"
                attributes = {
                    "cn": name,
                    "sAMAccountName": name,
                    "userPrincipalName": f"{name}@{server.realm.lower()}",
                    "unicodePwd": f'"{START_PASSWORD}"'.encode("utf-16-le"),
                    "userAccountControl": "512",
                }
                classes = ["top", "person", "organizationalPerson", "user"]
            else:
                dn = f"cn={escape_rdn(name)},{server.people_dn}"
                attributes = {"cn": name, "sn": name, "uid": name, "userPassword": START_PASSWORD}
                classes = ["inetOrgPerson"]
            if not conn.add(dn, classes, attributes):
                raise RuntimeError(f"add {dn} failed: {conn.result['description']} {conn.result['message']}")
            dns.append(dn)
    finally:
        conn.unbind()
    return dns


def raw_loop(server, dns: list[str]) -> float:
    """Reset and verify every account with plain ldap3 on persistent connections; return per second."""
    import ldap3

    def connection(user: str, password: str) -> ldap3.Connection:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=server.tls.ca_file)
        srv = ldap3.Server(server.host, port=server.ldaps_port, use_ssl=True, tls=tls, get_info=ldap3.NONE)
        return ldap3.Connection(srv, user=user, password=password, auto_bind=True, check_names=False)

    admin = connection(server.rotator_dn, server.rotator_password)
    verify = connection(server.rotator_dn, server.rotator_password)
    started = time.perf_counter()
    for dn in dns:
        password = strong_password()
        if server.kind == "ad":
            ok = admin.extend.microsoft.modify_password(dn, password)
        else:
            ok = admin.extend.standard.modify_password(user=dn, new_password=password)
        if ok is not True:
            raise RuntimeError(f"raw change of {dn} failed: {admin.result}")
        if not verify.rebind(user=dn, password=password):
            raise RuntimeError(f"raw verify of {dn} failed: {verify.result}")
    elapsed = time.perf_counter() - started
    admin.unbind()
    verify.unbind()
    return len(dns) / elapsed


def app_records(server, dns: list[str]):
    """Create the configuration, directory and PAM users for the accounts; return the users' ids."""
    users = directory_records(server, dns, START_PASSWORD, schedule_time=dt.time(3, 0))
    return [user.pk for user in users]


def app_run(user_ids: list[int], data, workers: int) -> float:
    """Make every account due at once under a running qcluster; return rotations per second."""
    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from records.models import PamUser
    from rotation.models import AttemptState, Heartbeat, RotationAttempt

    log = open(data / "qcluster.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not Heartbeat.objects.filter(name="scheduler").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # the dispatcher's first beat: the cluster is up
        PamUser.objects.filter(pk__in=user_ids).update(next_rotation_at=timezone.now())
        attempts = RotationAttempt.objects.filter(user_id__in=user_ids)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if attempts.exclude(state__in=(AttemptState.QUEUED, AttemptState.RUNNING)).count() >= len(
                user_ids
            ):
                break
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()
    states = dict(attempts.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    ok = attempts.filter(state=AttemptState.SUCCEEDED).count()
    if ok < len(user_ids):
        failed = attempts.exclude(state=AttemptState.SUCCEEDED).values_list("state", "error_message")[:5]
        print(f"only {ok} of {len(user_ids)} succeeded ({states}): {list(failed)}")
    span = attempts.aggregate(first=Min("created_at"), last=Max("finished_at"))
    return ok / (span["last"] - span["first"]).total_seconds()


def profile(user_ids: list[int], count: int) -> None:
    """Dispatch and rotate ``count`` accounts in this process under cProfile (batches of 25, as the
    dispatcher sends them); print where the time goes."""
    from django.utils import timezone

    from records.models import PamUser
    from rotation import batch, dispatch

    chosen = user_ids[:count]
    PamUser.objects.filter(pk__in=chosen).update(next_rotation_at=timezone.now())
    profiler = cProfile.Profile()
    sent: list[list[int]] = []
    started = time.perf_counter()
    profiler.enable()
    with _capture_batches(sent):
        dispatch.dispatch_due()
    dispatched = time.perf_counter()
    for attempt_ids in sent:
        batch.run_batch(attempt_ids)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(
        f"profile: {count} rotations in one process: {count / elapsed:.1f}/s ({elapsed / count * 1000:.2f} ms each:"
        f" dispatch {(dispatched - started) / count * 1000:.2f} ms, batch {(elapsed - dispatched + started) / count * 1000:.2f} ms)"
    )
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    print("\n".join(out.getvalue().splitlines()[:70]))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    print("\n".join(out.getvalue().splitlines()[:45]))


class _capture_batches:  # noqa: N801 - used as a context manager
    """Collect the batches the dispatcher would send to a worker instead of sending them."""

    def __init__(self, sent: list):
        self.sent = sent

    def __enter__(self):
        from rotation import queue

        self.original = queue.enqueue_batch
        queue.enqueue_batch = lambda gateway, ids: self.sent.append(list(ids))

    def __exit__(self, *exc):
        from rotation import queue

        queue.enqueue_batch = self.original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", choices=["openldap", "samba"], default="openldap")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile", type=int, default=0, help="then profile this many rotations in-process")
    args = parser.parse_args()
    data = django_in_tempdir(args.workers, args.database)

    from tests.ldapservers import SambaDC, SlapdServer

    server_dir = tempfile.mkdtemp(prefix="pamrotate-bench-dir-")
    server = SambaDC(server_dir) if args.directory == "samba" else SlapdServer(server_dir)
    try:
        server.start()
        t0 = time.monotonic()
        dns = add_accounts(server, args.users)
        print(f"seeded {args.users} {args.directory} accounts in {time.monotonic() - t0:.1f} s", flush=True)
        raw = raw_loop(server, dns)
        print(f"raw ldap3: {raw:.1f} rotations/s", flush=True)
        user_ids = app_records(server, dns)
        app = app_run(user_ids, data, args.workers)
        print(f"pamrotate ({args.workers} workers): {app:.1f} rotations/s", flush=True)
        if args.profile:
            profile(user_ids, args.profile)
        print(
            f"rotation_throughput directory={args.directory} database={args.database} raw_per_s={raw:.1f} "
            f"app_per_s={app:.1f} "
            f"ratio={app / raw:.2f}"
        )
    finally:
        server.close()
        shutil.rmtree(server_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
