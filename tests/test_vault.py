"""Vault's LDAP secrets engine paths, driven by the real hvac client against a live server and slapd."""

from __future__ import annotations

import datetime as dt
import io
import json
from types import SimpleNamespace

import hvac
import hvac.exceptions
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api import approle, services, vault
from api.models import Application, AppRole, Token
from api.throttles import TokenRateThrottle
from audit.actors import Actor
from audit.models import AuditEvent
from rotation.models import AttemptState, RotationAttempt
from tests.conftest import database_text, examples, make_configuration, make_user
from tests.test_rotation import STRONG, make_env

VAULT_KEYS = {"username", "password", "last_password", "last_vault_rotation", "rotation_period", "ttl", "dn"}


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
    _token, clear = services.issue_token(user=bob, actor=Actor.person(bob))
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
    _token, carols = services.issue_token(user=carol, actor=Actor.person(carol))
    viewer = client.get(f"/v1/ldap/static-cred/{user.uid}", HTTP_X_VAULT_TOKEN=carols)
    assert viewer.status_code == 403 and viewer.json() == {"errors": ["permission denied"]}
    rotate = client.post(f"/v1/ldap/rotate-role/{user.uid}", HTTP_X_VAULT_TOKEN=carols)
    assert rotate.status_code == 403

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "2/minute"})
    _token, bobs = services.issue_token(user=bob, actor=Actor.person(bob))
    for _ in range(2):
        assert client.get(f"/v1/ldap/static-cred/{user.uid}", HTTP_X_VAULT_TOKEN=bobs).status_code == 200
    limited = client.get(f"/v1/ldap/static-cred/{user.uid}", HTTP_X_VAULT_TOKEN=bobs)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert list(limited.json()) == ["errors"]


# -- Vault's HTTP rules, token paths and AppRole, with Django's client --------------------------


@pytest.fixture
def app_token(db):
    configuration = make_configuration(title="vault-rules")
    user = make_user(configuration, title="rules-role", password=STRONG)
    application, clear = services.create_application("rules-app", [configuration])
    return SimpleNamespace(user=user, application=application, token=clear, configuration=configuration)


def test_sys_paths_answer_without_a_token(client, db):
    health = client.get("/v1/sys/health?standbyok=true&standbycode=200&perfstandbycode=299&uninitcode=299")
    assert health.status_code == 200 and health.json()["sealed"] is False and health.json()["initialized"]
    seal = client.get("/v1/sys/seal-status").json()
    assert seal["sealed"] is False and seal["version"]
    mounts = client.get("/v1/sys/internal/ui/mounts/ldap/static-cred/x", HTTP_X_VAULT_TOKEN="anything")
    assert mounts.status_code == 404 and mounts.json() == {"errors": []}
    unknown = client.get("/v1/no/such/path")
    assert unknown.status_code == 404 and "errors" in unknown.json()
    # The Vault paths keep the security headers though they skip the browser's middleware.
    assert health["Cache-Control"] == "no-store" and "Content-Security-Policy" in health


def test_headers_methods_and_bodies_follow_vaults_rules(client, app_token):
    url, token = f"/v1/ldap/static-cred/{app_token.user.title}", app_token.token
    read = client.get(url, HTTP_X_VAULT_TOKEN=token, HTTP_X_VAULT_REQUEST="true")
    assert read.status_code == 200
    wrapped = client.get(url, HTTP_X_VAULT_TOKEN=token, HTTP_X_VAULT_WRAP_TTL="60s")
    assert wrapped.status_code == 400 and "wrapping" in wrapped.json()["errors"][0]
    for namespace, status in (("", 200), ("root", 200), ("team-a", 400)):
        answer = client.get(url, HTTP_X_VAULT_TOKEN=token, HTTP_X_VAULT_NAMESPACE=namespace)
        assert answer.status_code == status
    assert client.delete(url, HTTP_X_VAULT_TOKEN=token).status_code == 405
    # `bao write -f`: PUT, no Content-Type, body null; rotation is off for this account: Vault's 400.
    rotate = client.generic(
        "PUT", f"/v1/ldap/rotate-role/{app_token.user.title}", b"null", HTTP_X_VAULT_TOKEN=token
    )
    assert rotate.status_code == 400 and rotate.json()["errors"][0].startswith("rotation:")
    # One audit event per read, naming the application; nothing for the refused ones.
    reads = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ, record_id=app_token.user.pk)
    assert reads.count() == 3 and {e.actor_name for e in reads} == {"application:rules-app"}


def test_static_cred_ttl_is_a_whole_number_never_zero(app_token, settings):
    user = app_token.user
    now = timezone.now()
    user.last_rotated_at, user.next_rotation_at = now - dt.timedelta(days=1), now - dt.timedelta(seconds=5)
    assert vault.static_ttl(user, now) == (86395, 1)  # overdue: come back in a second
    user.next_rotation_at = now + dt.timedelta(seconds=42)
    assert vault.static_ttl(user, now) == (86442, 42)
    settings.VAULT_MAX_TTL = 30
    assert vault.static_ttl(user, now) == (86442, 30)
    user.next_rotation_at = None
    assert vault.static_ttl(user, now) == (0, 30)


def test_lookup_renew_revoke_self_and_child_tokens(client, app_token):
    lookup = client.get("/v1/auth/token/lookup-self", HTTP_X_VAULT_TOKEN=app_token.token).json()["data"]
    assert lookup["type"] == "service" and lookup["expire_time"] is None and lookup["ttl"] == 0
    assert lookup["renewable"] is False and lookup["accessor"].startswith("acc.")
    refused = client.post("/v1/auth/token/renew-self", HTTP_X_VAULT_TOKEN=app_token.token)
    assert refused.status_code == 400

    body = json.dumps({"ttl": "10m", "display_name": "terraform", "policies": ["admin"]})
    created = client.post(
        "/v1/auth/token/create", body, "application/json", HTTP_X_VAULT_TOKEN=app_token.token
    )
    child = created.json()["auth"]
    assert child["lease_duration"] == 600 and child["policies"] == ["default"] and child["renewable"] is False
    child_row = Token.objects.get(parent__isnull=False)
    assert child_row.application == app_token.application and child_row.user is None
    grandchild = client.post(
        "/v1/auth/token/create", '{"ttl": "1h"}', "application/json", HTTP_X_VAULT_TOKEN=child["client_token"]
    ).json()["auth"]
    assert grandchild["lease_duration"] <= 600  # never outlives its parent
    assert (
        client.get(
            f"/v1/ldap/static-cred/{app_token.user.title}", HTTP_X_VAULT_TOKEN=grandchild["client_token"]
        ).status_code
        == 200
    )

    # revoke-self revokes the token and the tokens created from it.
    assert (
        client.put("/v1/auth/token/revoke-self", HTTP_X_VAULT_TOKEN=child["client_token"]).status_code == 204
    )
    for gone in (child["client_token"], grandchild["client_token"]):
        answer = client.get("/v1/auth/token/lookup-self", HTTP_X_VAULT_TOKEN=gone)
        assert answer.status_code == 403 and answer.json()["errors"][0] == "permission denied"
    assert client.get("/v1/auth/token/lookup-self", HTTP_X_VAULT_TOKEN=app_token.token).status_code == 200
    bad = client.post(
        "/v1/auth/token/create", '{"ttl": "soon"}', "application/json", HTTP_X_VAULT_TOKEN=app_token.token
    )
    assert bad.status_code == 400


def test_a_login_token_renews_up_to_its_maximum_and_dies_with_its_secret_id(client, app_token):
    role = approle.configure(app_token.application, token_ttl=60, token_max_ttl=100)
    secret_id, secret = approle.issue_secret_id(role)
    body = json.dumps({"role_id": str(role.role_id), "secret_id": secret})
    auth = client.post("/v1/auth/approle/login", body, "application/json").json()["auth"]
    assert auth["renewable"] is True and auth["lease_duration"] == 60
    token = Token.objects.get(secret_id=secret_id)
    assert token.digest != auth["client_token"] and auth["client_token"] not in database_text()
    Token.objects.filter(pk=token.pk).update(max_expires_at=timezone.now() + dt.timedelta(seconds=30))
    renewed = client.put(
        "/v1/auth/token/renew-self", '{"increment": 3600}', HTTP_X_VAULT_TOKEN=auth["client_token"]
    )
    assert 0 < renewed.json()["auth"]["lease_duration"] <= 30
    assert renewed.json()["auth"]["client_token"] == ""
    approle.revoke_secret_id(secret_id)
    assert (
        client.get("/v1/auth/token/lookup-self", HTTP_X_VAULT_TOKEN=auth["client_token"]).status_code == 403
    )
    again = client.post("/v1/auth/approle/login", body, "application/json")
    assert again.status_code == 400 and again.json() == {"errors": ["invalid role or secret ID"]}


def test_an_inactive_application_can_neither_log_in_nor_read(client, app_token):
    role = approle.configure(app_token.application, token_ttl=60, token_max_ttl=600)
    _sid, secret = approle.issue_secret_id(role)
    body = json.dumps({"role_id": str(role.role_id), "secret_id": secret})
    auth = client.post("/v1/auth/approle/login", body, "application/json").json()["auth"]
    Application.objects.filter(pk=app_token.application.pk).update(is_active=False)
    assert client.post("/v1/auth/approle/login", body, "application/json").status_code == 400
    url = f"/v1/ldap/static-cred/{app_token.user.title}"
    assert client.get(url, HTTP_X_VAULT_TOKEN=auth["client_token"]).status_code == 403


def test_pam_application_manages_approle_and_secret_ids(app_token):
    role_id, secret, listing = io.StringIO(), io.StringIO(), io.StringIO()
    call_command("pam_application", "approle", "rules-app", "--token-ttl", "120", stdout=role_id)
    call_command(
        "pam_application", "secret-id", "rules-app", "--uses", "3", "--ttl-hours", "2",
        "--allow-cidr", "10.0.0.0/8", stdout=secret, stderr=io.StringIO(),
    )  # fmt: skip
    role = AppRole.objects.get(application=app_token.application)
    assert role_id.getvalue().strip() == str(role.role_id) and role.token_ttl == 120
    clear = secret.getvalue().strip()
    assert clear.startswith("pr_sid_") and "\n" not in clear
    stored = role.secret_ids.get()
    assert stored.uses_left == 3 and stored.allowed_networks == "10.0.0.0/8" and stored.expires_at
    assert not stored.allows_address("127.0.0.1") and stored.allows_address("10.1.2.3")
    call_command("pam_application", "list", stdout=listing)
    assert str(role.role_id) in listing.getvalue() and clear not in listing.getvalue()
    with pytest.raises(CommandError):
        call_command(
            "pam_application", "secret-id", "rules-app", "--allow-cidr", "nonsense", stdout=io.StringIO()
        )
    call_command("pam_application", "revoke", "rules-app", stderr=io.StringIO())
    assert role.secret_ids.get().revoked_at is not None


def test_the_applications_page_turns_approle_on_and_shows_a_secret_id_once(client, alice, app_token):
    client.force_login(alice)
    detail = reverse("api:application-detail", args=[app_token.application.pk])
    assert "Turn AppRole on" in client.get(detail).content.decode()
    response = client.post(reverse("api:approle-configure", args=[app_token.application.pk]),
                           {"token_ttl": 600, "token_max_ttl": 3600})  # fmt: skip
    assert response.status_code == 302
    role = AppRole.objects.get(application=app_token.application)
    created = client.post(reverse("api:secret-id-create", args=[app_token.application.pk]), {"uses": 1})
    page = created.content.decode()
    secret_id = role.secret_ids.get()
    clear = page.split('id="new-secret-id" value="')[1].split('"')[0]
    assert clear.startswith(secret_id.hint) and str(role.role_id) in page
    again = client.get(detail).content.decode()
    assert clear not in again and secret_id.hint in again and str(role.role_id) in again
    bad = client.post(reverse("api:approle-configure", args=[app_token.application.pk]),
                      {"token_ttl": 600, "token_max_ttl": 60})  # fmt: skip
    assert bad.status_code == 302 and AppRole.objects.get(pk=role.pk).token_max_ttl == 3600
    client.post(reverse("api:secret-id-revoke", args=[secret_id.pk]))
    assert role.secret_ids.get().revoked_at is not None


def test_a_viewer_may_not_manage_approle(client, carol, app_token):
    client.force_login(carol)
    response = client.post(reverse("api:approle-configure", args=[app_token.application.pk]),
                           {"token_ttl": 600, "token_max_ttl": 3600})  # fmt: skip
    assert response.status_code == 403 and not AppRole.objects.exists()


@given(body=st.one_of(st.none(), st.text(max_size=200), st.dictionaries(
    st.sampled_from(["role_id", "secret_id", "ttl", "increment", "explicit_max_ttl", "renewable", "display_name"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40), st.lists(st.integers(), max_size=3)),
)))  # fmt: skip
@hypothesis_settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_body_gives_a_server_error_on_the_vault_write_paths(client, app_token, body):
    raw = body if isinstance(body, str) else json.dumps(body)
    for path in ("/v1/auth/approle/login", "/v1/auth/token/create", "/v1/auth/token/renew-self"):
        for method in ("POST", "PUT"):
            response = client.generic(method, path, raw.encode(), HTTP_X_VAULT_TOKEN=app_token.token)
            assert response.status_code < 500, (path, raw, response.content[:200])
            assert "errors" in response.json() or response.status_code == 200


def test_a_read_costs_two_queries(client, app_token, django_assert_num_queries):
    """The token with its application, scope and the account (with its previous version); the audit row."""
    url = f"/v1/ldap/static-cred/{app_token.user.title}"
    assert client.get(url, HTTP_X_VAULT_TOKEN=app_token.token).status_code == 200  # records the token's use
    with django_assert_num_queries(2):
        response = client.get(url, HTTP_X_VAULT_TOKEN=app_token.token)
    assert response.json()["data"]["password"] == STRONG


@pytest.mark.parametrize("field", ["ttl", "explicit_max_ttl"])
def test_a_duration_past_ten_years_is_a_400_whether_a_number_or_a_string(client, app_token, field):
    # Found by the property above: a whole number of seconds past a date's range answered a 500.
    for value in (10**38, "1000000000d"):
        response = client.post(
            "/v1/auth/token/create",
            json.dumps({field: value}),
            content_type="application/json",
            HTTP_X_VAULT_TOKEN=app_token.token,
        )
        assert response.status_code == 400 and "ten years" in response.json()["errors"][0], response.content
