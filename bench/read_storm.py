"""A read storm through the production server: gunicorn (4 workers) on loopback, driven by wrk.

Many applications reading their password at once (a deploy): ``GET /v1/ldap/static-cred/NAME``
with an application's token, every read an audit event. gunicorn runs as README's deployment line
says, with a qcluster beside it (so /healthz answers its normal 200: the dispatcher and a worker
beat), on SQLite or on a PostgreSQL with its own durability (fsync, synchronous_commit on). The
same run measures ``/healthz`` on the same server for scale, then the reads at 4 and at the chosen
number of connections. Prints reads/s, p50 and p99 (wrk's latency distribution), the error count,
the audited reads, /healthz's status and the CPU per request of the workers (and PostgreSQL); the
last line is ``read_storm database=<db> conns=<n> reads_per_s=<r> p50_ms=<m> p99_ms=<p> ...``.

Usage: python bench/read_storm.py [--database sqlite|postgresql] [--connections 32]
       [--duration 10] [--workers 4] [--profile FILE] [--gunicorn="-k gthread --threads 4"]
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
import urllib.error
import urllib.request
from pathlib import Path

from _setup import _PG_SERVERS, ROOT, django_in_tempdir

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
# README's deployment line: ``gunicorn pamrotate.wsgi -b 127.0.0.1:8000 -w 4`` (sync workers) plus these
# options. Measured here: gthread workers (4 threads, keep-alive) served fewer reads, on PostgreSQL a
# little (with a longer tail), on SQLite half (threads queue for its one writer, in its busy wait).
DEPLOYMENT_OPTIONS: list[str] = []


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


def children_cpu_seconds(parent: int | None) -> float:
    """Return the CPU seconds (user + system) a process's children have used so far (0 for no process)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat") if parent else ():
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:  # ppid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_ms_per_request(pids: tuple, before: list[float], requests: int) -> list[float]:
    """Return the CPU milliseconds per request each process's children used since ``before``."""
    return [
        (children_cpu_seconds(pid) - start) * 1000 / max(1, requests)
        for pid, start in zip(pids, before, strict=True)
    ]


def healthz_status(base: str) -> int:
    """Return the status /healthz answers now."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:  # noqa: S310 - http on loopback
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def start_qcluster(log_path) -> subprocess.Popen:
    """Start the worker pool beside the web process, as a deployment runs it (its beats make /healthz 200)."""
    log = open(log_path, "w")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )


def wait_healthy(base: str, timeout: float = 120) -> int:
    """Wait until /healthz answers 200 (the dispatcher and a worker beat); return the last status."""
    deadline = time.monotonic() + timeout
    status = healthz_status(base)
    while status != 200 and time.monotonic() < deadline:
        time.sleep(1)
        status = healthz_status(base)
    return status


def start_gunicorn(
    port: int, workers: int, options: list[str], log_path, profile: str | None
) -> subprocess.Popen:
    """Start gunicorn on 127.0.0.1 with the production WSGI application; wait until it answers."""
    command = [
        sys.executable, "-m", "gunicorn", "pamrotate.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
        *options, "--log-level", "warning", "--backlog", "2048",
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
    parser.add_argument(
        "--gunicorn", default=" ".join(DEPLOYMENT_OPTIONS), help="other gunicorn options to try"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make test installs it)")
    # One token reads all the time here: the per-token limit (default 120/minute) would answer 429.
    os.environ["PAMROTATE_API_RATE"] = "100000000/minute"
    os.environ["PAMROTATE_HTTPS"] = "0"
    # PostgreSQL as in production: every audit row's commit is flushed to disk before the answer.
    data = django_in_tempdir(database=args.database, durable=True)
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
    options = args.gunicorn.split()
    server = start_gunicorn(port, args.workers, options, data / "gunicorn.log", args.profile)
    worker = start_qcluster(data / "qcluster.log")
    pids = (server.pid, _PG_SERVERS[0].process.pid if _PG_SERVERS else None)
    base = f"http://127.0.0.1:{port}"
    read_url = f"{base}/v1/ldap/static-cred/{target.title}"
    headers = {"X-Vault-Token": token}
    try:
        health_before = wait_healthy(base)
        wrk(read_url, 4, 2, headers)  # warm-up: imports, connections, query plans in every worker
        before = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).count()
        cpu = [children_cpu_seconds(pid) for pid in pids]
        health = wrk(f"{base}/healthz", args.connections, args.duration, {})
        health_cpu = cpu_ms_per_request(pids, cpu, health["requests"])
        at_4 = wrk(read_url, 4, args.duration, headers)
        cpu = [children_cpu_seconds(pid) for pid in pids]
        reads = wrk(read_url, args.connections, args.duration, headers)
        read_cpu = cpu_ms_per_request(pids, cpu, reads["requests"])
        audited = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).count() - before
        health_after = healthz_status(base)
    finally:
        stop_process(server, signal.SIGTERM, timeout=30)
        stop_process(worker, signal.SIGTERM, timeout=30)
    log = (data / "gunicorn.log").read_text()
    shutil.rmtree(data, ignore_errors=True)
    locked = log.count("database is locked")
    expected = at_4["requests"] + reads["requests"] - at_4["non_2xx"] - reads["non_2xx"]
    print(
        f"database {args.database}, gunicorn -w {args.workers} {' '.join(options) or '(sync workers)'}, "
        "a qcluster beside it"
    )
    print(
        f"/healthz at {args.connections} connections: {health['rate']:.0f}/s (p50 {health['p50']:.1f} ms, "
        f"p99 {health['p99']:.1f} ms); status {health_before} before, {health_after} after, "
        f"{health['non_2xx']} non-2xx during the run"
    )
    for label, run in ((4, at_4), (args.connections, reads)):
        print(
            f"reads at {label} connections: {run['rate']:.0f}/s, p50 {run['p50']:.1f} ms, p99 {run['p99']:.1f} ms, "
            f"{run['requests']} requests, {run['non_2xx']} non-2xx, {run['socket_errors']} socket errors"
        )
    print(f"gunicorn workers' CPU per request: read {read_cpu[0]:.2f} ms, /healthz {health_cpu[0]:.2f} ms")
    if pids[1]:
        print(f"PostgreSQL's CPU per request: read {read_cpu[1]:.2f} ms, /healthz {health_cpu[1]:.2f} ms")
    print(
        f"audited reads: {audited} (successful reads wrk counted: {expected}; the reads in flight at wrk's "
        f"deadline are served and audited too); 'database is locked' in the log: {locked}"
    )
    print(
        f"read_storm database={args.database} conns={args.connections} reads_per_s={reads['rate']:.0f} "
        f"p50_ms={reads['p50']:.1f} p99_ms={reads['p99']:.1f} healthz_per_s={health['rate']:.0f} "
        f"healthz_status={health_after} ratio={reads['rate'] / health['rate']:.2f} "
        f"reads_per_s_at_4={at_4['rate']:.0f} "
        f"errors={reads['non_2xx'] + reads['socket_errors'] + at_4['non_2xx'] + at_4['socket_errors']} "
        f"audited={audited} locked={locked} worker_cpu_ms_per_read={read_cpu[0]:.2f} "
        f"worker_cpu_ms_per_healthz={health_cpu[0]:.2f}"
    )


if __name__ == "__main__":
    main()
