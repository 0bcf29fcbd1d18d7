"""A credential goes only where it was entered for (issue 21): repointing needs the second factor and the password."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from records import repoint
from records.import_report import ImportRejected
from records.imports import import_projects
from records.models import PamDirectory
from tests.conftest import make_directory, make_user
from tests.test_mfa import enrol
from tests.test_records_forms import directory_data

ADMIN_PASSWORD = "Domain-Admin-Secret-9!"  # noqa: S105 (a test password)
ATTACK = {"hostname": "attacker.example.test", "verify_certificate": False}


@pytest.fixture
def directory(db):
    directory = make_directory(title="Corp AD", hostname="dc1.corp.test")
    credential = make_user(directory.configuration, password=ADMIN_PASSWORD, title="domain admin")
    directory.administrative_credential = credential
    directory.save()
    return directory


def patch(client, directory, body: dict):
    return client.patch(
        f"/api/v1/directories/{directory.uid}/", json.dumps(body), content_type="application/json"
    )


def verified_session(client, user):
    """Sign in and pass the second factor through the pages."""
    client.force_login(user)
    enrol(client, user)


def unchanged(directory) -> bool:
    stored = PamDirectory.objects.get(pk=directory.pk)
    return (stored.hostname, stored.verify_certificate) == ("dc1.corp.test", True)


def test_the_patch_attack_without_a_second_factor_is_refused(client, alice, directory, settings):
    settings.REQUIRE_MFA = True
    client.force_login(alice)  # a password-only session
    response = patch(client, directory, {**ATTACK, "credential_password": ADMIN_PASSWORD})
    assert response.status_code == 403 and "second factor" in response.json()["detail"]
    assert unchanged(directory)


def test_the_patch_attack_with_a_second_factor_but_no_password_is_refused(client, alice, directory, settings):
    settings.REQUIRE_MFA = True
    verified_session(client, alice)
    response = patch(client, directory, ATTACK)
    assert response.status_code == 403
    assert "type the administrative credential's password again" in response.json()["detail"]
    wrong = patch(client, directory, {**ATTACK, "credential_password": "guess"})
    assert wrong.status_code == 403
    assert unchanged(directory)
    assert ADMIN_PASSWORD not in response.content.decode()


def test_the_patch_with_a_second_factor_and_the_password_repoints_and_is_audited(
    client, alice, directory, settings
):
    settings.REQUIRE_MFA = True
    verified_session(client, alice)
    response = patch(client, directory, {**ATTACK, "credential_password": ADMIN_PASSWORD})
    assert response.status_code == 200, response.content
    assert not unchanged(directory)
    event = AuditEvent.objects.filter(message__contains="Credential destination changed").get()
    assert "hostname 'dc1.corp.test' → 'attacker.example.test'" in event.message
    assert "verify_certificate True → False" in event.message
    assert event.actor == alice and ADMIN_PASSWORD not in event.message


def test_an_unverified_proof_is_refused_even_with_the_password(directory):
    directory.hostname = "attacker.example.test"
    with pytest.raises(repoint.RepointRefused, match="second factor"):
        repoint.check(directory, repoint.Proof(verified=False, password=ADMIN_PASSWORD))
    with pytest.raises(repoint.RepointRefused):
        repoint.check(directory, None)
    assert repoint.check(directory, repoint.Proof(verified=True, password=ADMIN_PASSWORD))


@pytest.mark.parametrize(
    "field,value",
    [
        ("port", 1636),
        ("alternative_ips", "192.0.2.66"),
        ("use_ssl", False),
        ("start_tls", True),
        ("ca_certificate", "x"),
        ("directory_type", "active_directory"),
    ],
)
def test_every_destination_field_needs_the_proof(directory, field, value):
    setattr(directory, field, value)
    with pytest.raises(repoint.RepointRefused):
        repoint.check(directory, repoint.Proof(verified=True))


def test_fields_that_do_not_move_the_credential_need_nothing(directory):
    directory.title, directory.user_match, directory.discovery_filter = "Renamed", "ou=x,dc=corp", "(uid=*)"
    assert repoint.check(directory, None) == []


def test_a_new_directory_may_not_borrow_a_stored_credential_without_its_password(directory):
    borrowed = PamDirectory(
        title="Evil",
        configuration=directory.configuration,
        hostname="attacker.example.test",
        directory_type=directory.directory_type,
        administrative_credential=directory.administrative_credential,
    )
    with pytest.raises(repoint.RepointRefused):
        repoint.check(borrowed, repoint.Proof(verified=True, password="guess"))
    assert repoint.check(borrowed, repoint.Proof(verified=True, password=ADMIN_PASSWORD))


def test_moving_a_user_to_another_directory_needs_its_password(directory):
    pam_user = make_user(directory.configuration, password="User-Secret-1!", resource=directory)
    pam_user.resource = make_directory(directory.configuration, hostname="attacker.example.test")
    with pytest.raises(repoint.RepointRefused, match="account's password"):
        repoint.check(pam_user, repoint.Proof(verified=True))
    assert repoint.check(pam_user, repoint.Proof(verified=True, password="User-Secret-1!"))


def test_the_directory_page_refuses_a_repoint_without_the_password_and_saves_it_with(
    client, alice, directory
):
    client.force_login(alice)
    url = reverse("records:directory-edit", args=[directory.pk])
    data = directory_data(
        directory.configuration,
        title=directory.title,
        hostname="attacker.example.test",
        administrative_credential=directory.administrative_credential.pk,
    )
    refused = client.post(url, data)
    assert refused.status_code == 200 and "type the administrative credential" in refused.content.decode()
    assert PamDirectory.objects.get(pk=directory.pk).hostname == "dc1.corp.test"
    saved = client.post(url, {**data, "credential_password": ADMIN_PASSWORD})
    assert saved.status_code == 302
    assert PamDirectory.objects.get(pk=directory.pk).hostname == "attacker.example.test"


def test_an_operator_cannot_test_a_stored_credential_against_another_host(client, bob, directory):
    client.force_login(bob)
    data = directory_data(
        directory.configuration,
        title=directory.title,
        hostname="attacker.example.test",
        administrative_credential=directory.administrative_credential.pk,
    )
    url = reverse("rotation:test-unsaved-connection") + f"?directory={directory.pk}"
    answer = client.post(url, data).json()
    assert answer["ok"] is False and answer["steps"] == []
    assert any("type the administrative credential" in error for error in answer["errors"])
    fresh = client.post(reverse("rotation:test-unsaved-connection"), data).json()
    assert fresh["ok"] is False and fresh["steps"] == []  # a new form naming the stored credential


def test_an_import_cannot_link_a_new_directory_to_a_stored_credential_without_its_password(directory):
    def project(**extra) -> dict:
        resource = {
            "type": "pamDirectory",
            "title": "Evil directory",
            "host": "attacker.example.test",
            "port": 636,
            "use_ssl": True,
            "directory_type": "openldap",
            "pam_settings": {"connection": {"administrative_credentials": "domain admin"}},
        }
        users = [{"type": "pamUser", "title": "domain admin", "login": "x", **extra}]
        return {
            "project": "p",
            "pam_configuration": {"title": directory.configuration.title},
            "pam_data": {"resources": [resource], "users": users},
        }

    with pytest.raises(ImportRejected) as caught:
        import_projects([project()])
    assert "must carry its password" in "\n".join(caught.value.report.lines())
    assert not PamDirectory.objects.filter(title="Evil directory").exists()
