"""A read storm through the production server: gunicorn (4 workers) on loopback, driven by wrk.

Many applications reading their password at once (a deploy): ``GET /v1/ldap/static-cred/NAME``
with an application's token, every read an audit event. The same run measures ``/healthz`` on
the same server for scale, then the reads at 4 and at the chosen number of connections. Prints
reads/s, p50 and p99 (wrk's latency distribution), the error count and the audited reads; the
last line is ``read_storm database=<db> conns=<n> reads_per_s=<r> p50_ms=<m> p99_ms=<p> ...``.

Usage: python bench/read_storm.py [--database sqlite|postgresql] [--connections 32]
       [--duration 10] [--workers 4] [--profile FILE]
(needs Debian's ``wrk``; ``--database postgresql`` starts a throwaway server as tests/pgserver.py does;
``--profile FILE`` also serves one worker under pyinstrument and writes its HTML report.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _setup import ROOT, django_in_tempdir

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(output: str) -> dict:
    """Return requests/s, p50/p99 in ms, total requests and errors from ``wrk --latency`` output."""

    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
        return float(match.group(1)) * UNITS_MS[match.group(2)] if match else float("nan")

    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": int(total.group(1)) if total else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def wrk(url: str, connections: int, duration: int, headers: dict) -> dict:
    """Run wrk (2 threads, at most one per connection) against a URL; return parse_wrk's figures."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def workers_cpu_seconds(master: int) -> float:
    """Return the CPU seconds (user + system) the gunicorn workers of a master have used so far."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == master:  # ppid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def start_gunicorn(port: int, workers: int, log_path, profile: str | None) -> subprocess.Popen:
    """Start gunicorn on 127.0.0.1 with the production WSGI application; wait until it answers."""
    command = [
        sys.executable, "-m", "gunicorn", "pamrotate.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
        "--log-level", "warning", "--backlog", "2048",
    ]  # fmt: skip
    env = {**os.environ, "PAMROTATE_BENCH_PROFILE": profile or ""}
    if profile:
        command += ["-c", str(ROOT / "bench" / "_profile_gunicorn.py")]
    log = open(log_path, "w")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/sys/health", timeout=2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--profile", help="write a pyinstrument HTML profile of one worker's reads here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make test installs it)")
    # One token reads all the time here: the per-token limit (default 120/minute) would answer 429.
    os.environ["PAMROTATE_API_RATE"] = "100000000/minute"
    os.environ["PAMROTATE_HTTPS"] = "0"
    data = django_in_tempdir(database=args.database)
    (data / "staticfiles").mkdir(exist_ok=True)  # no collectstatic: the reads need no static files

    from api import services
    from audit.models import AuditEvent
    from records.models import PamConfiguration, PamUser
    from tests.processes import free_port, stop_process

    configuration = PamConfiguration.objects.create(title="Read storm")
    users = [PamUser(configuration=configuration, title=f"app-{n}", login=f"app{n}") for n in range(200)]
    for user in users:
        user.set_password(f"Storm-Pass-{user.title}-1!")
    PamUser.objects.bulk_create(users)
    _application, token = services.create_application("read-storm", [configuration])
    target = PamUser.objects.get(title="app-100")

    port = free_port()
    server = start_gunicorn(port, args.workers, data / "gunicorn.log", args.profile)
    base = f"http://127.0.0.1:{port}"
    read_url = f"{base}/v1/ldap/static-cred/{target.title}"
    headers = {"X-Vault-Token": token}
    try:
        wrk(read_url, 4, 2, headers)  # warm-up: imports, connections, query plans in every worker
        before = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).count()
        cpu_before = workers_cpu_seconds(server.pid)
        health = wrk(f"{base}/healthz", args.connections, args.duration, {})
        cpu_per_health = (workers_cpu_seconds(server.pid) - cpu_before) * 1000 / max(1, health["requests"])
        at_4 = wrk(read_url, 4, args.duration, headers)
        cpu_before = workers_cpu_seconds(server.pid)
        reads = wrk(read_url, args.connections, args.duration, headers)
        cpu_per_read = (workers_cpu_seconds(server.pid) - cpu_before) * 1000 / max(1, reads["requests"])
        audited = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).count() - before
    finally:
        stop_process(server, signal.SIGTERM, timeout=30)
    log = (data / "gunicorn.log").read_text()
    shutil.rmtree(data, ignore_errors=True)
    locked = log.count("database is locked")
    expected = at_4["requests"] + reads["requests"] - at_4["non_2xx"] - reads["non_2xx"]
    print(f"database {args.database}, gunicorn {args.workers} workers, wrk {args.duration} s per run")
    print(
        f"/healthz at {args.connections} connections: {health['rate']:.0f}/s (p50 {health['p50']:.1f} ms, "
        f"p99 {health['p99']:.1f} ms; {health['non_2xx']} non-2xx: no worker heartbeat here, answered 503)"
    )
    for label, run in ((4, at_4), (args.connections, reads)):
        print(
            f"reads at {label} connections: {run['rate']:.0f}/s, p50 {run['p50']:.1f} ms, p99 {run['p99']:.1f} ms, "
            f"{run['requests']} requests, {run['non_2xx']} non-2xx, {run['socket_errors']} socket errors"
        )
    print(f"gunicorn workers' CPU per request: read {cpu_per_read:.2f} ms, /healthz {cpu_per_health:.2f} ms")
    print(
        f"audited reads: {audited} (successful reads wrk counted: {expected}; the reads in flight at wrk's "
        f"deadline are served and audited too); 'database is locked' in the log: {locked}"
    )
    print(
        f"read_storm database={args.database} conns={args.connections} reads_per_s={reads['rate']:.0f} "
        f"p50_ms={reads['p50']:.1f} p99_ms={reads['p99']:.1f} healthz_per_s={health['rate']:.0f} "
        f"ratio={reads['rate'] / health['rate']:.2f} reads_per_s_at_4={at_4['rate']:.0f} "
        f"errors={reads['non_2xx'] + reads['socket_errors'] + at_4['non_2xx'] + at_4['socket_errors']} "
        f"audited={audited} locked={locked} worker_cpu_ms_per_read={cpu_per_read:.2f}"
    )


if __name__ == "__main__":
    main()
