"""Record pages: dashboard, lists (search, filters, paging, query counts), details, and changes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser, RotationStatus
from tests.conftest import make_configuration, make_directory, make_user
from tests.test_records_forms import configuration_data, directory_data, make_ca_pem, user_data


def titles(response) -> list[str]:
    return [record.title for record in response.context["page"]]


# Dashboard -------------------------------------------------------------------------------------


def test_the_dashboard_counts_and_links_to_the_filtered_lists(signed_in):
    directory = make_directory()
    now = timezone.now()
    make_user(resource=directory, rotation_enabled=True, distinguished_name="cn=a,dc=x")
    make_user(resource=directory, rotation_status=RotationStatus.FAILED)
    make_user(resource=directory, next_rotation_at=now - dt.timedelta(hours=1))
    make_user(resource=directory, next_rotation_at=now - dt.timedelta(minutes=1))  # within grace
    make_user(
        resource=directory,
        next_rotation_at=now - dt.timedelta(hours=1),
        rotation_status=RotationStatus.RUNNING,
    )
    response = signed_in.get(reverse("records:dashboard"))
    assert response.context["counts"] == {
        "configurations": 1,
        "directories": 1,
        "users": 5,
        "rotating": 1,
        "failed": 1,
        "overdue": 1,
        # What the account heartbeat found (tests/test_heartbeat.py covers these).
        "drifted": 0,
        "disabled": 0,
        "locked": 0,
        "expired": 0,
    }
    page = response.content.decode()
    for query in ("?rotation=on", "?status=failed", "?overdue=1"):
        assert reverse("records:user-list") + query in page
    assert len(titles(signed_in.get(reverse("records:user-list") + "?overdue=1"))) == 1
    assert len(titles(signed_in.get(reverse("records:user-list") + "?rotation=on"))) == 1
    assert len(titles(signed_in.get(reverse("records:user-list") + "?rotation=off"))) == 4


# Lists -----------------------------------------------------------------------------------------


def test_the_user_list_searches_title_login_and_dn(signed_in):
    make_user(title="Backup service", login="svc-backup", distinguished_name="cn=svc-backup,dc=corp")
    make_user(title="Web admin", login="webadm", distinguished_name="cn=webadm,ou=admins,dc=corp")
    url = reverse("records:user-list")
    assert titles(signed_in.get(url, {"q": "backup"})) == ["Backup service"]
    assert titles(signed_in.get(url, {"q": "WEBADM"})) == ["Web admin"]
    assert titles(signed_in.get(url, {"q": "ou=admins"})) == ["Web admin"]
    assert titles(signed_in.get(url, {"q": "nothing like it"})) == []


def test_the_user_list_filters(signed_in):
    ldap = make_directory(title="LDAP", directory_type=DirectoryType.OPENLDAP)
    ad = make_directory(title="AD", directory_type=DirectoryType.ACTIVE_DIRECTORY)
    make_user(title="u-ldap", resource=ldap, rotation_status=RotationStatus.FAILED)
    make_user(title="u-ad", resource=ad)
    url = reverse("records:user-list")
    assert titles(signed_in.get(url, {"directory": ldap.pk})) == ["u-ldap"]
    assert titles(signed_in.get(url, {"configuration": ad.configuration_id})) == ["u-ad"]
    assert titles(signed_in.get(url, {"type": DirectoryType.ACTIVE_DIRECTORY})) == ["u-ad"]
    assert titles(signed_in.get(url, {"status": "failed"})) == ["u-ldap"]


def test_the_user_list_sorts_by_next_rotation_with_unscheduled_last(signed_in):
    now = timezone.now()
    make_user(title="a", next_rotation_at=now + dt.timedelta(days=2))
    make_user(title="b", next_rotation_at=None)
    make_user(title="c", next_rotation_at=now + dt.timedelta(days=1))
    url = reverse("records:user-list")
    assert titles(signed_in.get(url, {"sort": "next"})) == ["c", "a", "b"]
    assert titles(signed_in.get(url, {"sort": "-next"})) == ["a", "c", "b"]
    assert titles(signed_in.get(url, {"sort": "-title"})) == ["c", "b", "a"]


@pytest.mark.parametrize(
    "query",
    [
        {"configuration": "abc"},
        {"configuration": "-1"},
        {"configuration": "99999999999999999999999999"},
        {"directory": "1.5"},
        {"type": "novell"},
        {"status": "exploded"},
        {"rotation": "maybe"},
        {"overdue": "yes"},
        {"sort": "password_encrypted"},
        {"page": "abc"},
        {"page": "-3"},
        {"page": "999999"},
        {"q": "\x00"},
        {"q": "%' OR 1=1 --"},
    ],
)
@pytest.mark.parametrize(
    "list_name", ["records:user-list", "records:directory-list", "records:configuration-list"]
)
def test_bad_filter_values_never_break_a_list(signed_in, list_name, query):
    make_user()
    assert signed_in.get(reverse(list_name), query).status_code == 200


def test_lists_paginate_by_25(signed_in):
    configuration = make_configuration()
    for number in range(30):
        make_user(configuration, title=f"user {number:02}")
    url = reverse("records:user-list")
    first = signed_in.get(url, {"q": "user"})
    assert len(titles(first)) == 25
    assert "page=2" in first.content.decode() and "q=user" in first.content.decode()
    second = signed_in.get(url, {"q": "user", "page": 2})
    assert titles(second) == [f"user {number}" for number in range(25, 30)]


def test_the_directory_and_configuration_lists_search_and_filter(signed_in):
    make_directory(
        title="Corp AD", hostname="dc1.corp.example", directory_type=DirectoryType.ACTIVE_DIRECTORY
    )
    make_directory(title="Lab LDAP", hostname="10.1.2.3")
    make_configuration(title="Lab", network_id="lab-net")
    assert titles(signed_in.get(reverse("records:directory-list"), {"q": "dc1"})) == ["Corp AD"]
    assert titles(signed_in.get(reverse("records:directory-list"), {"type": "openldap"})) == ["Lab LDAP"]
    assert titles(signed_in.get(reverse("records:configuration-list"), {"q": "lab-net"})) == ["Lab"]


def _user_list_queries(client, count: int) -> int:
    directory = make_directory()
    for _ in range(count - PamUser.objects.count()):
        make_user(resource=directory)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("records:user-list")).status_code == 200
    return len(queries)


def test_the_user_list_query_count_does_not_grow_with_rows(signed_in):
    assert _user_list_queries(signed_in, 5) == _user_list_queries(signed_in, 50)


def test_the_directory_list_query_count_does_not_grow_with_rows(signed_in):
    def measure(count):
        credential_configuration = make_configuration()
        for _ in range(count):
            admin = make_user(credential_configuration)
            make_directory(credential_configuration, administrative_credential=admin)
        with CaptureQueriesContext(connection) as queries:
            signed_in.get(reverse("records:directory-list"))
        return len(queries)

    assert measure(3) == measure(20)


# Details ---------------------------------------------------------------------------------------


def test_the_user_page_shows_schedule_complexity_and_never_the_password(signed_in):
    directory = make_directory(title="Corp LDAP")
    pam_user = make_user(
        resource=directory,
        password="Hidden-Pass-1",
        distinguished_name="cn=svc,dc=example,dc=com",
        rotation_enabled=True,
        schedule_type="WEEKLY",
        schedule_time=dt.time(2, 0),
        schedule_weekday=6,
        schedule_tz="Europe/Berlin",
        password_complexity="24,2,2,2,2",
    )
    response = signed_in.get(reverse("records:user-detail", args=[pam_user.pk]))
    page = response.content.decode()
    assert "Every Sunday at 02:00, Europe/Berlin" in page
    assert "24 characters, at least 2 upper" in page
    assert len(response.context["next_runs"]) == 3
    assert 'id="password-state">set<' in page
    assert "Hidden-Pass-1" not in page and pam_user.password_encrypted not in page
    assert 'id="rotation-panel"' in page  # the rotation app's partial
    assert directory.get_absolute_url() in page
    assert pam_user.configuration.get_absolute_url() in page


def test_the_user_page_query_count_is_bounded(signed_in, django_assert_max_num_queries):
    pam_user = make_user(resource=make_directory(), distinguished_name="cn=a,dc=b")
    with django_assert_max_num_queries(13):  # 12, and one for the access panel (access_tags.access_panel)
        assert signed_in.get(reverse("records:user-detail", args=[pam_user.pk])).status_code == 200


def test_the_directory_page_links_and_warns_when_verification_is_off(signed_in):
    configuration = make_configuration()
    admin = make_user(configuration, title="ldap admin")
    directory = make_directory(configuration, administrative_credential=admin, verify_certificate=False)
    rotated = make_user(resource=directory, title="rotated one")
    page = signed_in.get(reverse("records:directory-detail", args=[directory.pk])).content.decode()
    assert "Certificate verification is off" in page
    for url in (configuration.get_absolute_url(), admin.get_absolute_url(), rotated.get_absolute_url()):
        assert url in page
    assert 'id="connection-panel"' in page


def test_the_configuration_page_lists_its_directories_and_users(signed_in):
    directory = make_directory(title="Corp LDAP")
    pam_user = make_user(resource=directory)
    configuration = directory.configuration
    configuration.schedule_type = "DAILY"
    configuration.schedule_time = dt.time(3, 30)
    configuration.save()
    page = signed_in.get(reverse("records:configuration-detail", args=[configuration.pk])).content.decode()
    assert directory.get_absolute_url() in page and pam_user.get_absolute_url() in page
    assert "Every day at 03:30, UTC" in page


def test_missing_records_are_a_404_page(signed_in):
    response = signed_in.get(reverse("records:user-detail", args=[999999]))
    assert response.status_code == 404
    assert b"Not found" in response.content


# Changes and the audit log ---------------------------------------------------------------------


def _events(event: str):
    return list(AuditEvent.objects.filter(event=event))


def test_creating_updating_and_deleting_are_audited_without_secrets(signed_in):
    signed_in.post(reverse("records:configuration-create"), configuration_data(title="Prod"))
    configuration = PamConfiguration.objects.get(title="Prod")
    signed_in.post(reverse("records:directory-create"), directory_data(configuration, title="LDAP"))
    directory = PamDirectory.objects.get(title="LDAP")
    response = signed_in.post(
        reverse("records:user-create"),
        user_data(configuration, directory, title="svc", password="Audit-Secret-9"),
        REMOTE_ADDR="192.0.2.44",
    )
    pam_user = PamUser.objects.get(title="svc")
    assert response.status_code == 302 and response["Location"] == pam_user.get_absolute_url()

    created = _events(AuditEvent.RECORD_CREATED)
    assert {(event.record_type, event.record_title) for event in created} == {
        ("pamconfiguration", "Prod"),
        ("pamdirectory", "LDAP"),
        ("pamuser", "svc"),
    }
    user_event = next(event for event in created if event.record_type == "pamuser")
    assert user_event.record_id == pam_user.pk
    assert user_event.actor_name == "alice"
    assert user_event.remote_address == "192.0.2.44"
    assert "password" in user_event.message and "login" in user_event.message

    data = user_data(configuration, directory, title="svc", login="svc2", password="Second-Secret-8")
    signed_in.post(reverse("records:user-edit", args=[pam_user.pk]), data)
    (updated,) = _events(AuditEvent.RECORD_UPDATED)
    assert updated.record_id == pam_user.pk
    assert "login" in updated.message and "password" in updated.message
    assert "title" not in updated.message

    signed_in.post(reverse("records:user-delete", args=[pam_user.pk]))
    (deleted,) = _events(AuditEvent.RECORD_DELETED)
    assert (deleted.record_id, deleted.record_title, deleted.record_type) == (pam_user.pk, "svc", "pamuser")
    assert not PamUser.objects.filter(pk=pam_user.pk).exists()

    for event in AuditEvent.objects.all():
        assert "Secret" not in event.message


def test_an_unchanged_edit_names_no_fields(signed_in):
    configuration = make_configuration(title="Prod")
    signed_in.post(
        reverse("records:configuration-edit", args=[configuration.pk]), configuration_data(title="Prod")
    )
    (updated,) = _events(AuditEvent.RECORD_UPDATED)
    assert updated.message == "PAM configuration updated"


def test_deleting_a_record_still_in_use_explains_instead_of_failing(signed_in):
    directory = make_directory()
    configuration = directory.configuration
    response = signed_in.post(reverse("records:configuration-delete", args=[configuration.pk]))
    assert response.status_code == 409
    assert b"delete or move its directories and users first" in response.content
    assert directory.get_absolute_url().encode() in response.content
    assert PamConfiguration.objects.filter(pk=configuration.pk).exists()
    assert not _events(AuditEvent.RECORD_DELETED)


def test_deleting_an_admin_credential_in_use_is_refused(signed_in):
    configuration = make_configuration()
    admin = make_user(configuration)
    make_directory(configuration, administrative_credential=admin)
    response = signed_in.post(reverse("records:user-delete", args=[admin.pk]))
    assert response.status_code == 409
    assert PamUser.objects.filter(pk=admin.pk).exists()


def test_the_delete_page_asks_first(signed_in):
    pam_user = make_user()
    response = signed_in.get(reverse("records:user-delete", args=[pam_user.pk]))
    assert response.status_code == 200
    assert b"cannot be undone" in response.content
    assert PamUser.objects.filter(pk=pam_user.pk).exists()


def test_saving_a_user_schedules_its_next_rotation(signed_in):
    directory = make_directory()
    data = user_data(directory.configuration, directory, title="svc")
    signed_in.post(reverse("records:user-create"), data)
    pam_user = PamUser.objects.get(title="svc")
    assert pam_user.next_rotation_at is not None
    assert pam_user.next_rotation_at == pam_user.compute_next_rotation()
    assert pam_user.next_rotation_at.astimezone(dt.UTC).weekday() in (5, 6)  # Sunday 02:00 Berlin


def test_changing_a_configuration_schedule_reschedules_its_users(signed_in):
    directory = make_directory()
    configuration = directory.configuration
    pam_user = make_user(
        resource=directory, rotation_enabled=True, distinguished_name="cn=a,dc=b", schedule_type="USE_DEFAULT"
    )
    assert pam_user.next_rotation_at is None
    data = configuration_data(
        title=configuration.title, schedule_type="DAILY", schedule_time="04:00", schedule_tz="UTC"
    )
    assert (
        signed_in.post(reverse("records:configuration-edit", args=[configuration.pk]), data).status_code
        == 302
    )
    pam_user.refresh_from_db()
    assert pam_user.next_rotation_at is not None
    assert pam_user.next_rotation_at.astimezone(dt.UTC).time() == dt.time(4, 0)
    # Turning rotation off for the configuration unschedules them.
    data.pop("rotation_enabled")
    signed_in.post(reverse("records:configuration-edit", args=[configuration.pk]), data)
    pam_user.refresh_from_db()
    assert pam_user.next_rotation_at is None


def test_turning_verification_off_is_loud(signed_in):
    directory = make_directory(title="LDAP")
    data = directory_data(
        directory.configuration, title="LDAP", verify_certificate=None, ca_certificate=make_ca_pem()
    )
    response = signed_in.post(reverse("records:directory-edit", args=[directory.pk]), data, follow=True)
    page = response.content.decode()
    assert "Certificate verification is OFF for LDAP" in page
    assert "Certificate verification is off." in page
    (updated,) = _events(AuditEvent.RECORD_UPDATED)
    assert "verify_certificate" in updated.message


def test_the_form_previews_the_schedule_after_a_round_trip(signed_in):
    directory = make_directory()
    data = user_data(directory.configuration, directory, title="", schedule_tz="Europe/Berlin")
    page = signed_in.post(reverse("records:user-create"), data).content.decode()
    assert "Every Sunday at 02:00, Europe/Berlin" in page
    assert "next runs" in page
    assert 'list="time-zones"' in page and '<option value="Europe/Berlin">' in page


def test_new_directory_from_a_configuration_page_preselects_it(signed_in):
    configuration = make_configuration()
    response = signed_in.get(reverse("records:directory-create"), {"configuration": configuration.pk})
    assert response.context["form"].initial["configuration"] == configuration.pk
    assert signed_in.get(reverse("records:directory-create"), {"configuration": "x"}).status_code == 200


def test_the_error_pages_render_without_a_request():
    from django.template import loader

    assert "Something went wrong" in loader.get_template("500.html").render()
