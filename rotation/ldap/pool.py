"""Idle directory connections of this process, kept for reuse by the next conversation."""

from __future__ import annotations

import select
import ssl
import threading
import time

import ldap3


class _ConnectionPool:
    """Idle LDAPS connections of this process, reused for at most ``max_age`` seconds.

    A fresh connection costs a TCP and TLS handshake and a bind; reusing one saves that work on
    both sides (on Samba, whose CPU bounds its throughput, most of it). A connection is checked
    for being closed before reuse, so one the server has dropped is never used.
    """

    def __init__(self, max_age: float = 60.0, max_idle: int = 8):
        self.max_age = max_age
        self.max_idle = max_idle
        self.lock = threading.Lock()
        self.idle: dict[tuple, list[tuple[float, ldap3.Connection]]] = {}

    def take(self, key: tuple) -> ldap3.Connection | None:
        while True:
            with self.lock:
                entries = self.idle.get(key) or []
                if not entries:
                    return None
                opened, conn = entries.pop()
            if time.monotonic() - opened < self.max_age and _alive(conn):
                conn._pamrotate_opened = opened
                return conn
            _quietly_unbind(conn)

    def give(self, key: tuple, conn: ldap3.Connection) -> bool:
        opened = getattr(conn, "_pamrotate_opened", None) or time.monotonic()
        if conn.closed or time.monotonic() - opened >= self.max_age:
            return False
        now = time.monotonic()
        with self.lock:
            # Drop what has aged out under any key (an old admin password's connections, say).
            expired = [c for items in self.idle.values() for t, c in items if now - t >= self.max_age]
            for k in list(self.idle):
                self.idle[k] = [(t, c) for t, c in self.idle[k] if now - t < self.max_age]
            entries = self.idle.setdefault(key, [])
            full = len(entries) >= self.max_idle
            if not full:
                entries.append((opened, conn))
        for old in expired:
            _quietly_unbind(old)
        return not full

    def clear(self) -> None:
        with self.lock:
            entries = [conn for items in self.idle.values() for _, conn in items]
            self.idle.clear()
        for conn in entries:
            _quietly_unbind(conn)


def _alive(conn: ldap3.Connection) -> bool:
    """Return whether a pooled connection is still open: an idle LDAP connection has nothing to
    read, so a readable socket means the server closed it (or sent a notice of disconnection).

    No round trip: a half-open connection passes, and then a change sent on it fails as
    "outcome unknown", which reconciliation resolves; the pool's age limit bounds how long one
    can linger.
    """
    sock = conn.socket
    if conn.closed or sock is None or sock.fileno() < 0:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        readable, _, errored = select.select([sock], [], [sock], 0)
    except (OSError, ValueError):
        return False
    return not readable and not errored


def _quietly_unbind(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001, S110 - closing is best effort
        pass


_POOL = _ConnectionPool()


def clear_connection_pool() -> None:
    """Close every idle pooled connection of this process."""
    _POOL.clear()
