"""Who may open and change which record page; sign-in lock-outs; POST-only sign-out."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from audit.actors import Actor
from records.models import PamConfiguration, PamDirectory, PamUser
from tests.conftest import PERSONA_PASSWORD, make_configuration, make_directory, make_user
from tests.test_records_forms import configuration_data, directory_data, user_data

ANYONE_WITH_A_ROLE = {"carol", "bob", "alice"}
ADMINISTRATORS = {"alice"}

# url name, method, which record the URL names, who may
MATRIX = [
    # Someone with no role gets a page saying so and whom to ask, not a 403 (issue 16).
    ("records:dashboard", "get", None, {"dave", *ANYONE_WITH_A_ROLE}),
    ("records:configuration-list", "get", None, ANYONE_WITH_A_ROLE),
    ("records:directory-list", "get", None, ANYONE_WITH_A_ROLE),
    ("records:user-list", "get", None, ANYONE_WITH_A_ROLE),
    ("records:configuration-detail", "get", "configuration", ANYONE_WITH_A_ROLE),
    ("records:directory-detail", "get", "directory", ANYONE_WITH_A_ROLE),
    ("records:user-detail", "get", "user", ANYONE_WITH_A_ROLE),
    ("records:configuration-create", "get", None, ADMINISTRATORS),
    ("records:configuration-create", "post", None, ADMINISTRATORS),
    ("records:directory-create", "get", None, ADMINISTRATORS),
    ("records:directory-create", "post", None, ADMINISTRATORS),
    ("records:user-create", "get", None, ADMINISTRATORS),
    ("records:user-create", "post", None, ADMINISTRATORS),
    ("records:configuration-edit", "get", "configuration", ADMINISTRATORS),
    ("records:configuration-edit", "post", "configuration", ADMINISTRATORS),
    ("records:directory-edit", "get", "directory", ADMINISTRATORS),
    ("records:directory-edit", "post", "directory", ADMINISTRATORS),
    ("records:user-edit", "get", "user", ADMINISTRATORS),
    ("records:user-edit", "post", "user", ADMINISTRATORS),
    ("records:configuration-delete", "get", "spare_configuration", ADMINISTRATORS),
    ("records:configuration-delete", "post", "spare_configuration", ADMINISTRATORS),
    ("records:directory-delete", "get", "spare_directory", ADMINISTRATORS),
    ("records:directory-delete", "post", "spare_directory", ADMINISTRATORS),
    ("records:user-delete", "get", "spare_user", ADMINISTRATORS),
    ("records:user-delete", "post", "spare_user", ADMINISTRATORS),
]


@pytest.fixture
def records(db):
    directory = make_directory(title="Corp LDAP")
    configuration = directory.configuration
    return {
        "configuration": configuration,
        "directory": directory,
        "user": make_user(resource=directory, distinguished_name="cn=svc,dc=example,dc=com"),
        "spare_configuration": make_configuration(),
        "spare_directory": make_directory(configuration),
        "spare_user": make_user(configuration),
    }


def post_data(name: str, records: dict) -> dict:
    """Return valid form data for create and edit URLs, none for the rest."""
    configuration, directory = records["configuration"], records["directory"]
    if name == "records:configuration-create":
        return configuration_data(title="New configuration")
    if name == "records:configuration-edit":
        return configuration_data(title=configuration.title)
    if name == "records:directory-create":
        return directory_data(configuration, title="New directory")
    if name == "records:directory-edit":
        return directory_data(configuration, title=directory.title)
    if name == "records:user-create":
        return user_data(configuration, directory, title="New user")
    if name == "records:user-edit":
        return user_data(configuration, directory, title=records["user"].title)
    return {}


@pytest.mark.parametrize("persona", ["anonymous", "dave", "carol", "bob", "alice"])
@pytest.mark.parametrize(("name", "method", "target", "allowed"), MATRIX)
def test_permission_matrix(client, personas, records, persona, name, method, target, allowed):
    if persona != "anonymous":
        client.force_login(personas[persona])
    url = reverse(name, args=[records[target].pk] if target else [])
    response = getattr(client, method)(url, post_data(name, records))
    if persona == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
    elif persona in allowed:
        assert response.status_code == (200 if method == "get" else 302), response.content[:2000]
    else:
        assert response.status_code == 403
        assert b"You are not allowed to do that" in response.content


def test_a_superuser_without_a_role_may_do_everything(client, records):
    client.force_login(User.objects.create_superuser("root", "root@example.test", "x"))
    assert client.get(reverse("records:user-create")).status_code == 200
    response = client.post(reverse("records:user-delete", args=[records["spare_user"].pk]))
    assert response.status_code == 302
    assert not PamUser.objects.filter(pk=records["spare_user"].pk).exists()


@pytest.mark.parametrize("persona", ["carol", "bob"])
def test_viewers_and_operators_see_no_change_buttons(client, personas, records, persona):
    client.force_login(personas[persona])
    pam_user = records["user"]
    page = client.get(reverse("records:user-detail", args=[pam_user.pk])).content.decode()
    assert reverse("records:user-edit", args=[pam_user.pk]) not in page
    assert reverse("records:user-delete", args=[pam_user.pk]) not in page
    page = client.get(reverse("records:user-list")).content.decode()
    assert reverse("records:user-create") not in page


def test_administrators_see_the_change_buttons(client, alice, records):
    client.force_login(alice)
    pam_user = records["user"]
    page = client.get(reverse("records:user-detail", args=[pam_user.pk])).content.decode()
    assert reverse("records:user-edit", args=[pam_user.pk]) in page
    assert reverse("records:user-delete", args=[pam_user.pk]) in page


def test_denied_posts_change_nothing(client, bob, records):
    client.force_login(bob)
    before = (PamConfiguration.objects.count(), PamDirectory.objects.count(), PamUser.objects.count())
    client.post(reverse("records:user-delete", args=[records["spare_user"].pk]))
    client.post(reverse("records:configuration-create"), configuration_data(title="Sneaky"))
    after = (PamConfiguration.objects.count(), PamDirectory.objects.count(), PamUser.objects.count())
    assert before == after


# Sign-in and sign-out ---------------------------------------------------------------------------


def _sign_in(client, username: str, password: str, address: str = "192.0.2.10"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_a_persona_signs_in_and_lands_on_the_dashboard(client, carol):
    response = _sign_in(client, "carol", PERSONA_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("records:dashboard")


def test_sign_in_is_refused_after_too_many_failures_even_with_the_right_password(client, carol):
    for _ in range(settings.SIGNIN_FAILURE_LIMIT):
        response = _sign_in(client, "carol", "wrong password")
        assert response.status_code == 200
        assert b"Too many failed sign-in attempts" not in response.content
    response = _sign_in(client, "carol", PERSONA_PASSWORD)
    assert response.status_code == 200
    assert b"Too many failed sign-in attempts; try again in 15 minutes" in response.content
    assert "_auth_user_id" not in client.session


def test_the_limit_counts_per_username_from_any_address(client, carol):
    for number in range(settings.SIGNIN_FAILURE_LIMIT):
        _sign_in(client, "carol", "wrong password", address=f"192.0.2.{number + 1}")
    response = _sign_in(client, "carol", PERSONA_PASSWORD, address="198.51.100.7")
    assert b"Too many failed sign-in attempts" in response.content


def test_made_up_names_from_one_address_do_not_lock_out_a_real_user_there(client, carol):
    # Unknown names have their own, higher, per-address limit (tests/test_signin.py).
    for number in range(settings.SIGNIN_FAILURE_LIMIT):
        _sign_in(client, f"guess{number}", "wrong password")
    assert _sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302


def test_the_limit_expires_after_the_window(client, carol):
    with time_machine.travel(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), tick=False) as clock:
        for _ in range(settings.SIGNIN_FAILURE_LIMIT):
            _sign_in(client, "carol", "wrong password")
        assert b"Too many" in _sign_in(client, "carol", PERSONA_PASSWORD).content
        clock.shift(settings.SIGNIN_LOCKOUT_MINUTES * 60 + 1)
        assert _sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302


def test_sign_out_needs_post(client, carol):
    client.force_login(carol)
    assert client.get(reverse("logout")).status_code == 405
    assert "_auth_user_id" in client.session
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("records:dashboard")).status_code == 302


def test_a_django_permission_without_a_role_grants_nothing(client, records):
    # accounts.policy decides from roles and grants only: a permission added by hand opens nothing.
    editor = User.objects.create_user("eve", "eve@example.test", "x")
    editor.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_pamuser", "change_pamuser"], content_type__app_label="records"
        )
    )
    client.force_login(editor)
    pam_user = records["spare_user"]
    data = user_data(records["configuration"], records["directory"], title=pam_user.title, login="renamed")
    response = client.post(reverse("records:user-edit", args=[pam_user.pk]), data)
    assert response.status_code == 403
    pam_user.refresh_from_db()
    assert pam_user.login != "renamed"


# Admin ------------------------------------------------------------------------------------------


def test_only_superusers_may_touch_django_q_schedules(client, records):
    staff = User.objects.create_user("staff", "staff@example.test", "x", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_q"))
    client.force_login(staff)
    # The admin's gate (accounts.policy, "use the Django admin") sends a non-superuser to its sign-in.
    for name in ["admin:django_q_schedule_changelist", "admin:django_q_schedule_add"]:
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(User.objects.create_superuser("root", "root@example.test", "x"))
    assert client.get(reverse("admin:django_q_schedule_changelist")).status_code == 200


def test_the_admin_never_shows_secrets_and_keeps_the_audit_log_read_only(client, records):
    from audit.models import AuditEvent

    pam_user = make_user(records["configuration"], password="Admin-Hidden-3")
    event = AuditEvent.objects.create(event="record_add", record_title="x", message="hello")
    client.force_login(User.objects.create_superuser("root", "root@example.test", "x"))
    page = client.get(reverse("admin:records_pamuser_change", args=[pam_user.pk])).content.decode()
    assert "Admin-Hidden-3" not in page and pam_user.password_encrypted not in page
    assert "password_encrypted" not in page
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    page = client.get(reverse("admin:audit_auditevent_change", args=[event.pk])).content.decode()
    assert 'name="message"' not in page  # shown, not editable
    assert client.post(reverse("admin:audit_auditevent_delete", args=[event.pk])).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


# The Vault path asks the same policy as the pages (issue 21, defects 2 and 5b) ------------------

OLD_PASSWORD, NEW_PASSWORD = "Old-Vault-Password-1!", "New-Vault-Password-2!"


@pytest.fixture
def rotated(db):
    from django.utils import timezone

    from pamrotate import crypto
    from rotation.models import PasswordVersion

    pam_user = make_user(password=NEW_PASSWORD, distinguished_name="cn=v,dc=example,dc=test")
    PasswordVersion.objects.create(
        user=pam_user, password_encrypted=crypto.encrypt(OLD_PASSWORD), replaced_at=timezone.now()
    )
    return pam_user


def test_an_operator_reads_no_previous_password_through_the_vault_path(client, bob, rotated):
    from api import services

    _token, clear = services.issue_token(user=bob, actor=Actor.person(bob))
    response = client.get(f"/v1/ldap/static-cred/{rotated.uid}", HTTP_X_VAULT_TOKEN=clear)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["password"] == NEW_PASSWORD
    assert data["last_password"] == ""  # old versions are for Administrators, as on the pages
    assert OLD_PASSWORD not in response.content.decode()
    # The page refuses him the same version.
    client.force_login(bob)
    version = rotated.password_versions.get()
    page = client.post(reverse("rotation:reveal-password", args=[rotated.pk]), {"version": version.pk})
    assert page.status_code == 403


def test_an_administrator_reads_the_previous_password_through_the_vault_path(client, alice, rotated):
    from api import services

    _token, clear = services.issue_token(user=alice, actor=Actor.person(alice))
    data = client.get(f"/v1/ldap/static-cred/{rotated.uid}", HTTP_X_VAULT_TOKEN=clear).json()["data"]
    assert (data["password"], data["last_password"]) == (NEW_PASSWORD, OLD_PASSWORD)


def test_an_application_cannot_tell_a_name_outside_its_scope_from_a_missing_one(client, rotated):
    from api import services

    mine = make_configuration(title="Mine")
    _application, clear = services.create_application("prober", [mine])
    outside = rotated  # in another configuration
    for prefix, header in [
        ("/v1/ldap/static-cred/", "HTTP_X_VAULT_TOKEN"),
        ("/api/v1/users/", "HTTP_AUTHORIZATION"),
    ]:
        value = clear if header == "HTTP_X_VAULT_TOKEN" else f"Bearer {clear}"
        suffix = "" if prefix.startswith("/v1/") else "/credential/"
        answers = []
        names = [outside.uid, "NoSuchUid000"] + ([outside.title, "no such account"] if suffix == "" else [])
        for name in names:
            response = client.get(f"{prefix}{name}{suffix}", **{header: value})
            answers.append((response.status_code, response.content))
        assert {status for status, _ in answers} == {403}, answers
        assert len({body for _, body in answers}) == 1, answers
