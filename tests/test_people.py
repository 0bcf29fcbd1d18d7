"""People in the app: add, grant, deactivate, reset the second factor, own password — all audited (issue 21)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts import policy
from accounts.models import Grant, GrantRole, Profile, Source
from audit.models import AuditEvent
from tests.conftest import PERSONA_PASSWORD, database_text, make_configuration, make_user

pytestmark = pytest.mark.django_db


def test_an_administrator_adds_a_person_who_signs_in_with_the_one_time_password(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("accounts:person-add"),
        {"username": "Erin", "first_name": "Erin", "email": "erin@example.test", "role": "Operators"},
    )
    assert response.status_code == 200
    assert "no-store" in response.get("Cache-Control", "") or "max-age=0" in response.get("Cache-Control", "")
    password = re.search(r'id="one-time-password">([^<]+)<', response.content.decode()).group(1)
    erin = User.objects.get(username="erin")
    assert erin.check_password(password) and Profile.source_of(erin) == Source.LOCAL
    assert policy.highest_role(erin) == policy.Role.OPERATOR
    event = AuditEvent.objects.get(event=AuditEvent.PERSON_ADDED)
    assert event.actor == alice and "erin" in event.message and password not in event.message
    assert password not in database_text()
    client.logout()
    assert client.login(username="erin", password=password)


def test_only_administrators_of_every_configuration_add_people(client, bob):
    client.force_login(bob)
    assert client.post(reverse("accounts:person-add"), {"username": "x"}).status_code == 403
    assert not User.objects.filter(username="x").exists()


def test_a_grant_is_given_and_taken_back_on_the_people_page(client, alice, carol):
    red, blue = make_configuration(title="Red"), make_configuration(title="Blue")
    account = make_user(red, title="Red account")
    client.force_login(alice)
    response = client.post(
        reverse("accounts:grant-add"),
        {"person": carol.pk, "role": GrantRole.OPERATOR, "configurations": [red.pk]},
    )
    assert response.status_code == 302
    grant = Grant.objects.get()
    carol = User.objects.get(pk=carol.pk)
    assert policy.can(carol, policy.Action.ROTATE, account)
    assert not policy.can(carol, policy.Action.ROTATE, make_user(blue))
    assert client.post(reverse("accounts:grant-remove", args=[grant.pk])).status_code == 302
    assert not Grant.objects.exists()
    messages = list(
        AuditEvent.objects.filter(event=AuditEvent.ROLE_CHANGED).values_list("message", flat=True)
    )
    assert any("granted Operator on Red to carol" in m for m in messages)
    assert any("took back Operator from carol" in m for m in messages)


def test_a_grant_needs_one_person_or_one_group_and_some_configurations(client, alice, carol):
    client.force_login(alice)
    client.post(reverse("accounts:grant-add"), {"person": carol.pk, "role": GrantRole.VIEWER})
    client.post(
        reverse("accounts:grant-add"),
        {"person": carol.pk, "group_dn": "cn=x", "role": 1, "all_configurations": "on"},
    )
    assert not Grant.objects.exists()
    client.post(
        reverse("accounts:grant-add"), {"group_dn": "cn=ops,dc=x", "role": 1, "all_configurations": "on"}
    )
    assert Grant.objects.get().group_dn == "cn=ops,dc=x"


def test_changing_ones_own_password_is_audited(client, carol):
    client.force_login(carol)
    new = "a brand new passphrase 77"
    response = client.post(
        reverse("accounts:password-change"),
        {"old_password": PERSONA_PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(event=AuditEvent.PASSWORD_CHANGED)
    assert event.actor == carol and new not in event.message


def test_deactivating_and_resetting_the_second_factor_are_audited(client, alice, carol):
    client.force_login(alice)
    client.post(reverse("accounts:person-change", args=[carol.pk]), {f"p{carol.pk}-role": "Viewers"})
    assert not User.objects.get(pk=carol.pk).is_active
    client.post(reverse("accounts:person-reset-mfa", args=[carol.pk]))
    events = set(AuditEvent.objects.values_list("event", flat=True))
    assert {AuditEvent.ROLE_CHANGED, AuditEvent.MFA_DEVICE_RESET} <= events


def test_the_django_admin_is_for_superusers_and_audits_a_new_person(client, alice):
    client.force_login(alice)  # an Administrator, not a superuser
    assert client.get("/admin/auth/user/add/").status_code == 302
    root = User.objects.create_superuser("root", "root@example.test", "x")
    client.force_login(root)
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "frank",
            "password1": "a long pass phrase 1",
            "password2": "a long pass phrase 1",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:500]
    event = AuditEvent.objects.get(event=AuditEvent.PERSON_ADDED)
    assert event.actor == root and "frank" in event.message and "pass phrase" not in event.message
