"""The new admin's first hour (issue 16): record forms that speak people, defaults, empty states."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from records import schedules
from records.forms import RETYPE_SECRET, ConfigurationForm, UserForm
from records.models import PamConfiguration, PamDirectory, PamUser
from tests.conftest import PERSONA_PASSWORD, make_configuration, make_directory, make_user
from tests.test_records_forms import configuration_data, directory_data, user_data


def complexity_parts(length="", upper="", lower="", digits="", special="", chars=None) -> dict:
    data = {
        "complexity_length": length,
        "complexity_upper": upper,
        "complexity_lower": lower,
        "complexity_digits": digits,
        "complexity_special": special,
    }
    if chars is not None:
        data["complexity_special_chars"] = chars
    return data


# -- 2. Rotation settings forms speak people, not storage ---------------------------------------


def test_the_configuration_form_edits_complexity_as_fields_and_stores_keepers_string(signed_in):
    form = ConfigurationForm()
    assert form["complexity_length"].value() == 20 and form["complexity_special"].value() == 1
    assert form.fields["default_password_complexity"].widget.is_hidden
    data = configuration_data(**complexity_parts("24", "2", "3", "4", "1", "!@#"))
    response = signed_in.post(reverse("records:configuration-create"), data)
    assert response.status_code == 302
    configuration = PamConfiguration.objects.get()
    assert configuration.default_password_complexity == "24,2,3,4,1,!@#"
    edit = signed_in.get(reverse("records:configuration-edit", args=[configuration.pk])).content.decode()
    assert 'name="complexity_length" value="24"' in edit
    assert "24 characters, at least 2 uppercase, 3 lowercase, 4 digits, 1 special" in edit
    (created,) = AuditEvent.objects.filter(event=AuditEvent.RECORD_CREATED)
    assert "complexity_length" not in created.message


def test_an_impossible_complexity_is_refused_next_to_the_fields(signed_in):
    data = configuration_data(**complexity_parts("8", "3", "3", "3", "3"))
    response = signed_in.post(reverse("records:configuration-create"), data)
    assert response.status_code == 200 and not PamConfiguration.objects.exists()
    assert "more than the length" in " ".join(response.context["form"].errors["complexity_length"])


def test_a_users_blank_complexity_length_uses_the_configurations_default(db):
    configuration = make_configuration()
    form = UserForm(user_data(configuration, **complexity_parts()))
    assert form.is_valid(), form.errors
    assert form.save().password_complexity == ""
    form = UserForm(user_data(configuration, title="other", **complexity_parts("30", "1", "1", "1", "0")))
    assert form.is_valid(), form.errors
    assert form.save().password_complexity == "30,1,1,1,0"


def test_the_time_zone_is_a_list_of_iana_zones_and_others_are_refused(signed_in):
    page = signed_in.get(reverse("records:user-create")).content.decode()
    assert 'list="time-zones"' in page and '<option value="Europe/Berlin">' in page
    configuration = make_configuration()
    form = UserForm(user_data(configuration, schedule_tz="Europe/Atlantis"))
    assert not form.is_valid() and "not an IANA time zone" in " ".join(form.errors["schedule_tz"])


def test_gateway_and_managed_are_labelled_for_people(signed_in):
    configuration_page = signed_in.get(reverse("records:configuration-create")).content.decode()
    assert "The worker pool that can reach this network." in configuration_page
    assert "django-q2" not in configuration_page
    user_page = signed_in.get(reverse("records:user-create")).content.decode()
    assert "Never rotate (pamrotate leaves this password alone)" in user_page
    assert 'name="managed"' in user_page
    account = make_user(managed=True)
    detail = signed_in.get(reverse("records:user-detail", args=[account.pk])).content.decode()
    assert "Never rotate" in detail and "yes: pamrotate leaves this password alone" in detail
    listing = signed_in.get(reverse("records:user-list")).content.decode()
    assert "never rotated</span>" in listing


# -- 3. Defaults ------------------------------------------------------------------------------


def test_a_new_user_follows_its_configuration_and_rotates_by_default(signed_in):
    user = PamUser()
    assert user.schedule_type == schedules.USE_DEFAULT and user.rotation_enabled is True
    form = UserForm()
    assert form["schedule_type"].value() == schedules.USE_DEFAULT
    assert form["rotation_enabled"].value() is True


def test_the_configuration_form_does_not_offer_use_the_default(signed_in):
    choices = [value for value, _label in ConfigurationForm().fields["schedule_type"].choices]
    assert schedules.USE_DEFAULT not in choices and schedules.DAILY in choices
    page = signed_in.get(reverse("records:configuration-create")).content.decode()
    assert 'value="USE_DEFAULT"' not in page


# -- 5. A typed password is never sent back: say so ---------------------------------------------


def test_a_password_typed_into_a_failing_form_must_be_re_entered_and_the_page_says_so(signed_in):
    configuration = make_configuration()
    data = user_data(configuration, title="", password="Typed-Secret-77!")
    response = signed_in.post(reverse("records:user-create"), data)
    page = response.content.decode()
    assert response.status_code == 200 and not PamUser.objects.exists()
    assert RETYPE_SECRET in page
    assert "Typed-Secret-77!" not in page
    # No note when no password was typed.
    response = signed_in.post(reverse("records:user-create"), user_data(configuration, title=""))
    assert RETYPE_SECRET not in response.content.decode()


# -- 1. Creating a directory ---------------------------------------------------------------------


def test_the_directory_form_creates_its_administrative_credential_in_the_same_save(signed_in):
    configuration = make_configuration(title="Only one")
    page = signed_in.get(reverse("records:directory-create")).content.decode()
    assert f'<option value="{configuration.pk}" selected>' in page  # the only configuration
    assert "or create one below" in page and 'name="new_credential_login"' in page
    data = directory_data(
        configuration,
        new_credential_login="cn=rotator,ou=service,dc=example,dc=com",
        new_credential_dn="cn=rotator,ou=service,dc=example,dc=com",
        new_credential_password="Inline-Admin-Secret-9",
        new_credential_title="Corp rotator",
    )
    response = signed_in.post(reverse("records:directory-create"), data)
    assert response.status_code == 302, response.context["form"].errors
    directory = PamDirectory.objects.get()
    admin = directory.administrative_credential
    assert admin.title == "Corp rotator" and admin.configuration == configuration
    assert admin.get_password() == "Inline-Admin-Secret-9" and admin.rotation_enabled is False
    created = AuditEvent.objects.filter(event=AuditEvent.RECORD_CREATED).values_list("record_type", flat=True)
    assert sorted(created) == ["pamdirectory", "pamuser"]
    assert "Inline-Admin-Secret-9" not in signed_in.get(response.url).content.decode()


def test_a_refused_directory_form_creates_no_credential_and_asks_for_the_password_again(signed_in):
    configuration = make_configuration()
    data = directory_data(
        configuration,
        hostname="",
        new_credential_login="rotator",
        new_credential_password="Inline-Admin-Secret-9",
    )
    response = signed_in.post(reverse("records:directory-create"), data)
    page = response.content.decode()
    assert response.status_code == 200 and not PamUser.objects.exists() and not PamDirectory.objects.exists()
    assert RETYPE_SECRET in page and "Inline-Admin-Secret-9" not in page
    both = directory_data(
        configuration,
        administrative_credential=str(make_user(configuration=configuration).pk),
        new_credential_login="rotator",
    )
    form = signed_in.post(reverse("records:directory-create"), both).context["form"]
    assert "not both" in " ".join(form.errors["new_credential_login"])


def test_the_directory_form_offers_the_ports_and_the_unsaved_test(signed_in):
    page = signed_in.get(reverse("records:directory-create")).content.decode()
    assert 'id="test-unsaved-connection"' in page and "js/record_form.js" in page
    assert reverse("rotation:test-unsaved-connection") in page


@pytest.fixture
def slapd_configuration(db, slapd):
    return make_configuration(title="Lab")


def unsaved_directory(slapd, configuration, **overrides) -> dict:
    fields = {
        "title": "Lab LDAP",
        "hostname": slapd.host,
        "port": str(slapd.ldaps_port),
        "ca_certificate": slapd.tls.ca_pem,
        "new_credential_login": slapd.rotator_dn,
        "new_credential_dn": slapd.rotator_dn,
        "new_credential_password": slapd.rotator_password,
    }
    return directory_data(configuration, **{**fields, **overrides})


def test_test_connection_runs_on_the_unsaved_form_and_stores_nothing(client, bob, slapd, slapd_configuration):
    assert client.login(username="bob", password=PERSONA_PASSWORD)
    url = reverse("rotation:test-unsaved-connection")
    response = client.post(url, unsaved_directory(slapd, slapd_configuration))
    answer = response.json()
    assert answer["ok"] is True, answer
    assert [step["ok"] for step in answer["steps"]] == [True] * len(answer["steps"]) and answer["steps"]
    assert slapd.rotator_password not in response.content.decode()
    assert not PamDirectory.objects.exists() and not PamUser.objects.exists()
    event = AuditEvent.objects.get(event=AuditEvent.CONNECTION_TESTED)
    assert event.outcome == "ok" and event.record_title == "Lab LDAP"
    assert slapd.rotator_password not in event.message

    wrong = client.post(
        url, unsaved_directory(slapd, slapd_configuration, new_credential_password="Wrong-Admin-Secret-3")
    )
    assert wrong.json()["ok"] is False
    assert "Wrong-Admin-Secret-3" not in wrong.content.decode()
    assert not PamUser.objects.exists()

    invalid = client.post(url, unsaved_directory(slapd, slapd_configuration, hostname="")).json()
    assert invalid["ok"] is False and any("Hostname or IP" in error for error in invalid["errors"]), invalid


def test_the_unsaved_test_is_for_operators_and_needs_csrf(db, carol, bob):
    from django.test import Client

    url = reverse("rotation:test-unsaved-connection")
    viewer = Client()
    viewer.force_login(carol)
    assert viewer.post(url, {}).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    assert strict.post(url, {}).status_code == 403
    assert strict.get(url).status_code == 405


# -- 6. The delete page lists what still refers to the record, before the click -----------------


def test_the_delete_page_lists_the_directories_and_users_of_a_configuration_before_the_click(signed_in):
    configuration = make_configuration(title="Busy")
    directory = make_directory(configuration, title="Busy LDAP")
    make_user(configuration=configuration, title="svc-one", resource=directory)
    page = signed_in.get(reverse("records:configuration-delete", args=[configuration.pk])).content.decode()
    assert 'id="delete-referrers"' in page
    assert "1 directory:" in page and "Busy LDAP" in page and "1 user:" in page and "svc-one" in page
    assert 'type="submit" class="btn btn-danger"' not in page  # a click that would be refused is not offered


def test_the_delete_page_names_a_directorys_users_and_its_credential_link(signed_in):
    configuration = make_configuration()
    admin = make_user(configuration=configuration, title="the admin")
    directory = make_directory(configuration, title="Lab", administrative_credential=admin)
    page = signed_in.get(reverse("records:directory-delete", args=[directory.pk])).content.decode()
    assert 'id="delete-credential-link"' in page and "the admin" in page
    assert 'id="delete-referrers"' not in page and "btn btn-danger" in page
    make_user(configuration=configuration, title="rotated", resource=directory)
    page = signed_in.get(reverse("records:directory-delete", args=[directory.pk])).content.decode()
    assert "1 user it rotates" in page and "rotated" in page


def test_the_delete_page_names_the_directories_a_user_administers(signed_in):
    configuration = make_configuration()
    admin = make_user(configuration=configuration, title="the admin")
    make_directory(configuration, title="Administered", administrative_credential=admin)
    page = signed_in.get(reverse("records:user-delete", args=[admin.pk])).content.decode()
    assert "1 directory it administers" in page and "Administered" in page
    free = make_user(configuration=configuration, title="free")
    page = signed_in.get(reverse("records:user-delete", args=[free.pk])).content.decode()
    assert "This cannot be undone" in page and "btn btn-danger" in page


# -- 4. The empty app ------------------------------------------------------------------------------


def test_the_dashboard_shows_the_get_started_path_until_the_first_account(signed_in):
    page = signed_in.get(reverse("records:dashboard")).content.decode()
    assert 'id="get-started"' in page
    assert reverse("records:configuration-create") in page and reverse("records:import") in page
    assert reverse("records:directory-create") not in page  # not before there is a configuration
    configuration = make_configuration()
    page = signed_in.get(reverse("records:dashboard")).content.decode()
    assert reverse("records:directory-create") in page
    make_directory(configuration)
    page = signed_in.get(reverse("records:dashboard")).content.decode()
    assert reverse("records:user-create") in page
    make_user(configuration=configuration)
    assert 'id="get-started"' not in signed_in.get(reverse("records:dashboard")).content.decode()


@pytest.mark.parametrize("name", ["configuration", "directory", "user"])
def test_an_empty_list_offers_the_create_button_to_those_who_may_create(client, alice, carol, name):
    make_configuration() if name != "configuration" else None
    url = reverse(f"records:{name}-list")
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert (
        'id="empty-state"' in page and reverse(f"records:{name}-create") in page.split('id="empty-state"')[1]
    )
    assert 'id="empty-state"' not in client.get(url + "?q=nothing").content.decode()
    client.force_login(carol)
    page = client.get(url).content.decode()
    assert 'id="empty-state"' in page and reverse(f"records:{name}-create") not in page


def test_a_person_with_no_role_is_told_whom_to_ask_instead_of_a_403(client, alice, dave):
    alice.first_name, alice.last_name = "Alice", "Admin"
    alice.save()
    make_configuration(title="Secret network")
    client.force_login(dave)
    response = client.get(reverse("records:dashboard"))
    page = response.content.decode()
    assert response.status_code == 200 and 'id="no-role"' in page
    assert "Alice Admin" in page and "mailto:alice@example.test" in page
    assert 'id="get-started"' not in page and "Secret network" not in page and "dashboard-counts" not in page
