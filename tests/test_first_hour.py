"""The new admin's first hour (issue 16): record forms that speak people, defaults, empty states."""

from __future__ import annotations

import pytest
from django.urls import reverse

from records import schedules
from records.forms import RETYPE_SECRET, ConfigurationForm, UserForm
from records.models import PamConfiguration, PamUser
from rotation.models import AuditEvent
from tests.conftest import make_configuration
from tests.test_records_forms import configuration_data, user_data


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


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
