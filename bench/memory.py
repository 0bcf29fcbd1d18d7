"""Memory: peak RSS (VmHWM) of the web process and of each qcluster process after 1,000 rotations.

Runs gunicorn (2 workers) and requests a few pages as a signed-in superuser, runs a real
``qcluster`` that rotates every account of a fresh slapd once, then reads VmHWM from
/proc/<pid>/status for gunicorn, the qcluster and all their children.

Last line: ``memory web_mb=<n> worker_mb=<n>`` (the largest process of each).

Usage: python bench/memory.py [--users 1000]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _setup import ROOT, django_in_tempdir


def family(pid: int) -> list[int]:
    """Return a process and all its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(family(int(child)))
    return found


def status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def peak_mb(pid: int) -> float:
    return int(status(pid).get("VmHWM", "0 kB").split()[0]) / 1024


def report(name: str, pid: int) -> float:
    peaks = {p: peak_mb(p) for p in family(pid)}
    for p, mb in peaks.items():
        print(f"  {name} pid {p}: VmHWM {mb:.1f} MB ({status(p).get('Name', '?')})")
    return max(peaks.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    data = django_in_tempdir(2)

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone
    from rotation_throughput import add_accounts, app_records

    from records.models import PamUser
    from rotation.models import AttemptState, RotationAttempt
    from tests.ldapservers import SlapdServer

    call_command("collectstatic", interactive=False, verbosity=0)
    server = SlapdServer(tempfile.mkdtemp(prefix="pamrotate-bench-slapd-"))
    server.start()
    port = free_port()
    logs = open(data / "processes.log", "wb")  # noqa: SIM115 - closed below
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "pamrotate.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"],
        cwd=ROOT,
        stdout=logs,
        stderr=logs,
    )
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, stdout=logs, stderr=logs)
    try:
        user_ids = app_records(server, add_accounts(server, args.users))
        admin = User.objects.create_superuser("bench", "bench@example.test", "Bench-Admin-Pass-1!")
        client = Client()
        client.force_login(admin)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        time.sleep(2)  # gunicorn boots
        PamUser.objects.filter(pk__in=user_ids).update(next_rotation_at=timezone.now())
        attempts = RotationAttempt.objects.filter(user_id__in=user_ids)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if attempts.filter(state=AttemptState.SUCCEEDED).count() >= len(user_ids):
                break
            time.sleep(1)
        print(f"rotated {attempts.filter(state=AttemptState.SUCCEEDED).count()} of {len(user_ids)}")
        for path in ["/", "/users/", f"/users/{user_ids[0]}/", "/rotation/audit/", "/users/?page=5"] * 5:
            request = urllib.request.Request(  # noqa: S310 - our own http:// server
                f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie, "Host": "localhost"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                response.read()
        print("web (gunicorn, 2 workers):")
        web_mb = report("web", web.pid)
        print("qcluster:")
        worker_mb = report("qcluster", worker.pid)
        print(f"memory web_mb={web_mb:.0f} worker_mb={worker_mb:.0f}")
    finally:
        for process in (worker, web):
            process.terminate()
            process.wait(60)
        logs.close()
        server.close()


if __name__ == "__main__":
    main()
