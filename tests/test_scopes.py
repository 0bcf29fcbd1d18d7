"""Teams: a role granted on some configurations shows and acts only there (issue 21, scopes)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts import policy
from accounts.models import DirectoryGroupMembership, Grant, GrantRole
from api import services
from audit import events
from audit.actors import Actor
from tests.conftest import make_directory, make_persona, make_user
from tests.test_directory_signin import STRONG, Groups, openldap, sign_in  # noqa: F401 (openldap: a fixture)

RED_PASSWORD, BLUE_PASSWORD = "Red-Team-Secret-1!", "Blue-Team-Secret-2!"


def team(color: str) -> dict:
    directory = make_directory(title=f"{color} LDAP", hostname=f"{color.lower()}.example.test")
    configuration = directory.configuration
    configuration.title = f"{color} configuration"
    configuration.save()
    password = RED_PASSWORD if color == "Red" else BLUE_PASSWORD
    user = make_user(
        resource=directory, title=f"{color} service", password=password, distinguished_name=f"cn={color},dc=x"
    )
    events.record_event("record_update", instance=user, message=f"{color} account touched")
    return {"configuration": configuration, "directory": directory, "user": user}


def grant(person, role: int, *configurations) -> Grant:
    given = Grant.objects.create(user=person, role=role)
    given.configurations.set(configurations)
    return given


@pytest.fixture
def teams(db):
    make_persona("dave")  # makes the role groups
    red, blue = team("Red"), team("Blue")
    rita = User.objects.create_user("rita", "rita@example.test", "x")  # red team operator
    grant(rita, GrantRole.OPERATOR, red["configuration"])
    return {"red": red, "blue": blue, "rita": rita}


def blue_names(teams) -> list[str]:
    blue = teams["blue"]
    return [blue["configuration"].title, blue["directory"].title, blue["user"].title, blue["user"].uid]


def test_a_scoped_operator_sees_only_her_team_in_every_list_page(client, teams):
    client.force_login(teams["rita"])
    pages = [
        reverse("records:dashboard"),
        reverse("records:configuration-list"),
        reverse("records:directory-list"),
        reverse("records:user-list"),
        reverse("records:user-list") + "?q=service",
        reverse("rotation:audit-log"),
        reverse("rotation:audit-log") + "?format=csv",
        reverse("rotation:audit-log") + "?format=jsonl",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode()
        if url != reverse("records:dashboard"):
            assert "Red" in text, url  # her own team's records are there
        leaked = [name for name in blue_names(teams) if name in text]
        assert not leaked, (url, leaked)


def test_the_other_teams_records_are_answered_as_missing(client, teams):
    client.force_login(teams["rita"])
    blue = teams["blue"]
    for url in [
        reverse("records:configuration-detail", args=[blue["configuration"].pk]),
        reverse("records:directory-detail", args=[blue["directory"].pk]),
        reverse("records:user-detail", args=[blue["user"].pk]),
        reverse("rotation:user-history", args=[blue["user"].pk]),
    ]:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("rotation:reveal-password", args=[blue["user"].pk])).status_code == 404
    assert client.post(reverse("rotation:rotate-now", args=[blue["user"].pk])).status_code == 404
    red = teams["red"]["user"]
    assert client.get(reverse("records:user-detail", args=[red.pk])).status_code == 200
    revealed = client.post(reverse("rotation:reveal-password", args=[red.pk]))
    assert revealed.status_code == 200 and RED_PASSWORD in revealed.content.decode()


def test_the_api_and_the_vault_path_keep_to_the_team(client, teams):
    _token, clear = services.issue_token(user=teams["rita"], actor=Actor.person(teams["rita"]))
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {clear}"}
    for url in ["/api/v1/configurations/", "/api/v1/directories/", "/api/v1/users/", "/api/v1/audit-events/"]:
        text = client.get(url, **bearer).content.decode()
        assert not [name for name in blue_names(teams) if name in text], url
    blue, red = teams["blue"]["user"], teams["red"]["user"]
    assert client.get(f"/api/v1/users/{blue.uid}/credential/", **bearer).status_code == 404
    assert client.get(f"/api/v1/users/{blue.uid}/", **bearer).status_code == 404
    vault = client.get(f"/v1/ldap/static-cred/{blue.uid}", HTTP_X_VAULT_TOKEN=clear)
    assert vault.status_code == 404 and BLUE_PASSWORD not in vault.content.decode()
    mine = client.get(f"/v1/ldap/static-cred/{red.uid}", HTTP_X_VAULT_TOKEN=clear)
    assert mine.status_code == 200 and mine.json()["data"]["password"] == RED_PASSWORD


def test_a_scoped_operator_may_not_change_records_or_manage_people(client, teams):
    client.force_login(teams["rita"])
    red = teams["red"]
    assert client.get(reverse("records:user-edit", args=[red["user"].pk])).status_code == 403
    assert client.get(reverse("accounts:people")).status_code == 403
    assert client.get(reverse("records:import")).status_code == 403


def test_a_scoped_administrator_cannot_move_a_record_into_another_team(client, teams):
    ann = User.objects.create_user("ann", "ann@example.test", "x")
    grant(ann, GrantRole.ADMINISTRATOR, teams["red"]["configuration"])
    client.force_login(ann)
    from tests.test_records_forms import configuration_data

    response = client.post(reverse("records:configuration-create"), configuration_data(title="Mine"))
    assert response.status_code == 403  # a new configuration needs the role on every configuration
    blue = teams["blue"]["configuration"]
    assert client.get(reverse("records:configuration-edit", args=[blue.pk])).status_code == 404


def test_a_directory_group_grant_follows_membership_read_at_sign_in(teams):
    gus = User.objects.create_user("gus", "gus@example.test", "x")
    group = Grant.objects.create(group_dn="cn=blue-team,ou=groups,dc=x", role=GrantRole.VIEWER)
    group.configurations.set([teams["blue"]["configuration"]])
    assert not policy.can(gus, policy.Action.VIEW, teams["blue"]["user"])
    DirectoryGroupMembership.replace(gus, ["cn=blue-team,ou=groups,dc=x"])
    gus = User.objects.get(pk=gus.pk)
    assert policy.can(gus, policy.Action.VIEW, teams["blue"]["user"])
    assert not policy.can(gus, policy.Action.VIEW, teams["red"]["user"])
    DirectoryGroupMembership.replace(gus, [])
    assert not policy.can(User.objects.get(pk=gus.pk), policy.Action.VIEW, teams["blue"]["user"])


def test_a_role_group_still_means_every_configuration(client, teams):
    carol = make_persona("carol")  # Viewers: existing installs keep working
    assert policy.configurations_for(carol) is policy.ALL
    client.force_login(carol)
    text = client.get(reverse("records:user-list")).content.decode()
    assert "Red service" in text and "Blue service" in text


def test_an_application_keeps_its_configuration_scope(client, teams):
    _application, clear = services.create_application("red-app", [teams["red"]["configuration"]])
    blue = client.get(f"/v1/ldap/static-cred/{teams['blue']['user'].uid}", HTTP_X_VAULT_TOKEN=clear)
    assert blue.status_code == 403 and BLUE_PASSWORD not in blue.content.decode()
    red = client.get(f"/v1/ldap/static-cred/{teams['red']['user'].uid}", HTTP_X_VAULT_TOKEN=clear)
    assert red.status_code == 200


def test_a_scoped_administrator_cannot_create_or_move_records_into_another_team_by_the_api(client, teams):
    import json

    ann = User.objects.create_user("ann", "ann@example.test", "x")
    grant(ann, GrantRole.ADMINISTRATOR, teams["red"]["configuration"])
    _token, clear = services.issue_token(user=ann, actor=Actor.person(ann))
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {clear}"}
    blue, red = teams["blue"], teams["red"]
    body = {
        "title": "Sneaky",
        "configuration": blue["configuration"].uid,
        "login": "sneaky",
        "rotation_enabled": False,
    }
    created = client.post("/api/v1/users/", json.dumps(body), content_type="application/json", **bearer)
    assert created.status_code == 403, created.content
    assert not PamUserModel().objects.filter(title="Sneaky").exists()
    moved = client.patch(
        f"/api/v1/users/{red['user'].uid}/",
        json.dumps({"configuration": blue["configuration"].uid, "resource": None, "rotation_enabled": False}),
        content_type="application/json",
        **bearer,
    )
    assert moved.status_code == 403, moved.content
    red["user"].refresh_from_db()
    assert red["user"].configuration_id == red["configuration"].pk


def PamUserModel():
    from records.models import PamUser

    return PamUser


def test_a_directory_group_grant_is_read_at_sign_in_on_a_real_directory(
    client,
    teams,
    openldap,  # noqa: F811 (the imported fixture)
    slapd,
    unique_name,
):
    team_groups = Groups(slapd, unique_name, slapd.suffix, ["groupOfNames"])
    team_groups.create(slapd.add_user(unique_name("holder"), STRONG))
    given = Grant.objects.create(group_dn=team_groups.dns["viewers"], role=GrantRole.OPERATOR)
    given.configurations.set([teams["blue"]["configuration"]])
    name = unique_name("blueop")
    dn = slapd.add_user(name, STRONG)
    team_groups.set_member("viewers", dn, True)  # in the team's group only, in no role group
    assert sign_in(client, name, STRONG).status_code == 302
    person = User.objects.get(username=name.lower())
    assert policy.can(person, policy.Action.ROTATE, teams["blue"]["user"])
    assert not policy.can(person, policy.Action.VIEW, teams["red"]["user"])
    client.post(reverse("logout"))
    team_groups.set_member("viewers", dn, False)  # left the team: no way in at the next sign-in
    response = sign_in(client, name, STRONG)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
