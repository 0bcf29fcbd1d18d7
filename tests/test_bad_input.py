"""Bad input never gives a server error: the known cases, then arbitrary input to every view."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from records import schedules
from records.models import PamUser
from rotation import audit
from tests.conftest import make_configuration, make_directory, make_user
from tests.test_records_forms import configuration_data, user_data

NEVER_FIRES = ["0 0 31 2 *", "0 0 30 2 *"]


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


# -- The cases the attack run found ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["abc", "1e9", "\x00", "-1", "9" * 30, " 1"])
def test_reveal_with_a_malformed_version_is_not_found_not_a_server_error(admin_client, version):
    pam_user = make_user(password="Stored-Pass-1!")
    response = admin_client.post(reverse("rotation:reveal-password", args=[pam_user.pk]), {"version": version})
    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("value", [str(2**63), str(2**64 + 5), "9" * 40])
def test_bulk_rotate_with_an_id_past_64_bits_selects_nothing(admin_client, value):
    for name in ("user", "configuration", "directory"):
        response = admin_client.post(reverse("rotation:bulk-rotate"), {name: value})
        assert response.status_code == 302
        assert response.url == reverse("records:user-list")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    ["0001-01-01T00:00:00+23:59,1", "9999-12-31T23:59:59-23:59,1", "0001-01-01T00:00:00+23:59,99999999999999999999"],
)
def test_an_audit_cursor_outside_the_datetime_range_is_ignored(admin_client, cursor):
    assert audit.parse_cursor(cursor) is None
    for key in ("before", "after"):
        assert admin_client.get(reverse("rotation:audit-log"), {key: cursor}).status_code == 200


def test_a_cron_that_never_fires_is_a_schedule_error_and_has_no_next_run():
    import datetime as dt

    for expression in NEVER_FIRES:
        schedule = schedules.Schedule(type=schedules.CRON, cron=expression, tz="UTC")
        with pytest.raises(schedules.ScheduleError, match="never fires"):
            schedule.validate()
        assert schedule.next_after(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) is None


@pytest.mark.django_db
@pytest.mark.parametrize("expression", NEVER_FIRES)
def test_a_cron_that_never_fires_is_refused_on_every_schedule_form(admin_client, expression):
    configuration = make_configuration()
    directory = make_directory(configuration)
    pam_user = make_user(resource=directory, distinguished_name="cn=x,dc=example,dc=com")
    cron = {"schedule_type": "CRON", "schedule_cron": expression, "schedule_tz": "UTC"}
    posts = [
        (reverse("records:configuration-create"), configuration_data(title="Never", **cron)),
        (reverse("records:configuration-edit", args=[configuration.pk]), configuration_data(**cron)),
        (reverse("records:user-create"), user_data(configuration, directory, title="never", **cron)),
        (reverse("records:user-edit", args=[pam_user.pk]), user_data(configuration, directory, **cron)),
    ]
    for url, data in posts:
        response = admin_client.post(url, data)
        assert response.status_code == 200, url
        assert "never fires" in response.content.decode(), url
    preview = admin_client.get(reverse("records:schedule-preview"), cron)
    assert preview.status_code == 200 and "never fires" in preview.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("expression", NEVER_FIRES)
def test_pam_rotation_edit_refuses_a_cron_that_never_fires_without_a_traceback(expression):
    pam_user = make_user(rotation_enabled=False)
    with pytest.raises(CommandError, match="never fires"):
        call_command("pam_rotation", "edit", "--user", pam_user.title, "--schedule-cron", expression)
    assert PamUser.objects.get(pk=pam_user.pk).schedule_cron == ""
    # A stored one (written before this rule) lists as invalid instead of a traceback.
    PamUser.objects.filter(pk=pam_user.pk).update(schedule_type=schedules.CRON, schedule_cron=expression)
    out = io.StringIO()
    call_command("pam_rotation", "list", stdout=out)
    assert "never fires" in out.getvalue()
