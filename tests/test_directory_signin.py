"""Directory sign-in with django-auth-ldap against the real slapd and Samba AD DC of the test session:
group -> role mapping applied at every sign-in, removal, superuser, StartTLS, direct bind, plain LDAP
refused, and local break-glass accounts that the directory cannot take over."""

from __future__ import annotations

import ldap3
import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from accounts.models import Profile, Source
from audit.models import AuditEvent
from pamrotate.directory_signin import settings_from_environment
from pamrotate.settings import env_secret
from tests.conftest import PERSONA_PASSWORD, ensure_roles, make_persona
from tests.ldapservers import make_ca
from tests.test_rotation import STRONG
from tests.test_settings import production_env, run_manage


def use_directory(settings, environ: dict) -> None:
    """Point the running settings at a directory, exactly as the environment would at start-up."""
    for name, value in settings_from_environment(environ, lambda name: environ.get(name, "")).items():
        setattr(settings, name, value)


def sign_in(client, username: str, password: str):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR="192.0.2.30"
    )


def roles_of(username: str) -> list[str]:
    return sorted(User.objects.get(username=username).groups.values_list("name", flat=True))


class Groups:
    """Role groups made for one test in a real directory, through the directory's admin connection."""

    def __init__(self, server, unique_name, base: str, object_classes: list[str], extra=lambda name: {}):
        self.server, self.base, self.classes, self.more_attributes = server, base, object_classes, extra
        self.dns = {
            role: f"cn={unique_name(role[:5].lower())},{base}"
            for role in ("viewers", "operators", "admins", "super")
        }

    def create(self, placeholder: str) -> None:
        conn = self.server.connect(self.server.admin_bind_dn, self.server.admin_bind_password)
        try:
            for dn in self.dns.values():
                name = ldap3.utils.dn.parse_dn(dn)[0][1]
                # groupOfNames needs a member: the placeholder (a user who is in every group).
                assert conn.add(
                    dn, self.classes, {"cn": name, "member": [placeholder], **self.more_attributes(name)}
                ), conn.result
        finally:
            conn.unbind()

    def set_member(self, role: str, dn: str, present: bool) -> None:
        conn = self.server.connect(self.server.admin_bind_dn, self.server.admin_bind_password)
        try:
            change = ldap3.MODIFY_ADD if present else ldap3.MODIFY_DELETE
            assert conn.modify(self.dns[role], {"member": [(change, [dn])]}), conn.result
        finally:
            conn.unbind()

    def environ(self) -> dict:
        return {
            "PAMROTATE_LDAP_VIEWERS_GROUP": self.dns["viewers"],
            "PAMROTATE_LDAP_OPERATORS_GROUP": self.dns["operators"],
            "PAMROTATE_LDAP_ADMINISTRATORS_GROUP": self.dns["admins"],
            "PAMROTATE_LDAP_SUPERUSER_GROUP": self.dns["super"],
        }


@pytest.fixture
def openldap(db, slapd, unique_name, settings):
    ensure_roles()
    placeholder = slapd.add_user(unique_name("holder"), STRONG)
    groups = Groups(slapd, unique_name, slapd.suffix, ["groupOfNames"])
    groups.create(placeholder)
    environ = {
        "PAMROTATE_LDAP_URL": f"ldaps://127.0.0.1:{slapd.ldaps_port}",
        "PAMROTATE_LDAP_CA_FILE": slapd.tls.ca_file,
        "PAMROTATE_LDAP_BIND_DN": slapd.readonly_dn,
        "PAMROTATE_LDAP_BIND_PASSWORD": slapd.readonly_password,
        "PAMROTATE_LDAP_USER_SEARCH_BASE": slapd.people_dn,
        "PAMROTATE_LDAP_USER_FILTER": "(uid=%(user)s)",
        "PAMROTATE_LDAP_GROUP_SEARCH_BASE": slapd.suffix,
        "PAMROTATE_LDAP_GROUP_TYPE": "group_of_names",
        **groups.environ(),
    }
    use_directory(settings, environ)
    groups.environ_used = environ
    return groups


def test_an_openldap_person_signs_in_with_the_role_of_their_group(client, openldap, slapd, unique_name):
    name = unique_name("dirop")
    dn = slapd.add_user(name, STRONG)
    openldap.set_member("operators", dn, True)
    assert sign_in(client, name.upper(), STRONG).status_code == 302
    user = User.objects.get(username=name.lower())
    assert roles_of(user.username) == ["Operators"] and not user.is_superuser
    assert Profile.source_of(user) == Source.DIRECTORY and not user.has_usable_password()
    assert user.has_perm("records.rotate_credentials")
    event = AuditEvent.objects.get(event=AuditEvent.SIGNIN_OK, actor_name=user.username)
    assert "directory" in event.message and event.remote_address == "192.0.2.30"


def test_leaving_a_group_removes_the_role_at_the_next_sign_in(client, openldap, slapd, unique_name):
    name = unique_name("dirmv")
    dn = slapd.add_user(name, STRONG)
    openldap.set_member("admins", dn, True)
    sign_in(client, name, STRONG)
    assert roles_of(name) == ["Administrators"]
    client.post(reverse("logout"))
    openldap.set_member("admins", dn, False)
    openldap.set_member("viewers", dn, True)
    assert sign_in(client, name, STRONG).status_code == 302
    assert roles_of(name) == ["Viewers"]
    assert AuditEvent.objects.filter(event=AuditEvent.ROLE_CHANGED, actor_name=name).count() == 2
    client.post(reverse("logout"))
    # In no mapped group at all: the directory account no longer gets in.
    openldap.set_member("viewers", dn, False)
    response = sign_in(client, name, STRONG)
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_the_superuser_group_grants_and_removes_superuser(client, openldap, slapd, unique_name):
    name = unique_name("dirsu")
    dn = slapd.add_user(name, STRONG)
    openldap.set_member("super", dn, True)
    sign_in(client, name, STRONG)
    assert User.objects.get(username=name).is_superuser
    client.post(reverse("logout"))
    openldap.set_member("super", dn, False)
    openldap.set_member("operators", dn, True)
    sign_in(client, name, STRONG)
    user = User.objects.get(username=name)
    assert not user.is_superuser and not user.is_staff and roles_of(name) == ["Operators"]


def test_a_wrong_directory_password_is_refused_and_counted(client, openldap, slapd, unique_name):
    name = unique_name("dirno")
    dn = slapd.add_user(name, STRONG)
    openldap.set_member("operators", dn, True)
    assert sign_in(client, name, "not the password").status_code == 200
    assert AuditEvent.objects.filter(event=AuditEvent.SIGNIN_FAILED, actor_name=name).exists()


def test_a_local_break_glass_account_is_not_taken_over_by_the_directory(client, openldap, slapd):
    carol = make_persona("carol")
    dn = slapd.add_user("carol", STRONG, cn=f"carol {carol.pk} directory")
    openldap.set_member("admins", dn, True)
    assert sign_in(client, "carol", STRONG).status_code == 200
    assert roles_of("carol") == ["Viewers"]
    assert sign_in(client, "carol", PERSONA_PASSWORD).status_code == 302
    assert Profile.source_of(User.objects.get(username="carol")) == Source.LOCAL


def test_direct_bind_with_a_dn_template_and_starttls(client, openldap, slapd, unique_name, settings):
    name = unique_name("dirdb")
    dn = slapd.add_user(name, STRONG)
    openldap.set_member("viewers", dn, True)
    environ = {
        key: value for key, value in openldap.environ_used.items() if "BIND" not in key and "USER_" not in key
    }
    environ |= {
        "PAMROTATE_LDAP_URL": f"ldap://127.0.0.1:{slapd.ldap_port}",
        "PAMROTATE_LDAP_START_TLS": "1",
        "PAMROTATE_LDAP_USER_DN_TEMPLATE": f"cn=%(user)s,{slapd.people_dn}",
    }
    use_directory(settings, environ)
    assert sign_in(client, name, STRONG).status_code == 302
    assert roles_of(name) == ["Viewers"]


def test_a_directory_certificate_from_another_ca_is_refused_without_a_server_error(
    client, openldap, slapd, unique_name, settings, tmp_path
):
    name = unique_name("dirca")
    dn = slapd.add_user(name, STRONG)
    openldap.set_member("viewers", dn, True)
    other = make_ca(tmp_path / "other-ca")
    use_directory(settings, openldap.environ_used | {"PAMROTATE_LDAP_CA_FILE": other.ca_file})
    response = sign_in(client, name, STRONG)
    assert response.status_code == 200 and "_auth_user_id" not in client.session


@pytest.mark.parametrize("url", ["ldap://dc.example.com", "ldap://dc1 ldaps://dc2", "http://dc.example.com"])
def test_plain_ldap_is_refused_when_settings_load(url):
    environ = {"PAMROTATE_LDAP_URL": url, "PAMROTATE_LDAP_USER_SEARCH_BASE": "dc=example,dc=com"}
    with pytest.raises(ImproperlyConfigured):
        settings_from_environment(environ, env_secret)


def test_the_app_does_not_start_with_a_plain_ldap_url(tmp_path):
    env = production_env(tmp_path) | {"PAMROTATE_LDAP_URL": "ldap://dc.example.com",
                                      "PAMROTATE_LDAP_USER_SEARCH_BASE": "dc=example,dc=com"}  # fmt: skip
    out = run_manage("check", **env)
    assert out.returncode != 0 and "plain LDAP" in out.stderr
    out = run_manage("check", **(env | {"PAMROTATE_LDAP_START_TLS": "1"}))
    assert out.returncode == 0, out.stderr


def test_ldap_without_a_search_base_or_template_is_refused():
    with pytest.raises(ImproperlyConfigured, match="USER_SEARCH_BASE"):
        settings_from_environment({"PAMROTATE_LDAP_URL": "ldaps://dc"}, env_secret)


# -- Samba AD DC ---------------------------------------------------------------------------------


@pytest.fixture(params=["active_directory", "nested_active_directory"])
def active_directory(db, samba, unique_name, settings, request):
    ensure_roles()
    placeholder = samba.add_user(unique_name("holder"), STRONG)
    groups = Groups(samba, unique_name, f"CN=Users,{samba.suffix}", ["top", "group"],
                    extra=lambda name: {"sAMAccountName": name})  # fmt: skip
    groups.create(placeholder)
    use_directory(
        settings,
        {
            "PAMROTATE_LDAP_URL": f"ldaps://{samba.host}:636",
            "PAMROTATE_LDAP_CA_FILE": samba.tls.ca_file,
            "PAMROTATE_LDAP_BIND_DN": samba.rotator_dn,
            "PAMROTATE_LDAP_BIND_PASSWORD": samba.rotator_password,
            "PAMROTATE_LDAP_USER_SEARCH_BASE": samba.suffix,
            "PAMROTATE_LDAP_USER_FILTER": "(sAMAccountName=%(user)s)",
            "PAMROTATE_LDAP_GROUP_SEARCH_BASE": samba.suffix,
            "PAMROTATE_LDAP_GROUP_TYPE": request.param,
            **groups.environ(),
        },
    )
    return groups


def test_an_active_directory_person_gets_the_role_of_their_group_and_loses_it(
    client, active_directory, samba, unique_name
):
    name = unique_name("adop")
    dn = samba.add_user(name, STRONG)
    active_directory.set_member("operators", dn, True)
    assert sign_in(client, name, STRONG).status_code == 302
    assert roles_of(name.lower()) == ["Operators"]
    assert Profile.source_of(User.objects.get(username=name.lower())) == Source.DIRECTORY
    client.post(reverse("logout"))
    active_directory.set_member("operators", dn, False)
    active_directory.set_member("admins", dn, True)
    assert sign_in(client, name, STRONG).status_code == 302
    assert roles_of(name.lower()) == ["Administrators"]
    client.post(reverse("logout"))
    active_directory.set_member("admins", dn, False)
    assert sign_in(client, name, STRONG).status_code == 200


def test_an_active_directory_superuser_group_and_a_wrong_password(
    client, active_directory, samba, unique_name
):
    name = unique_name("adsu")
    dn = samba.add_user(name, STRONG)
    active_directory.set_member("super", dn, True)
    assert sign_in(client, name, "Wrong-Password-1").status_code == 200
    assert sign_in(client, name, STRONG).status_code == 302
    assert User.objects.get(username=name.lower()).is_superuser


def test_only_the_nested_group_type_grants_a_role_through_an_inner_group(
    client, active_directory, samba, unique_name, settings
):
    nested = settings.AUTH_LDAP_GROUP_TYPE.__class__.__name__ == "NestedActiveDirectoryGroupType"
    name = unique_name("adnest")
    dn = samba.add_user(name, STRONG)
    inner_name = unique_name("inner")
    inner = f"CN={inner_name},CN=Users,{samba.suffix}"
    conn = samba.connect(samba.admin_dn, samba.admin_password)
    try:
        assert conn.add(
            inner, ["top", "group"], {"cn": inner_name, "sAMAccountName": inner_name, "member": [dn]}
        )
    finally:
        conn.unbind()
    active_directory.set_member("operators", inner, True)
    if nested:
        assert sign_in(client, name, STRONG).status_code == 302
        assert roles_of(name.lower()) == ["Operators"]
    else:  # direct membership only: in no mapped group, so not let in
        assert sign_in(client, name, STRONG).status_code == 200
