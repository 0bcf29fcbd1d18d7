"""The API under /api/v1/: tokens, the role matrix, validation, rotation on real directories, the schema."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api import services
from api.models import Application, Token
from api.throttles import TokenRateThrottle
from audit.actors import Actor
from audit.models import AuditEvent
from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser
from rotation.models import AttemptState, RotationAttempt
from tests.conftest import database_text, examples, make_configuration, make_directory, make_user
from tests.test_rotation import STRONG, make_env

SECRET = "Stored-Secret-Pass-9!"  # noqa: S105 - a test account's password
VIEWERS_AND_UP = {"carol", "bob", "alice"}
OPERATORS_AND_UP = {"bob", "alice"}
ADMINISTRATORS = {"alice"}


@pytest.fixture
def world(db):
    """A configuration with a directory and an account, and a second configuration the app may not read."""
    directory = make_directory(title="Corp LDAP")
    configuration = directory.configuration
    other = make_configuration(title="Elsewhere")
    return {
        "configuration": configuration,
        "directory": directory,
        "user": make_user(
            resource=directory,
            title="svc-app",
            distinguished_name="cn=svc,dc=example,dc=com",
            password=SECRET,
        ),
        "other_user": make_user(other, title="svc-other", password=SECRET),
        "other": other,
        "spare_configuration": make_configuration(title="Spare"),
        "spare_directory": make_directory(configuration, title="Spare LDAP"),
        "spare_user": make_user(configuration, title="spare-user"),
    }


def app_token(world, **fields) -> tuple[Application, str]:
    return services.create_application(fields.pop("name", "billing"), [world["configuration"]], **fields)


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def credential_url(user: PamUser) -> str:
    return f"/api/v1/users/{user.uid}/credential/"


# -- Tokens ------------------------------------------------------------------------------------


def test_an_application_token_is_shown_once_and_stored_only_as_its_hash(world):
    application, clear = app_token(world)
    assert clear.startswith("pr_app_") and len(clear) > 40
    token = application.tokens.get()
    assert token.digest == hashlib.sha256(clear.encode()).hexdigest()
    assert clear not in database_text()
    assert token.hint == clear[:11]
    created = AuditEvent.objects.filter(event__in=[AuditEvent.APPLICATION_CREATED, AuditEvent.TOKEN_CREATED])
    assert created.count() == 2
    assert all(clear not in event.message for event in created)


def test_an_application_reads_a_credential_in_its_configuration_and_the_read_is_audited(client, world):
    application, clear = app_token(world)
    response = client.get(credential_url(world["user"]), **bearer(clear))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["password"] == SECRET
    assert body["login"] == world["user"].login
    assert body["distinguished_name"] == "cn=svc,dc=example,dc=com"
    assert set(body) == {
        "uid",
        "title",
        "login",
        "distinguished_name",
        "password",
        "last_rotated_at",
        "next_rotation_at",
    }
    event = AuditEvent.objects.get(event=AuditEvent.CREDENTIAL_READ)
    assert event.actor_name == "application:billing" and event.actor is None
    assert event.remote_address == "127.0.0.1"
    assert event.record_type == "pamuser" and event.record_id == world["user"].pk
    assert application.tokens.get().last_used_at is not None


def test_a_revoked_token_is_refused_with_401(client, world):
    application, clear = app_token(world)
    assert services.revoke_token(application.tokens.get())
    response = client.get(credential_url(world["user"]), **bearer(clear))
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid, expired or revoked token."}
    assert response["WWW-Authenticate"] == "Bearer"
    assert AuditEvent.objects.filter(event=AuditEvent.TOKEN_REVOKED).count() == 1


def test_an_expired_token_or_application_is_refused_with_401(client, world):
    application, clear = app_token(world)
    token = application.tokens.get()
    Token.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert client.get(credential_url(world["user"]), **bearer(clear)).status_code == 401

    second, clear2 = app_token(world, name="second", expires_at=timezone.now() + dt.timedelta(days=1))
    assert client.get(credential_url(world["user"]), **bearer(clear2)).status_code == 200
    Application.objects.filter(pk=second.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert client.get(credential_url(world["user"]), **bearer(clear2)).status_code == 401


def test_an_inactive_application_is_refused_with_401(client, world):
    application, clear = app_token(world)
    Application.objects.filter(pk=application.pk).update(is_active=False)
    assert client.get(credential_url(world["user"]), **bearer(clear)).status_code == 401


@pytest.mark.parametrize("token", ["pr_app_not-a-real-token", "x", "pr_app_" + "A" * 43, "a b"])
def test_an_unknown_or_malformed_token_is_refused_with_401(client, world, token):
    assert client.get(credential_url(world["user"]), **bearer(token)).status_code == 401


def test_a_call_from_outside_the_allowed_networks_is_refused_with_403(client, world):
    _application, clear = app_token(world, allowed_networks="10.0.0.0/8\n2001:db8::/32")
    response = client.get(credential_url(world["user"]), **bearer(clear))
    assert response.status_code == 403
    inside = client.get(credential_url(world["user"]), REMOTE_ADDR="10.1.2.3", **bearer(clear))
    assert inside.status_code == 200
    assert AuditEvent.objects.get(event=AuditEvent.CREDENTIAL_READ).remote_address == "10.1.2.3"


def test_allowed_networks_are_validated_on_the_model(world):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        app_token(world, allowed_networks="10.0.0.0/8\nnot-a-network")
    assert "not-a-network" in str(caught.value)
    assert not Application.objects.exists()


def test_an_application_may_not_read_another_configurations_account(client, world):
    _application, clear = app_token(world)
    response = client.get(credential_url(world["other_user"]), **bearer(clear))
    assert response.status_code == 403
    assert "detail" in response.json()
    assert not AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).exists()


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/api/v1/users/"),
        ("get", "/api/v1/configurations/"),
        ("get", "/api/v1/directories/"),
        ("get", "/api/v1/audit-events/"),
        ("get", "/api/v1/users/{uid}/"),
        ("patch", "/api/v1/users/{uid}/"),
        ("delete", "/api/v1/users/{uid}/"),
    ],
)
def test_an_application_may_do_nothing_but_read_credentials_and_rotate(client, world, method, path):
    _application, clear = app_token(world)
    url = path.format(uid=world["user"].uid)
    response = getattr(client, method)(url, content_type="application/json", **bearer(clear))
    assert response.status_code == 403


def test_a_personal_token_acts_with_its_persons_roles(client, world, bob, carol):
    _token, bobs = services.issue_token(user=bob, actor=Actor.person(bob))
    _token, carols = services.issue_token(user=carol, actor=Actor.person(carol))
    assert bobs.startswith("pr_pat_")
    assert client.get(credential_url(world["user"]), **bearer(bobs)).status_code == 200
    assert client.get(credential_url(world["user"]), **bearer(carols)).status_code == 403
    assert client.get("/api/v1/users/", **bearer(carols)).status_code == 200
    event = AuditEvent.objects.get(event=AuditEvent.CREDENTIAL_READ)
    assert event.actor == bob and event.actor_name == "bob"


def test_a_personal_token_of_a_deactivated_person_is_refused(client, world, bob):
    _token, clear = services.issue_token(user=bob, actor=Actor.person(bob))
    bob.is_active = False
    bob.save()
    assert client.get("/api/v1/users/", **bearer(clear)).status_code == 401


def test_reads_are_rate_limited_per_token_with_retry_after(client, world, monkeypatch):
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "3/minute"})
    _application, first = app_token(world)
    _application, second = app_token(world, name="other-app")
    for _ in range(3):
        assert client.get(credential_url(world["user"]), **bearer(first)).status_code == 200
    limited = client.get(credential_url(world["user"]), **bearer(first))
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert "detail" in limited.json()
    assert client.get(credential_url(world["user"]), **bearer(second)).status_code == 200


# -- The role matrix on every endpoint (people, with their session) ------------------------------


def _create_body(kind: str, world) -> dict:
    if kind == "configurations":
        return {"title": "New configuration"}
    if kind == "directories":
        return {
            "title": "New directory",
            "configuration": world["configuration"].uid,
            "hostname": "ldap.example.test",
            "directory_type": DirectoryType.OPENLDAP,
        }
    return {
        "title": "new-user",
        "configuration": world["configuration"].uid,
        "login": "new",
        "rotation_enabled": False,
    }


RECORD_KINDS = {"configurations": "configuration", "directories": "directory", "users": "user"}

# (name, method, url template, body maker, who may, success status)
MATRIX = [
    *[(f"list {k}", "get", f"/api/v1/{k}/", None, VIEWERS_AND_UP, 200) for k in RECORD_KINDS],
    *[
        (f"read {k}", "get", f"/api/v1/{k}/{{{v}}}/", None, VIEWERS_AND_UP, 200)
        for k, v in RECORD_KINDS.items()
    ],
    *[(f"create {k}", "post", f"/api/v1/{k}/", k, ADMINISTRATORS, 201) for k in RECORD_KINDS],
    *[
        (f"change {k}", "patch", f"/api/v1/{k}/{{{v}}}/", "patch", ADMINISTRATORS, 200)
        for k, v in RECORD_KINDS.items()
    ],
    *[
        (f"delete {k}", "delete", f"/api/v1/{k}/{{spare_{v}}}/", None, ADMINISTRATORS, 204)
        for k, v in RECORD_KINDS.items()
    ],
    ("rotate", "post", "/api/v1/users/{spare_user}/rotate/", None, OPERATORS_AND_UP, 409),
    ("credential", "get", "/api/v1/users/{user}/credential/", None, OPERATORS_AND_UP, 200),
    ("attempt", "get", "/api/v1/attempts/{attempt}/", None, VIEWERS_AND_UP, 200),
    ("audit events", "get", "/api/v1/audit-events/", None, VIEWERS_AND_UP, 200),
]


@pytest.mark.parametrize("persona", ["alice", "bob", "carol", "dave"])
@pytest.mark.parametrize("name,method,template,body,allowed,ok", MATRIX, ids=[row[0] for row in MATRIX])
def test_the_role_matrix(client, world, personas, persona, name, method, template, body, allowed, ok):
    attempt = RotationAttempt.objects.create(user=world["user"], state=AttemptState.SUCCEEDED)
    keys = {key: value.uid for key, value in world.items() if hasattr(value, "uid")}
    url = template.format(attempt=attempt.pk, **keys)
    data = {}
    if body == "patch":
        data = {"title": f"Renamed {name}"}
    elif body:
        data = _create_body(body, world)
    client.force_login(personas[persona])
    if method in ("get", "delete"):
        response = getattr(client, method)(url)
    else:
        response = getattr(client, method)(url, data=json.dumps(data), content_type="application/json")
    expected = ok if persona in allowed else 403
    assert response.status_code == expected, (persona, name, response.content[:300])
    if expected == 403:
        assert "detail" in response.json()


@pytest.mark.parametrize("url", ["/api/v1/users/", "/api/v1/audit-events/", "/api/schema/"])
def test_no_credentials_is_a_401(client, world, url):
    response = client.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert json.loads(response.content) == {"detail": "Authentication credentials were not provided."}


def test_a_session_caller_needs_the_csrf_token(world, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/configurations/", {"title": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_users_are_found_by_uid_and_unknown_ones_are_404(client, world, carol):
    client.force_login(carol)
    response = client.get(f"/api/v1/users/{world['user'].uid}/")
    assert response.status_code == 200
    assert response.json()["uid"] == world["user"].uid
    assert response.json()["configuration"] == world["configuration"].uid
    missing = client.get("/api/v1/users/AAAAAAAAAAAAAAAAAAAAAA/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_no_password_appears_in_any_list_or_detail(client, world, alice):
    client.force_login(alice)
    uid = world["user"].uid
    for url in [
        "/api/v1/users/",
        f"/api/v1/users/{uid}/",
        "/api/v1/directories/",
        "/api/v1/configurations/",
        "/api/v1/audit-events/",
    ]:
        response = client.get(url)
        assert response.status_code == 200
        assert SECRET.encode() not in response.content
        assert b"password_encrypted" not in response.content
    detail = client.get(f"/api/v1/users/{uid}/").json()
    assert "password" not in detail and detail["has_password"] is True


# -- Filters and cursor pages --------------------------------------------------------------------


def test_lists_filter_and_page_by_cursor(client, world, carol):
    for number in range(5):
        make_user(world["other"], title=f"paged-{number}")
    client.force_login(carol)
    seen, url = [], f"/api/v1/users/?configuration={world['other'].pk}&page_size=2"
    while url:
        page = client.get(url).json()
        seen += [row["title"] for row in page["results"]]
        url = page["next"]
    assert seen == ["svc-other", *[f"paged-{n}" for n in range(5)]]
    found = client.get("/api/v1/users/?q=svc-a").json()["results"]
    assert [row["title"] for row in found] == ["svc-app"]
    by_type = client.get(
        f"/api/v1/directories/?type=active_directory&configuration={world['configuration'].pk}"
    )
    assert by_type.json()["results"] == []
    assert client.get("/api/v1/users/?cursor=garbage").status_code == 400


def test_audit_events_use_the_audit_logs_filters(client, world, bob):
    _application, clear = app_token(world)
    client.get(credential_url(world["user"]), **bearer(clear))
    client.force_login(bob)
    events = client.get("/api/v1/audit-events/?event=credential_read").json()["results"]
    assert [e["actor_name"] for e in events] == ["application:billing"]
    assert events[0]["label"] == AuditEvent.LABELS[AuditEvent.CREDENTIAL_READ]
    by_account = client.get(f"/api/v1/audit-events/?account={world['user'].pk}").json()["results"]
    assert {e["event"] for e in by_account} == {"credential_read"}
    assert client.get("/api/v1/audit-events/?actor=nobody").json()["results"] == []
    assert client.get("/api/v1/audit-events/?from=not-a-date&configuration=x").status_code == 400


# -- Writes: the model's validation, never a 500 ---------------------------------------------------


def test_creating_a_user_validates_on_the_model_and_keeps_the_schedule(client, world, alice):
    client.force_login(alice)
    body = {
        "title": "created-by-api",
        "configuration": world["configuration"].uid,
        "login": "api",
        "password": "Initial-Pass-1!",
        "distinguished_name": "cn=api,dc=example,dc=com",
        "resource": world["directory"].uid,
        "rotation_enabled": True,
        "schedule_type": "DAILY",
        "schedule_time": "02:00",
    }
    response = client.post("/api/v1/users/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert "password" not in response.json()
    user = PamUser.objects.get(title="created-by-api")
    assert user.get_password() == "Initial-Pass-1!"
    assert user.next_rotation_at is not None
    event = AuditEvent.objects.get(event=AuditEvent.RECORD_CREATED, record_id=user.pk)
    assert event.actor == alice and "password" in event.message and "Initial-Pass" not in event.message


def test_a_model_rule_answers_400_with_the_fields(client, world, alice):
    client.force_login(alice)
    body = {
        "title": "AD without SSL",
        "configuration": world["configuration"].uid,
        "hostname": "dc.example.test",
        "directory_type": DirectoryType.ACTIVE_DIRECTORY,
        "use_ssl": False,
    }
    response = client.post("/api/v1/directories/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The request is not valid."
    assert "use_ssl" in response.json()["errors"]
    cron = client.patch(
        f"/api/v1/users/{world['user'].uid}/",
        {"schedule_type": "CRON", "schedule_cron": "* * * * *"},
        content_type="application/json",
    )
    assert cron.status_code == 400 and "schedule_cron" in cron.json()["errors"]
    assert not PamDirectory.objects.filter(title="AD without SSL").exists()


def test_deleting_a_configuration_in_use_is_a_409(client, world, alice):
    client.force_login(alice)
    response = client.delete(f"/api/v1/configurations/{world['configuration'].uid}/")
    assert response.status_code == 409
    assert "in use" in response.json()["detail"]
    assert PamConfiguration.objects.filter(pk=world["configuration"].pk).exists()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"title": NaN}',
        b"[" * 50000 + b"]" * 50000,
        b'{"title": "' + b"x" * 70000 + b'"}',
        b"\xff\xfe",
        b'"a string"',
        b"[1, 2]",
        b'{"title": ["list"], "port": "eighty", "use_ssl": "maybe"}',
        b'{"title": "t", "port": 100000000000000000000000000}',
        b'{"title": "t", "configuration": {"uid": 1}}',
    ],
)
def test_bad_json_wrong_types_and_huge_bodies_are_400(client, world, alice, body):
    client.force_login(alice)
    for url in ["/api/v1/directories/", f"/api/v1/directories/{world['directory'].uid}/"]:
        method = client.post if url.endswith("directories/") else client.patch
        response = method(url, data=body, content_type="application/json")
        assert response.status_code == 400, (url, response.content[:200])
        assert "detail" in response.json()


def test_a_body_in_another_format_is_a_415(client, world, alice):
    client.force_login(alice)
    response = client.post(
        "/api/v1/configurations/", data="title=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


ENDPOINTS = [
    ("get", "/api/v1/configurations/"),
    ("post", "/api/v1/configurations/"),
    ("get", "/api/v1/directories/"),
    ("post", "/api/v1/directories/"),
    ("get", "/api/v1/users/"),
    ("post", "/api/v1/users/"),
    ("get", "/api/v1/users/{user}/"),
    ("patch", "/api/v1/users/{user}/"),
    ("put", "/api/v1/directories/{directory}/"),
    ("patch", "/api/v1/configurations/{configuration}/"),
    ("post", "/api/v1/users/{user}/rotate/"),
    ("get", "/api/v1/users/{user}/credential/"),
    ("get", "/api/v1/audit-events/"),
    ("get", "/api/v1/attempts/1/"),
    ("get", "/v1/ldap/static-cred/{user}"),
    ("post", "/v1/ldap/rotate-role/{user}"),
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    [
        "title",
        "configuration",
        "resource",
        "login",
        "port",
        "hostname",
        "directory_type",
        "use_ssl",
        "start_tls",
        "schedule_type",
        "schedule_time",
        "schedule_cron",
        "schedule_tz",
        "schedule_day",
        "schedule_week",
        "schedule_weekday",
        "schedule_interval",
        "password",
        "password_complexity",
        "default_password_complexity",
        "administrative_credential",
        "rotation_enabled",
        "distinguished_name",
    ]
)
BODIES = st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6) | JSON_VALUES
PARAMS = st.dictionaries(
    st.sampled_from(
        ["q", "configuration", "directory", "type", "status", "rotation", "overdue", "cursor", "page_size"]
        + ["from", "to", "event", "outcome", "actor", "account"]
    ),
    st.text(max_size=20),
    max_size=4,
)


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(endpoint=st.sampled_from(ENDPOINTS), body=BODIES, params=PARAMS)
def test_no_body_or_query_gives_a_server_error(world, alice, endpoint, body, params):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    method, template = endpoint
    url = template.format(**{key: value.uid for key, value in world.items() if hasattr(value, "uid")})
    if method == "get":
        response = client.get(url, params)
    else:
        query = "?" + "&".join(f"{k}=x" for k in params) if params else ""
        response = getattr(client, method)(
            url + query, data=json.dumps(body), content_type="application/json"
        )
    assert response.status_code < 500, (method, url, body, params, response.content[:300])


# -- Rotation through the API on real directories ---------------------------------------------------


@pytest.fixture(params=["openldap", "ad"])
def real_env(request, db, unique_name):
    server = request.getfixturevalue("slapd" if request.param == "openldap" else "samba")
    return make_env(server, unique_name)


def test_an_application_rotates_then_reads_the_credential_and_it_binds(
    client, real_env, unique_name, django_capture_on_commit_callbacks
):
    user = real_env.account(unique_name("api"))
    _application, clear = services.create_application("deployer", [real_env.directory.configuration])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/users/{user.uid}/rotate/", **bearer(clear))
    assert response.status_code == 202, response.content
    attempt_id = response.json()["id"]
    attempt = client.get(f"/api/v1/attempts/{attempt_id}/", **bearer(clear))
    assert attempt.status_code == 200
    assert attempt.json()["state"] == AttemptState.SUCCEEDED, attempt.json()["error_message"]
    assert attempt.json()["requested_by"] == "application:deployer"
    credential = client.get(credential_url(user), **bearer(clear)).json()
    assert credential["password"] != STRONG and credential["last_rotated_at"]
    assert real_env.server.can_bind(user.distinguished_name, credential["password"])
    assert not real_env.server.can_bind(user.distinguished_name, STRONG) or real_env.server.kind == "ad"
    rotated = AuditEvent.objects.get(attempt_id=attempt_id, event=AuditEvent.ROTATION_ON_DEMAND_OK)
    assert rotated.actor_name == "application:deployer"


def test_an_operator_rotates_through_the_api_and_a_second_request_is_a_409(
    client, bob, slapd, unique_name, monkeypatch
):
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("busy"))
    client.force_login(bob)
    # No worker: the first attempt stays queued, so the second finds it.
    monkeypatch.setattr("rotation.services.enqueue_attempt", lambda attempt: None, raising=False)
    monkeypatch.setattr("rotation.queue.enqueue_attempt", lambda attempt: None, raising=False)
    first = client.post(f"/api/v1/users/{user.uid}/rotate/")
    assert first.status_code == 202 and first.json()["state"] == AttemptState.QUEUED
    second = client.post(f"/api/v1/users/{user.uid}/rotate/")
    assert second.status_code == 409
    assert second.json()["attempt"]["error_class"] == "busy"
    assert "Already rotating" in second.json()["detail"]


# -- Pages and the command that manage applications --------------------------------------------------


def test_administrators_manage_applications_in_the_ui(client, world, alice):
    client.force_login(alice)
    assert client.get("/applications/").status_code == 200
    response = client.post(
        "/applications/new/",
        {
            "name": "reporting",
            "configurations": [world["configuration"].pk],
            "allowed_networks": "127.0.0.0/8",
            "is_active": "on",
        },
    )
    assert response.status_code == 200, response.content[:500]
    application = Application.objects.get(name="reporting")
    token = application.tokens.get()
    page = response.content.decode()
    start = page.index('value="pr_app_') + len('value="')
    clear = page[start : page.index('"', start)]
    assert token.digest == hashlib.sha256(clear.encode()).hexdigest()
    assert response["Cache-Control"] == "no-store"
    detail = client.get(application.get_absolute_url())
    assert clear.encode() not in detail.content and token.hint.encode() in detail.content
    assert client.get(credential_url(world["user"]), **bearer(clear)).status_code == 200
    client.post(f"/tokens/{token.pk}/revoke/")
    assert client.get(credential_url(world["user"]), **bearer(clear)).status_code == 401
    assert set(AuditEvent.objects.filter(actor=alice).values_list("event", flat=True)) >= {
        AuditEvent.APPLICATION_CREATED,
        AuditEvent.TOKEN_CREATED,
        AuditEvent.TOKEN_REVOKED,
    }


def test_only_administrators_see_the_application_pages(client, world, bob):
    application, _clear = app_token(world)
    client.force_login(bob)
    for url in ["/applications/", "/applications/new/", application.get_absolute_url()]:
        assert client.get(url).status_code == 403
    assert client.post(f"/tokens/{application.tokens.get().pk}/revoke/").status_code == 403
    assert b"API applications" not in client.get("/").content


def test_a_person_creates_and_revokes_a_personal_token(client, world, carol, bob):
    client.force_login(carol)
    response = client.post("/tokens/new/", {"name": "laptop", "expires_days": "30"})
    assert response.status_code == 200
    token = carol.api_tokens.get()
    assert token.expires_at > timezone.now() + dt.timedelta(days=29)
    assert b'value="pr_pat_' in response.content
    client.force_login(bob)
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 403
    client.force_login(carol)
    client.post(f"/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_with_mfa_required_a_session_must_be_verified_to_read_rotate_or_create_tokens(
    client, world, bob, alice, settings
):
    settings.REQUIRE_MFA = True
    _token, bobs = services.issue_token(user=bob, actor=Actor.person(bob))
    client.force_login(bob)
    refused = client.get(credential_url(world["user"]))
    assert refused.status_code == 403 and "second factor" in refused.json()["detail"]
    assert client.post(f"/api/v1/users/{world['user'].uid}/rotate/").status_code == 403
    assert client.get("/api/v1/users/").status_code == 403  # nothing at all before the second factor
    assert client.post("/tokens/new/", {"name": "x"}).status_code == 302
    assert bob.api_tokens.count() == 1
    client.logout()
    assert client.get(credential_url(world["user"]), **bearer(bobs)).status_code == 200
    client.force_login(alice)
    assert (
        client.post(
            "/applications/new/", {"name": "x", "configurations": [world["configuration"].pk]}
        ).status_code
        == 302
    )
    assert not Application.objects.exists()


def test_pam_application_create_prints_the_token_alone(client, world):
    out = io.StringIO()
    call_command(
        "pam_application",
        "create",
        "ci",
        "--configuration",
        world["configuration"].title,
        "--allow-cidr",
        "127.0.0.1/32",
        "--expires-days",
        "7",
        stdout=out,
    )
    clear = out.getvalue().strip()
    assert clear.startswith("pr_app_") and "\n" not in clear
    application = Application.objects.get(name="ci")
    assert application.expires_at > timezone.now() + dt.timedelta(days=6)
    assert client.get(credential_url(world["user"]), **bearer(clear)).status_code == 200
    listing = io.StringIO()
    call_command("pam_application", "list", stdout=listing)
    assert "ci\tactive" in listing.getvalue() and clear not in listing.getvalue()
    call_command("pam_application", "revoke", "ci", stdout=io.StringIO(), stderr=io.StringIO())
    assert client.get(credential_url(world["user"]), **bearer(clear)).status_code == 401
    events = AuditEvent.objects.filter(
        event__in=[AuditEvent.APPLICATION_CREATED, AuditEvent.TOKEN_CREATED, AuditEvent.TOKEN_REVOKED]
    )
    assert events.count() == 3 and all(event.actor_name for event in events)


def test_pam_application_refuses_an_unknown_configuration_or_network(world):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No configuration"):
        call_command("pam_application", "create", "x", "--configuration", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="allowed_networks"):
        call_command(
            "pam_application",
            "create",
            "x",
            "--configuration",
            world["configuration"].title,
            "--allow-cidr",
            "300.0.0.0/8",
            stdout=io.StringIO(),
        )
    assert not Application.objects.exists()


# -- Schema and documentation ------------------------------------------------------------------------


def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    text = (tmp_path / "schema.yaml").read_text()
    for path in ["/api/v1/users/{uid}/credential/", "/api/v1/users/{uid}/rotate/", "/api/v1/audit-events/"]:
        assert path in text


def test_the_docs_pages_need_sign_in_and_keep_the_strict_csp(client, world, carol):
    assert client.get("/api/docs/").status_code == 302
    client.force_login(carol)
    for url in ["/api/docs/", "/api/redoc/"]:
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self';")
        assert b"<script>" not in response.content and b"<style" not in response.content
        assert b"http://" not in response.content and b"https://" not in response.content
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert client.get("/api/schema/").status_code == 200


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    authorization=HEADER_TEXT | st.builds("Bearer {}".format, HEADER_TEXT),
    vault_token=HEADER_TEXT,
    name=st.text(st.characters(codec="utf-8", exclude_characters="/?#%"), min_size=1, max_size=30),
)
def test_no_token_header_or_role_name_gives_a_server_error(world, endpoint, authorization, vault_token, name):
    client = Client(raise_request_exception=False)
    method, template = endpoint
    url = template.format(user=name, directory=name, configuration=name)
    headers = {"HTTP_AUTHORIZATION": authorization, "HTTP_X_VAULT_TOKEN": vault_token}
    response = getattr(client, method)(url, **headers)
    assert response.status_code in (400, 401, 403, 404, 405, 429), (method, url, response.status_code)
