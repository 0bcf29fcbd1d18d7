"""Alert webhooks to a receiver on loopback: signatures that standardwebhooks verifies, retries, the failing mark."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from audit.actors import Actor
from audit.events import record_event
from audit.models import AuditEvent
from ops import webhooks
from ops.models import (
    FAILING_AFTER,
    DeliveryState,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_signing_secret,
)
from tests.conftest import database_text, examples


class Receiver:
    """An HTTP server on 127.0.0.1 that answers with the next queued status and keeps what it got."""

    def __init__(self):
        self.statuses: list[int] = []
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, data))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _fail(title: str = "svc-web") -> AuditEvent:
    return record_event(
        AuditEvent.ROTATION_SCHEDULED_FAIL,
        actor=Actor.system("scheduler"),
        outcome="fail",
        category="rotation",
        message=f"Attempt #7 failed: the directory refused the change for {title}",
    )


def test_a_failure_reaches_the_receiver_signed_so_that_standardwebhooks_verifies_it(
    transactional_db, receiver
):
    endpoint, secret = webhooks.create_endpoint("sec", receiver.url, ["failure", "drift"], "standard")
    webhooks.fan_out()  # the cursor starts at the end of the log: old events raise no alert
    event = _fail()
    assert webhooks.fan_out() == 1
    headers, body = receiver.received[-1]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "pamrotate.rotation.failed"
    assert payload["data"]["audit_event_id"] == event.pk and "refused" in payload["data"]["message"]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_signing_secret()).verify(body, headers)
    assert secret.encode() not in body and b"whsec_" not in body
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED
    assert secret not in database_text()  # stored encrypted, as is the URL with its token
    assert "token=abc" not in database_text()


def test_events_the_endpoint_did_not_ask_for_send_nothing(transactional_db, receiver):
    webhooks.create_endpoint("drift-only", receiver.url, ["drift"], "standard")
    webhooks.fan_out()
    _fail()
    record_event(AuditEvent.SIGNIN_OK, actor=Actor.system("alice"), outcome="ok")
    assert webhooks.fan_out() == 0 and not receiver.received


def test_a_500_is_retried_with_backoff_until_it_gets_through(transactional_db, receiver, monkeypatch):
    monkeypatch.setenv("PAMROTATE_WEBHOOK_RETRY_SECONDS", "10")
    endpoint, secret = webhooks.create_endpoint("flaky", receiver.url, ["failure"], "standard")
    webhooks.fan_out()
    receiver.statuses = [500, 503]
    _fail()
    webhooks.fan_out()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.tries == 1 and delivery.last_status == 500
    first_wait = delivery.retry_at - timezone.now()
    assert dt.timedelta(seconds=8) < first_wait <= dt.timedelta(seconds=10)
    assert webhooks.release_retries(timezone.now()) == 0  # not yet
    webhooks.release_retries(delivery.retry_at)
    delivery.refresh_from_db()
    assert delivery.tries == 2 and delivery.last_status == 503
    assert delivery.retry_at - timezone.now() > dt.timedelta(seconds=18)  # doubled
    webhooks.release_retries(delivery.retry_at)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED and delivery.tries == 3
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(receiver.received) == 3 and ids == {delivery.message_id}  # one id: receivers deduplicate
    for headers, body in receiver.received:
        Webhook(secret).verify(body, headers)


def test_an_endpoint_that_keeps_failing_is_marked_shown_and_not_retried_forever(
    transactional_db, receiver, alice, client
):
    endpoint, _ = webhooks.create_endpoint("down", receiver.url, ["failure"], "slack")
    webhooks.fan_out()
    receiver.statuses = [500] * 100
    for _ in range(FAILING_AFTER):
        _fail()
    webhooks.fan_out()
    for _ in range(10):
        webhooks.release_retries(timezone.now() + dt.timedelta(days=1))
    endpoint.refresh_from_db()
    assert endpoint.is_failing
    assert not WebhookDelivery.objects.filter(state=DeliveryState.PENDING).exists()
    tries = len(receiver.received)
    _fail()
    webhooks.fan_out()
    assert len(receiver.received) == tries  # nothing more goes to a failing endpoint
    client.force_login(alice)
    page = client.get(reverse("ops:webhook-detail", args=[endpoint.pk])).content.decode()
    assert "Marked failing" in page
    assert "failing since" in client.get(reverse("ops:webhook-list")).content.decode()
    receiver.statuses = []
    client.post(reverse("ops:webhook-resume", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert not endpoint.is_failing


def test_slack_and_teams_get_their_own_shapes_with_no_secret(transactional_db, receiver):
    slack, _ = webhooks.create_endpoint("slack", receiver.url, ["failure"], "slack")
    teams, _ = webhooks.create_endpoint("teams", receiver.url, ["failure"], "teams")
    webhooks.fan_out()
    _fail("svc-mail")
    webhooks.fan_out()
    bodies = [json.loads(body) for _, body in receiver.received]
    slack_body = next(body for body in bodies if "text" in body)
    teams_body = next(body for body in bodies if body.get("type") == "message")
    assert "svc-mail" in slack_body["text"]
    card = teams_body["attachments"][0]
    assert (
        card["contentType"] == "application/vnd.microsoft.card.adaptive"
        and card["content"]["type"] == "AdaptiveCard"
    )
    for headers, _ in receiver.received:
        assert "webhook-signature" not in headers


def test_the_command_line_adds_lists_tests_and_removes(transactional_db, receiver, capsys):
    call_command(
        "pam_webhook",
        "add",
        receiver.url,
        "--events",
        "failure,upcoming",
        "--format",
        "standard",
        "--name",
        "cli",
    )
    out = capsys.readouterr().out
    secret = out.split("shown once): ")[1].strip()
    assert secret.startswith("whsec_")
    call_command("pam_webhook", "list")
    listed = capsys.readouterr().out
    assert "cli\t127.0.0.1\tstandard\tfailure,upcoming\tactive" in listed and secret not in listed
    call_command("pam_webhook", "test", "cli")
    assert "delivered" in capsys.readouterr().out
    headers, body = receiver.received[-1]
    assert Webhook(secret).verify(body, headers)["type"] == "pamrotate.test"
    with pytest.raises(CommandError, match="comma-separated"):
        call_command("pam_webhook", "add", receiver.url, "--events", "everything")
    call_command("pam_webhook", "remove", "cli")
    assert not WebhookEndpoint.objects.exists()
    assert _alert_events() == [(AuditEvent.WEBHOOK_ADDED, "system"), (AuditEvent.WEBHOOK_REMOVED, "system")]
    with pytest.raises(CommandError, match="no webhook endpoint"):
        call_command("pam_webhook", "test", "cli")


def test_production_takes_https_to_public_or_listed_hosts_only(db, settings, monkeypatch):
    settings.MODE = "production"
    from django.core.exceptions import ValidationError

    for url in ("http://hooks.example.com/x", "https://127.0.0.1/x", "https://localhost/x", "ftp://x/y"):
        with pytest.raises(ValidationError):
            webhooks.check_url(url)
    monkeypatch.setenv("PAMROTATE_WEBHOOK_ALLOWED_HOSTS", ".example.com")
    assert webhooks.check_url("https://hooks.example.com/x")
    with pytest.raises(ValidationError, match="ALLOWED_HOSTS"):
        webhooks.check_url("https://hooks.example.org/x")


def test_only_administrators_see_or_add_endpoints(db, bob, carol, dave, client):
    for persona in (bob, carol, dave):
        client.force_login(persona)
        assert client.get(reverse("ops:webhook-list")).status_code == 403
        assert client.post(reverse("ops:webhook-create"), {"name": "x"}).status_code == 403


def test_an_administrator_adds_an_endpoint_and_sees_its_secret_once(
    transactional_db, alice, client, receiver
):
    client.force_login(alice)
    response = client.post(
        reverse("ops:webhook-create"),
        {"name": "ui", "url": receiver.url, "events": ["failure"], "format": "teams"},
    )
    assert response.status_code == 200 and b"whsec_" in response.content
    endpoint = WebhookEndpoint.objects.get(name="ui")
    detail = client.get(reverse("ops:webhook-detail", args=[endpoint.pk])).content.decode()
    assert "whsec_" not in detail and "token=abc" not in detail
    client.post(reverse("ops:webhook-resume", args=[endpoint.pk]))
    client.post(reverse("ops:webhook-delete", args=[endpoint.pk]))
    assert _alert_events() == [
        (AuditEvent.WEBHOOK_ADDED, "alice"),
        (AuditEvent.WEBHOOK_RESUMED, "alice"),
        (AuditEvent.WEBHOOK_REMOVED, "alice"),
    ]
    assert not AuditEvent.objects.filter(event=AuditEvent.RECORD_UPDATED).exists()


def _alert_events() -> list[tuple[str, str]]:
    """Return the alert-settings events, oldest first, with who: a person, or "system" (a command)."""
    rows = AuditEvent.objects.filter(record_type="webhookendpoint", category="security").order_by("pk")
    return [(row.event, row.actor.username if row.actor else "system") for row in rows]


@settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(max_size=80),
    url=st.text(max_size=300),
    events=st.lists(st.text(max_size=20), max_size=4),
    body_format=st.text(max_size=20),
)
def test_no_form_input_gives_a_server_error(db, alice, client, name, url, events, body_format):
    client.force_login(alice)
    data = {
        "name": name.replace("\x00", ""),
        "url": url.replace("\x00", ""),
        "events": events,
        "format": body_format,
    }
    response = client.post(reverse("ops:webhook-create"), data)
    assert response.status_code in (200, 302)


@settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(url=st.text(max_size=200), events=st.text(max_size=60), name=st.text(max_size=80))
def test_no_command_line_input_gives_anything_but_a_command_error(db, url, events, name):
    for args in (
        ["add", url or "x", "--events", events or "x", "--name", name or "n"],
        ["test", name or "n"],
        ["remove", name or "n"],
    ):
        try:
            call_command(
                "pam_webhook", *[arg.replace("\x00", "") for arg in args], stdout=open("/dev/null", "w")
            )  # noqa: SIM115
        except CommandError:
            pass
    WebhookEndpoint.objects.all().delete()


def test_test_sends_and_upcoming_are_known_events():
    assert {"failure", "drift", "overdue", "upcoming", "checkout", "break_glass", "test"} == set(
        WebhookEvent.values
    )


def test_break_glass_and_check_out_events_reach_the_endpoints_that_asked(transactional_db, receiver):
    _, secret = webhooks.create_endpoint("access", receiver.url, ["break_glass"], "standard")
    webhooks.fan_out()
    record_event(
        AuditEvent.CHECKED_OUT,
        actor=Actor.system("bob"),
        outcome="ok",
        message="svc-db checked out for 30 minutes",
    )
    record_event(
        AuditEvent.BREAK_GLASS,
        actor=Actor.system("alice"),
        outcome="ok",
        message="BREAK-GLASS: svc-db, outage",
    )
    assert webhooks.fan_out() == 1
    payload = Webhook(secret).verify(receiver.received[0][1], receiver.received[0][0])
    assert payload["type"] == "pamrotate.account.break_glass" and payload["data"]["actor"] == "alice"


def test_overdue_and_upcoming_notices_reach_subscribed_endpoints_once(transactional_db, receiver):
    from ops import notices
    from records.models import PamUser
    from tests.conftest import make_configuration, make_user

    _, secret = webhooks.create_endpoint("ops", receiver.url, ["overdue", "upcoming"], "standard")
    configuration = make_configuration(title="Noticed", notice_hours=3)
    soon, late = (
        make_user(configuration, title=title, rotation_type="scripts_only", rotation_enabled=True)
        for title in ("svc-soon", "svc-late")
    )
    now = timezone.now()
    PamUser.objects.filter(pk=soon.pk).update(next_rotation_at=now + dt.timedelta(hours=2))
    PamUser.objects.filter(pk=late.pk).update(next_rotation_at=now - dt.timedelta(hours=1))
    assert notices.send_due(now, force=True) == {"upcoming": 1, "overdue": 1}
    assert notices.send_due(now, force=True) == {"upcoming": 0, "overdue": 0}
    data = sorted((Webhook(secret).verify(body, headers) for headers, body in receiver.received), key=str)
    assert [item["type"] for item in data] == ["pamrotate.rotation.overdue", "pamrotate.rotation.upcoming"]
    assert (
        "svc-late is overdue" in data[0]["data"]["summary"]
        and "svc-soon in 2 hours" in data[1]["data"]["summary"]
    )
