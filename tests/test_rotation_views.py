"""Rotate now, the attempt page, Reveal password and Test connection through the web."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from rotation.models import AttemptState, RotationAttempt
from tests.conftest import PERSONA_PASSWORD
from tests.test_rotation import STRONG, make_env


@pytest.fixture
def env(db, slapd, unique_name):
    return make_env(slapd, unique_name)


def login(client, user):
    assert client.login(username=user.username, password=PERSONA_PASSWORD)
    return client


def test_rotate_now_queues_after_commit_and_lands_on_the_attempt_page(
    client, bob, env, unique_name, django_capture_on_commit_callbacks
):
    user = env.account(unique_name("web"))
    login(client, bob)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(reverse("rotation:rotate-now", args=[user.pk]))
    assert len(callbacks) == 1  # enqueued only once the request's transaction committed
    attempt = RotationAttempt.objects.get(user=user)
    assert response.status_code == 302 and response.url == attempt.get_absolute_url()
    page = client.get(response.url)
    assert page.status_code == 200
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    assert b"Succeeded" in page.content
    status = client.get(reverse("rotation:attempt-status", args=[attempt.pk])).json()
    assert status == {
        "id": attempt.pk,
        "state": "succeeded",
        "state_display": "Succeeded",
        "finished": True,
        "error_class": "",
        "error_message": "",
        "waiting": "",  # no stalled gateway to name: the attempt is finished
    }
    user.refresh_from_db()
    assert user.get_password().encode() not in page.content
    assert env.server.can_bind(user.distinguished_name, user.get_password())


def test_rotate_now_is_refused_with_the_reason_when_rotation_is_off(client, bob, env, unique_name):
    user = env.account(unique_name("off"), rotation_enabled=False)
    login(client, bob)
    response = client.post(reverse("rotation:rotate-now", args=[user.pk]), follow=True)
    assert b"Rotation is turned off for this account" in response.content
    assert RotationAttempt.objects.get(user=user).state == AttemptState.REFUSED


def test_a_failed_rotation_shows_its_plain_language_reason(
    client, bob, env, unique_name, django_capture_on_commit_callbacks
):
    user = env.account(unique_name("weak"), complexity="6,1,1,1,1")
    login(client, bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rotation:rotate-now", args=[user.pk]))
    page = client.get(response.url)
    assert b"Failed" in page.content
    assert b"refused the new password" in page.content


@pytest.mark.parametrize("persona, status", [("carol", 403), ("dave", 403)])
def test_viewers_and_strangers_cannot_rotate_reveal_or_test(
    client, personas, env, unique_name, persona, status
):
    user = env.account(unique_name("deny"))
    login(client, personas[persona])
    assert client.post(reverse("rotation:rotate-now", args=[user.pk])).status_code == status
    assert client.post(reverse("rotation:reveal-password", args=[user.pk])).status_code == status
    assert client.post(reverse("rotation:test-connection", args=[env.directory.pk])).status_code == status
    assert not RotationAttempt.objects.filter(user=user).exists()
    assert not AuditEvent.objects.filter(event=AuditEvent.PASSWORD_REVEALED).exists()


def test_anonymous_users_are_sent_to_the_login_page(client, env, unique_name):
    user = env.account(unique_name("anon"))
    response = client.post(reverse("rotation:rotate-now", args=[user.pk]))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_state_changing_rotation_urls_need_post(client, bob, env, unique_name):
    user = env.account(unique_name("get"))
    login(client, bob)
    assert client.get(reverse("rotation:rotate-now", args=[user.pk])).status_code == 405
    assert client.get(reverse("rotation:reveal-password", args=[user.pk])).status_code == 405


def test_reveal_shows_the_password_once_and_audits_who_saw_it(client, bob, env, unique_name):
    user = env.account(unique_name("rev"))
    login(client, bob)
    response = client.post(reverse("rotation:reveal-password", args=[user.pk]), REMOTE_ADDR="127.0.0.9")
    assert response.status_code == 200
    assert STRONG.encode() in response.content
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get(event=AuditEvent.PASSWORD_REVEALED)
    assert event.actor == bob and event.record_id == user.pk and event.remote_address == "127.0.0.9"
    assert STRONG not in event.message
    # The account page itself never shows it.
    assert STRONG.encode() not in client.get(user.get_absolute_url()).content


def test_earlier_versions_can_be_revealed_by_administrators_only(client, alice, bob, env, unique_name):
    from rotation import services

    user = env.account(unique_name("ver"))
    services.run_attempt(services.request_rotation(user, enqueue=False).pk)
    version = user.password_versions.get()
    login(client, bob)
    url = reverse("rotation:reveal-password", args=[user.pk])
    assert client.post(url, {"version": version.pk}).status_code == 403
    login(client, alice)
    response = client.post(url, {"version": version.pk})
    assert response.status_code == 200 and STRONG.encode() in response.content


def test_test_connection_reports_each_step(client, bob, env):
    login(client, bob)
    response = client.post(reverse("rotation:test-connection", args=[env.directory.pk]))
    assert response.status_code == 200
    assert b"Connection OK" in response.content
    assert response.content.count(b">OK<") == 3
    event = AuditEvent.objects.get(event="connection_test")
    assert event.outcome == "ok"


def test_test_connection_explains_a_wrong_admin_password(client, bob, env):
    admin = env.directory.administrative_credential
    admin.set_password("Wrong-Password-1!")
    admin.save()
    login(client, bob)
    response = client.post(reverse("rotation:test-connection", args=[env.directory.pk]))
    assert b"The connection test failed" in response.content
    assert b"administrative credential" in response.content
    assert b"Wrong-Password-1!" not in response.content


def test_an_unknown_attempt_or_user_is_a_404(client, bob, db):
    login(client, bob)
    assert client.get(reverse("rotation:attempt-detail", args=[999999])).status_code == 404
    assert client.post(reverse("rotation:rotate-now", args=[999999])).status_code == 404
