"""Commands' --as USER: the CLI's listings show and act only within that person's scope (issue 21)."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import GrantRole
from audit.models import AuditEvent
from records.models import PamUser
from rotation.models import RotationAttempt
from tests.conftest import examples, make_persona
from tests.test_scopes import grant, team


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def teams(db):
    """Two teams (tests/test_scopes.py's): rita is an Operator of the red configuration only."""
    make_persona("dave")  # makes the role groups
    red, blue = team("Red"), team("Blue")
    rita = User.objects.create_user("rita", "rita@example.test", "x")
    grant(rita, GrantRole.OPERATOR, red["configuration"])
    PamUser.objects.filter(pk__in=[red["user"].pk, blue["user"].pk]).update(rotation_enabled=True)
    return {"red": red, "blue": blue, "rita": rita}


def person(name: str, role: int, *configurations) -> User:
    user = User.objects.create_user(name, f"{name}@example.test", "x")
    grant(user, role, *configurations)
    return user


def listed_titles(*extra) -> list[str]:
    out, _ = run("pam_rotation", "list", "--format", "json", *extra)
    return [row["title"] for row in json.loads(out)]


def test_list_as_a_scoped_person_shows_none_of_the_other_team(teams):
    assert sorted(listed_titles()) == ["Blue service", "Red service"]  # the system sees everything
    assert listed_titles("--as", "rita") == ["Red service"]
    out, _ = run("pam_rotation", "list", "--as", "rita", "--verbose")
    assert "Red service" in out and "Blue" not in out


def test_info_and_edit_of_the_other_teams_account_answer_as_missing(teams):
    with pytest.raises(CommandError, match="no PAM user"):
        run("pam_rotation", "info", "Blue service", "--as", "rita")
    with pytest.raises(CommandError, match="no PAM user"):
        run("pam_rotation", "edit", "--user", "Blue service", "--disable", "--as", "rita")
    assert PamUser.objects.get(title="Blue service").rotation_enabled
    out, _ = run("pam_rotation", "info", "Red service", "--as", "rita")
    assert "Red service" in out


def test_edit_needs_the_administrator_role_and_is_audited_as_the_person(teams):
    with pytest.raises(CommandError, match="needs the Administrator role"):
        run("pam_rotation", "edit", "--user", "Red service", "--disable", "--as", "rita")
    assert PamUser.objects.get(title="Red service").rotation_enabled
    person("adam", GrantRole.ADMINISTRATOR, teams["red"]["configuration"])
    run("pam_rotation", "edit", "--user", "Red service", "--disable", "--as", "adam")
    assert not PamUser.objects.get(title="Red service").rotation_enabled
    event = AuditEvent.objects.filter(record_id=teams["red"]["user"].pk).order_by("-pk").first()
    assert event.actor_name == "adam" and event.actor.username == "adam"
    # a whole configuration of another team is missing too
    with pytest.raises(CommandError, match="no PAM configuration"):
        run("pam_rotation", "edit", "--configuration", "Blue configuration", "--disable", "--as", "adam")


def test_export_as_a_scoped_person_holds_only_their_team(teams):
    out, _ = run("pam_export", "--as", "rita")
    assert "Red configuration" in out and "Red service" in out
    assert "Blue" not in out
    with pytest.raises(CommandError, match="no configuration is titled"):
        run("pam_export", "--as", "rita", "--configuration", "Blue configuration")
    everything, _ = run("pam_export")
    assert "Blue configuration" in everything


def test_export_with_secrets_needs_the_administrator_role_everywhere(teams):
    person("adam", GrantRole.ADMINISTRATOR, teams["red"]["configuration"])
    before = AuditEvent.objects.count()
    for name in ("rita", "adam"):
        with pytest.raises(CommandError, match="every configuration"):
            run("pam_export", "--include-secrets", "--as", name)
    assert AuditEvent.objects.count() == before


def test_rotate_as_a_person_outside_the_accounts_team_is_refused_and_queues_nothing(teams):
    with pytest.raises(CommandError, match="no PAM user"):
        run("pam_action", "rotate", "--user", "Blue service", "--as", "rita")
    with pytest.raises(CommandError, match="no PAM configuration"):
        run("pam_action", "rotate", "--configuration", "Blue configuration", "--as", "rita")
    assert not RotationAttempt.objects.exists()


def test_rotate_as_a_viewer_is_refused_and_queues_nothing(teams):
    person("vera", GrantRole.VIEWER, teams["red"]["configuration"], teams["blue"]["configuration"])
    for target in (("--user", "Red service"), ("--configuration", "Red configuration")):
        with pytest.raises(CommandError, match="needs the Operator role"):
            run("pam_action", "rotate", *target, "--as", "vera")
    assert not RotationAttempt.objects.exists()
    assert sorted(listed_titles("--as", "vera")) == ["Blue service", "Red service"]


def test_rotate_as_the_teams_operator_is_allowed(teams):
    out, _ = run("pam_action", "rotate", "--user", "Red service", "--dry-run", "--as", "rita")
    assert "would rotate Red service" in out


def test_discover_outside_the_scope_or_without_the_role_is_refused_before_any_search(teams):
    with pytest.raises(CommandError, match="no PAM directory"):
        run("pam_discover", "--directory", "Blue LDAP", "--as", "rita")
    with pytest.raises(CommandError, match="needs the Administrator role"):
        run("pam_discover", "--directory", "Red LDAP", "--as", "rita")


def test_import_as_a_team_administrator_is_refused(teams, tmp_path):
    person("adam", GrantRole.ADMINISTRATOR, teams["red"]["configuration"])
    path = tmp_path / "project.json"
    path.write_text("{}")
    with pytest.raises(CommandError, match="every configuration"):
        run("pam_import", str(path), "--as", "adam")


@pytest.mark.parametrize(
    "command",
    [
        ("pam_rotation", "list"),
        ("pam_rotation", "info", "Red service"),
        ("pam_action", "rotate", "--user", "Red service"),
        ("pam_export",),
        ("pam_discover", "--directory", "Red LDAP"),
        ("pam_checkout", "status"),
    ],
)
def test_an_unknown_or_inactive_person_is_a_clear_error(teams, command):
    teams["rita"].is_active = False
    teams["rita"].save()
    for name in ("nobody", "rita"):
        with pytest.raises(CommandError, match=f"--as {name}: no active person"):
            run(*command, "--as", name)
    assert not RotationAttempt.objects.exists()


def test_checkout_status_as_a_person_lists_only_their_team(teams):
    from datetime import timedelta

    from django.utils import timezone

    from access.models import CheckOut

    later = timezone.now() + timedelta(hours=1)
    for color in ("red", "blue"):
        CheckOut.objects.create(
            user=teams[color]["user"], holder_name=f"{color}-holder", expires_at=later, max_expires_at=later
        )
    everything, _ = run("pam_checkout", "status")
    assert "red-holder" in everything and "blue-holder" in everything
    out, _ = run("pam_checkout", "status", "--as", "rita")
    assert "red-holder" in out and "blue-holder" not in out


@settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1, max_size=40).filter(lambda text: "\x00" not in text and text != "rita"))
def test_any_as_name_is_a_person_or_a_clear_error(teams, name):
    for command in (
        ("pam_rotation", "list"),
        ("pam_export",),
        ("pam_action", "rotate", "--user", "Red service"),
    ):
        try:
            run(*command, "--as", name)
        except CommandError as exc:
            assert "--as" in str(exc) or "refused" in str(exc) or "no " in str(exc)
    assert not RotationAttempt.objects.exists()  # no such person: nothing is ever queued
