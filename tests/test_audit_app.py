"""The audit app: one vocabulary for outcomes, one Actor for who did it, and a move that kept every event."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.urls import reverse

from api import services as api_services
from api.authentication import ApplicationCaller
from audit.actors import APPLICATION, PERSON, SYSTEM, Actor
from audit.events import record_event
from audit.models import AuditEvent, Category, Outcome
from tests.conftest import make_configuration

ROOT = Path(__file__).resolve().parent.parent


def sign_in(client, username: str, password: str):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR="192.0.2.77",
        HTTP_USER_AGENT="TestBrowser/1.0",
    )


# -- One vocabulary: the Failure filter finds sign-in failures -----------------------------------


def test_a_wrong_password_is_stored_as_a_failure_with_who_where_and_which_browser(client, carol):
    sign_in(client, "carol", "wrong password")
    event = AuditEvent.objects.get(event=AuditEvent.SIGNIN_FAILED)
    assert event.outcome == Outcome.FAIL and event.category == Category.LOGIN
    assert event.actor_name == "carol" and event.actor_id is None  # the name typed, nobody signed in
    assert event.remote_address == "192.0.2.77"
    assert event.message == "wrong user name or password; user agent: TestBrowser/1.0"


def test_the_audit_logs_failure_filter_finds_sign_in_failures_and_lock_outs(client, carol, alice):
    for _ in range(settings.SIGNIN_FAILURE_LIMIT):
        sign_in(client, "carol", "wrong password")
    assert AuditEvent.objects.filter(event=AuditEvent.SIGNIN_LOCKED_OUT).exists()
    client.force_login(alice)

    page = client.get(reverse("rotation:audit-log"), {"outcome": "fail"})

    listed = {(event.event, event.actor_name) for event in page.context["page"].events}
    assert listed == {(AuditEvent.SIGNIN_FAILED, "carol"), (AuditEvent.SIGNIN_LOCKED_OUT, "carol")}
    assert sum(1 for event in page.context["page"].events if event.event == AuditEvent.SIGNIN_FAILED) == (
        settings.SIGNIN_FAILURE_LIMIT
    )
    successes = client.get(reverse("rotation:audit-log"), {"outcome": "ok"}).context["page"].events
    assert all(event.outcome == Outcome.OK for event in successes) and successes


def test_the_apis_failure_filter_finds_sign_in_failures(client, carol, bob):
    sign_in(client, "carol", "wrong password")
    client.force_login(bob)

    rows = client.get("/api/v1/audit-events/", {"outcome": "fail"}).json()["results"]

    assert [(row["event"], row["actor_name"], row["outcome"]) for row in rows] == [
        (AuditEvent.SIGNIN_FAILED, "carol", "fail")
    ]


def test_every_stored_outcome_is_in_the_fixed_vocabulary(client, carol, alice):
    sign_in(client, "carol", "wrong password")
    sign_in(client, "carol", "still wrong")
    sign_in(client, "carol", "x" * 3)
    client.force_login(alice)
    client.get(reverse("rotation:audit-log"), {"format": "csv"})
    stored = set(AuditEvent.objects.values_list("outcome", flat=True))
    assert stored and stored <= {"", *Outcome.values}


# -- One "who did it" -----------------------------------------------------------------------------


def test_an_actor_from_a_persons_request_names_the_person_the_address_and_the_browser(db, carol):
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="Agent/" + "x" * 300)
    request.user = carol
    who = Actor.from_request(request)
    assert (who.kind, who.name, who.user, who.address) == (PERSON, "carol", carol, "198.51.100.4")
    assert who.user_agent.startswith("Agent/") and len(who.user_agent) == 200

    event = record_event(AuditEvent.PASSWORD_REVEALED, actor=who, outcome=Outcome.OK, message="shown")
    assert (event.actor, event.actor_name, event.remote_address) == (carol, "carol", "198.51.100.4")
    assert event.message == "shown"  # only sign-in events name the browser, as they always did
    signed_in = record_event(AuditEvent.SIGNIN_OK, actor=who, category=Category.LOGIN, message="signed in")
    assert signed_in.message == "signed in; user agent: " + who.user_agent


def test_an_actor_from_an_applications_request_is_the_application_never_a_person(db):
    application, _clear = api_services.create_application("billing", [make_configuration(title="Apps")])
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9")
    request.user = ApplicationCaller(application)
    who = Actor.from_request(request)
    assert (who.kind, who.name, who.user, who.address) == (
        APPLICATION,
        "application:billing",
        None,
        "203.0.113.9",
    )
    event = record_event(AuditEvent.CREDENTIAL_READ, actor=who, outcome=Outcome.OK)
    assert event.actor_id is None and event.actor_name == "application:billing"


def test_an_anonymous_request_is_named_by_what_was_typed(db):
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.5")
    request.user = AnonymousUser()
    who = Actor.from_request(request, name="mallory")
    assert (who.kind, who.name, who.user, who.address) == (PERSON, "mallory", None, "192.0.2.5")


def test_a_person_and_the_system_outside_a_request_say_who_did_it(db, carol):
    event = record_event(
        AuditEvent.RECORD_UPDATED, actor=Actor.person(carol, address="192.0.2.9"), outcome=Outcome.OK
    )
    assert (event.actor, event.actor_name, event.remote_address) == (carol, "carol", "192.0.2.9")
    system = record_event(AuditEvent.AUDIT_PURGED, actor=Actor.system("root (purge_audit)"))
    assert (system.actor_id, system.actor_name, system.remote_address) == (None, "root (purge_audit)", None)
    assert Actor.system("root").kind == SYSTEM and Actor.person(None, address="192.0.2.1").user is None


# -- The move: a database made before it keeps its events and their meaning ----------------------


# Run in a fresh process (its own settings and database file): migrate to the schema as it was before
# the audit app (rotation owned AuditEvent and its permission), write events there, then migrate on.
MIGRATE_ACROSS_THE_MOVE = """
import django, sys
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", "django_q", verbosity=0)  # rotation's post_migrate hook writes schedules
call_command("migrate", "rotation", "0004_attempt_number", verbosity=0)
call_command("migrate", "records", "0002_roles", verbosity=0)
with connection.cursor() as cursor:
    for outcome in ("ok", "fail", "failed", "refused", ""):
        cursor.execute(
            "INSERT INTO rotation_auditevent (created_at, event, category, outcome, actor_name, record_type, "
            "record_title, message) VALUES ('2026-01-02 03:04:05', 'login_failure', 'login', %s, 'carol', '', '', %s)",
            [outcome, "was " + (outcome or "empty")],
        )
call_command("migrate", verbosity=0)
"""


def test_a_database_made_before_the_move_keeps_its_events_maps_old_outcomes_and_the_viewers_grant(tmp_path):
    env = {
        **os.environ,
        "PAMROTATE_MODE": "dev",
        "PAMROTATE_DATA_DIR": str(tmp_path),
        "PAMROTATE_ENV_FILE": "",
        "DJANGO_SETTINGS_MODULE": "pamrotate.settings",
    }
    env.pop("DATABASE_URL", None)
    subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", MIGRATE_ACROSS_THE_MOVE], env=env, cwd=ROOT, check=True, capture_output=True
    )
    database = sqlite3.connect(tmp_path / "pamrotate.sqlite3")

    rows = database.execute("SELECT message, outcome FROM rotation_auditevent ORDER BY id").fetchall()
    assert rows == [
        ("was ok", "ok"),
        ("was fail", "fail"),
        ("was failed", "fail"),
        ("was refused", "fail"),
        ("was empty", ""),
    ]
    content_types = database.execute(
        "SELECT app_label FROM django_content_type WHERE model = 'auditevent'"
    ).fetchall()
    assert content_types == [("audit",)]
    grants = database.execute(
        "SELECT g.name FROM auth_group g JOIN auth_group_permissions gp ON gp.group_id = g.id "
        "JOIN auth_permission p ON p.id = gp.permission_id JOIN django_content_type c ON c.id = p.content_type_id "
        "WHERE c.app_label = 'audit' AND p.codename = 'view_auditevent' ORDER BY g.name"
    ).fetchall()
    assert grants == [("Administrators",), ("Operators",), ("Viewers",)]
    database.close()
