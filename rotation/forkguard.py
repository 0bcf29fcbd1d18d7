"""The fork guard: no database connection is open in a process when it forks (SQLite forbids it).

A child of ``fork()`` shares its parent's open files: SQLite's locks and ``-wal``/``-shm`` files,
or a PostgreSQL socket. The qcluster process (rotation/worker.py) arms this guard before
django-q2 forks anything; at each later fork of it or its children, the guard looks for a
connection open in any thread, and a child that would inherit one exits at once with
``EXIT_CONNECTION_AT_FORK``, saying which, before it can touch it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

log = logging.getLogger(__name__)

EXIT_CONNECTION_AT_FORK = 70

# Every database connection this process opened (any thread), to be checked at each fork.
_connections: weakref.WeakSet = weakref.WeakSet()
# The raw connections open at a fork: held so that the child never closes them (CPython drops the
# other threads' state in the child, which would close a thread's connection there).
_held: list = []
_open_at_fork: list[str] = []
_guard_armed = False


def track_connection(sender, connection, **kwargs) -> None:
    """Remember a connection Django opened (the ``connection_created`` signal)."""
    _connections.add(connection)


def open_connections() -> list[str]:
    """Describe each database connection open in this process, in any thread."""
    threads = {thread.ident: thread.name for thread in threading.enumerate()}
    return [
        f"{wrapper.alias} ({wrapper.vendor}) in thread {threads.get(wrapper._thread_ident, wrapper._thread_ident)}"
        for wrapper in list(_connections)
        if wrapper.connection is not None
    ]


def _before_fork() -> None:
    open_wrappers = [wrapper for wrapper in list(_connections) if wrapper.connection is not None]
    _held[:] = [wrapper.connection for wrapper in open_wrappers]
    _open_at_fork[:] = open_connections()


def _after_fork_in_parent() -> None:
    if _open_at_fork:
        log.critical("forked with a database connection open: %s", "; ".join(_open_at_fork))
    _held.clear()
    _open_at_fork.clear()


def _after_fork_in_child() -> None:
    if _open_at_fork:
        # Leave without touching the inherited connection (no close, no rollback, no atexit).
        message = f"pamrotate: refusing to run: forked with a database connection open: {'; '.join(_open_at_fork)}\n"
        os.write(2, message.encode())
        os._exit(EXIT_CONNECTION_AT_FORK)
    _held.clear()


def arm_fork_guard() -> None:
    """Check at every later fork of this process and its children that no database connection is open."""
    global _guard_armed
    if not _guard_armed:
        os.register_at_fork(
            before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
        )
        _guard_armed = True
