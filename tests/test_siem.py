"""The SIEM stream: every audit event, in order, once, to a real rsyslog over TCP and TLS — outages included."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from audit.actors import Actor
from audit.events import record_event
from audit.models import AuditEvent
from ops import siem, stream
from ops.models import StreamCursor
from tests.ldapservers import make_ca
from tests.processes import die_with_parent, free_port, stop_process

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
pytestmark = pytest.mark.skipif(
    not Path(RSYSLOGD).exists(), reason="rsyslog is not installed (make test installs it)"
)
SD_ID = re.compile(r'\[pamrotate@32473 eventId="(\d+)"')


class Rsyslog:
    """A real rsyslogd on loopback: one plain TCP and one TLS (gtls) listener, each to its own file."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.tls = make_ca(directory / "tls")
        self.tcp_port, self.tls_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None
        (directory / "work").mkdir()
        self.conf = directory / "rsyslog.conf"
        self.conf.write_text(
            f'''
global(workDirectory="{directory / "work"}" maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="{self.tls.ca_file}"
       DefaultNetstreamDriverCertFile="{self.tls.cert_file}"
       DefaultNetstreamDriverKeyFile="{self.tls.key_file}")
module(load="imtcp")
template(name="event" type="string" string="%structured-data% %msg%\\n")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
ruleset(name="tcp") {{ action(type="omfile" file="{directory / "tcp.log"}" template="event") }}
ruleset(name="tls") {{ action(type="omfile" file="{directory / "tls.log"}" template="event") }}
'''
        )

    def start(self) -> None:
        log = open(self.dir / "rsyslogd.out", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(  # noqa: S603 - our own config file
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + 40  # a loaded 2-core machine can be slow to start it
        for port in (self.tcp_port, self.tls_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError as exc:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"rsyslogd (exit {self.process.poll()}) not listening on {port}: {exc}\n"
                            + (self.dir / "rsyslogd.out").read_text()
                        ) from None
                    time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)

    def ids(self, name: str) -> list[int]:
        """Return the event ids the collector wrote, in the order it received them."""
        path = self.dir / f"{name}.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [int(SD_ID.search(line).group(1)) for line in lines if SD_ID.search(line)]

    def wait_for(self, name: str, count: int, timeout: float = 10) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.ids(name)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.ids(name)


@pytest.fixture
def rsyslog(tmp_path):
    server = Rsyslog(tmp_path)
    server.start()
    yield server
    server.stop()
    siem.forget_connection()


def _events(count: int, start: int = 0) -> list[int]:
    return [
        record_event(
            AuditEvent.SIGNIN_FAILED,
            actor=Actor.system(f"user{n}"),
            outcome="fail",
            category="security",
            message=f'Sign-in failed ("quoted" ] \\ and ünïcode) #{n}',
        ).pk
        for n in range(start, start + count)
    ]


def _drain(timeout: float = 20) -> None:
    """Pump until the cursor reaches the newest event (as ticks would)."""
    last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    deadline = time.monotonic() + timeout
    while stream.cursor(siem.NAME).last_event_id < last:
        assert time.monotonic() < deadline, stream.cursor(siem.NAME).last_error
        siem.pump(force=True)


def test_every_event_reaches_rsyslog_over_tls_with_its_id_and_a_json_body(db, rsyslog, monkeypatch):
    monkeypatch.setenv("PAMROTATE_SIEM_URL", f"tls://127.0.0.1:{rsyslog.tls_port}")
    monkeypatch.setenv("PAMROTATE_SIEM_CA_FILE", rsyslog.tls.ca_file)
    ids = _events(25)
    _drain()
    assert rsyslog.wait_for("tls", len(ids)) == ids
    line = (rsyslog.dir / "tls.log").read_text().splitlines()[0]
    body = json.loads(line.split("] ", 1)[1])
    assert body["id"] == ids[0] and body["audit_event"] == AuditEvent.SIGNIN_FAILED
    assert body["message"].startswith('Sign-in failed ("quoted" ] \\ and ünïcode)')


def test_a_tls_collector_whose_certificate_the_ca_does_not_sign_gets_nothing(
    db, rsyslog, monkeypatch, tmp_path
):
    other = make_ca(tmp_path / "other")
    monkeypatch.setenv("PAMROTATE_SIEM_URL", f"tls://127.0.0.1:{rsyslog.tls_port}")
    monkeypatch.setenv("PAMROTATE_SIEM_CA_FILE", other.ca_file)
    _events(3)
    assert siem.pump(force=True) == 0
    cursor = StreamCursor.objects.get(name=siem.NAME)
    assert cursor.last_event_id == 0 and cursor.failures == 1 and "SSL" in cursor.last_error


def test_an_outage_of_the_collector_loses_nothing_and_repeats_nothing(db, rsyslog, monkeypatch):
    monkeypatch.setenv("PAMROTATE_SIEM_URL", f"tcp://127.0.0.1:{rsyslog.tcp_port}")
    ids, errors = [], []
    for start in range(0, 200, 10):
        ids += _events(10, start)
        if start == 70:
            rsyslog.stop()  # the collector goes away between sends, the connection still open
        if start == 140:
            rsyslog.start()
        siem.pump(force=True)
        errors.append(stream.cursor(siem.NAME).last_error)
    _drain()
    # The first send after the stop went into the open connection: confirm() saw it was not taken.
    assert errors[7].startswith("SiemError") or errors[7].startswith(("BrokenPipe", "ConnectionReset")), (
        errors[7]
    )
    assert errors[8].startswith("ConnectionRefusedError") and errors[-1] == ""
    received = rsyslog.wait_for("tcp", len(ids))
    assert received == ids, f"{len(received)} received, {len(set(received))} distinct of {len(ids)}"
    assert StreamCursor.objects.get(name=siem.NAME).failures >= 1


def test_a_restarted_sender_resumes_from_the_stored_cursor(db, rsyslog, monkeypatch):
    monkeypatch.setenv("PAMROTATE_SIEM_URL", f"tcp://127.0.0.1:{rsyslog.tcp_port}")
    first = _events(5)
    _drain()
    siem.forget_connection()  # pamrotate stops: the connection and its memory are gone
    second = _events(5, 5)
    _drain()
    assert rsyslog.wait_for("tcp", 10) == first + second


def test_one_sender_at_a_time_holds_the_lease(db):
    assert stream.take_lease("siem", "host-a:1") is not None
    assert stream.take_lease("siem", "host-b:2") is None
    assert stream.take_lease("siem", "host-a:1") is not None


def test_cef_bodies_escape_their_separators(db):
    event = record_event(
        AuditEvent.SIGNIN_FAILED, actor=Actor.system("a|b=c"), outcome="fail", message="x=y\nz"
    )
    text = siem.message(event, "cef", "host").decode()
    length, line = text.split(" ", 1)
    assert int(length) == len(line.encode())
    assert f"externalId={event.pk}" in line and "suser=a|b\\=c" in line and "msg=x\\=y\\nz" in line
    assert line.startswith("<108>1 ") and "|login_failure|Sign-in failed|7|" in line


def test_reading_waits_at_a_gap_that_may_still_fill_then_passes_it(db):
    from django.utils import timezone

    (first,) = _events(1)
    AuditEvent.objects.bulk_create([AuditEvent(pk=first + 2, event=AuditEvent.SIGNIN_OK, actor_name="later")])
    # Id first + 1 may belong to a transaction that has not committed yet: wait for it ...
    assert stream.events_after(first, 10) == []
    # ... until the event after the gap is older than the grace: then it was a rollback.
    later = timezone.now() + stream.GAP_GRACE + stream.GAP_GRACE
    assert [event.pk for event in stream.events_after(first, 10, later)] == [first + 2]


def test_pam_siem_sends_once_and_reports_where_it_stands(db, rsyslog, monkeypatch, capsys):
    from django.core.management import call_command

    monkeypatch.setenv("PAMROTATE_SIEM_URL", f"tcp://127.0.0.1:{rsyslog.tcp_port}")
    ids = _events(4)
    call_command("pam_siem", "run", "--once")
    assert "sent 4 event(s)" in capsys.readouterr().out
    assert rsyslog.wait_for("tcp", 4) == ids
    call_command("pam_siem", "status")
    assert f"sent up to event {ids[-1]} of {ids[-1]} (0 waiting)" in capsys.readouterr().out


def test_the_dispatcher_tick_runs_the_sender(db, rsyslog, monkeypatch):
    from rotation import dispatch

    monkeypatch.setenv("PAMROTATE_SIEM_URL", f"tcp://127.0.0.1:{rsyslog.tcp_port}")
    siem.forget_connection()
    ids = _events(3)
    dispatch.tick(housekeeping=False)  # what every qcluster's dispatcher thread does each second
    assert rsyslog.wait_for("tcp", 3) == ids
