"""What a new admin still tripped over in the second hour (issue 25, Friction): one test per item."""

from __future__ import annotations

import re
import time

import pytest
import time_machine
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from accounts.timezones import zone_names
from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent
from ops import siem
from rotation.discovery import readable_dn
from tests.conftest import make_configuration, make_directory, make_user
from tests.test_mfa import current_code, enrol, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


def test_the_discovery_results_page_answers_a_get_so_it_can_be_reloaded(admin_client):
    directory = make_directory(make_configuration(), port=9)  # refuses at once: discovery fails
    response = admin_client.get(reverse("rotation:discover-accounts", args=[directory.pk]), {"q": "x"})
    assert response.status_code == 302 and response.url == directory.get_absolute_url()  # was 405
    page = admin_client.get(directory.get_absolute_url()).content.decode()
    assert "Discovery failed" in page
    form = re.search(r'<form method="(\w+)"[^>]*id="discover-panel"', page)
    assert form and form.group(1) == "get"


def test_discovery_shows_dns_people_can_read():
    assert readable_dn(r"CN=Smith\2C John,OU=IT\2C Ops,DC=x") == r"CN=Smith\, John,OU=IT\, Ops,DC=x"
    assert readable_dn(r"CN=Ren\C3\A9e,DC=x") == "CN=Renée,DC=x"
    assert readable_dn(r"CN=odd\FF,DC=x") == r"CN=odd\FF,DC=x"  # not UTF-8: left as it was


def test_audit_export_api_and_siem_name_the_record_by_its_uid(admin_client, alice):
    pam_user = make_user(title="Uid user")
    audit.record_event(AuditEvent.RECORD_UPDATED, instance=pam_user, actor=Actor.person(alice))
    event = AuditEvent.objects.get(record_id=pam_user.pk, event=AuditEvent.RECORD_UPDATED)
    assert pam_user.uid != str(pam_user.pk)
    exported = next(audit.export_rows(AuditEvent.objects.filter(pk=event.pk)))
    assert exported["record_uid"] == pam_user.uid
    assert siem.as_dict(event)["record_uid"] == pam_user.uid
    response = admin_client.get(reverse("rotation:audit-log"), {"format": "json"})
    if response.status_code == 200 and response["Content-Type"].startswith("application/json"):
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert pam_user.uid in body.decode()
    api = admin_client.get(reverse("api:audit-event-list"))
    assert api.status_code == 200
    listed = [row for row in api.json()["results"] if row["id"] == event.pk]
    assert listed and listed[0]["record_uid"] == pam_user.uid
    pam_user.delete()  # the UID stays in the log after the record is gone
    event.refresh_from_db()
    assert event.record_uid == listed[0]["record_uid"]


def test_the_sign_in_page_offers_a_directory_account_only_when_one_is_configured(client):
    assert "directory account" not in client.get(reverse("login")).content.decode()
    with override_settings(AUTH_LDAP_SERVER_URI="ldaps://ldap.example.test"):
        assert "Use your directory account" in client.get(reverse("login")).content.decode()


def test_a_refused_code_says_how_long_to_wait(client, bob):
    client.force_login(bob)
    device, _ = enrol(client, bob)
    client.post(reverse("logout"))
    sign_in(client, bob)
    with time_machine.travel(time.time(), tick=False) as clock:
        wrong = "000000" if current_code(device, 1) != "000000" else "111111"
        client.post(reverse("accounts:mfa-verify"), {"code": wrong})
        client.post(reverse("accounts:mfa-verify"), {"code": wrong})  # a second wrong code: 2 s
        refused = client.post(reverse("accounts:mfa-verify"), {"code": current_code(device, 1)})
        assert refused.status_code == 400
        text = refused.content.decode()
        assert "wait a little" not in text and re.search(r"retry in [12] s\b", text), text
        clock.shift(3)
        assert (
            client.post(reverse("accounts:mfa-verify"), {"code": current_code(device, 1)}).status_code == 302
        )


def test_the_zone_pickers_leave_out_factory_and_localtime(admin_client):
    assert "Europe/Berlin" in zone_names() and "UTC" in zone_names()
    assert not {"Factory", "localtime"} & set(zone_names())
    page = admin_client.get(reverse("records:configuration-create")).content.decode()
    assert "Europe/Berlin" in page and '"Factory"' not in page and '"localtime"' not in page


def test_the_people_link_is_active_on_its_page_only(admin_client):
    def people_link(url: str) -> str:
        page = admin_client.get(url).content.decode()
        return re.search(r'<a class="([^"]*)"[^>]*id="nav-people"', page).group(1)

    assert "active" not in people_link(reverse("records:dashboard"))
    assert "active" not in people_link(reverse("accounts:security"))
    assert "active" in people_link(reverse("accounts:people"))


def test_rotating_many_accounts_asks_first_with_the_count(admin_client):
    configuration = make_configuration()
    directory = make_directory(configuration)
    for n in range(3):
        make_user(
            configuration, title=f"Many {n}", resource=directory, rotation_enabled=True, password="P-1!x"
        )
    page = admin_client.get(directory.get_absolute_url()).content.decode()
    assert f'data-confirm="Rotate the passwords of 3 accounts of {directory} now?"' in page
    app_js = (settings.BASE_DIR / "static" / "js" / "app.js").read_text()
    assert "window.confirm(text)" in app_js and "dataset.confirmCount" in app_js


def test_a_blank_complexity_minimum_follows_the_configuration_not_zero():
    from records.forms import UserForm
    from tests.test_records_forms import user_data

    configuration = make_configuration(default_password_complexity="24,2,3,4,5")
    data = user_data(configuration, complexity_length="30", complexity_upper="6")
    form = UserForm(data)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["password_complexity"].startswith("30,6,3,4,5")
    blank = UserForm(user_data(configuration))  # no complexity typed: the configuration's, as before
    assert blank.is_valid(), blank.errors
    assert blank.cleaned_data["password_complexity"] == ""


def test_the_configuration_page_says_the_complexity_in_words(admin_client):
    configuration = make_configuration(default_password_complexity="20,1,1,1,1")
    page = admin_client.get(configuration.get_absolute_url()).content.decode()
    shown = re.search(r'id="default-complexity"[^>]*>([^<]*)<', page).group(1)
    assert shown == "20 characters, at least 1 uppercase, 1 lowercase, 1 digit, 1 special"


def test_the_scripts_page_says_where_the_scripts_directory_is_and_that_it_is_missing(admin_client, tmp_path):
    pam_user = make_user(title="Scripted")
    url = reverse("scripts:attach", args=["user", pam_user.pk])
    with override_settings(SCRIPTS_DIR=tmp_path / "absent"):
        page = admin_client.get(url).content.decode()
        assert str(tmp_path / "absent") in page and 'id="scripts-dir-missing"' in page
    with override_settings(SCRIPTS_DIR=tmp_path):
        page = admin_client.get(url).content.decode()
        assert str(tmp_path) in page and 'id="scripts-dir-missing"' not in page


def test_redoc_loads_its_logo_from_here_not_a_cdn(admin_client):
    page = admin_client.get(reverse("api:redoc")).content.decode()
    bundle_url = reverse("api:redoc-bundle")
    assert f'src="{bundle_url}"' in page
    bundle = admin_client.get(bundle_url)
    assert bundle.status_code == 200 and bundle["Content-Type"].startswith("text/javascript")
    text = bundle.content.decode()
    assert "cdn.redoc.ly" not in text and "favicon.svg" in text and "API docs by Redocly" in text


@pytest.fixture
def ol(db, slapd, unique_name):
    from tests.test_rotation import make_env

    return make_env(slapd, unique_name)


def test_a_successful_rotation_clears_drift_and_check_now_runs_the_heartbeat(admin_client, ol, unique_name):
    from records.models import AccountState, PamUser
    from rotation.models import AttemptState
    from tests.test_heartbeat import change_out_of_band, rotated_earlier
    from tests.test_rotation import rotate

    user = ol.account(unique_name("drift"))
    rotated_earlier(user)
    change_out_of_band(ol.server, user.distinguished_name, "Out-Of-Band-Pass-1!")
    page = admin_client.get(user.get_absolute_url()).content.decode()
    assert 'id="check-now"' in page
    admin_client.post(reverse("rotation:heartbeat-now", args=[user.pk]))  # the worker runs it (sync in tests)
    assert PamUser.objects.get(pk=user.pk).account_state == AccountState.DRIFTED
    assert rotate(user).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert user.account_state == AccountState.OK  # not "Changed outside pamrotate" until the next heartbeat
    assert "Changed outside pamrotate" not in admin_client.get(user.get_absolute_url()).content.decode()
    admin_client.post(reverse("rotation:heartbeat-now", args=[user.pk]))
    user.refresh_from_db()
    assert (
        user.account_state == AccountState.OK
        and user.account_state_detail == "the stored password opens the account"
    )


def test_the_attempt_heading_names_the_id_as_an_id_not_a_try_count(admin_client):
    from rotation.models import AttemptState, RotationAttempt

    attempt = RotationAttempt.objects.create(user=make_user(title="Tried"), state=AttemptState.FAILED)
    page = admin_client.get(attempt.get_absolute_url()).content.decode()
    heading = re.sub(r"<[^>]+>", "", re.search(r"<h1.*?</h1>", page, re.S).group())
    assert f"(id {attempt.pk})" in heading and f"attempt {attempt.pk}" not in heading


def test_the_user_form_takes_the_configuration_from_the_directory():
    from records.forms import UserForm
    from tests.test_records_forms import user_data

    configuration = make_configuration(title="Implied")
    directory = make_directory(configuration)
    form = UserForm({**user_data(configuration, directory), "configuration": ""})
    assert form.is_valid(), form.errors
    assert form.save().configuration == configuration
    neither = UserForm({**user_data(configuration), "configuration": ""})
    assert not neither.is_valid() and "configuration" in neither.errors


def test_the_adopt_form_shows_complexity_as_fields_like_the_user_form():
    from rotation.forms import AdoptForm

    form = AdoptForm()
    assert {"complexity_length", "complexity_upper", "complexity_special_chars"} <= set(form.fields)
    schedule = {"schedule_type": "USE_DEFAULT", "schedule_interval": 1, "schedule_tz": "UTC"}
    typed = AdoptForm({**schedule, "complexity_length": "32", "complexity_digits": "4"})
    assert typed.is_valid(), typed.errors
    assert typed.instance.password_complexity.startswith("32,")
    blank = AdoptForm(schedule)
    assert blank.is_valid() and blank.instance.password_complexity == ""  # blank: the configuration's
