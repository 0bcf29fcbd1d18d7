"""Bad input never gives a server error: the known cases, then arbitrary input to every view."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import events as audit
from audit.actors import Actor
from records import schedules
from records.models import PamUser
from tests.conftest import examples, make_configuration, make_directory, make_user
from tests.routes import named_routes
from tests.test_records_forms import configuration_data, user_data

NEVER_FIRES = ["0 0 31 2 *", "0 0 30 2 *"]


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


# -- The cases the attack run found ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["abc", "1e9", "\x00", "-1", "9" * 30, " 1"])
def test_reveal_with_a_malformed_version_is_not_found_not_a_server_error(admin_client, version):
    pam_user = make_user(password="Stored-Pass-1!")
    response = admin_client.post(
        reverse("rotation:reveal-password", args=[pam_user.pk]), {"version": version}
    )
    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("value", [str(2**63), str(2**64 + 5), "9" * 40])
def test_bulk_rotate_with_an_id_past_64_bits_selects_nothing(admin_client, value):
    for name in ("user", "configuration", "directory"):
        response = admin_client.post(reverse("rotation:bulk-rotate"), {name: value})
        assert response.status_code == 302
        assert response.url == reverse("records:user-list")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "0001-01-01T00:00:00+23:59,1",
        "9999-12-31T23:59:59-23:59,1",
        "0001-01-01T00:00:00+23:59,99999999999999999999",
    ],
)
def test_an_audit_cursor_outside_the_datetime_range_is_ignored(admin_client, cursor):
    assert audit.parse_cursor(cursor) is None
    for key in ("before", "after"):
        assert admin_client.get(reverse("rotation:audit-log"), {key: cursor}).status_code == 200


def test_a_cron_that_never_fires_is_a_schedule_error_and_has_no_next_run():
    import datetime as dt

    for expression in NEVER_FIRES:
        schedule = schedules.Schedule(type=schedules.CRON, cron=expression, tz="UTC")
        with pytest.raises(schedules.ScheduleError, match="never fires"):
            schedule.validate()
        assert schedule.next_after(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) is None


@pytest.mark.django_db
@pytest.mark.parametrize("expression", NEVER_FIRES)
def test_a_cron_that_never_fires_is_refused_on_every_schedule_form(admin_client, expression):
    configuration = make_configuration()
    directory = make_directory(configuration)
    pam_user = make_user(resource=directory, distinguished_name="cn=x,dc=example,dc=com")
    cron = {"schedule_type": "CRON", "schedule_cron": expression, "schedule_tz": "UTC"}
    posts = [
        (reverse("records:configuration-create"), configuration_data(title="Never", **cron)),
        (reverse("records:configuration-edit", args=[configuration.pk]), configuration_data(**cron)),
        (reverse("records:user-create"), user_data(configuration, directory, title="never", **cron)),
        (reverse("records:user-edit", args=[pam_user.pk]), user_data(configuration, directory, **cron)),
    ]
    for url, data in posts:
        response = admin_client.post(url, data)
        assert response.status_code == 200, url
        assert "never fires" in response.content.decode(), url
    preview = admin_client.get(reverse("records:schedule-preview"), cron)
    assert preview.status_code == 200 and "never fires" in preview.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("expression", NEVER_FIRES)
def test_pam_rotation_edit_refuses_a_cron_that_never_fires_without_a_traceback(expression):
    pam_user = make_user(rotation_enabled=False)
    with pytest.raises(CommandError, match="never fires"):
        call_command("pam_rotation", "edit", "--user", pam_user.title, "--schedule-cron", expression)
    assert PamUser.objects.get(pk=pam_user.pk).schedule_cron == ""
    # A stored one (written before this rule) lists as invalid instead of a traceback.
    PamUser.objects.filter(pk=pam_user.pk).update(schedule_type=schedules.CRON, schedule_cron=expression)
    out = io.StringIO()
    call_command("pam_rotation", "list", stdout=out)
    assert "never fires" in out.getvalue()


# -- Property: arbitrary query parameters and bodies, every view -------------------------------
# Every named route of the apps below is requested with arbitrary query parameters (GET) and an
# arbitrary body (POST; JSON for the API), as an Administrator, with real ids in the path. Each
# example runs in a savepoint that is rolled back, so a delete or sign-out does not starve the next.

APPS = ("records", "rotation", "accounts", "api", "scripts", "access")
KNOWN_KEYS = [
    *configuration_data(),
    *user_data(PamUser(pk=1)),
    "q", "page", "page_size", "cursor", "before", "after", "format", "from", "to", "event", "outcome",
    "actor", "configuration", "directory", "account", "status", "rotation", "overdue", "type", "state",
    "version", "user", "users", "next", "code", "token", "name", "file", "command", "order", "decision",
    "password", "new_password1", "new_password2", "old_password", "role", "is_active", "expires_days",
    "allowed_networks", "configurations", "dn", "adopt", "adopt_all", "filter", "uid", "hostname",
    "port", "directory_type", "ca_certificate", "all", "select", "person", "reason",
]  # fmt: skip
NASTY = [
    "", "0", "-1", "1", str(2**31), str(2**63), str(2**64 + 1), "9" * 40, "1e9", "1.5", "abc", "\x00",
    "a\x00b", "0001-01-01T00:00:00+23:59,1", "9999-12-31T23:59:59-23:59,1", "0001-01-01", "9999-12-31",
    "2026-02-30", "csv", "jsonl", "json", "table", "on", "off", "true", "CRON", "DAILY", "0 0 31 2 *",
    "* * * * *", "UTC", "Mars/Olympus", "25:61", "%", "%00", "[]", "{}", "null", "../../etc/passwd",
    "<script>", "' OR 1=1 --", "ldap://x", "10.0.0.0/33", "20,1,1,1,1", "1,9,9,9,9", "x" * 300,
]  # fmt: skip
value = st.one_of(st.sampled_from(NASTY), st.text(max_size=30), st.integers().map(str))
key = st.one_of(st.sampled_from(sorted(set(KNOWN_KEYS))), st.text(min_size=1, max_size=12))
form_data = st.dictionaries(key, st.one_of(value, st.lists(value, min_size=1, max_size=3)), max_size=8)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(NASTY), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(key, inner, max_size=3)),
    max_leaves=8,
)
json_body = st.one_of(st.dictionaries(key, json_value, max_size=8), json_value)
PROPERTY_SETTINGS = settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


# Every named route of the project's apps, with its path parameter names.
ROUTES = sorted(
    {(name, names) for name, names, _ in named_routes() if name.split(":")[0] in APPS and ":" in name}
)


@pytest.fixture
def alice_client(client, world):
    """Alice signed in once per test (not per example: a sign-in cost a third of each), a bulk run in her session."""
    from django.conf import settings as django_settings

    client.force_login(world["alice"])
    session = client.session
    session["bulk_rotations"] = {"world": [world["attempt"].pk]}
    session.save()
    return client, client.cookies[django_settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def world(alice, carol):
    """Seed one record of each kind the routes name, and return the values their paths take."""
    from django.utils import timezone

    from api.models import Application, Token
    from audit.models import AuditEvent
    from rotation.models import AttemptState, PasswordVersion, RotationAttempt
    from scripts.models import PostRotationScript

    configuration = make_configuration(title="World")
    admin = make_user(configuration, title="World rotator", password="Admin-Pass-1!", rotation_enabled=False)
    # Port 9 on loopback refuses at once, so Test connection and discovery answer quickly.
    directory = make_directory(configuration, title="World LDAP", port=9, administrative_credential=admin)
    pam_user = make_user(
        configuration,
        title="World user",
        password="User-Pass-1!",
        resource=directory,
        distinguished_name="cn=world,dc=example,dc=com",
    )
    version = PasswordVersion.objects.create(
        user=pam_user, password_encrypted=pam_user.password_encrypted, replaced_at=timezone.now()
    )
    attempt = RotationAttempt.objects.create(user=pam_user, state=AttemptState.FAILED)
    audit.record_event(AuditEvent.RECORD_UPDATED, instance=pam_user, actor=Actor.person(alice))
    application = Application.objects.create(name="world-app")
    application.configurations.add(configuration)
    token, _clear = Token.issue(application=application, created_by=alice)
    script = PostRotationScript.objects.create(user=pam_user, file="deploy.sh")
    return {
        "configuration": configuration,
        "directory": directory,
        "user": pam_user,
        "version": version,
        "attempt": attempt,
        "application": application,
        "token": token,
        "script": script,
        "person": carol,
        "alice": alice,
    }


def _path(route: str, names: tuple[str, ...], world: dict, **overrides) -> str:
    """Return the route's URL with real ids of the seeded records in it."""
    app, _, name = route.partition(":")
    owner = next((kind for kind in ("configuration", "directory", "user", "attempt") if kind in name), "")
    if app == "rotation" and name in ("test-connection", "discover-accounts", "adopt-accounts"):
        owner = "directory"
    if app == "rotation" and name.startswith(("rotate", "reveal")):
        owner = "user"
    if app == "accounts":
        owner = "person"
    if app == "api" and name.startswith(("application", "approle", "secret-id-create")):
        owner = "application"
    if app == "api" and name.startswith("token"):
        owner = "token"
    if app == "scripts":
        owner = "attempt" if name in ("rerun", "decide") else "script"
        if name == "attach":
            owner = "user"
    if app == "api" and name.startswith("audit-event"):
        owner = ""
    if app == "access" and name in (
        "check-out",
        "request",
        "break-glass",
        "api-check-out",
        "api-break-glass",
    ):
        owner = "user"
    if app == "ops":
        owner = ""
    # access: an account's or a configuration's page; a check-out, request or pool is id 1 (missing).
    if app == "access":
        named = name.removeprefix("api-") in ("check-out", "request", "break-glass")
        owner = "user" if named else "configuration" if name == "configuration" else ""
    values = {
        "pk": world[owner].pk if owner else 1,
        "uid": world[owner or "user"].uid if owner in ("configuration", "directory", "user") else "x",
        "token": "world",
        "kind": "user",
        "name": world["user"].title,
        "path": "ldap/static-cred/x",  # the Vault KV preflight's path
        **overrides,
    }
    return reverse(route, kwargs={key: values[key] for key in names})


def _assert_no_server_error(response, what) -> None:
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # an export fails while it streams, not before
    assert response.status_code < 500, what


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "names"), ROUTES, ids=[route for route, _ in ROUTES])
@PROPERTY_SETTINGS
@given(query=form_data, body=form_data, json_data=json_body)
def test_arbitrary_input_to_any_view_is_never_a_server_error(
    alice_client, world, route, names, query, body, json_data
):
    from django.conf import settings as django_settings
    from django.db import transaction

    client, session_key = alice_client
    # The last example ran in a rolled-back savepoint: Alice's session is stored as it was; a route that
    # signed her out or rotated her session key changed only the cookie.
    client.cookies[django_settings.SESSION_COOKIE_NAME] = session_key
    url = _path(route, names, world)
    with transaction.atomic():
        _assert_no_server_error(client.get(url, query), ("GET", url, query))
        _assert_no_server_error(client.post(url, body), ("POST", url, body))
        if route.startswith(("api:", "access:api-")):
            for method in (client.post, client.put, client.patch):
                response = method(url, json.dumps(json_data), content_type="application/json")
                _assert_no_server_error(response, (method.__name__, url, json_data))
        transaction.set_rollback(True)


def test_the_property_covers_every_app_and_both_path_kinds():
    apps = {route.split(":")[0] for route, _ in ROUTES}
    assert apps == set(APPS)
    assert any("pk" in names for _, names in ROUTES) and any("uid" in names for _, names in ROUTES)
    assert len(ROUTES) > 50


# -- Property: every management command's numeric arguments ------------------------------------
# A number past any range (days past year 9999, a TTL past 64 bits, an id past the column) is a
# clear CommandError or a success, never a traceback. {N} in an argument list is the number.

HUGE = ["800000", "3000000", str(2**31), str(2**63), str(2**64 + 1), "9" * 40, "-1", "-" + "9" * 30, "0"]
CLI_CASES = [
    ("purge_audit", ["--older-than", "{N}"]),
    ("pam_application", ["create", "cli-app", "--configuration", "World", "--expires-days", "{N}"]),
    ("pam_application", ["token", "world-app", "--expires-days", "{N}"]),
    ("pam_application", ["approle", "world-app", "--token-ttl", "{N}"]),
    ("pam_application", ["approle", "world-app", "--token-ttl", "60", "--token-max-ttl", "{N}"]),
    ("pam_application", ["secret-id", "world-app", "--ttl-hours", "{N}"]),
    ("pam_application", ["secret-id", "world-app", "--uses", "{N}"]),
    ("pam_checkout", ["out", "World user", "--ttl", "{N}"]),
    ("pam_checkout", ["in", "{N}"]),
    ("pam_checkout", ["renew", "{N}", "--as", "alice", "--ttl", "60"]),
    ("pam_checkout", ["renew", "{held}", "--as", "alice", "--ttl", "{N}"]),
    ("pam_action", ["rotate", "--user", "World user", "--dry-run", "--timeout", "{N}"]),
    ("pam_rotation", ["edit", "--user", "World user", "--complexity", "{N},1,1,1,1"]),
    ("pam_rotation", ["edit", "--user", "World user", "--complexity", "90,{N},1,1,1"]),
    ("pam_webhook", ["add", "https://example.com/{N}", "--events", "failure"]),
    ("pam_siem", ["status"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("command", "arguments"), CLI_CASES, ids=[" ".join(a[:2]) for _, a in CLI_CASES])
@PROPERTY_SETTINGS
@given(number=st.one_of(st.sampled_from(HUGE), st.integers().map(str)))
def test_a_number_past_any_range_on_the_command_line_is_a_clear_error(world, command, arguments, number):
    from django.db import transaction

    from access import services
    from api.models import AppRole

    with transaction.atomic():
        AppRole.objects.create(application=world["application"])
        PamUser.objects.filter(pk=world["user"].pk).update(rotation_enabled=True)
        world["user"].refresh_from_db()
        args = [part.replace("{N}", number) for part in arguments]
        if "{held}" in arguments or arguments[0] in ("in", "renew"):
            held, _password = services.check_out(world["user"], services.Caller.person_acting(world["alice"]))
            args = [part.replace("{held}", str(held.pk)) for part in args]
        try:
            call_command(command, *args, stdout=io.StringIO(), stderr=io.StringIO())
        except CommandError as error:
            assert "Traceback" not in str(error) and str(error), (command, args)
        transaction.set_rollback(True)


@pytest.mark.django_db
@pytest.mark.parametrize(("command", "arguments"), CLI_CASES, ids=[" ".join(a[:2]) for _, a in CLI_CASES])
def test_each_command_line_case_succeeds_with_an_ordinary_number(world, command, arguments):
    """The property above reaches the number: with 60 each command line runs to the end."""
    from access import services
    from api.models import AppRole

    AppRole.objects.create(application=world["application"])
    PamUser.objects.filter(pk=world["user"].pk).update(rotation_enabled=True)
    world["user"].refresh_from_db()
    number, args = "60", list(arguments)
    if "{held}" in arguments or arguments[0] in ("in", "renew"):
        held, _password = services.check_out(world["user"], services.Caller.person_acting(world["alice"]))
        number = "60" if "{held}" in arguments else str(held.pk)
        args = [part.replace("{held}", str(held.pk)) for part in args]
    args = [part.replace("{N}", number) for part in args]
    if command == "pam_siem":
        return  # needs a collector URL: its arguments carry no number
    call_command(command, *args, stdout=io.StringIO(), stderr=io.StringIO())


# -- Every choice a page offers, answered with an id past 64 bits -------------------------------
# Each page's form is read from its HTML: every <select>, checkbox and radio name is posted with
# ids no column can hold, so a new form's ModelChoiceField or ModelMultipleChoiceField is covered
# the day it appears. Every id in a path is tried past 64 bits too.

PAST_64_BITS = [str(2**64 + 1), str(2**63), "9" * 40, "-" + "9" * 30]


class _ChoiceNames(HTMLParser):
    """Collect the names of a page's choice inputs."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("name") and (tag == "select" or attrs.get("type") in ("checkbox", "radio")):
            self.names.add(attrs["name"])


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "names"), ROUTES, ids=[route for route, _ in ROUTES])
def test_ids_past_64_bits_in_choices_and_paths_are_never_a_server_error(client, world, route, names):
    client.force_login(world["alice"])
    url = _path(route, names, world)
    page = client.get(url)
    _assert_no_server_error(page, ("GET", url))
    parser = _ChoiceNames()
    if page.status_code == 200 and page.get("Content-Type", "").startswith("text/html"):
        parser.feed(page.content.decode())
    for choice in sorted(parser.names):
        _assert_no_server_error(client.post(url, {choice: PAST_64_BITS}), ("POST", url, choice))
    if parser.names:
        everything = dict.fromkeys(parser.names, PAST_64_BITS)
        _assert_no_server_error(client.post(url, everything), ("POST", url, "all choices"))
    if "pk" in names:
        for huge in PAST_64_BITS[:3]:
            far = _path(route, names, world, pk=int(huge))
            _assert_no_server_error(client.get(far), ("GET", far))
            _assert_no_server_error(client.post(far, {}), ("POST", far))


@pytest.mark.django_db
def test_the_choice_probe_finds_the_multiple_choice_fields_the_fuzzer_found(client, world):
    """The probe above reads `configurations` and `additional_credentials` off the pages."""
    client.force_login(world["alice"])
    pages = {
        reverse("api:application-create"): "configurations",
        reverse("api:application-edit", args=[world["application"].pk]): "configurations",
        _path("scripts:attach", ("kind", "pk"), world): "additional_credentials",
    }
    for url, field in pages.items():
        parser = _ChoiceNames()
        parser.feed(client.get(url).content.decode())
        assert field in parser.names, url
