"""Discovery: list a directory's accounts (paged), adopt them, and find a login's DN — on real Samba and slapd."""

from __future__ import annotations

import io
import json
import shutil
import tempfile

import ldap3
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from audit.actors import Actor
from audit.models import AuditEvent
from records import changes, schedules
from records.forms import UserForm
from records.models import DirectoryType, PamDirectory, PamUser
from rotation import discovery, ldap
from rotation.discovery import canonical_dn
from rotation.ldap.search import PAGE_SIZE
from rotation.models import AttemptState
from tests.bulk_accounts import add_offline
from tests.conftest import make_configuration, make_user
from tests.ldapservers import SambaDC, escape_rdn
from tests.test_rotation import STRONG, rotate

BULK = 2500


@pytest.fixture(scope="module")
def big_samba(tls_files):
    """A Samba DC of our own with 2,500 accounts under OU=Managed (added offline before it starts)."""
    directory = tempfile.mkdtemp(prefix="pamrotate-disc-")
    server = SambaDC(directory, tls=tls_files)
    try:
        server.bulk_dns = add_offline(server, BULK, "bulk")
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


def directory_for(server, unique, user_match: str = "", **fields) -> PamDirectory:
    """Create a configuration, the rotator's credential and a directory record for a real server."""
    configuration = make_configuration(title=unique("cfg"))
    admin = make_user(
        configuration=configuration,
        title=unique("admin"),
        login=server.rotator_dn,
        distinguished_name=server.rotator_dn,
        password=server.rotator_password,
    )
    return PamDirectory.objects.create(
        title=unique("dir"),
        configuration=configuration,
        hostname=server.host,
        port=server.ldaps_port,
        ca_certificate=server.tls.ca_pem,
        directory_type=DirectoryType.ACTIVE_DIRECTORY if server.kind == "ad" else DirectoryType.OPENLDAP,
        user_match=user_match,
        administrative_credential=admin,
        **fields,
    )


def slapd_ou(slapd, unique) -> str:
    """Create a fresh OU under ou=people (where the rotator may reset passwords) and return its DN."""
    name = unique("ou")
    dn = f"ou={name},{slapd.people_dn}"
    conn = slapd.connect(slapd.root_dn, slapd.root_password)
    try:
        assert conn.add(dn, ["organizationalUnit"], {"ou": name}), conn.result
    finally:
        conn.unbind()
    return dn


# -- Discovery -----------------------------------------------------------------------------------


def test_discovery_pages_through_2500_samba_accounts(db, big_samba, unique_name, monkeypatch):
    searches = []
    real_search = ldap3.Connection.search

    def counting_search(self, *args, **kwargs):
        if kwargs.get("paged_size"):
            searches.append(kwargs["paged_size"])
        return real_search(self, *args, **kwargs)

    monkeypatch.setattr(ldap3.Connection, "search", counting_search)
    directory = directory_for(big_samba, unique_name, user_match=big_samba.people_dn)
    found = discovery.discover(directory)

    assert len(found) == BULK
    assert len(searches) == 3 and set(searches) == {PAGE_SIZE}  # 1,000 + 1,000 + 500
    first = next(item for item in found if item.account.login == "bulk00000")
    assert first.account.dn == big_samba.bulk_dns[0]
    assert first.account.principal_name == "bulk00000@example.test"
    assert first.account.enabled is True and first.account.locked is False
    assert not first.adopted
    event = AuditEvent.objects.get(event=AuditEvent.DIRECTORY_DISCOVERED, record_id=directory.pk)
    assert "2500 accounts found" in event.message


def test_blank_search_base_searches_the_naming_context(db, big_samba, unique_name):
    directory = directory_for(big_samba, unique_name)
    logins = {item.account.login for item in discovery.discover(directory)}
    assert {"Administrator", "rotator", "bulk02499"} <= logins


def test_discovery_reports_disabled_and_locked_samba_accounts(db, big_samba, unique_name):
    dn = big_samba.add_user(unique_name("dis"), STRONG)
    conn = big_samba.connect(big_samba.admin_dn, big_samba.admin_password)
    try:
        conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])]})
    finally:
        conn.unbind()
    directory = directory_for(big_samba, unique_name, user_match=big_samba.people_dn)
    account = next(item.account for item in discovery.discover(directory) if item.account.dn == dn)
    assert account.enabled is False
    assert account.password_last_set is not None


def test_openldap_discovery_uses_the_default_filter_or_the_configured_one(db, slapd, unique_name):
    ou = slapd_ou(slapd, unique_name)
    alpha = slapd.add_user("alpha-" + unique_name(""), STRONG, ou_dn=ou)
    beta = slapd.add_user("beta-" + unique_name(""), STRONG, ou_dn=ou)
    conn = slapd.connect(slapd.root_dn, slapd.root_password)
    try:  # not a person: the default filter leaves it out
        assert conn.add(f"cn=printer,{ou}", ["organizationalRole"], {"cn": "printer"})
    finally:
        conn.unbind()
    directory = directory_for(slapd, unique_name, user_match=ou)

    found = discovery.discover(directory)
    assert {item.account.dn for item in found} == {alpha, beta}

    directory.discovery_filter = "(&(objectClass=inetOrgPerson)(uid=alpha-*))"
    directory.save()
    assert [item.account.dn for item in discovery.discover(directory)] == [alpha]


def test_an_invalid_discovery_filter_is_a_clear_error(db, slapd, unique_name):
    directory = directory_for(slapd, unique_name, user_match=slapd.people_dn, discovery_filter="(uid=x")
    with pytest.raises(ldap.DirectoryError, match="not a valid LDAP filter"):
        discovery.discover(directory)


def test_a_missing_search_base_is_a_clear_error(db, slapd, unique_name):
    directory = directory_for(slapd, unique_name, user_match=f"ou=nowhere,{slapd.suffix}")
    with pytest.raises(ldap.DirectoryError, match="search base"):
        discovery.discover(directory)


# -- Adoption ------------------------------------------------------------------------------------


def test_adoption_creates_pam_users_once_and_a_rerun_marks_them(db, big_samba, unique_name):
    directory = directory_for(big_samba, unique_name, user_match=big_samba.people_dn)
    dns = big_samba.bulk_dns[10:13]
    # The same DN spelled differently (case, escaping, spaces) is the same account.
    respelled = dns[0].lower().replace(",", ", ").replace("cn=bulk", "cn=\\62ulk")

    result = discovery.adopt(directory, [*dns, respelled], actor=Actor.system("tester"))

    assert len(result.created) == 3 and result.already_managed == []
    for user in result.created:
        user.refresh_from_db()
        assert user.configuration_id == directory.configuration_id and user.resource_id == directory.pk
        assert user.rotation_enabled and user.schedule_type == schedules.USE_DEFAULT
        assert user.password_complexity == "" and not user.has_password
        assert user.distinguished_name in dns and user.title == user.login
    created = AuditEvent.objects.filter(event=AuditEvent.RECORD_CREATED, record_type="pamuser")
    assert created.filter(actor_name="tester").count() == 3

    again = discovery.adopt(directory, [respelled, dns[1]])
    assert again.created == [] and len(again.already_managed) == 2
    marked = {item.account.dn: item for item in discovery.discover(directory) if item.adopted}
    assert set(marked) == set(dns)
    assert PamUser.objects.filter(resource=directory).count() == 3


def test_adoption_takes_the_chosen_schedule_and_complexity(db, slapd, unique_name):
    ou = slapd_ou(slapd, unique_name)
    dn = slapd.add_user(unique_name("sched"), STRONG, ou_dn=ou)
    directory = directory_for(slapd, unique_name, user_match=ou)
    template = PamUser(
        schedule_type=schedules.CRON, schedule_cron="0 3 * * 0", password_complexity="24,2,2,2,2"
    )
    [user] = discovery.adopt(directory, [dn], template=template).created
    user.refresh_from_db()
    assert (user.schedule_type, user.schedule_cron, user.password_complexity) == (
        schedules.CRON,
        "0 3 * * 0",
        "24,2,2,2,2",
    )
    assert user.next_rotation_at is not None


@pytest.mark.parametrize("kind", ["ad", "openldap"])
def test_an_adopted_account_with_no_stored_password_rotates(db, kind, big_samba, slapd, unique_name):
    if kind == "ad":
        server, base, dn = big_samba, big_samba.people_dn, big_samba.bulk_dns[42]  # created with no password
    else:
        base = slapd_ou(slapd, unique_name)
        server, dn = slapd, slapd.add_user(unique_name("adopt"), STRONG, ou_dn=base)
    directory = directory_for(server, unique_name, user_match=base)
    [user] = discovery.adopt(directory, [dn]).created

    attempt = rotate(user)

    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    user.refresh_from_db()
    assert user.has_password and server.can_bind(dn, user.get_password())
    assert user.password_versions.count() == 0  # there was no old password to keep


# -- Looking a DN up from the login ---------------------------------------------------------------


def new_user(directory, login, **fields) -> PamUser:
    fields.setdefault("rotation_enabled", True)
    return PamUser(
        configuration=directory.configuration, resource=directory, title=f"t-{login}", login=login, **fields
    )


def test_a_user_saved_without_a_dn_gets_it_from_its_login(db, big_samba, unique_name):
    name = unique_name("look")
    dn = big_samba.add_user(name, STRONG)
    directory = directory_for(big_samba, unique_name)
    for login in (name, f"{name}@example.test", f"EXAMPLE\\{name}"):
        user = new_user(directory, login)
        changes.validate(user)  # the save path's DN lookup, then the model's checks
        assert user.distinguished_name == dn


def test_the_user_form_fills_in_the_dn(db, slapd, unique_name):
    ou = slapd_ou(slapd, unique_name)
    name = unique_name("form")
    dn = slapd.add_user(name, STRONG, cn=f"Smith, {name}", ou_dn=ou)
    directory = directory_for(slapd, unique_name, user_match=ou)
    form = UserForm(
        data={
            "title": f"t-{name}",
            "configuration": directory.configuration_id,
            "login": name,
            "distinguished_name": "",
            "resource": directory.pk,
            "rotation_enabled": "on",
            "schedule_type": schedules.ON_DEMAND,
            "schedule_interval": 1,
            "schedule_tz": "UTC",
        }
    )
    assert form.is_valid(), form.errors
    assert canonical_dn(form.save().distinguished_name) == canonical_dn(dn)  # slapd writes "," as \2C


def test_a_login_with_no_account_is_a_clear_error(db, big_samba, unique_name):
    directory = directory_for(big_samba, unique_name)
    with pytest.raises(ValidationError) as caught:
        changes.validate(new_user(directory, "nobody-here"))
    assert "No account with the login 'nobody-here'" in caught.value.message_dict["distinguished_name"][0]


def test_a_login_that_matches_two_accounts_is_a_clear_error(db, slapd, unique_name):
    name = unique_name("twin")
    first, second = slapd_ou(slapd, unique_name), slapd_ou(slapd, unique_name)
    dns = [slapd.add_user(name, STRONG, ou_dn=ou) for ou in (first, second)]
    directory = directory_for(slapd, unique_name, user_match=slapd.people_dn)
    with pytest.raises(ValidationError) as caught:
        changes.validate(new_user(directory, name))
    message = caught.value.message_dict["distinguished_name"][0]
    assert "matches 2 accounts" in message and all(dn in message for dn in dns)


def test_filter_characters_in_a_login_are_escaped(db, slapd, unique_name):
    directory = directory_for(slapd, unique_name, user_match=slapd.people_dn)
    with pytest.raises(ValidationError, match="No account"):
        changes.validate(new_user(directory, "*"))  # a wildcard would match everyone


def test_an_unreachable_directory_blocks_only_a_user_that_rotates(db, unique_name):
    configuration = make_configuration(title=unique_name("cfg"))
    admin = make_user(
        configuration=configuration, title=unique_name("adm"), login="cn=a", password="x-pass-1"
    )
    directory = PamDirectory.objects.create(
        title=unique_name("dir"),
        configuration=configuration,
        hostname="127.0.0.1",
        port=1,
        directory_type=DirectoryType.OPENLDAP,
        administrative_credential=admin,
    )
    with pytest.raises(ValidationError, match="could not be looked up"):
        changes.validate(new_user(directory, "someone"))
    quiet = new_user(directory, "someone", rotation_enabled=False)
    changes.validate(quiet)
    assert quiet.distinguished_name == ""


# -- The pages ------------------------------------------------------------------------------------


def test_an_administrator_discovers_and_adopts_from_the_directory_page(client, alice, slapd, unique_name):
    ou = slapd_ou(slapd, unique_name)
    dns = [slapd.add_user(unique_name("web"), STRONG, ou_dn=ou) for _ in range(3)]
    directory = directory_for(slapd, unique_name, user_match=ou)
    client.force_login(alice)

    page = client.get(directory.get_absolute_url()).content.decode()
    assert 'id="discover-accounts"' in page
    response = client.post(f"/rotation/directories/{directory.pk}/discover/")
    html = response.content.decode()
    assert response.status_code == 200 and "3 accounts found" in html
    assert all(dn in html for dn in dns) and 'id="select-all"' in html

    response = client.post(
        f"/rotation/directories/{directory.pk}/adopt/",
        {"dn": dns[:2], "schedule_type": schedules.USE_DEFAULT, "schedule_interval": 1, "schedule_tz": "UTC"},
    )
    assert response.status_code == 302
    assert set(
        PamUser.objects.filter(resource=directory).values_list("distinguished_name", flat=True)
    ) == set(dns[:2])
    html = client.post(f"/rotation/directories/{directory.pk}/discover/", {"show": "new"}).content.decode()
    assert dns[2] in html and dns[0] not in html

    client.post(
        f"/rotation/directories/{directory.pk}/adopt/",
        {"all": "1", "schedule_type": schedules.USE_DEFAULT, "schedule_interval": 1, "schedule_tz": "UTC"},
    )
    assert PamUser.objects.filter(resource=directory).count() == 3


@pytest.mark.parametrize("persona", ["bob", "carol", "dave"])
def test_only_administrators_may_discover(client, personas, persona, slapd, unique_name):
    directory = directory_for(slapd, unique_name, user_match=slapd.people_dn)
    client.force_login(personas[persona])
    assert client.post(f"/rotation/directories/{directory.pk}/discover/").status_code == 403
    assert client.post(f"/rotation/directories/{directory.pk}/adopt/", {"all": "1"}).status_code == 403
    assert (
        client.get(f"/rotation/directories/{directory.pk}/discover/").status_code == 403
    )  # GET: the results


def test_discovery_of_an_unreachable_directory_says_why(client, alice, unique_name):
    configuration = make_configuration(title=unique_name("cfg"))
    directory = PamDirectory.objects.create(
        title=unique_name("dir"),
        configuration=configuration,
        hostname="127.0.0.1",
        port=1,
        directory_type="openldap",
    )
    client.force_login(alice)
    response = client.post(f"/rotation/directories/{directory.pk}/discover/", follow=True)
    assert "Discovery failed" in response.content.decode()


# -- The command ----------------------------------------------------------------------------------


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("pam_discover", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_pam_discover_lists_and_adopts(db, slapd, unique_name, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "opsuser")
    ou = slapd_ou(slapd, unique_name)
    names = [unique_name("cli") for _ in range(3)]
    dns = [slapd.add_user(name, STRONG, cn=f"{name}, {escape_rdn('x')}", ou_dn=ou) for name in names]
    directory = directory_for(slapd, unique_name, user_match=ou)

    out, _ = run("--directory", directory.title, "--format", "json")
    rows = json.loads(out)
    assert {canonical_dn(row["dn"]) for row in rows} == {canonical_dn(dn) for dn in dns}
    assert all(row["managed_by"] is None for row in rows)

    out, err = run("--directory", directory.title, "--adopt", dns[0])
    assert "Adopted 1" in err
    event = AuditEvent.objects.filter(event=AuditEvent.RECORD_CREATED, record_type="pamuser").latest("id")
    assert event.actor_name == "opsuser"

    out, err = run("--directory", directory.title, "--adopt-all")
    assert "Adopted 2; already managed 1" in err
    table, _ = run("--directory", directory.title)
    assert table.count(names[0]) >= 2  # login and managed-by columns

    with pytest.raises(CommandError, match="not found"):
        run("--directory", directory.title, "--adopt", f"cn=ghost,{ou}")
    with pytest.raises(CommandError, match="no PAM directory"):
        run("--directory", "nope")


def test_canonical_dn_ignores_case_spacing_and_escaping():
    same = [
        "CN=Smith\\, John,OU=Managed,DC=example,DC=test",
        "cn=smith\\2C john, ou=managed, dc=Example, dc=TEST",
        "cn = Smith\\, John ,ou=Managed,dc=example,dc=test",
    ]
    assert len({discovery.canonical_dn(dn) for dn in same}) == 1
    assert discovery.canonical_dn("cn=a+sn=b,dc=x") == discovery.canonical_dn("sn=B+cn=A,dc=x")
    assert discovery.canonical_dn("cn=a\\,b,dc=x") != discovery.canonical_dn("cn=a,cn=b,dc=x")
    assert discovery.canonical_dn("cn=J\\C3\\BCrgen,dc=x") == discovery.canonical_dn("cn=Jürgen,dc=x")


def test_a_large_result_shows_a_page_and_adopts_every_match_of_the_filter(
    client, alice, big_samba, unique_name
):
    directory = directory_for(big_samba, unique_name, user_match=big_samba.people_dn)
    client.force_login(alice)
    html = client.post(f"/rotation/directories/{directory.pk}/discover/").content.decode()
    assert "Showing 500 of 25" in html  # 2,500 bulk accounts, and those other tests here added
    assert html.count('class="form-check-input adopt-choice"') == 500

    response = client.post(
        f"/rotation/directories/{directory.pk}/adopt/",
        {
            "all": "1",
            "q": "bulk0001",
            "schedule_type": schedules.USE_DEFAULT,
            "schedule_interval": 1,
            "schedule_tz": "UTC",
        },
    )
    assert response.status_code == 302
    adopted = sorted(PamUser.objects.filter(resource=directory).values_list("login", flat=True))
    assert adopted == [f"bulk{n:05d}" for n in range(10, 20)]
