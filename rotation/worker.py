"""The qcluster process: django-q2's cluster started with no database connection open, and the dispatcher.

django-q2 forks its sentinel from the qcluster main process, and the sentinel forks the pusher,
the monitor and the workers. A database connection open in a process when it forks is shared
with the child: SQLite's locks and its ``-wal``/``-shm`` files (SQLite names carrying a connection
across ``fork()`` as a way to corrupt a database), or one PostgreSQL socket for two processes.
Until issue 19 the one-second dispatcher thread started in ``RotationConfig.ready()``, before the
first fork, and held an SQLite connection between ticks. Now:

1. ``run`` closes every connection of the main process, then starts the cluster; the fork guard
   (rotation/forkguard.py) checks at every fork of the cluster's processes that no connection is
   open in any thread, and a child that would inherit one exits at once, saying which;
2. once the workers exist, the main process, which never forks again, runs the dispatcher
   (``rotation.dispatch.tick`` every second; housekeeping and the gateways' canaries every
   ``WORKER_CANARY_SECONDS``) in its main thread: there is no dispatcher thread;
3. SIGTERM or SIGINT stops the cluster: running tasks get ``WORKER_STOP_GRACE_SECONDS``, then
   whatever is left of the cluster is killed;
4. a pusher that cannot pull from its broker (rotation/broker.py) for ``BROKER_FAILURE_SECONDS``
   logs one error naming the cause and asks the main process to stop: the cluster exits with ``EXIT_BROKER_UNREACHABLE``
   so that a supervisor (``make run``, systemd) shows it or starts it again.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time

from django.conf import settings
from django.db import close_old_connections, connections
from django_q.cluster import Cluster

from rotation.broker import EXIT_BROKER_UNREACHABLE, MAIN_PID_ENV
from rotation.forkguard import arm_fork_guard

log = logging.getLogger(__name__)

EXIT_SENTINEL_DIED = 4
PR_SET_CHILD_SUBREAPER = 36


# -- The cluster and its dispatcher ----------------------------------------------------------------


class _Cluster(Cluster):
    """django-q2's cluster whose signals only ask the main loop to stop (it stops in bounded time)."""

    def __init__(self):
        super().__init__()  # installs sig_handler for SIGTERM and SIGINT
        self.stop_reason: str | None = None
        self.exit_code = 0
        signal.signal(signal.SIGUSR1, self.broker_unreachable)

    def sig_handler(self, signum, frame):
        self.request_stop(signal.Signals(signum).name, 0)

    def broker_unreachable(self, signum, frame):
        self.request_stop("its broker is unreachable", EXIT_BROKER_UNREACHABLE)

    def request_stop(self, reason: str, code: int) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.exit_code = reason, code
        if self.start_event is not None and not self.start_event.is_set():
            self.start_event = None  # Cluster.start's wait loop ends on this


class Dispatcher:
    """Call ``tick`` once a second, with housekeeping (and the canaries) every WORKER_CANARY_SECONDS."""

    def __init__(self, housekeeping_every: float | None = None):
        self.housekeeping_every = housekeeping_every or settings.WORKER_CANARY_SECONDS
        self.last_housekeeping: float | None = None
        self.last_warning = 0.0

    def step(self) -> None:
        """Tick once; a database error is logged (at most every 30 s) and the next step tries again."""
        from rotation.dispatch import tick

        try:
            close_old_connections()
            now = time.monotonic()
            housekeeping = (
                self.last_housekeeping is None or now - self.last_housekeeping >= self.housekeeping_every
            )
            tick(housekeeping=housekeeping)
            if housekeeping:
                self.last_housekeeping = now
        except Exception as exc:  # the loop must survive a database outage
            if time.monotonic() - self.last_warning >= 30:
                self.last_warning = time.monotonic()
                log.warning("dispatcher: %s; retrying", type(exc).__name__)


def _descendants(root: int) -> list[int]:
    """Return every process below ``root`` (read from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def _stop(cluster: _Cluster, grace: float) -> None:
    """Stop the sentinel and its processes; kill whatever is left after ``grace`` seconds."""
    sentinel = cluster.sentinel
    if sentinel is not None and sentinel.is_alive():
        log.info("qcluster stopping (%s): running tasks have %s s", cluster.stop_reason, grace)
        if cluster.stop_event is not None:
            cluster.stop_event.set()
        sentinel.join(grace)
    # Orphans of a dead sentinel are ours too: run() made this process their subreaper.
    leftovers = [pid for pid in _descendants(os.getpid()) if not _is_zombie(pid)]
    if leftovers:
        log.warning("qcluster: %s processes did not stop within %s s; killing them", len(leftovers), grace)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if sentinel is not None:
            sentinel.join(5)


def run(dispatch: bool = True) -> int:
    """Run this host's cluster (and, unless ``dispatch`` is off, the dispatcher) until stopped; return the exit status."""
    arm_fork_guard()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    connections.close_all()  # the key check at start and anything else: nothing crosses the fork
    os.environ[MAIN_PID_ENV] = str(os.getpid())
    cluster = _Cluster()
    try:
        cluster.start()
    except RuntimeError as exc:
        log.error("qcluster cannot start: %s", exc)
        _stop(cluster, 0)
        return 1
    dispatcher = Dispatcher() if dispatch else None
    grace = settings.WORKER_STOP_GRACE_SECONDS
    try:
        while cluster.stop_reason is None:
            if not cluster.sentinel.is_alive():
                log.error("qcluster: the sentinel died (exit code %s); stopping", cluster.sentinel.exitcode)
                cluster.request_stop("the sentinel died", EXIT_SENTINEL_DIED)
                break
            if dispatcher is not None:
                dispatcher.step()
            time.sleep(1)
    finally:
        connections.close_all()
        _stop(cluster, grace)
    log.info("qcluster stopped (%s)", cluster.stop_reason)
    sys.stdout.flush()
    return cluster.exit_code
