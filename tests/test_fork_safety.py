"""No database connection crosses a fork (issue 19): a real qcluster whose first fork is delayed.

The reproduction of the attack run: a ``sitecustomize.py`` on ``PYTHONPATH`` sleeps 3 s before
the qcluster main process's first ``multiprocessing`` start, imitating a slow start on a busy
machine (until issue 19 the one-second dispatcher thread held an SQLite connection across that
fork: ``disk I/O error``, ``malformed``, ``reincarnated pusher``). On SQLite and on PostgreSQL the
cluster takes a rotation against the real slapd, nothing in its log says the database broke,
no child shares a database file or socket with its parent (``kcmp``), the main process had no
database file open when it forked, SQLite's ``integrity_check`` is ok after a second process
wrote audit events meanwhile, and SIGTERM stops it within its grace time.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from audit.actors import Actor
from records.models import PamUser
from rotation import services
from rotation.models import AttemptState, RotationAttempt
from tests.pgserver import ROOT, Qcluster, app_env, call, wait_for
from tests.test_postgres import add_slapd_accounts, pg_app, seed  # noqa: F401  (pg_app: fixture)
from tests.test_rotation import STRONG, make_env

BROKEN = ("disk I/O error", "malformed", "reincarnat", "refusing to run", "forked with a database connection")
SLOW_FORK_SECONDS = 3

SITECUSTOMIZE = """
import json, os, time

def _cmdline():
    with open("/proc/self/cmdline", "rb") as handle:
        return handle.read().split(b"\\0")

if b"qcluster" in _cmdline():
    import multiprocessing.process as _process

    _start, _main = _process.BaseProcess.start, os.getpid()

    def start(self):
        if os.getpid() == _main and not os.environ.get("SLOW_FORK_DONE"):
            os.environ["SLOW_FORK_DONE"] = "1"
            time.sleep(float(os.environ["SLOW_FORK_SECONDS"]))
            fds = {}
            for fd in os.listdir("/proc/self/fd"):
                try:
                    fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    pass
            with open(os.environ["SLOW_FORK_REPORT"], "w") as report:
                json.dump(fds, report)
        return _start(self)

    _process.BaseProcess.start = start
"""


@pytest.fixture(scope="module")
def slow_fork(tmp_path_factory) -> Path:
    """A directory with the slow-fork ``sitecustomize.py``, for PYTHONPATH."""
    directory = tmp_path_factory.mktemp("slowfork")
    (directory / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    return directory


def slow_env(env: dict, slow_fork: Path, report: Path) -> dict:
    return dict(
        env,
        PYTHONPATH=os.pathsep.join([str(slow_fork), str(ROOT)]),
        SLOW_FORK_SECONDS=str(SLOW_FORK_SECONDS),
        SLOW_FORK_REPORT=str(report),
        PAMROTATE_WORKER_STOP_GRACE_SECONDS="10",
    )


# -- Who holds what: /proc and kcmp ---------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
SYS_KCMP, KCMP_FILE = 312, 0  # x86_64


def descendants(root: int) -> dict[int, int]:
    """Return {pid: parent pid} of every process below ``root``."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    parents[int(name)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    tree, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                tree[pid] = ppid
                todo.append(pid)
    return tree


def pg_socket_inodes(port: int) -> set[str]:
    """Return the inodes of the TCP sockets connected to PostgreSQL's port."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def database_fds(pid: int, files: tuple[str, ...], sockets: set[str]) -> dict[int, str]:
    """Return {fd: target} of a process's descriptors on the database files or PostgreSQL sockets."""
    found = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        path = target.removesuffix(" (deleted)")
        if (
            any(path.startswith(name) for name in files)
            or target.removeprefix("socket:[").rstrip("]") in sockets
        ):
            found[int(fd)] = target
    return found


def shared_with_parent(root: int, files: tuple[str, ...] = (), pg_port: int | None = None) -> list[str]:
    """Return each database descriptor a process of the tree shares with its parent (same open file)."""
    sockets = pg_socket_inodes(pg_port) if pg_port else set()
    shared = []
    for pid, parent in descendants(root).items():
        theirs = database_fds(parent, files, sockets)
        for fd, target in database_fds(pid, files, sockets).items():
            for parent_fd in theirs:
                if _libc.syscall(SYS_KCMP, pid, parent, KCMP_FILE, fd, parent_fd) == 0:
                    shared.append(f"pid {pid} fd {fd} -> {target} is its parent {parent}'s fd {parent_fd}")
    return shared


def opened_before_fork(report: Path, files: tuple[str, ...], pg_port: int | None) -> list[str]:
    """Return the database descriptors the main process held when it forked (the slow-fork report)."""
    fds = json.loads(report.read_text())
    pg_marker = "socket:["  # any socket counts when the database is PostgreSQL: the report cannot tell
    return [
        f"fd {fd} -> {target}"
        for fd, target in fds.items()
        if any(target.removesuffix(" (deleted)").startswith(name) for name in files)
        or (pg_port and target.startswith(pg_marker) and fd not in ("0", "1", "2"))
    ]


def assert_stops_within_grace(cluster: Qcluster, grace: float = 10) -> float:
    started = time.monotonic()
    cluster.process.send_signal(signal.SIGTERM)
    cluster.process.wait(grace + 5)
    elapsed = time.monotonic() - started
    assert elapsed < grace + 2, f"stopped after {elapsed:.1f} s (grace {grace} s)"
    assert cluster.process.returncode == 0, cluster.output()[-2000:]
    return elapsed


def write_audit_events(seconds: float) -> dict:
    """(Run in a child.) Write audit events as fast as a busy web process would, for ``seconds``."""
    try:
        from audit.events import record_event
    except ImportError:  # before the audit app
        from audit.events import record_event
    from audit.models import AuditEvent

    written, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        record_event(
            AuditEvent.RECORD_UPDATED, actor=Actor.system("fork-safety writer"), message=f"event {written}"
        )
        written += 1
        time.sleep(0.005)
    return {"written": written}


class Writer(threading.Thread):
    """A second process writing audit events while the qcluster runs."""

    def __init__(self, env: dict, seconds: float):
        super().__init__(daemon=True)
        self.env, self.seconds, self.result, self.error = env, seconds, None, None

    def run(self):
        try:
            self.result = call("tests.test_fork_safety:write_audit_events", self.env, seconds=self.seconds)
        except Exception as exc:  # reported by the test
            self.error = exc


# -- SQLite ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_slow_forking_qcluster_on_sqlite_rotates_and_shares_no_database_file(
    slapd, unique_name, tmp_path, slow_fork, monkeypatch
):
    monkeypatch.setattr("django_q.conf.Conf.SYNC", False)  # the qcluster, not this process, rotates
    database = connection.settings_dict["NAME"]
    files = (database,)  # also its -wal, -shm and -journal
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("fork"))
    child_env = app_env(f"sqlite:///{database}", tmp_path, DJANGO_SETTINGS_MODULE="tests.settings")
    report = tmp_path / "fork.json"
    writer = Writer(child_env, seconds=10)
    with Qcluster(slow_env(child_env, slow_fork, report), tmp_path / "qcluster.log") as cluster:
        writer.start()
        attempt = services.request_rotation(user, actor=Actor.system("test"))
        started = time.monotonic()
        wait_for(
            lambda: RotationAttempt.objects.filter(pk=attempt.pk, state=AttemptState.SUCCEEDED).exists(),
            30,
            message=lambda: cluster.output()[-3000:],
        )
        took = time.monotonic() - started
        wait_for(lambda: "Processed 'rotation.tasks.rotate'" in cluster.output(), 5)  # the cluster ran it
        # Workers, pusher and monitor have opened their own connections by now.
        assert shared_with_parent(cluster.process.pid, files) == []
        writer.join(60)
        assert writer.error is None and writer.result["written"] > 100, writer.error
        assert cluster.alive
        assert_stops_within_grace(cluster)
    log = cluster.output()
    assert took < 30 and took > 0
    assert opened_before_fork(report, files, None) == [], "the main process forked with the database open"
    assert not [word for word in BROKEN if word in log], log[-3000:]
    check = sqlite3.connect(database)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        check.close()
    user = PamUser.objects.get(pk=user.pk)
    assert user.get_password() != STRONG and slapd.can_bind(user.distinguished_name, user.get_password())


# -- PostgreSQL -----------------------------------------------------------------------------------


def test_a_slow_forking_qcluster_on_postgresql_rotates_and_shares_no_socket(
    pg_app,  # noqa: F811 - the fixture imported above
    slapd,
    unique_name,
    slow_fork,
    tmp_path,
):
    prefix = unique_name("pgfork")
    ids = seed(pg_app.env(), slapd, add_slapd_accounts(slapd, prefix, 1), prefix)["users"]
    report = tmp_path / "fork.json"
    env = slow_env(pg_app.env(), slow_fork, report)
    with Qcluster(env, pg_app.data_dir / "qcluster-fork.log") as cluster:
        started = time.monotonic()
        call("tests.test_postgres:request_rotations", pg_app.env(), user_ids=ids)
        done = "SELECT count(*) FROM rotation_rotationattempt WHERE user_id = ANY(%s) AND state = 'succeeded'"
        wait_for(lambda: pg_app.scalar(done, [ids]) == 1, 30, message=lambda: cluster.output()[-3000:])
        took = time.monotonic() - started
        assert shared_with_parent(cluster.process.pid, pg_port=pg_app.server.port) == []
        assert_stops_within_grace(cluster)
    log = cluster.output()
    assert took < 30
    assert opened_before_fork(report, (), pg_app.server.port) == []
    assert not [word for word in BROKEN if word in log], log[-3000:]


# -- The guard ------------------------------------------------------------------------------------

GUARDED_FORK = """
import multiprocessing, threading, django
django.setup()
from django.db import connection
from rotation.forkguard import arm_fork_guard

arm_fork_guard()
opened = threading.Event()
def hold():
    connection.ensure_connection()  # this thread's own connection, open across the fork
    opened.set()
    threading.Event().wait()
threading.Thread(target=hold, name="holder", daemon=True).start()
opened.wait()
child = multiprocessing.get_context("fork").Process(target=print, args=("child ran",))
child.start(); child.join()
print("child exit", child.exitcode)
"""


def test_the_fork_guard_stops_a_child_that_would_inherit_an_open_connection(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", GUARDED_FORK],
        cwd=ROOT,
        env=dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PAMROTATE_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "child exit 70" in result.stdout, result.stderr[-2000:]
    assert "child ran" not in result.stdout
    assert "forked with a database connection open: default (sqlite) in thread holder" in result.stderr
