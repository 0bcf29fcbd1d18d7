"""An account's rotation history, its live status, bulk rotation, and the dashboard picture."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from records.models import RotationStatus
from rotation import status
from rotation.models import AttemptState, ErrorClass, Heartbeat, PasswordVersion, RotationAttempt, Trigger
from tests.conftest import PERSONA_PASSWORD, make_configuration, make_directory, make_user
from tests.test_rotation import make_env


def login(client, user):
    assert client.login(username=user.username, password=PERSONA_PASSWORD)
    return client


@pytest.fixture
def account(db):
    """An account with a success, a failure, a retry still queued and two earlier passwords."""
    configuration = make_configuration(title="History")
    user = make_user(configuration, title="svc-history", password="Current-Secret-1")
    now = timezone.now()
    RotationAttempt.objects.create(
        user=user,
        state=AttemptState.SUCCEEDED,
        trigger=Trigger.ON_DEMAND,
        requested_by_name="bob",
        started_at=now - dt.timedelta(hours=2, seconds=3),
        finished_at=now - dt.timedelta(hours=2),
    )
    RotationAttempt.objects.create(
        user=user,
        state=AttemptState.FAILED,
        trigger=Trigger.SCHEDULED,
        started_at=now - dt.timedelta(hours=1),
        finished_at=now - dt.timedelta(hours=1) + dt.timedelta(milliseconds=250),
        error_class=ErrorClass.REJECTED,
        error_code=19,
        error_message="The directory refused the new password: it fails the password policy.",
    )
    RotationAttempt.objects.create(user=user, state=AttemptState.QUEUED, trigger=Trigger.RETRY, try_number=2)
    for days in (30, 60):
        version = PasswordVersion(user=user, replaced_at=now - dt.timedelta(days=days))
        version.password_encrypted = user.password_encrypted
        version.save()
    return user


def test_the_history_shows_every_attempt_with_its_reason(client, carol, account):
    response = login(client, carol).get(reverse("rotation:user-history", args=[account.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    for text in ("On demand", "Scheduled", "Retry", "(try 2)", "bob", "scheduler", "3.00 s", "0.25 s",
                 "Rejected by the directory", "fails the password policy", "(LDAP 19)"):  # fmt: skip
        assert text in body, text
    assert body.count('class="list-group-item small d-flex') == 2  # two earlier passwords, dates only
    assert "Current-Secret-1" not in body
    assert "reveal-version" not in body  # a viewer may not reveal old versions


def test_administrators_get_a_reveal_button_per_version_and_it_is_audited(client, alice, account):
    login(client, alice)
    page = client.get(reverse("rotation:user-history", args=[account.pk])).content.decode()
    assert page.count("reveal-version") == 2
    version = account.password_versions.first()
    response = client.post(reverse("rotation:reveal-password", args=[account.pk]), {"version": version.pk})
    assert response.status_code == 200 and b"Current-Secret-1" in response.content
    log = client.get(reverse("rotation:audit-log"), {"account": account.pk, "event": "password_revealed"})
    assert len(log.context["page"].events) == 1


def test_operators_cannot_reveal_old_versions(client, bob, account):
    login(client, bob)
    page = client.get(reverse("records:user-detail", args=[account.pk])).content.decode()
    assert "reveal-version" not in page
    version = account.password_versions.first()
    response = client.post(reverse("rotation:reveal-password", args=[account.pk]), {"version": version.pk})
    assert response.status_code == 403


def test_the_user_page_links_the_full_history_and_offers_reveal_to_admins(client, alice, account):
    page = login(client, alice).get(reverse("records:user-detail", args=[account.pk])).content.decode()
    assert reverse("rotation:user-history", args=[account.pk]) in page
    assert page.count("reveal-version") == 2
    assert 'id="active-attempt"' in page and "js/user_status.js" in page  # a retry is queued


def test_the_history_paginates(client, carol, account):
    RotationAttempt.objects.bulk_create(
        [RotationAttempt(user=account, state=AttemptState.SUCCEEDED) for _ in range(30)]
    )
    login(client, carol)
    url = reverse("rotation:user-history", args=[account.pk])
    first = client.get(url)
    assert len(first.context["page"].object_list) == 25
    assert len(client.get(url, {"page": "2"}).context["page"].object_list) == 8
    assert client.get(url, {"page": "nonsense"}).status_code == 200


def test_strangers_see_no_history(client, dave, account):
    login(client, dave)
    assert client.get(reverse("rotation:user-history", args=[account.pk])).status_code == 403
    assert client.get(reverse("rotation:user-status", args=[account.pk])).status_code == 403


def test_the_status_json_names_the_active_attempt(client, carol, account):
    data = login(client, carol).get(reverse("rotation:user-status", args=[account.pk])).json()
    active = account.attempts.get(state=AttemptState.QUEUED)
    assert data["active_attempt"] == {"id": active.pk, "state": "queued"}
    assert data["rotation_status"] == RotationStatus.NEVER
    assert set(data) >= {"last_rotated_at", "next_rotation_at"}


def test_a_quiet_account_page_does_not_poll(client, carol, db):
    user = make_user(title="quiet")
    page = login(client, carol).get(reverse("records:user-detail", args=[user.pk])).content.decode()
    assert "js/user_status.js" not in page


# -- Dashboard -----------------------------------------------------------------------------------


def test_rotations_per_day_is_one_aggregate_query(db, account):
    RotationAttempt.objects.filter(state=AttemptState.FAILED).update(
        created_at=timezone.now() - dt.timedelta(days=3)
    )
    old = RotationAttempt.objects.create(user=account, state=AttemptState.SUCCEEDED)
    RotationAttempt.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=45))
    with CaptureQueriesContext(connection) as queries:
        chart = status.rotations_per_day(30)
    assert len(queries) == 1
    assert len(chart) == 30 and chart[-1].day == timezone.localdate()
    assert chart[-1].ok == 1 and chart[-1].failed == 0
    assert chart[-4].failed == 1
    assert sum(day.ok for day in chart) == 1  # the 45-day-old one is outside


def test_the_dashboard_draws_the_chart_lists_problems_and_warns_without_heartbeats(client, carol, db):
    configuration = make_configuration(title="Dash")
    failed = make_user(configuration, title="svc-failed", rotation_status=RotationStatus.FAILED,
                       rotation_error="The directory refused the new password.")  # fmt: skip
    overdue = make_user(configuration, title="svc-late")
    overdue.next_rotation_at = timezone.now() - dt.timedelta(hours=3)
    overdue.save(update_fields=["next_rotation_at"])
    RotationAttempt.objects.create(user=failed, state=AttemptState.FAILED)
    RotationAttempt.objects.create(user=overdue, state=AttemptState.SUCCEEDED)
    body = login(client, carol).get(reverse("records:dashboard")).content.decode()
    assert "<svg" in body and 'class="chart-ok"' in body and 'class="chart-fail"' in body
    assert " style=" not in body  # the CSP forbids inline styles
    assert 'id="heartbeat-warning"' in body
    assert failed.get_absolute_url() in body and overdue.get_absolute_url() in body
    assert "refused the new password" in body
    assert 'name="user"' not in body  # a viewer gets no bulk rotate checkboxes


def test_fresh_heartbeats_remove_the_warning(client, bob, db):
    Heartbeat.beat("worker:default")
    Heartbeat.beat("scheduler")
    body = login(client, bob).get(reverse("records:dashboard")).content.decode()
    assert 'id="heartbeat-warning"' not in body
    Heartbeat.objects.filter(name="scheduler").update(seen_at=timezone.now() - dt.timedelta(minutes=3))
    body = client.get(reverse("records:dashboard")).content.decode()
    assert "No scheduler was seen" in body and "rotation worker" not in body


# -- Bulk rotation ---------------------------------------------------------------------------------


@pytest.fixture
def env(db, slapd, unique_name):
    return make_env(slapd, unique_name)


def test_bulk_rotate_runs_each_account_and_shows_progress(
    client, bob, env, unique_name, django_capture_on_commit_callbacks
):
    users = [env.account(unique_name("bulk")) for _ in range(3)]
    login(client, bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rotation:bulk-rotate"), {"user": [str(user.pk) for user in users]})
    assert response.status_code == 302
    page = client.get(response.url)
    assert page.status_code == 200 and b'id="bulk-progress-bar"' in page.content
    status = client.get(response.url + "status.json").json()
    assert status["total"] == 3 and status["succeeded"] == 3, status
    assert status["done"] is True and status["percent"] == 100
    for user in users:
        user.refresh_from_db()
        assert env.server.can_bind(user.distinguished_name, user.get_password())


def test_bulk_rotate_by_directory_takes_only_its_rotating_accounts(
    client, bob, env, unique_name, django_capture_on_commit_callbacks
):
    on = env.account(unique_name("on"))
    env.account(unique_name("off"), rotation_enabled=False)
    login(client, bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rotation:bulk-rotate"), {"directory": env.directory.pk})
    status = client.get(response.url + "status.json").json()
    assert status["total"] == 1 and status["succeeded"] == 1
    assert RotationAttempt.objects.get().user == on


def test_bulk_rotate_needs_the_rotate_right_and_a_known_run(client, carol, bob, db):
    user = make_user(title="bulk-denied")
    login(client, carol)
    assert client.post(reverse("rotation:bulk-rotate"), {"user": [user.pk]}).status_code == 403
    client.logout()
    login(client, bob)
    assert client.get(reverse("rotation:bulk-status", args=["unknown"])).status_code == 404
    response = client.post(reverse("rotation:bulk-rotate"), {"user": ["x"]})
    assert response.status_code == 302 and response.url == reverse("records:user-list")


def test_the_directory_page_offers_bulk_rotation_to_operators(client, bob, carol, db):
    directory = make_directory(title="Bulk dir")
    assert b'id="rotate-directory"' in login(client, bob).get(directory.get_absolute_url()).content
    client.logout()
    assert b'id="rotate-directory"' not in login(client, carol).get(directory.get_absolute_url()).content
