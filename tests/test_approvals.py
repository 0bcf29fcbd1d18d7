"""Approvals (dual control) and break-glass: who may ask, who may decide, what a grant opens, and its end.

Against a real slapd: an approved grant reveals a password that binds, and the end of a grant or
of a break-glass window rotates it (the old password is refused).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from access import services
from access.models import AccessRequest, ConfigurationAccess, RequestState
from access.services import Caller, Refused
from audit.models import AuditEvent
from rotation import dispatch
from rotation.models import AttemptState, RotationAttempt
from tests.conftest import PERSONA_PASSWORD, examples
from tests.test_rotation import STRONG, make_env


@pytest.fixture
def env(db, slapd, unique_name):
    return make_env(slapd, unique_name)


@pytest.fixture
def erin(db):
    """A second Administrator: the approver when alice asks."""
    user = User.objects.create_user("erin", "erin@example.test", PERSONA_PASSWORD)
    user.groups.add(Group.objects.get(name="Administrators"))
    return user


@pytest.fixture
def guarded(env, unique_name):
    """An account on slapd whose configuration requires approval."""
    user = env.account(unique_name("guarded"))
    ConfigurationAccess.objects.create(configuration=user.configuration, require_approval=True)
    return user


def login(client, user):
    client.logout()
    assert client.login(username=user.username, password=PERSONA_PASSWORD)
    return client


def events(user, name):
    return AuditEvent.objects.filter(event=name, record_type="pamuser", record_id=user.pk)


def ask(client, user, person, reason="patching the DC", minutes=30) -> AccessRequest:
    login(client, person)
    response = client.post(
        reverse("access:request", args=[user.pk]), {"reason": reason, "wanted_minutes": minutes}
    )
    assert response.status_code == 302, response.content[:500]
    return AccessRequest.objects.filter(requester=person, user=user).latest("id")


def decide(client, access, person, decision="approve", comment="ok", minutes=""):
    login(client, person)
    return client.post(
        reverse("access:decide", args=[access.pk]),
        {"decision": decision, "comment": comment, "minutes": minutes},
    )


def test_without_a_grant_an_operator_can_neither_reveal_nor_check_out(client, bob, guarded):
    login(client, bob)
    reveal = client.post(reverse("rotation:reveal-password", args=[guarded.pk]))
    assert reveal.status_code == 403 and STRONG.encode() not in reveal.content
    assert client.post(reverse("access:check-out", args=[guarded.pk])).status_code == 403
    page = client.get(guarded.get_absolute_url()).content
    assert b'id="request-access"' in page and b'id="approval-required"' in page


def test_a_request_is_mailed_to_approvers_approved_used_and_expires_with_a_rotation(
    client, alice, bob, carol, erin, guarded, env, django_capture_on_commit_callbacks
):
    access = ask(client, guarded, bob)
    assert access.state == RequestState.PENDING
    sent = {address for message in mail.outbox for address in message.to}
    assert sent == {"alice@example.test", "erin@example.test"}  # the approvers, never the requester
    assert all(STRONG not in message.body for message in mail.outbox)

    assert decide(client, access, carol).status_code == 403  # a Viewer cannot approve
    assert decide(client, access, bob).status_code == 403  # an Operator (the requester) cannot either
    access.refresh_from_db()
    assert access.state == RequestState.PENDING
    detail = login(client, bob).get(access.get_absolute_url()).content
    assert b"Pending" in detail

    decide(client, access, alice, minutes="10")
    access.refresh_from_db()
    assert access.state == RequestState.APPROVED and access.decided_by == alice
    assert dt.timedelta(minutes=9) < access.granted_until - timezone.now() <= dt.timedelta(minutes=10)
    assert mail.outbox[-1].to == ["bob@example.test"]

    login(client, bob)
    assert b"Approved" in client.get(access.get_absolute_url()).content
    reveal = client.post(reverse("rotation:reveal-password", args=[guarded.pk]))
    assert reveal.status_code == 200 and STRONG.encode() in reveal.content
    assert env.server.can_bind(guarded.distinguished_name, STRONG)
    # The grant is bob's alone: another Operator still needs one.
    frank = User.objects.create_user("frank", "", PERSONA_PASSWORD)
    frank.groups.add(Group.objects.get(name="Operators"))
    assert (
        login(client, frank).post(reverse("rotation:reveal-password", args=[guarded.pk])).status_code == 403
    )

    with django_capture_on_commit_callbacks(execute=True):
        dispatch.tick(access.granted_until + dt.timedelta(seconds=1), housekeeping=False)
    access.refresh_from_db()
    assert access.state == RequestState.EXPIRED
    assert RotationAttempt.objects.get(pk=access.rotation_attempt_id).state == AttemptState.SUCCEEDED
    guarded.refresh_from_db()
    assert not env.server.can_bind(guarded.distinguished_name, STRONG)
    assert env.server.can_bind(guarded.distinguished_name, guarded.get_password())
    assert login(client, bob).post(reverse("rotation:reveal-password", args=[guarded.pk])).status_code == 403
    for name in (AuditEvent.ACCESS_REQUESTED, AuditEvent.ACCESS_APPROVED, AuditEvent.ACCESS_EXPIRED):
        assert events(guarded, name).count() == 1, name


def test_the_requester_cannot_approve_their_own_request(client, alice, erin, guarded):
    access = ask(client, guarded, alice)
    decide(client, access, alice)
    access.refresh_from_db()
    assert access.state == RequestState.PENDING
    with pytest.raises(Refused, match="your own request"):
        services.decide(access, Caller.person_acting(alice), approve=True)
    page = login(client, alice).get(access.get_absolute_url()).content
    assert b'id="decision-form"' not in page
    assert b'id="decision-form"' in login(client, erin).get(access.get_absolute_url()).content
    decide(client, access, erin)
    access.refresh_from_db()
    assert access.state == RequestState.APPROVED and access.decided_by == erin


def test_a_denied_request_shows_nothing(client, alice, bob, guarded):
    access = ask(client, guarded, bob)
    decide(client, access, alice, decision="deny", comment="use the pool")
    access.refresh_from_db()
    assert access.state == RequestState.DENIED and access.granted_until is None
    login(client, bob)
    page = client.get(access.get_absolute_url()).content
    assert b"Denied" in page and b"use the pool" in page and STRONG.encode() not in page
    assert client.post(reverse("rotation:reveal-password", args=[guarded.pk])).status_code == 403
    assert client.post(reverse("access:check-out", args=[guarded.pk])).status_code == 403
    assert events(guarded, AuditEvent.ACCESS_DENIED).count() == 1
    assert not events(guarded, AuditEvent.PASSWORD_REVEALED).exists()


def test_an_approved_check_out_ends_no_later_than_the_grant(client, alice, bob, guarded):
    access = ask(client, guarded, bob, minutes=5)
    decide(client, access, alice)
    checkout, password = services.check_out(guarded, Caller.person_acting(bob))
    access.refresh_from_db()
    assert password == STRONG and checkout.expires_at <= access.granted_until


def test_break_glass_needs_a_justification_alerts_every_approver_and_rotates_at_the_end(
    client, alice, bob, erin, guarded, env, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_EMAIL_TO = "soc@example.test"
    login(client, alice)
    url = reverse("access:break-glass", args=[guarded.pk])
    empty = client.post(url, {"justification": "   ", "minutes": 15})
    assert empty.status_code == 200 and STRONG.encode() not in empty.content
    assert not AccessRequest.objects.exists()
    page = client.post(url, {"justification": "DC down, restoring service", "minutes": 15})
    assert (
        page.status_code == 200 and STRONG.encode() in page.content and b"break-glass-notice" in page.content
    )
    grant = AccessRequest.objects.get(break_glass=True)
    alert = mail.outbox[-1]
    assert set(alert.to) == {"erin@example.test", "soc@example.test"} and "BREAK-GLASS" in alert.subject
    assert STRONG not in alert.body
    marked = events(guarded, AuditEvent.BREAK_GLASS).get()
    assert marked.category == "security" and "DC down" in marked.message and marked.actor == alice

    with django_capture_on_commit_callbacks(execute=True):
        dispatch.tick(grant.granted_until + dt.timedelta(seconds=1), housekeeping=False)
    grant.refresh_from_db()
    assert grant.state == RequestState.EXPIRED and grant.rotation_attempt_id
    guarded.refresh_from_db()
    assert not env.server.can_bind(guarded.distinguished_name, STRONG)
    assert env.server.can_bind(guarded.distinguished_name, guarded.get_password())


def test_an_operator_cannot_break_the_glass(client, bob, guarded):
    login(client, bob)
    response = client.post(
        reverse("access:break-glass", args=[guarded.pk]), {"justification": "x", "minutes": 5}
    )
    assert response.status_code == 403 and STRONG.encode() not in response.content


def test_an_application_needs_no_approval(guarded, env, unique_name, rf):
    from api import services as api_services
    from api.authentication import ApplicationCaller

    pool = services.save_pool(
        Caller.system(), name=unique_name("apps"), configuration=guarded.configuration, members=[guarded]
    )
    application, _ = api_services.create_application(unique_name("app"), [guarded.configuration])
    request = rf.post("/")
    request.user, request.auth = ApplicationCaller(application), None
    checkout, password = services.check_out_from_pool(pool, Caller.from_request(request))
    assert password == STRONG and checkout.application == application
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):  # applications have no approval flow at all
        services.request_access(guarded, Caller.from_request(request), "x", 5)


def test_a_pending_request_nobody_decides_expires(client, bob, alice, guarded):
    access = ask(client, guarded, bob)
    dispatch.tick(timezone.now() + dt.timedelta(days=1, minutes=1), housekeeping=False)
    access.refresh_from_db()
    assert access.state == RequestState.EXPIRED
    assert decide(client, access, alice).status_code == 302
    access.refresh_from_db()
    assert access.state == RequestState.EXPIRED


def test_the_api_requests_and_decides(client, alice, bob, erin, guarded):
    login(client, bob)
    made = client.post(
        reverse("access:api-requests"),
        {"account": guarded.pk, "reason": "deploy", "wanted_minutes": 15},
        content_type="application/json",
    )
    assert made.status_code == 201 and made.json()["state"] == "pending"
    pk = made.json()["id"]
    own = client.post(
        reverse("access:api-decide", args=[pk]), {"decision": "approve"}, content_type="application/json"
    )
    assert own.status_code == 403
    login(client, alice)
    listed = client.get(reverse("access:api-requests")).json()
    assert [r["id"] for r in listed] == [pk]
    ok = client.post(
        reverse("access:api-decide", args=[pk]), {"decision": "approve"}, content_type="application/json"
    )
    assert ok.status_code == 200 and ok.json()["state"] == "approved"
    login(client, bob)
    out = client.post(reverse("access:api-check-out", args=[guarded.pk]), {}, content_type="application/json")
    assert out.status_code == 200 and out.json()["password"] == STRONG


def test_every_page_of_the_workflow_keeps_the_password_out(client, alice, bob, erin, guarded):
    access = ask(client, guarded, bob)
    decide(client, access, alice)
    login(client, bob)
    services.check_out(guarded, Caller.person_acting(bob))
    for person in (bob, alice):
        login(client, person)
        for url in (
            reverse("access:home"),
            access.get_absolute_url(),
            guarded.get_absolute_url(),
            reverse("access:pool-list"),
            reverse("access:request", args=[guarded.pk]),
        ):
            page = client.get(url)
            assert page.status_code in (200, 403) and STRONG.encode() not in page.content, url


@settings(max_examples=examples(50))
@given(
    data=st.dictionaries(
        st.sampled_from(["reason", "wanted_minutes", "decision", "comment", "minutes", "justification"]),
        st.one_of(st.text(max_size=600), st.integers(-(2**40), 2**40).map(str)),
        max_size=4,
    )
)
def test_no_request_or_decision_form_gives_a_server_error(client, alice, erin, db, data):
    from tests.conftest import make_user

    user = make_user(title="fuzz-guarded", password=STRONG) if not AccessRequest.objects.exists() else None
    if user is not None:
        ConfigurationAccess.objects.create(configuration=user.configuration, require_approval=True)
        AccessRequest.objects.create(user=user, requester=erin, reason="r", wanted_minutes=5)
    access = AccessRequest.objects.first()
    login(client, alice)
    for url in (
        reverse("access:request", args=[access.user_id]),
        reverse("access:decide", args=[access.pk]),
        reverse("access:break-glass", args=[access.user_id]),
    ):
        assert client.post(url, data).status_code < 500, url
