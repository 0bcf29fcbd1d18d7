"""The audit log a security team lives in: filters, keyset pages, exports, retention, notices."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent
from rotation import notifications, services
from rotation.models import AttemptState, ErrorClass, RotationAttempt, Trigger
from tests.conftest import PERSONA_PASSWORD, make_configuration, make_directory, make_user

URL = reverse("rotation:audit-log")


def login(client, user):
    assert client.login(username=user.username, password=PERSONA_PASSWORD)
    return client


def record_events(response) -> list:
    """The page's events without the tests' own sign-ins (tests/test_signin.py covers those)."""
    return [event for event in response.context["page"].events if event.category != "login"]


def titles(response) -> list[str]:
    return [event.record_title for event in record_events(response)]


def messages_of(response) -> list[str]:
    return [event.message for event in record_events(response)]


@pytest.fixture
def world(db, alice, bob):
    """Two configurations, each with a directory and a user, and events about all of them."""
    red = make_configuration(title="Red")
    blue = make_configuration(title="Blue")
    red_dir = make_directory(red, title="Red LDAP")
    blue_dir = make_directory(blue, title="Blue LDAP")
    red_user = make_user(red, title="Red user", resource=red_dir)
    blue_user = make_user(blue, title="Blue user", resource=blue_dir)
    loose_user = make_user(red, title="Red user without directory")
    for instance in (red, blue, red_dir, blue_dir, red_user, blue_user, loose_user):
        audit.record_event(
            "record_add",
            instance=instance,
            actor=Actor.person(alice),
            outcome="ok",
            message=f"made {instance}",
        )
    audit.record_event(
        AuditEvent.ROTATION_ON_DEMAND_FAIL,
        instance=red_user,
        actor=Actor.person(bob),
        outcome="fail",
        attempt_id=7,
        category="rotation",
        message="Attempt #7 failed: the directory refused the new password",
    )
    return {"red": red, "blue": blue, "red_dir": red_dir, "blue_dir": blue_dir, "red_user": red_user,
            "blue_user": blue_user, "loose_user": loose_user}  # fmt: skip


def test_the_log_shows_newest_first_with_links_to_records_and_attempts(client, alice, world):
    response = login(client, alice).get(URL)
    assert response.status_code == 200
    assert titles(response)[0] == "Red user"
    body = response.content.decode()
    assert reverse("records:user-detail", args=[world["red_user"].pk]) in body
    assert reverse("records:directory-detail", args=[world["red_dir"].pk]) in body
    assert reverse("records:configuration-detail", args=[world["red"].pk]) in body
    assert reverse("rotation:attempt-detail", args=[7]) in body
    assert f'href="{URL}"' in body  # the navbar link appears


def test_filters_narrow_the_log(client, alice, world):
    login(client, alice)
    assert titles(client.get(URL, {"outcome": "fail"})) == ["Red user"]
    assert titles(client.get(URL, {"event": AuditEvent.ROTATION_ON_DEMAND_FAIL})) == ["Red user"]
    assert titles(client.get(URL, {"actor": "BOB"})) == ["Red user"]
    assert len(titles(client.get(URL, {"actor": "alice"}))) == 7
    assert titles(client.get(URL, {"q": "refused the new"})) == ["Red user"]
    account = client.get(URL, {"account": world["blue_user"].pk})
    assert titles(account) == ["Blue user"]
    assert b"Account:" in account.content


def test_configuration_and_directory_filters_include_the_records_under_them(client, alice, world):
    login(client, alice)
    red = set(titles(client.get(URL, {"configuration": world["red"].pk})))
    assert red == {"Red", "Red LDAP", "Red user", "Red user without directory"}
    directory = set(titles(client.get(URL, {"directory": world["red_dir"].pk})))
    assert directory == {"Red LDAP", "Red user"}


def test_the_date_range_is_inclusive_of_whole_days(client, alice, world):
    with time_machine.travel(dt.datetime(2024, 3, 10, 23, 30, tzinfo=dt.UTC), tick=False):
        audit.record_event(
            "record_update", instance=world["blue"], actor=Actor.person(alice), message="old change"
        )
    login(client, alice)
    assert messages_of(client.get(URL, {"from": "2024-03-10", "to": "2024-03-10"})) == ["old change"]
    assert messages_of(client.get(URL, {"to": "2024-03-09"})) == []
    assert "old change" not in messages_of(client.get(URL, {"from": "2024-03-11"}))


@pytest.mark.parametrize(
    "query",
    [
        {"from": "yesterday", "to": "2024-13-45"},
        {"configuration": "x", "directory": "-1", "account": "99999999999999999999999"},
        {"before": "garbage"},
        {"before": "2024-01-01T00:00:00Z,abc"},
        {"after": "not,a,cursor"},
        {"outcome": "maybe", "event": "\x00evil", "q": "\x00%_'\""},
        {"page": "last"},
    ],
)
def test_bad_filter_values_never_cause_an_error(client, alice, world, query):
    assert login(client, alice).get(URL, query).status_code == 200


def test_keyset_pages_walk_older_and_back_newer_without_gaps(client, alice, db):
    configuration = make_configuration(title="Many")
    with time_machine.travel(dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC), tick=False):
        # All in the same microsecond: the id breaks the tie.
        for number in range(120):
            audit.record_event("record_update", instance=configuration, message=f"change {number}")
    login(client, alice)
    first = client.get(URL)
    page = first.context["page"]
    assert len(page.events) == audit.PAGE_SIZE and page.older and not page.newer
    second = client.get(URL, {"before": page.older})
    third = client.get(URL, {"before": second.context["page"].older})
    seen = messages_of(first) + messages_of(second) + messages_of(third)
    assert seen == [f"change {number}" for number in reversed(range(120))]
    assert not third.context["page"].older
    back = client.get(URL, {"after": third.context["page"].newer})
    assert messages_of(back) == messages_of(second)
    assert b'id="page-older"' in second.content and b'id="page-newer"' in second.content


def test_the_page_makes_the_same_number_of_queries_for_10_or_200_events(client, alice, world):
    login(client, alice)
    configuration = world["red"]

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL, {"configuration": configuration.pk}).status_code == 200
        return len(queries)

    for number in range(10):
        audit.record_event("record_update", instance=world["red_user"], message=f"ten {number}")
    few = count()
    for number in range(190):
        audit.record_event("record_update", instance=world["red_dir"], message=f"many {number}")
    assert count() == few
    assert few <= 8


def test_viewers_read_the_log_and_strangers_are_refused(client, carol, dave, world):
    assert login(client, carol).get(URL).status_code == 200
    client.logout()
    assert login(client, dave).get(URL).status_code == 403
    client.logout()
    assert client.get(URL).status_code == 302  # to the sign-in page


# -- Export ---------------------------------------------------------------------------------------


def streamed(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


def test_csv_export_parses_and_carries_keeper_field_names(client, alice, world):
    audit.record_event(
        "record_update", instance=world["blue"], actor=Actor.person(alice), message='=HYPERLINK("http://x")'
    )
    audit.record_event(
        "record_update", instance=world["blue"], actor=Actor.person(alice), message="@SUM(A1)", outcome="-1"
    )
    response = login(client, alice).get(URL, {"format": "csv", "configuration": world["blue"].pk})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = streamed(response)
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert list(rows[0]) == list(audit.EXPORT_FIELDS)
    assert len(rows) == 5  # two updates, the configuration, its directory and its user
    assert rows[0]["message"] == "'@SUM(A1)" and rows[0]["outcome"] == "'-1"
    assert rows[1]["message"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["username"] == "alice"
    assert rows[0]["timestamp"].endswith("Z")
    dt.datetime.fromisoformat(rows[0]["timestamp"].replace("Z", "+00:00"))
    assert rows[0]["record_uid"] == world["blue"].uid  # Keeper's field: the record's UID (issue 25)
    assert rows[0]["record_type"] == "pamconfiguration"


def test_jsonl_export_parses_line_by_line_and_is_audited(client, alice, world):
    response = login(client, alice).get(URL, {"format": "jsonl", "outcome": "fail"})
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = streamed(response).splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 1
    record = records[0]
    assert set(record) == set(audit.EXPORT_FIELDS)
    assert record["audit_event"] == AuditEvent.ROTATION_ON_DEMAND_FAIL
    assert record["username"] == "bob" and record["attempt_id"] == 7 and record["outcome"] == "fail"
    assert record["category"] == "rotation"
    export = AuditEvent.objects.get(event=AuditEvent.AUDIT_EXPORTED)
    assert export.category == "security" and export.actor_name == "alice"
    assert "JSONL" in export.message and "outcome=fail" in export.message


def test_an_unknown_export_format_is_a_404_not_a_500(client, alice, world):
    assert login(client, alice).get(URL, {"format": "xlsx"}).status_code == 404


def test_spreadsheet_safe_prefixes_every_formula_starter():
    for dangerous in ("=1+1", "+1", "-1", "@x", "\tx", "\rx"):
        assert audit.spreadsheet_safe(dangerous) == "'" + dangerous
    assert audit.spreadsheet_safe("plain") == "plain"
    assert audit.spreadsheet_safe(None) == ""


# -- Retention --------------------------------------------------------------------------------


def test_purge_deletes_only_old_rows_and_records_itself(db, world):
    user = world["red_user"]
    with time_machine.travel(timezone.now() - dt.timedelta(days=100), tick=False):
        audit.record_event("record_update", instance=user, message="ancient")
        old_done = RotationAttempt.objects.create(user=user, state=AttemptState.SUCCEEDED)
        old_unknown = RotationAttempt.objects.create(user=user, state=AttemptState.UNKNOWN)
    recent_done = RotationAttempt.objects.create(user=user, state=AttemptState.FAILED)
    before = AuditEvent.objects.count()
    out = io.StringIO()
    call_command("purge_audit", "--older-than", "90", stdout=out)
    assert "Purged 1 audit event(s) and 1 finished rotation attempt(s)" in out.getvalue()
    assert not AuditEvent.objects.filter(message="ancient").exists()
    assert AuditEvent.objects.count() == before  # one gone, the purge's own event added
    assert set(RotationAttempt.objects.values_list("pk", flat=True)) == {old_unknown.pk, recent_done.pk}
    assert not RotationAttempt.objects.filter(pk=old_done.pk).exists()
    purge = AuditEvent.objects.get(event=AuditEvent.AUDIT_PURGED)
    assert purge.category == "security" and "1 audit event(s)" in purge.message


def test_purge_uses_the_setting_and_does_nothing_when_retention_is_forever(db, world, settings):
    with time_machine.travel(timezone.now() - dt.timedelta(days=10), tick=False):
        audit.record_event("record_update", instance=world["red"], message="ten days old")
    settings.AUDIT_RETENTION_DAYS = 0
    out = io.StringIO()
    call_command("purge_audit", stdout=out)
    assert "Nothing purged" in out.getvalue()
    assert AuditEvent.objects.filter(message="ten days old").exists()
    assert not AuditEvent.objects.filter(event=AuditEvent.AUDIT_PURGED).exists()
    settings.AUDIT_RETENTION_DAYS = 5
    call_command("purge_audit", stdout=io.StringIO())
    assert not AuditEvent.objects.filter(message="ten days old").exists()


def test_the_audit_manager_still_refuses_bulk_deletes(db, world):
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()


# -- Notifications ----------------------------------------------------------------------------


def test_a_failure_mails_once_per_account_per_hour_without_a_secret(db, world, settings):
    settings.NOTIFY_EMAIL_TO = ["secops@example.test"]
    user = world["red_user"]
    user.set_password("Do-Not-Mail-Me-1!")
    user.save()
    attempt = RotationAttempt.objects.create(
        user=user,
        state=AttemptState.FAILED,
        error_class=ErrorClass.REJECTED,
        error_message="The directory refused the new password.",
    )
    assert notifications.notify_failure(attempt, will_retry=False) is True
    assert notifications.notify_failure(attempt, will_retry=False) is False
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["secops@example.test"] and "Red user" in message.subject
    assert "refused the new password" in message.body
    assert "Do-Not-Mail-Me-1!" not in message.subject + message.body


def test_a_transient_failure_that_will_retry_mails_nothing(db, world, settings):
    settings.NOTIFY_EMAIL_TO = "secops@example.test"
    attempt = RotationAttempt.objects.create(
        user=world["blue_user"], state=AttemptState.FAILED, error_class=ErrorClass.TRANSIENT, try_number=1
    )
    assert notifications.notify_failure(attempt, will_retry=True) is False
    assert mail.outbox == []


def test_an_attempt_no_worker_of_its_gateway_took_fails_without_retry_and_mails_once(
    db, world, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_EMAIL_TO = "secops@example.test"
    user = world["blue_user"]
    stale = RotationAttempt.objects.create(user=user, state=AttemptState.QUEUED)
    RotationAttempt.objects.filter(pk=stale.pk).update(created_at=timezone.now() - dt.timedelta(minutes=20))
    with django_capture_on_commit_callbacks(execute=True):
        services.request_rotation(user, enqueue=False)
    stale.refresh_from_db()
    assert stale.state == AttemptState.FAILED and "No worker of gateway" in stale.error_message
    assert not RotationAttempt.objects.filter(user=user, trigger=Trigger.RETRY).exists()
    assert len(mail.outbox) == 1 and "No worker of gateway" in mail.outbox[0].body


def test_overdue_accounts_are_listed_in_one_mail_and_not_repeated(db, world, settings):
    settings.NOTIFY_EMAIL_TO = "secops@example.test, lead@example.test"
    users = [world["red_user"], world["blue_user"]]
    assert notifications.notify_overdue(users) == 2
    assert notifications.notify_overdue(users) == 0
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["secops@example.test", "lead@example.test"]
    assert "Red user" in mail.outbox[0].body and "Blue user" in mail.outbox[0].body


def test_no_recipients_means_no_mail(db, world, settings):
    settings.NOTIFY_EMAIL_TO = []
    assert notifications.notify_overdue([world["red_user"]]) == 0
    assert mail.outbox == []
