"""What the rotation pages say: numbering, retries, gateways without workers, messages, badges, times."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import socket
from html import unescape

import pytest
from django.apps import apps as django_apps
from django.urls import reverse
from django.utils import timezone

from records.models import PamUser
from rotation import services, status
from rotation.models import AttemptState, RotationAttempt, Trigger
from tests.conftest import PERSONA_PASSWORD, make_configuration, make_directory, make_user


def login(client, user):
    assert client.login(username=user.username, password=PERSONA_PASSWORD)
    return client


def closed_port() -> int:
    """Return a local port nothing listens on (connection refused: a transient failure)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable(env) -> None:
    """Point the environment's directory at a port nothing listens on."""
    env.directory.port = closed_port()
    env.directory.save()


# -- 3. Attempts numbered per account ---------------------------------------------------------


def test_attempts_are_numbered_per_account_in_every_creation_path(ldap_env, unique_name):
    ghost = ldap_env.account(unique_name("ghost"))
    other = ldap_env.account(unique_name("other"))
    scheduled = ldap_env.account(unique_name("sched"))
    first_of_other = services.request_rotation(other, enqueue=False)
    unreachable(ldap_env)

    first = services.request_rotation(ghost, enqueue=False)
    busy = services.request_rotation(ghost, enqueue=False)
    services.run_attempt(first.pk)
    retry = RotationAttempt.objects.get(user=ghost, trigger=Trigger.RETRY)
    slot = timezone.now().replace(microsecond=0)
    (bulk,) = services.request_scheduled([(scheduled, slot)])

    assert (first_of_other.number, first.number, busy.number, retry.number) == (1, 1, 2, 3)
    assert first.pk > first_of_other.pk and retry.retry_of_id == first.pk
    assert RotationAttempt.objects.get(pk=bulk.pk).number == 1
    assert str(first) == f"Rotation #1 of {ghost}"


def test_the_attempt_page_names_the_accounts_number_and_keeps_the_global_id_in_the_address(
    client, carol, ldap_env, unique_name
):
    make_user(title="someone else").attempts.create()
    ghost = ldap_env.account(unique_name("ghost"))
    attempt = services.request_rotation(ghost, enqueue=False)
    assert attempt.pk > 1

    page = login(client, carol).get(f"/rotation/attempts/{attempt.pk}/")

    assert reverse("rotation:attempt-detail", args=[attempt.pk]) == f"/rotation/attempts/{attempt.pk}/"
    assert f"Rotation #1 of {ghost}" in page.content.decode()
    assert f"(id {attempt.pk})" in page.content.decode()  # the global id, not read as a try count (issue 25)


def test_the_migration_numbers_existing_attempts_in_creation_order(db):
    user, other = make_user(), make_user()
    attempts = [RotationAttempt.objects.create(user=owner) for owner in (user, other, user, user)]
    RotationAttempt.objects.update(number=None)
    migration = importlib.import_module("rotation.migrations.0004_attempt_number")

    migration.number_existing_attempts(django_apps, None)

    numbers = [RotationAttempt.objects.get(pk=attempt.pk).number for attempt in attempts]
    assert numbers == [1, 1, 2, 3]


# -- 4. Text: no doubled words, sentences, the real start, one badge per state ------------------


def rotate(user) -> RotationAttempt:
    attempt = services.request_rotation(user, enqueue=False)
    services.run_attempt(attempt.pk)
    attempt.refresh_from_db()
    return attempt


def test_a_directory_error_is_shown_as_one_sentence_with_its_ldap_code_once(
    client, carol, ldap_env, unique_name
):
    user = ldap_env.account(unique_name("gone"))
    ldap_env.server.delete(user.distinguished_name)
    attempt = rotate(user)
    assert attempt.error_code == 32
    login(client, carol)

    pages = [
        client.get(reverse("rotation:attempt-detail", args=[attempt.pk])).content.decode(),
        client.get(reverse("rotation:user-history", args=[user.pk])).content.decode(),
        client.get(user.get_absolute_url()).content.decode(),
    ]

    for page in pages:
        assert "LDAP result" not in page and "(LDAP 32) (LDAP" not in page
        assert "The account&#x27;s distinguished name was not found" in page
        assert "the account&#x27;s distinguished name" not in page
    assert pages[0].count("(LDAP 32)") == 1
    assert "<strong>Configuration or permission.</strong> The account" in pages[0]


def test_already_rotating_is_said_once(client, carol, ldap_env, unique_name):
    user = ldap_env.account(unique_name("busy"))
    services.request_rotation(user, enqueue=False)
    busy = services.request_rotation(user, enqueue=False)
    assert busy.state == AttemptState.REFUSED
    login(client, carol)

    for url in (reverse("rotation:user-history", args=[user.pk]), user.get_absolute_url()):
        page = client.get(url).content.decode()
        assert "Already rotating: Already rotating" not in page
        assert "Already rotating</span>: Rotation #1 (attempt #" in page


def test_the_started_column_shows_the_start_or_that_the_attempt_waits(client, carol, db):
    user = make_user(title="svc-started")
    queued_at = timezone.now() - dt.timedelta(hours=3)
    started = RotationAttempt.objects.create(user=user, state=AttemptState.SUCCEEDED)
    RotationAttempt.objects.filter(pk=started.pk).update(
        created_at=queued_at, started_at=queued_at + dt.timedelta(minutes=7)
    )
    RotationAttempt.objects.create(user=user)
    login(client, carol)

    for url in (user.get_absolute_url(), reverse("rotation:user-history", args=[user.pk])):
        page = client.get(url).content.decode()
        assert f"{queued_at + dt.timedelta(minutes=7):%Y-%m-%d %H:%M}" in page
        assert f"{queued_at:%Y-%m-%d %H:%M}" not in page
        assert "waiting since" in page


def test_one_state_has_one_badge_colour_everywhere(client, carol, db):
    from rotation.templatetags.rotation_tags import attempt_class

    user = make_user(title="svc-badge", rotation_status="succeeded")
    RotationAttempt.objects.create(user=user, state=AttemptState.SUCCEEDED)
    page = login(client, carol).get(user.get_absolute_url()).content.decode()

    assert 'class="badge text-bg-secondary" id="rotation-status"' not in page
    assert 'class="badge text-bg-success" id="rotation-status"' in page
    assert 'class="badge text-bg-success" data-status="succeeded"' in page
    for state in ("succeeded", "failed", "unknown", "running"):
        assert attempt_class(state) != "text-bg-secondary"
    assert attempt_class("succeeded") == attempt_class("reconciled")


# -- 2. Retries shown as retries, counted once ---------------------------------------------------


def test_a_failure_with_a_retry_queued_says_retrying_and_links_to_the_retry(
    client, alice, ldap_env, unique_name, monkeypatch
):
    user = ldap_env.account(unique_name("retry"))
    unreachable(ldap_env)
    first = rotate(user)
    retry = RotationAttempt.objects.get(retry_of=first)
    # The clock seam: pages count the wait from when the retry was queued, not from a busy wall clock.
    real_note, queued_at = status.retry_note, retry.retry_at - dt.timedelta(seconds=30)
    monkeypatch.setattr(status, "retry_note", lambda attempt, now=None: real_note(attempt, now or queued_at))
    login(client, alice)

    page = client.get(reverse("rotation:attempt-detail", args=[first.pk])).content.decode()
    state = client.get(reverse("rotation:attempt-status", args=[first.pk])).json()
    account = client.get(user.get_absolute_url()).content.decode()
    retry_page = client.get(retry.get_absolute_url()).content.decode()
    dashboard = client.get(reverse("records:dashboard")).content.decode()

    assert first.state == AttemptState.FAILED
    assert "Retrying in 30 s (try 2 of 3)" in page, page
    assert f'href="{retry.get_absolute_url()}" id="retry-link">rotation #2</a>' in page
    assert ">Retrying</span>" in page and 'data-finished="0"' in page
    assert state["finished"] is False and state["state_display"] == "Retrying"
    assert 'is <span id="active-retry">retrying in 30 s (try 2 of 3)' in account
    assert f'after <a href="{first.get_absolute_url()}">rotation #1</a> failed' in retry_page
    assert 'retrying">Retrying in 30 s (try 2 of 3)' in dashboard


def test_the_chart_counts_a_retried_slot_once_as_its_final_outcome(ldap_env, unique_name):
    from rotation import status

    user = ldap_env.account(unique_name("thrice"))
    unreachable(ldap_env)
    attempt = rotate(user)
    while (retry := RotationAttempt.objects.filter(retry_of=attempt).first()) is not None:
        services.run_attempt(retry.pk)
        attempt = retry
    failures = RotationAttempt.objects.filter(user=user, state=AttemptState.FAILED).count()

    today = status.rotations_per_day(days=1)[0]

    assert failures == 3 and attempt.try_number == 3
    assert (today.ok, today.failed) == (0, 1)


# -- 1. A gateway with no running worker -----------------------------------------------------------


def gateway_user(gateway: str, title: str):
    """Return an account that could rotate, in a configuration whose gateway is ``gateway``."""
    directory = make_directory(make_configuration(gateway=gateway))
    return make_user(
        title=title, resource=directory, distinguished_name=f"uid={title},dc=example", rotation_enabled=True
    )


def test_a_queued_attempt_of_a_gateway_without_a_worker_says_so_everywhere(client, alice, db):
    from rotation.models import Heartbeat

    Heartbeat.beat("worker:default")  # another gateway's worker runs; this one's never did
    user = gateway_user("branch-office", "svc-branch")
    attempt = services.request_rotation(user, enqueue=False)
    queued_at = timezone.now() - dt.timedelta(minutes=7)
    RotationAttempt.objects.filter(pk=attempt.pk).update(created_at=queued_at)
    PamUser.objects.filter(pk=user.pk).update(
        queued_since=queued_at, next_rotation_at=timezone.now() + dt.timedelta(days=5)
    )
    login(client, alice)

    page = unescape(client.get(attempt.get_absolute_url()).content.decode())
    account = unescape(client.get(user.get_absolute_url()).content.decode())
    dashboard = unescape(client.get(reverse("records:dashboard")).content.decode())

    # 7 minutes without a task (and a few seconds more on a slow machine)
    said = re.compile(r"The gateway branch-office has taken no task for 4[2-3]\d s")
    assert said.search(page) and 'waiting-warning" role="alert"' in page
    assert said.search(account)
    assert said.search(dashboard) and "1 account waits for gateway" in dashboard
    overdue = dashboard.split('id="overdue-accounts"')[1].split("</ul>")[0]
    assert "svc-branch" in overdue and said.search(overdue)
    assert re.search(r"due <time [^>]*>\d{4}-\d\d-\d\d \d\d:\d\d UTC</time> \(7\xa0minutes late\)", overdue)
    assert "0\xa0minutes" not in overdue


def test_a_fresh_worker_heartbeat_of_the_gateway_means_no_warning(client, alice, db):
    from rotation.models import Heartbeat

    Heartbeat.beat("worker:branch-office")
    user = gateway_user("branch-office", "svc-ok")
    attempt = services.request_rotation(user, enqueue=False)
    RotationAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - dt.timedelta(minutes=7))

    page = login(client, alice).get(attempt.get_absolute_url()).content.decode()

    assert "has taken no task" not in page  # its workers took a task after it was queued


def test_a_just_queued_attempt_shows_the_warning_only_after_the_stall_threshold(
    client, alice, db, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    user = gateway_user("nowhere", "svc-new")
    attempt = services.request_rotation(user, enqueue=False)
    login(client, alice)

    page = unescape(client.get(attempt.get_absolute_url()).content.decode())
    assert 'waiting-warning d-none" role="alert"' in page and "has taken no task" not in page
    time_machine.shift(dt.timedelta(seconds=61))
    page = unescape(client.get(attempt.get_absolute_url()).content.decode())
    assert "The gateway nowhere has taken no task for 61 s" in page
    assert (
        client.get(reverse("rotation:attempt-status", args=[attempt.pk]))
        .json()["waiting"]
        .startswith("The gateway nowhere has taken no task for 61 s")
    )


# -- 5. Directory errors that are configuration, not an outage --------------------------------------


def slapd_spec(slapd, **fields):
    from rotation.ldap import DirectorySpec

    fields.setdefault("host", slapd.host)
    fields.setdefault("port", slapd.ldaps_port)
    return DirectorySpec(ca_certificate=slapd.tls.ca_pem, directory_type="openldap", **fields)


def test_starttls_against_the_ldaps_port_is_a_configuration_error_that_names_the_fix(slapd):
    from rotation import ldap

    spec = slapd_spec(slapd, use_ssl=False, start_tls=True)

    with pytest.raises(ldap.DirectoryError) as info:
        ldap.verify_password(spec, slapd.rotator_dn, slapd.rotator_password)

    assert info.value.kind == ldap.DirectoryError.CONFIGURATION, info.value
    assert "speaks LDAPS" in info.value.message and "turn off StartTLS" in info.value.message
    assert "unreachable" not in info.value.message


def test_a_host_name_that_does_not_resolve_is_a_configuration_error_that_says_dns(slapd):
    from rotation import ldap

    spec = slapd_spec(slapd, host="no-such-directory.invalid", use_ssl=True)

    with pytest.raises(ldap.DirectoryError) as info:
        ldap.verify_password(spec, slapd.rotator_dn, slapd.rotator_password)

    assert info.value.kind == ldap.DirectoryError.CONFIGURATION, info.value
    assert "no-such-directory.invalid" in info.value.message and "DNS" in info.value.message
    assert "check that it is running" not in info.value.message


def test_a_rotation_meeting_either_error_fails_without_a_retry(ldap_env, unique_name):
    user = ldap_env.account(unique_name("tls"))
    ldap_env.directory.use_ssl, ldap_env.directory.start_tls = False, True
    ldap_env.directory.save()
    tls = rotate(user)
    ldap_env.directory.hostname, ldap_env.directory.use_ssl = "nowhere.invalid", True
    ldap_env.directory.save()
    dns = rotate(user)

    for attempt in (tls, dns):
        assert attempt.state == AttemptState.FAILED and attempt.error_class == "configuration", (
            attempt.error_message
        )
        assert not RotationAttempt.objects.filter(retry_of=attempt).exists()


# -- 6. Times in the viewer's zone, UTC on hover --------------------------------------------------


def finished_attempt() -> RotationAttempt:
    user = make_user(title="svc-times")
    at = dt.datetime(2026, 7, 1, 10, 30, 5, tzinfo=dt.UTC)
    attempt = RotationAttempt.objects.create(user=user, state=AttemptState.SUCCEEDED)
    RotationAttempt.objects.filter(pk=attempt.pk).update(created_at=at, started_at=at, finished_at=at)
    return attempt


def test_times_are_shown_in_the_browsers_zone_with_utc_on_hover(client, carol):
    attempt = finished_attempt()
    client.cookies["pamrotate_tz"] = "Europe/Berlin"

    page = login(client, carol).get(attempt.get_absolute_url()).content.decode()

    assert (
        '<time datetime="2026-07-01T10:30:05Z" title="2026-07-01 10:30:05 UTC">2026-07-01 12:30:05 CEST</time>'
        in page
    )
    assert 'data-viewer-zone="Europe/Berlin" data-viewer-zone-from="browser"' in page


def test_a_persons_own_zone_wins_over_the_browser_and_follows_them_to_a_new_sign_in(client, carol):
    attempt = finished_attempt()
    client.cookies["pamrotate_tz"] = "Europe/Berlin"
    login(client, carol)

    saved = client.post(reverse("accounts:time-zone"), {"time_zone": "Asia/Tokyo"})
    page = client.get(attempt.get_absolute_url()).content.decode()
    client.logout()
    client.cookies["pamrotate_tz"] = "America/New_York"
    again = login(client, carol).get(attempt.get_absolute_url()).content.decode()
    security = client.get(reverse("accounts:security")).content.decode()

    assert saved.status_code == 302
    for body in (page, again):
        assert ">2026-07-01 19:30:05 JST</time>" in body and 'data-viewer-zone-from="person"' in body
    assert 'value="Asia/Tokyo" selected' in security


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "x" * 200])
def test_a_bad_zone_is_refused_or_ignored_without_an_error(client, carol, zone):
    attempt = finished_attempt()
    login(client, carol)
    client.cookies["pamrotate_tz"] = zone

    saved = client.post(reverse("accounts:time-zone"), {"time_zone": zone})
    page = client.get(attempt.get_absolute_url())

    assert saved.status_code == 302 and page.status_code == 200
    assert ">2026-07-01 10:30:05 UTC</time>" in page.content.decode()


def test_the_time_zone_setting_needs_a_signed_in_post(client, carol):
    assert client.post(reverse("accounts:time-zone"), {"time_zone": "Asia/Tokyo"}).status_code == 302
    login(client, carol)
    assert client.get(reverse("accounts:time-zone")).status_code == 405


def test_an_overdue_account_never_dispatched_names_the_stopped_scheduler_not_a_gateway(client, alice, db):
    user = gateway_user("branch-office", "svc-late")
    PamUser.objects.filter(pk=user.pk).update(next_rotation_at=timezone.now() - dt.timedelta(hours=2))

    dashboard = unescape(login(client, alice).get(reverse("records:dashboard")).content.decode())

    overdue = dashboard.split('id="overdue-accounts"')[1].split("</ul>")[0]
    assert "svc-late" in overdue and "(2\xa0hours late)" in overdue
    assert "The scheduler is not running" in overdue and "No worker of gateway" not in overdue


def test_the_failure_mail_gives_the_reason_as_one_sentence(
    ldap_env, unique_name, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.NOTIFY_EMAIL_TO = ["secops@example.test"]
    user = ldap_env.account(unique_name("mail"))
    ldap_env.server.delete(user.distinguished_name)

    with django_capture_on_commit_callbacks(execute=True):
        with_code = rotate(user)

    body = mailoutbox[0].body
    assert with_code.error_code == 32
    assert "Reason: Configuration or permission: The account's distinguished name was not found" in body
    assert body.count("(LDAP 32)") == 1


def test_the_migration_links_existing_retries_to_the_try_they_retry(db):
    user = make_user()
    failed = RotationAttempt.objects.create(user=user, state=AttemptState.FAILED)
    retry = RotationAttempt.objects.create(user=user, trigger=Trigger.RETRY, try_number=2)
    migration = importlib.import_module("rotation.migrations.0004_attempt_number")

    migration.link_existing_retries(django_apps, None)

    assert RotationAttempt.objects.get(pk=retry.pk).retry_of_id == failed.pk
