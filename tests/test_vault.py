"""Vault's LDAP secrets engine paths, driven by the real hvac client against a live server and slapd."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest
from django.core.cache import cache
from django.urls import reverse

from api import services
from api.throttles import TokenRateThrottle
from rotation.models import AttemptState, AuditEvent, RotationAttempt
from tests.conftest import make_configuration, make_user
from tests.test_rotation import STRONG, make_env

VAULT_KEYS = {"username", "password", "last_password", "last_vault_rotation", "rotation_period", "ttl", "dn"}


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    cache.clear()
    yield
    cache.clear()


def test_hvac_rotates_then_reads_a_static_credential_that_binds_on_slapd(
    live_server, transactional_db, slapd, unique_name
):
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("vault"), schedule_type="DAILY", schedule_time="03:00")
    _application, clear = services.create_application("vault-reader", [env.directory.configuration])
    client = hvac.Client(url=live_server.url, token=clear)

    rotated = client.secrets.ldap.rotate_static_credentials(name=user.uid, mount_point="ldap")
    assert rotated.status_code == 204
    attempt = RotationAttempt.objects.get(user=user)
    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message

    response = client.secrets.ldap.generate_static_credentials(name=user.title, mount_point="ldap")
    data = response["data"]
    assert set(data) == VAULT_KEYS
    assert response["lease_id"] == "" and response["renewable"] is False and response["mount_type"] == "ldap"
    assert data["username"] == user.login and data["dn"] == user.distinguished_name
    assert data["last_password"] == STRONG and data["password"] != STRONG
    assert slapd.can_bind(user.distinguished_name, data["password"])
    assert not slapd.can_bind(user.distinguished_name, STRONG)
    user.refresh_from_db()
    assert data["last_vault_rotation"] == user.last_rotated_at.isoformat()
    # ttl counts to the next rotation, at most PAMROTATE_VAULT_MAX_TTL (readers come back that often)
    assert 0 < data["ttl"] <= 300 and 0 < data["rotation_period"] <= 86400

    reads = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ, record_id=user.pk)
    assert reads.count() == 1  # one read, one event, for the current and the previous password
    assert reads.get().message == "Read the current and previous password"
    assert {event.actor_name for event in reads} == {"application:vault-reader"}
    assert {event.remote_address for event in reads} == {"127.0.0.1"}


def test_hvac_sees_vaults_errors(live_server, transactional_db, unique_name):
    configuration = make_configuration(title=unique_name("cfg"))
    user = make_user(configuration, title=unique_name("role"), password=STRONG)
    stranger = make_user(make_configuration(title=unique_name("other")), password=STRONG)
    application, clear = services.create_application("hvac-errors", [configuration])
    client = hvac.Client(url=live_server.url, token=clear)

    # An application is told "permission denied" for a name it may not see and one that does not exist.
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.ldap.generate_static_credentials(name="no-such-role", mount_point="ldap")
    with pytest.raises(hvac.exceptions.Forbidden) as denied:
        client.secrets.ldap.generate_static_credentials(name=stranger.title, mount_point="ldap")
    assert denied.value.errors == ["permission denied"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.ldap.generate_static_credentials(name=user.title, mount_point="not-the-mount")
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        client.secrets.ldap.rotate_static_credentials(name=user.title, mount_point="ldap")
    assert any("Rotation is turned off" in error for error in refused.value.errors)

    services.revoke_token(application.tokens.get())
    with pytest.raises(hvac.exceptions.Forbidden) as revoked:
        client.secrets.ldap.generate_static_credentials(name=user.title, mount_point="ldap")
    assert revoked.value.errors[0] == "permission denied"
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=live_server.url).secrets.ldap.generate_static_credentials(name=user.title)
    assert not AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ, record_id=stranger.pk).exists()


def test_the_static_cred_envelope_is_vaults_and_names_are_titles_or_uids(client, db, bob):
    user = make_user(title="db/reporting", password=STRONG, distinguished_name="cn=r,dc=example,dc=test")
    _token, clear = services.issue_token(user=bob, actor=bob)
    for name in [user.uid, "db/reporting"]:
        response = client.get(f"/v1/ldap/static-cred/{name}", HTTP_X_VAULT_TOKEN=clear)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert set(body) == {
            "request_id",
            "lease_id",
            "renewable",
            "lease_duration",
            "data",
            "wrap_info",
            "warnings",
            "auth",
            "mount_type",
        }
        assert body["data"] == {
            "username": user.login,
            "password": STRONG,
            "last_password": "",
            "last_vault_rotation": None,
            "rotation_period": 0,
            "ttl": 300,  # no schedule: come back after PAMROTATE_VAULT_MAX_TTL
            "dn": "cn=r,dc=example,dc=test",
        }
    assert reverse("api:vault-static-cred", args=["x"]) == "/v1/ldap/static-cred/x"


def test_the_vault_paths_keep_the_roles_and_the_rate_limit(client, db, carol, bob, monkeypatch):
    user = make_user(password=STRONG)
    _token, carols = services.issue_token(user=carol, actor=carol)
    viewer = client.get(f"/v1/ldap/static-cred/{user.uid}", HTTP_X_VAULT_TOKEN=carols)
    assert viewer.status_code == 403 and viewer.json() == {"errors": ["permission denied"]}
    rotate = client.post(f"/v1/ldap/rotate-role/{user.uid}", HTTP_X_VAULT_TOKEN=carols)
    assert rotate.status_code == 403

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "2/minute"})
    _token, bobs = services.issue_token(user=bob, actor=bob)
    for _ in range(2):
        assert client.get(f"/v1/ldap/static-cred/{user.uid}", HTTP_X_VAULT_TOKEN=bobs).status_code == 200
    limited = client.get(f"/v1/ldap/static-cred/{user.uid}", HTTP_X_VAULT_TOKEN=bobs)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert list(limited.json()) == ["errors"]
