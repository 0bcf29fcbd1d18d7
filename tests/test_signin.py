"""Sign-in protection (django-axes): lock-outs per user name, address-only limits for unknown names,
trusted proxies, 40 parallel guesses against a live server, session rules, and the sign-in audit."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.urls import reverse

from accounts import sessions
from audit.models import AuditEvent
from pamrotate.middleware import forwarded_client_address
from pamrotate.settings import env_proxy_count
from tests.conftest import PERSONA_PASSWORD, make_persona
from tests.pgserver import call, manage, wait_for
from tests.processes import die_with_parent, free_port, stop_process
from tests.test_postgres import pg_app  # noqa: F401  (fixture)

LOCKED = b"Too many failed sign-in attempts"


def sign_in(client, username: str, password: str, address: str = "192.0.2.10", **headers):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **headers
    )


def fail(client, username: str, times: int, address: str = "192.0.2.10", **headers) -> None:
    for _ in range(times):
        response = sign_in(client, username, "wrong password", address, **headers)
        assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_the_right_password_is_refused_once_the_user_name_is_locked_and_the_message_gives_the_wait(
    client, carol
):
    fail(client, "carol", settings.SIGNIN_FAILURE_LIMIT)
    response = sign_in(client, "carol", PERSONA_PASSWORD)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert b"Too many failed sign-in attempts; try again in 15 minutes." in response.content


def test_the_lock_counts_the_user_name_in_any_case_from_any_address(client, carol):
    for number, name in enumerate(["carol", "Carol", "CAROL", " carol", "cArOl"]):
        sign_in(client, name, "wrong password", address=f"192.0.2.{number + 1}")
    assert LOCKED in sign_in(client, "carol", PERSONA_PASSWORD, address="198.51.100.7").content
    assert LOCKED in sign_in(client, "CAROL", PERSONA_PASSWORD, address="198.51.100.8").content


def test_x_forwarded_for_does_not_bypass_the_lock_without_a_trusted_proxy(client, carol):
    for number in range(settings.SIGNIN_FAILURE_LIMIT):
        sign_in(client, "carol", "wrong password", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")
    assert LOCKED in sign_in(client, "carol", PERSONA_PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99").content
    addresses = set(
        AuditEvent.objects.filter(event=AuditEvent.SIGNIN_FAILED).values_list("remote_address", flat=True)
    )
    assert addresses == {"192.0.2.10"}


@override_settings(BEHIND_PROXY_COUNT=1)
def test_x_forwarded_for_does_not_bypass_the_lock_behind_a_trusted_proxy(client, carol):
    # The proxy appends the real client; what the client wrote itself (left of it) is ignored.
    for number in range(settings.SIGNIN_FAILURE_LIMIT):
        sign_in(client, "carol", "wrong password", address="10.0.0.1",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{number}, 198.51.100.{number + 1}")  # fmt: skip
    response = sign_in(
        client, "carol", PERSONA_PASSWORD, address="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.50"
    )
    assert LOCKED in response.content
    addresses = set(
        AuditEvent.objects.filter(event=AuditEvent.SIGNIN_FAILED).values_list("remote_address", flat=True)
    )
    assert addresses == {f"198.51.100.{number + 1}" for number in range(settings.SIGNIN_FAILURE_LIMIT)}


def test_made_up_names_do_not_lock_out_a_real_user_at_the_same_address(client, carol):
    fail(client, "nobody", settings.SIGNIN_FAILURE_LIMIT)
    for number in range(settings.SIGNIN_FAILURE_LIMIT):
        sign_in(client, f"guess{number}", "wrong password")
    assert sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302


def test_made_up_names_reach_their_own_higher_per_address_limit(client, carol):
    for number in range(settings.SIGNIN_ADDRESS_FAILURE_LIMIT):
        assert LOCKED not in sign_in(client, f"guess{number}", "wrong password").content
    assert LOCKED in sign_in(client, "another-guess", "wrong password").content
    assert sign_in(client, "another-guess", "x", address="198.51.100.9").status_code == 200
    assert LOCKED not in sign_in(client, "another-guess", "x", address="198.51.100.9").content
    # A real user at the limited address is counted by user name, not by the address.
    assert sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302


def test_the_lock_ends_after_the_lockout_time(client, carol):
    with time_machine.travel(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), tick=False) as clock:
        fail(client, "carol", settings.SIGNIN_FAILURE_LIMIT)
        clock.shift(600)
        assert b"try again in 5 minutes" in sign_in(client, "carol", PERSONA_PASSWORD).content
        clock.shift(5 * 60 + 1)
        assert sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302


def test_a_success_clears_the_failures(client, carol):
    fail(client, "carol", settings.SIGNIN_FAILURE_LIMIT - 1)
    assert sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302
    client.post(reverse("logout"))
    fail(client, "carol", settings.SIGNIN_FAILURE_LIMIT - 1)
    assert sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("value", "count"), [("", 0), ("0", 0), ("off", 0), ("1", 1), ("true", 1), ("yes", 1), ("2", 2), ("3", 3)]
)
def test_pamrotate_behind_proxy_is_a_switch_or_a_proxy_count(monkeypatch, value, count):
    monkeypatch.setenv("PAMROTATE_BEHIND_PROXY", value)
    assert env_proxy_count("PAMROTATE_BEHIND_PROXY") == count


@pytest.mark.parametrize(
    ("header", "proxies", "expected"),
    [
        ("198.51.100.1", 0, "10.0.0.1"),
        ("198.51.100.1", 1, "198.51.100.1"),
        ("6.6.6.6, 198.51.100.1", 1, "198.51.100.1"),
        ("6.6.6.6, 198.51.100.1, 10.0.0.2", 2, "198.51.100.1"),
        ("198.51.100.1", 2, "10.0.0.1"),  # fewer hops than proxies: not trusted
        ("not-an-address", 1, "10.0.0.1"),
        ("", 1, "10.0.0.1"),
    ],
)
def test_the_client_address_comes_from_x_forwarded_for_only_through_trusted_proxies(
    header, proxies, expected
):
    meta = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": header}
    assert forwarded_client_address(meta, proxies) == expected


# -- 40 parallel guesses against a live server ---------------------------------------------------


class Browserless:
    """A urllib client with its own cookies and the sign-in page's CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), NoRedirect)
        page = self.opener.open(base + reverse("login"), timeout=30).read().decode()
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def sign_in(self, username: str, password: str) -> tuple[int, bytes]:
        data = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": self.token}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the live server's http:// URL
            self.base + reverse("login"), data=data, headers={"Referer": self.base}
        )
        try:
            response = self.opener.open(request, timeout=60)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        return response.status, response.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def parallel(clients: list[Browserless], username: str, passwords: list[str]) -> list[tuple[int, bytes]]:
    """Send one sign-in per client at the same moment and return the answers in order."""
    results: list = [None] * len(passwords)
    barrier = threading.Barrier(len(passwords))

    def run(index: int) -> None:
        barrier.wait()
        if passwords[index] == PERSONA_PASSWORD:
            time.sleep(0.05)  # the right guess arrives among the last, as an attacker's would
        results[index] = clients[index].sign_in(username, passwords[index])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(passwords))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


@pytest.mark.django_db(transaction=True)
def test_forty_parallel_guesses_after_four_failures_check_one_password_and_the_right_one_stays_out(
    live_server,
):
    make_persona("carol")
    # Django's live server listens with a backlog of 5: let 40 connections wait instead of being reset.
    live_server.thread.httpd.socket.listen(64)
    first = Browserless(live_server.url)
    for _ in range(settings.SIGNIN_FAILURE_LIMIT - 1):
        assert first.sign_in("carol", "wrong password")[0] == 200
    clients = [Browserless(live_server.url) for _ in range(40)]
    passwords = [f"guess {number}" for number in range(39)] + [PERSONA_PASSWORD]
    results = parallel(clients, "carol", passwords)
    signed_in = [index for index, (status, _) in enumerate(results) if status == 302]
    refused = [index for index, (_, body) in enumerate(results) if LOCKED in body]
    checked = AuditEvent.objects.filter(event=AuditEvent.SIGNIN_FAILED, actor_name="carol").count()
    # Exactly one of the 40 reached the password check (the fifth attempt); 39 were refused unchecked.
    assert checked - (settings.SIGNIN_FAILURE_LIMIT - 1) + len(signed_in) == 1
    assert len(refused) == 39
    assert signed_in == []
    assert LOCKED in first.sign_in("carol", PERSONA_PASSWORD)[1]


@pytest.mark.django_db(transaction=True)
def test_parallel_made_up_names_from_one_address_do_not_lock_out_the_real_user_there(live_server):
    make_persona("carol")
    clients = [Browserless(live_server.url) for _ in range(5)]
    results = [None] * 5

    def guess(index):
        results[index] = clients[index].sign_in(f"madeup{index}", "wrong password")

    threads = [threading.Thread(target=guess, args=(index,)) for index in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(status == 200 for status, _ in results)
    assert Browserless(live_server.url).sign_in("carol", PERSONA_PASSWORD)[0] == 302


# -- Sessions ------------------------------------------------------------------------------------


def test_the_session_key_changes_at_sign_in(client, carol):
    client.get(reverse("login"))
    client.session.save()
    before = client.session.session_key
    sign_in(client, "carol", PERSONA_PASSWORD)
    assert client.session.session_key != before


def test_an_idle_session_ends_after_the_idle_timeout(client, carol):
    with time_machine.travel(dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC), tick=False) as clock:
        sign_in(client, "carol", PERSONA_PASSWORD)
        clock.shift(settings.SESSION_IDLE_MINUTES * 60 - 5)
        assert client.get(reverse("records:dashboard")).status_code == 200
        clock.shift(settings.SESSION_IDLE_MINUTES * 60 - 5)  # active just before: still in
        assert client.get(reverse("records:dashboard")).status_code == 200
        clock.shift(settings.SESSION_IDLE_MINUTES * 60 + 5)
        response = client.get(reverse("records:dashboard"))
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
        assert "_auth_user_id" not in client.session


def test_a_busy_session_still_ends_after_the_absolute_lifetime(client, carol):
    with time_machine.travel(dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC), tick=False) as clock:
        sign_in(client, "carol", PERSONA_PASSWORD)
        for _ in range(settings.SESSION_ABSOLUTE_HOURS * 3):
            clock.shift(20 * 60)
            assert client.get(reverse("records:dashboard")).status_code == 200
        clock.shift(20 * 60)
        assert client.get(reverse("records:dashboard")).status_code == 302


def test_sign_out_everywhere_ends_every_session_of_that_person_only(client, carol, bob):
    from django.test import Client

    other_device, bobs = Client(), Client()
    other_device.force_login(carol)
    bobs.force_login(bob)
    client.force_login(carol)
    assert client.post(reverse("accounts:sign-out-everywhere")).status_code == 302
    assert other_device.get(reverse("records:dashboard")).status_code == 302
    assert bobs.get(reverse("records:dashboard")).status_code == 200
    assert sessions.sign_out_everywhere(carol) == 0
    assert Session.objects.count() >= 1


# -- Sign-in audit -------------------------------------------------------------------------------


def test_sign_in_events_carry_the_user_name_address_and_user_agent_and_never_the_password(client, carol):
    agent = "Mozilla/5.0 (pamrotate test) " + "x" * 500
    sign_in(client, "carol", "wrong password", HTTP_USER_AGENT=agent)
    sign_in(client, "carol", PERSONA_PASSWORD, HTTP_USER_AGENT=agent)
    client.post(reverse("logout"), REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT=agent)
    events = list(AuditEvent.objects.filter(category="login").order_by("id"))
    assert [event.event for event in events] == [
        AuditEvent.SIGNIN_FAILED,
        AuditEvent.SIGNIN_OK,
        AuditEvent.SIGNED_OUT,
    ]
    for event in events:
        assert event.actor_name == "carol" and event.remote_address == "192.0.2.10"
        assert "Mozilla/5.0 (pamrotate test)" in event.message and len(event.message) < 400
        assert "wrong password" not in event.message and PERSONA_PASSWORD not in event.message


def test_every_sign_in_event_appears_in_the_audit_csv_export_and_filters(client, alice, carol, bob):
    from accounts.models import RecoveryCodeDevice, TOTPDevice
    from tests.test_mfa import current_code, enrol

    fail(client, "carol", settings.SIGNIN_FAILURE_LIMIT)  # failures, then a lock-out
    sign_in(client, "carol", PERSONA_PASSWORD)  # refused while locked
    sign_in(client, "bob", PERSONA_PASSWORD)
    device, codes = enrol(client, bob)  # MFA enrolled
    client.post(reverse("logout"))
    sign_in(client, "bob", PERSONA_PASSWORD)
    client.post(
        reverse("accounts:mfa-verify"), {"code": "000000" if current_code(device) != "000000" else "111111"}
    )
    client.post(reverse("accounts:mfa-verify"), {"code": codes[0]})  # recovery code used
    client.post(reverse("logout"))
    client.force_login(alice)
    client.post(reverse("accounts:person-change", args=[carol.pk]), {f"p{carol.pk}-role": "Operators",
                                                                      f"p{carol.pk}-is_active": "on"})  # fmt: skip
    client.post(reverse("accounts:person-reset-mfa", args=[bob.pk]))
    assert (
        not TOTPDevice.objects.filter(user=bob).exists()
        and not RecoveryCodeDevice.objects.filter(user=bob).exists()
    )
    export = client.get(reverse("rotation:audit-log"), {"format": "csv"})
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    exported = {row["audit_event"] for row in rows}
    wanted = {
        AuditEvent.SIGNIN_OK, AuditEvent.SIGNIN_FAILED, AuditEvent.SIGNIN_LOCKED_OUT, AuditEvent.SIGNED_OUT,
        AuditEvent.MFA_ENROLLED, AuditEvent.MFA_FAILED, AuditEvent.RECOVERY_CODE_USED,
        AuditEvent.MFA_DEVICE_RESET, AuditEvent.ROLE_CHANGED,
    }  # fmt: skip
    assert wanted <= exported
    # (alice's own sign-in was the test client's force_login, which has no client address)
    forced = (AuditEvent.SIGNIN_OK, "alice")
    assert all(row["remote_address"] for row in rows
               if row["audit_event"] in wanted and (row["audit_event"], row["username"]) != forced)  # fmt: skip
    page = client.get(reverse("rotation:audit-log")).content.decode()
    for event in wanted:
        assert f'value="{event}"' in page and AuditEvent.LABELS[event] in page
    only_locked = client.get(
        reverse("rotation:audit-log"), {"format": "csv", "event": AuditEvent.SIGNIN_LOCKED_OUT}
    )
    locked_rows = list(
        csv.DictReader(io.StringIO(b"".join(only_locked.streaming_content).decode("utf-8-sig")))
    )
    assert locked_rows and {row["audit_event"] for row in locked_rows} == {AuditEvent.SIGNIN_LOCKED_OUT}


# -- The same race on PostgreSQL, through gunicorn -----------------------------------------------


def make_carol_for_postgres() -> dict:
    """Create the carol persona in the current database (run in a child process by tests.pgserver.call)."""
    make_persona("carol")
    return {}


@pytest.fixture
def gunicorn_on_postgres(pg_app, tmp_path):  # noqa: F811 - the fixture imported above
    env = pg_app.env(PAMROTATE_ALLOWED_HOSTS="127.0.0.1")
    manage(["collectstatic", "--noinput", "--verbosity", "0"], env)
    call("tests.test_signin:make_carol_for_postgres", env)
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "pamrotate.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", "2", "--threads", "20", "--backlog", "128"],
        cwd=Path(__file__).resolve().parents[1], env=env, stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return urllib.request.urlopen(base + reverse("login"), timeout=2).status == 200  # noqa: S310
        except OSError:
            return False

    try:
        wait_for(
            ready, 30, message=f"gunicorn did not answer: {(tmp_path / 'gunicorn.log').read_text()[-2000:]}"
        )
        yield base
    finally:
        stop_process(process)
        log.close()


def test_forty_parallel_guesses_on_postgresql_check_one_password(pg_app, gunicorn_on_postgres):  # noqa: F811
    base = gunicorn_on_postgres
    first = Browserless(base)
    for _ in range(settings.SIGNIN_FAILURE_LIMIT - 1):
        assert first.sign_in("carol", "wrong password")[0] == 200
    clients = [Browserless(base) for _ in range(40)]
    passwords = [f"guess {number}" for number in range(39)] + [PERSONA_PASSWORD]
    results = parallel(clients, "carol", passwords)
    signed_in = [index for index, (status, _) in enumerate(results) if status == 302]
    refused = [index for index, (_, body) in enumerate(results) if LOCKED in body]
    checked = pg_app.scalar(
        "SELECT count(*) FROM rotation_auditevent WHERE event = %s AND actor_name = 'carol'",
        [AuditEvent.SIGNIN_FAILED],
    )
    assert checked - (settings.SIGNIN_FAILURE_LIMIT - 1) + len(signed_in) == 1
    assert len(refused) == 39 and signed_in == []
    assert LOCKED in first.sign_in("carol", PERSONA_PASSWORD)[1]
