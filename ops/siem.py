"""Stream every audit event to a SIEM as RFC 5424 syslog over TCP or TLS, in order, at least once.

The sender runs in the dispatcher's tick (``ops.relay``) of whichever qcluster holds the ``siem``
cursor's lease, or in its own process (``manage.py pam_siem``); the lease keeps it to one at a
time. It sends the events after the stored cursor in batches, octet-counted (RFC 6587), and moves
the cursor only when the collector's kernel acknowledged every byte (the send queue is empty)
and the collector has not closed the connection. A batch cut short is sent again from the cursor
after a reconnect, so an event may arrive twice after an outage but is never lost; in normal
operation each is sent once. Each message carries the event id (structured data ``eventId`` and
the body's ``id``) so a collector can drop a repeat.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import select
import socket
import ssl
import struct
import termios
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils import timezone

from audit.models import AuditEvent
from ops import conf, stream

NAME = "siem"
BATCH = 200
# The example private enterprise number RFC 5424 reserves for documentation (no number is registered).
SD_ID = "pamrotate@32473"
FACILITY = 13  # log audit
CONFIRM_SECONDS = 5.0
MAX_BACKOFF = 30.0


class SiemError(Exception):
    """The collector cannot be reached or did not take the messages."""


@dataclass(frozen=True)
class Collector:
    """Where the stream goes: ``tcp://host:port`` or ``tls://host:port``."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Collector:
        """Parse PAMROTATE_SIEM_URL or raise SiemError saying what to write."""
        parts = urlsplit(url.strip())
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("tcp", "tls") or not parts.hostname or not port:
            raise SiemError("PAMROTATE_SIEM_URL must read tcp://host:port or tls://host:port")
        return cls(parts.scheme, parts.hostname, port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """Open a connection (TLS verified against PAMROTATE_SIEM_CA_FILE or the system's CAs)."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.scheme == "tls":
            context = ssl.create_default_context(cafile=conf.siem_ca_file() or None)
            sock = context.wrap_socket(sock, server_hostname=self.host)
        return sock


def _sd_value(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def as_dict(event: AuditEvent) -> dict:
    """Return the event as the JSON body carries it (Keeper's envelope names, plus its id)."""
    return {
        "id": event.pk,
        "audit_event": event.event,
        "category": event.category,
        "outcome": event.outcome,
        "username": event.actor_name,
        "timestamp": _stamp(event.created_at),
        "remote_address": event.remote_address or "",
        "record_type": event.record_type,
        "record_uid": event.record_uid,
        "record_title": event.record_title,
        "attempt_id": event.attempt_id,
        "message": event.message,
    }


def _cef_header(value) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|")


def _cef_value(value) -> str:
    text = str(value).replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r", "\\r").replace("\n", "\\n")


def as_cef(event: AuditEvent) -> str:
    """Return the event as an ArcSight CEF line."""
    severity = 7 if event.outcome == "fail" else 3
    extension = {
        "externalId": event.pk,
        "rt": int(event.created_at.timestamp() * 1000),
        "cat": event.category,
        "outcome": event.outcome,
        "suser": event.actor_name,
        "src": event.remote_address or "",
        "cs1Label": "record",
        "cs1": f"{event.record_type}:{event.record_id or ''} {event.record_title}".strip(),
        "msg": event.message,
    }
    text = " ".join(f"{key}={_cef_value(value)}" for key, value in extension.items() if value != "")
    header = "|".join(_cef_header(part) for part in ("pamrotate", "pamrotate", "1", event.event, event.label))
    return f"CEF:0|{header}|{severity}|{text}"


def message(event: AuditEvent, body_format: str = "json", hostname: str | None = None) -> bytes:
    """Return one RFC 5424 message, octet-counted for TCP (RFC 6587)."""
    severity = 4 if event.outcome == "fail" else 6
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "-")
    msgid = "".join(ch for ch in event.event if 33 <= ord(ch) <= 126)[:32] or "-"
    sd = f'[{SD_ID} eventId="{event.pk}" outcome="{_sd_value(event.outcome or "-")}"]'
    body = as_cef(event) if body_format == "cef" else json.dumps(as_dict(event), ensure_ascii=False)
    line = f"<{FACILITY * 8 + severity}>1 {_stamp(event.created_at)} {host} pamrotate - {msgid} {sd} {body}"
    data = line.encode("utf-8")
    return str(len(data)).encode() + b" " + data


class _Sender:
    """This process's connection to the collector and its back-off after a failure."""

    def __init__(self):
        self.sock: socket.socket | None = None
        self.target = ""
        self.retry_at = 0.0
        self.delay = 1.0

    def connection(self, collector: Collector) -> socket.socket:
        if self.sock is None or self.target != str(collector):
            self.close()
            self.sock = collector.connect()
            self.target = str(collector)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def failed(self) -> None:
        self.close()
        self.retry_at = time.monotonic() + self.delay
        self.delay = min(MAX_BACKOFF, self.delay * 2)

    def succeeded(self) -> None:
        self.delay = 1.0
        self.retry_at = 0.0


_sender = _Sender()


def confirm(sock: socket.socket, seconds: float = CONFIRM_SECONDS) -> None:
    """Return once the collector's kernel acknowledged every byte sent; raise SiemError if it closed."""
    deadline = time.monotonic() + seconds
    while True:
        unacknowledged = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        if unacknowledged == 0:
            break
        if time.monotonic() > deadline:
            raise SiemError("the collector did not acknowledge the messages")
        time.sleep(0.002)
    # A collector never writes to us: a readable socket is a close or a reset (bytes may be lost).
    if select.select([sock], [], [], 0)[0]:
        raise SiemError("the collector closed the connection")


def pump(now: dt.datetime | None = None, *, budget: float = 2.0, force: bool = False) -> int:
    """Send the events after the cursor for up to ``budget`` seconds; return how many were sent."""
    url = conf.siem_url()
    if not url or (not force and time.monotonic() < _sender.retry_at) or not stream.has_new_events(NAME):
        return 0
    holder = stream.holder_name()
    row = stream.take_lease(NAME, holder, now)
    if row is None:
        return 0
    collector = Collector.parse(url)
    body_format = conf.siem_format()
    hostname = socket.gethostname()
    sent = 0
    deadline = time.monotonic() + budget
    try:
        while time.monotonic() < deadline:
            events = stream.events_after(row.last_event_id, BATCH, timezone.now())
            if not events:
                break
            sock = _sender.connection(collector)
            sock.sendall(b"".join(message(event, body_format, hostname) for event in events))
            confirm(sock)
            if not stream.advance(NAME, holder, events[-1].pk, sent=len(events)):
                break  # the lease passed to another sender: it resends from the cursor
            row.last_event_id = events[-1].pk
            sent += len(events)
    except (OSError, SiemError) as exc:
        _sender.failed()
        stream.record_failure(NAME, f"{type(exc).__name__} sending to {collector}")
        return sent
    _sender.succeeded()
    return sent


def forget_connection() -> None:
    """Close this process's connection and forget the back-off (tests, or a changed setting)."""
    _sender.close()
    _sender.succeeded()
