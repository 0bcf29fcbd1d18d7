"""A real PostgreSQL for tests, and pamrotate processes (migrate, qcluster, scripts) run against it.

pytest-django's test database stays SQLite; the PostgreSQL tests drive everything through child
processes whose ``DATABASE_URL`` names a database on this server, and read the results back with
psycopg. PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` system
user (installed with Debian's ``postgresql`` package) from a temporary directory it owns.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from tests.processes import die_with_parent, free_port, stop_process

try:
    import pytest
except ImportError:  # plain Python use (benchmarks) does not need pytest
    pytest = None

ROOT = Path(__file__).resolve().parent.parent


def find_pg_binary(name: str) -> str | None:
    """Return the path of a PostgreSQL server program (Debian keeps them off PATH), or None."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]), reverse=True
    )
    return candidates[0] if candidates else None


def _as_user(uid: int | None, gid: int | None, death_signal: int):
    """Return a preexec function: drop to uid/gid (when given), then die with the parent."""

    def preexec() -> None:
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        # After the credential change: changing them clears PR_SET_PDEATHSIG.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, death_signal, 0, 0, 0)

    return preexec


NOT_DURABLE = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


class PgServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port>, its socket in its own directory."""

    user = "pamrotate"
    template = "pamrotate_template"

    def __init__(self, tmpdir: str | None = None, *, durable: bool = False):
        self.durable = durable  # PostgreSQL's own defaults (fsync, synchronous_commit) instead of a test's
        self.initdb = find_pg_binary("initdb")
        self.postgres = find_pg_binary("postgres")
        if not self.initdb or not self.postgres:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
        self.dir = Path(tmpdir or tempfile.mkdtemp(prefix="pamrotate-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "run"
        self.log_file = self.dir / "postgres.log"
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._databases = 0
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        else:
            self.uid = self.gid = None
        self._init()

    def _init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.uid is not None:
            for path in (self.dir, self.socket_dir, pwfile):
                os.chown(path, self.uid, self.gid)
        self.dir.chmod(0o700)
        result = subprocess.run(
            [
                self.initdb,
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            preexec_fn=_as_user(self.uid, self.gid, signal.SIGKILL),  # noqa: PLW1509 - no locks taken
            capture_output=True,
            text=True,
            check=False,
        )
        pwfile.unlink()
        if result.returncode:
            raise RuntimeError(f"initdb failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30) -> None:
        """Start the server (same data, same port) and wait until it accepts a login."""
        if self.running:
            return
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child
        if self.uid is not None:
            os.chown(self.log_file, self.uid, self.gid)
        self.process = subprocess.Popen(
            [
                self.postgres,
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                # A throwaway test cluster: durability off, enough connections for two qclusters.
                *([] if self.durable else NOT_DURABLE),
                "-c",
                "max_connections=200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # SIGINT is PostgreSQL's "fast shutdown": it also ends client sessions.
            preexec_fn=_as_user(self.uid, self.gid, signal.SIGINT),  # noqa: PLW1509 - no locks taken
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.tail()}")
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready after {timeout:.0f} s:\n{self.tail()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server by the PID we started (fast shutdown), and wait for it."""
        process, self.process = self.process, None
        stop_process(process, signal.SIGINT, timeout=30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str) -> psycopg.Connection:
        """A psycopg connection in autocommit mode: each query sees the latest committed state."""
        return psycopg.connect(self.dsn(database), autocommit=True)

    def create_database(self, template: str | None = None) -> str:
        """Create a fresh database (a copy of the migrated template when it exists); return its name."""
        self._databases += 1
        name = f"pamrotate_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            if template:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def migrated_template(self, data_dir: Path) -> str:
        """Create and migrate the template database once; later databases are cheap copies of it."""
        with self.connect("postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.template]).fetchone()
        if not exists:
            with self.connect("postgres") as conn:
                conn.execute(f'CREATE DATABASE "{self.template}"')
            manage(["migrate", "--noinput", "-v", "0"], app_env(self.url(self.template), data_dir))
        return self.template


# --- pamrotate child processes ------------------------------------------------------------------


def app_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Return the environment of a pamrotate process (dev mode, real workers) on this database.

    The secret and encryption keys are this process's own (tests/settings.py sets them), so the
    test can decrypt what a child stored.
    """
    env = dict(os.environ)
    env.update(
        PAMROTATE_MODE="dev",
        DJANGO_SETTINGS_MODULE="pamrotate.settings",
        DATABASE_URL=database_url,
        PAMROTATE_DATA_DIR=str(data_dir),
        PAMROTATE_Q_SYNC="0",
        PAMROTATE_HTTPS="0",
        PAMROTATE_LOG_LEVEL="INFO",
        PAMROTATE_Q_LOG_LEVEL="INFO",  # the tests read django-q2's "Processed" lines
    )
    env.setdefault("PAMROTATE_SECRET_KEY", secrets.token_urlsafe(50))
    if "PAMROTATE_ENCRYPTION_KEY" not in env:
        raise RuntimeError("PAMROTATE_ENCRYPTION_KEY must be set (tests/settings.py sets it)")
    env.update(extra)
    return env


def manage(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    """Run ``manage.py <args>`` and return its output; raise with the output if it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl
        check=False,
    )
    if result.returncode:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def call(function: str, env: dict[str, str], timeout: float = 180, **kwargs):
    """Run ``module:function(**kwargs)`` in a fresh Django process and return its JSON result."""
    module, name = function.split(":")
    code = (
        "import json, sys, django; django.setup(); "
        f"from {module} import {name}; "
        f"print('RESULT ' + json.dumps({name}(**json.loads(sys.stdin.read()))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        input=json.dumps(kwargs),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        raise RuntimeError(f"{function} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


class Qcluster:
    """A real ``manage.py qcluster`` process with its own log; stopped by the PID we started."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM (django-q2 finishes its tasks and stops its workers), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def wait_for(predicate, timeout: float, interval: float = 0.25, message=""):
    """Call ``predicate`` until it returns something true; return it, or raise after ``timeout``.

    ``message`` (text, or a function returning it) explains the failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (psycopg.OperationalError, OSError):
            value = None  # the database is (re)starting
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(text or f"condition not met within {timeout:.0f} s")
        time.sleep(interval)


# --- run inside a child process (via ``call``) ---------------------------------------------------


def seed_accounts(
    host: str,
    port: int,
    ca_pem: str,
    directory_type: str,
    admin_dn: str,
    admin_password: str,
    accounts: list[list[str]],
    password: str,
    prefix: str,
    due_in_seconds: float | None = None,
) -> dict:
    """Create a configuration, a directory and one PAM user per (login, dn); return their ids."""
    import datetime as dt

    from django.utils import timezone

    from tests.seeding import seed_directory

    due = timezone.now() + dt.timedelta(seconds=due_in_seconds) if due_in_seconds is not None else None
    directory, users = seed_directory(
        prefix=prefix,
        host=host,
        port=port,
        ca_pem=ca_pem,
        directory_type=directory_type,
        admin_dn=admin_dn,
        admin_password=admin_password,
        accounts=[tuple(account) for account in accounts],
        password=password,
        next_rotation_at=due,
    )
    return {"directory": directory.pk, "users": [user.pk for user in users]}


def recover(orphaned_after: float = 60) -> dict:
    """Do what the dispatcher does every 30 s: reconcile interrupted attempts, re-send lost ones."""
    import datetime as dt

    from django.utils import timezone

    from rotation import dispatch, services

    reconciled = services.reconcile_stale()
    orphans = dispatch.resend_orphans(older_than=dt.timedelta(seconds=orphaned_after))
    return {
        "reconciled": reconciled,
        "orphans": orphans,
        "released": dispatch.release_retries(timezone.now()),
    }


# --- pytest fixtures ----------------------------------------------------------------------------

if pytest is not None:

    @pytest.fixture(scope="session")
    def pg():
        """A started PostgreSQL server shared by the test session (skipped without initdb)."""
        if not find_pg_binary("initdb") or not find_pg_binary("postgres"):
            pytest.skip("PostgreSQL's initdb is not installed (apt-get install postgresql)")
        server = PgServer()
        try:
            server.start()
            yield server
        finally:
            server.close()
