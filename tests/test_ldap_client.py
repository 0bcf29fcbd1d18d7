"""rotation/ldap/ against real directories: OpenLDAP slapd and a Samba AD DC."""

from __future__ import annotations

import os
import pickle
import secrets
import signal
import socket
import time
import traceback
from dataclasses import dataclass, replace

import ldap3
import pytest

from rotation import ldap as directory
from rotation.ldap import DirectoryError, DirectorySpec, connection, pool
from tests.ldapservers import make_ca, unique_name

# The slapd, samba and tls_files session fixtures come from tests/conftest.py (which imports them from
# tests/ldapservers.py); importing them here too would start a second copy of each server.


def new_password() -> str:
    """A fresh password that passes both servers' policies and is easy to search for."""
    return f"Pw-{secrets.token_hex(6)}-aA1!"


def assert_no_secret(error: DirectoryError, *passwords: str) -> None:
    """Check that no password shows in the error, its detail, repr, pickle or traceback."""
    texts = [
        str(error),
        repr(error),
        error.message,
        error.detail,
        *map(str, error.args),
        "".join(traceback.format_exception(error)),
    ]
    pickled = pickle.dumps(error)
    for password in passwords:
        assert password
        for text in texts:
            assert password not in text
        assert password.encode() not in pickled
        assert password.encode("utf-16-le") not in pickled
    assert error.__cause__ is None
    assert error.__context__ is None


@dataclass
class Target:
    """One real directory as the tests see it: the server, a good spec and its delegated admin."""

    server: object
    spec: DirectorySpec
    admin_dn: str
    admin_password: str

    @property
    def kind(self) -> str:
        return self.server.kind

    def add_user(self, password: str, cn: str | None = None, ou_dn: str | None = None) -> str:
        return self.server.add_user(unique_name(self.kind), password, cn=cn, ou_dn=ou_dn)


def slapd_target(server) -> Target:
    spec = DirectorySpec(host=server.host, port=server.ldaps_port, ca_certificate=server.tls.ca_pem)
    return Target(server, spec, server.rotator_dn, server.rotator_password)


def samba_target(server) -> Target:
    spec = DirectorySpec(
        host=server.host, port=server.ldaps_port, ca_certificate=server.tls.ca_pem, directory_type="ad"
    )
    return Target(server, spec, server.rotator_dn, server.rotator_password)


@pytest.fixture(params=["openldap", "ad"])
def target(request) -> Target:
    """Each test that takes it runs once against slapd and once against Samba."""
    if request.param == "openldap":
        return slapd_target(request.getfixturevalue("slapd"))
    return samba_target(request.getfixturevalue("samba"))


@pytest.fixture
def openldap(slapd) -> Target:
    return slapd_target(slapd)


@pytest.fixture
def ad(samba) -> Target:
    return samba_target(samba)


# --- the happy paths ----------------------------------------------------------------------------


def test_it_sets_a_password_and_the_new_one_binds_but_the_old_one_does_not(target):
    old, new = new_password(), new_password()
    dn = target.add_user(old)

    directory.set_password(target.spec, target.admin_dn, target.admin_password, dn, new)

    assert target.server.can_bind(dn, new)
    # Samba runs with "old password allowed period = 0", so the old one stops at once there too.
    assert not target.server.can_bind(dn, old)


def test_it_verifies_a_password_by_binding(target):
    password = new_password()
    dn = target.add_user(password)

    assert directory.verify_password(target.spec, dn, password) is True
    assert directory.verify_password(target.spec, dn, new_password()) is False
    assert directory.verify_password(target.spec, dn, "") is False


@pytest.mark.parametrize(
    ("changes", "why"),
    [({"userAccountControl": "514"}, "account is disabled"), ({"pwdLastSet": "0"}, "must change it")],
)
def test_verifying_a_right_password_on_an_ad_account_that_cannot_sign_in_says_why(ad, samba, changes, why):
    password = new_password()
    dn = ad.add_user(password)
    conn = samba.connect(samba.admin_dn, samba.admin_password)
    assert conn.modify(dn, {name: [(ldap3.MODIFY_REPLACE, [value])] for name, value in changes.items()})
    conn.unbind()

    with pytest.raises(DirectoryError) as info:
        directory.verify_password(ad.spec, dn, password)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "the password is right" in info.value.message
    assert why in info.value.message
    assert directory.verify_password(ad.spec, dn, new_password()) is False
    assert_no_secret(info.value, password)


@pytest.mark.parametrize(
    "cn",
    [
        "Smith, John",
        "#hash leading",
        "plus+sign",
        'quote "double" and \\ backslash',
        "Zoë Ångström-Łukasz 山田",
        "semi;colon <angle> =equals",
    ],
)
def test_it_rotates_accounts_whose_dn_needs_escaping(target, cn):
    old, new = new_password(), new_password()
    dn = target.add_user(old, cn=f"{cn} {unique_name('x')}")

    directory.set_password(target.spec, target.admin_dn, target.admin_password, dn, new)

    assert directory.verify_password(target.spec, dn, new)
    assert target.server.can_bind(dn, new)


def test_it_changes_an_accounts_own_password(target):
    old, new = new_password(), new_password()
    dn = target.add_user(old)

    directory.change_own_password(target.spec, dn, old, new)

    assert target.server.can_bind(dn, new)
    assert not target.server.can_bind(dn, old)


def test_it_lets_the_rotator_change_its_own_password_and_back(target):
    temporary = new_password()
    server = target.server
    directory.change_own_password(target.spec, server.rotator_dn, server.rotator_password, temporary)
    try:
        assert server.can_bind(server.rotator_dn, temporary)
    finally:
        # Put the shared rotator back by an administrator's reset (history forbids a self-change back).
        admin_dn = getattr(server, "admin_dn", None) or server.root_dn
        admin_password = getattr(server, "admin_password", None) or server.root_password
        directory.set_password(
            target.spec, admin_dn, admin_password, server.rotator_dn, server.rotator_password
        )
    assert server.can_bind(server.rotator_dn, server.rotator_password)


def test_it_changes_a_password_over_starttls_on_the_plain_port(openldap, slapd):
    old, new = new_password(), new_password()
    dn = openldap.add_user(old)
    spec = replace(openldap.spec, port=slapd.ldap_port, use_ssl=False, start_tls=True)

    directory.set_password(spec, openldap.admin_dn, openldap.admin_password, dn, new)

    assert slapd.can_bind(dn, new)


@pytest.mark.parametrize("login", ["rotator@example.test", "EXAMPLE\\rotator"])
def test_samba_accepts_the_admin_as_a_user_principal_name_or_down_level_name(ad, login):
    dn, new = ad.add_user(new_password()), new_password()

    directory.set_password(ad.spec, login, ad.admin_password, dn, new)

    assert ad.server.can_bind(dn, new)


def test_it_tries_the_alternative_ips_when_the_host_is_unreachable(openldap):
    old, new = new_password(), new_password()
    dn = openldap.add_user(old)
    # Nothing listens on 127.0.0.2 at slapd's port: the connection is refused, then 127.0.0.1 answers.
    spec = replace(openldap.spec, host="127.0.0.2", alternative_ips=("127.0.0.3", "127.0.0.1"))

    directory.set_password(spec, openldap.admin_dn, openldap.admin_password, dn, new)

    assert openldap.server.can_bind(dn, new)


# --- TLS and configuration ----------------------------------------------------------------------


def test_it_refuses_plain_ldap_before_opening_a_socket(openldap, slapd, monkeypatch):
    old, new = new_password(), new_password()
    dn = openldap.add_user(old)
    spec = replace(openldap.spec, port=slapd.ldap_port, use_ssl=False, start_tls=False)

    def no_network(*args, **kwargs):
        raise AssertionError("a socket was opened")

    with monkeypatch.context() as patch:
        patch.setattr(socket, "socket", no_network)
        patch.setattr(socket, "getaddrinfo", no_network)
        patch.setattr(socket, "create_connection", no_network)
        with pytest.raises(DirectoryError) as info:
            directory.set_password(spec, openldap.admin_dn, openldap.admin_password, dn, new)
        with pytest.raises(DirectoryError):
            directory.verify_password(spec, dn, old)
        steps = directory.test_connection(spec, openldap.admin_dn, openldap.admin_password)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "plain LDAP refused" in info.value.message
    assert [step.ok for step in steps] == [False]
    assert slapd.can_bind(dn, old)
    assert_no_secret(info.value, old, new, openldap.admin_password)


def test_an_untrusted_ca_is_a_configuration_error(target, tmp_path):
    old, new = new_password(), new_password()
    dn = target.add_user(old)
    spec = replace(target.spec, ca_certificate=make_ca(tmp_path).ca_pem)

    with pytest.raises(DirectoryError) as info:
        directory.set_password(spec, target.admin_dn, target.admin_password, dn, new)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "not trusted" in info.value.message
    assert "CA certificate field" in info.value.message
    assert target.server.can_bind(dn, old)
    assert_no_secret(info.value, old, new, target.admin_password)


def test_the_system_trust_store_does_not_trust_a_private_ca(openldap):
    spec = replace(openldap.spec, ca_certificate="")

    with pytest.raises(DirectoryError) as info:
        directory.verify_password(spec, openldap.admin_dn, openldap.admin_password)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "not trusted" in info.value.message


def test_turning_verification_off_connects_to_an_untrusted_certificate(openldap, tmp_path):
    spec = replace(openldap.spec, ca_certificate=make_ca(tmp_path).ca_pem, verify_certificate=False)

    assert directory.verify_password(spec, openldap.admin_dn, openldap.admin_password)
    steps = directory.test_connection(spec, openldap.admin_dn, openldap.admin_password)
    assert "NOT verified" in steps[0].message


def test_a_certificate_that_does_not_name_the_host_is_a_configuration_error(openldap):
    # "127.1" reaches 127.0.0.1, but the certificate names only 127.0.0.1 and localhost.
    spec = replace(openldap.spec, host="127.1")

    with pytest.raises(DirectoryError) as info:
        directory.verify_password(spec, openldap.admin_dn, openldap.admin_password)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "does not name 127.1" in info.value.message
    assert_no_secret(info.value, openldap.admin_password)


def test_a_ca_field_without_a_certificate_is_a_configuration_error(openldap):
    spec = replace(openldap.spec, ca_certificate="-----BEGIN CERTIFICATE-----\nnot base64\n")

    with pytest.raises(DirectoryError) as info:
        directory.verify_password(spec, openldap.admin_dn, openldap.admin_password)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "PEM" in info.value.message


def test_ldaps_against_the_plain_port_is_a_configuration_error(openldap, slapd):
    spec = replace(openldap.spec, port=slapd.ldap_port)

    with pytest.raises(DirectoryError) as info:
        directory.verify_password(spec, openldap.admin_dn, openldap.admin_password)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "TLS handshake" in info.value.message


def test_a_wrong_admin_password_is_a_configuration_error(target):
    old, new, wrong = new_password(), new_password(), new_password()
    dn = target.add_user(old)

    with pytest.raises(DirectoryError) as info:
        directory.set_password(target.spec, target.admin_dn, wrong, dn, new)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert info.value.code == 49
    assert "administrative credential's password is wrong" in info.value.message
    assert target.server.can_bind(dn, old)
    assert_no_secret(info.value, old, new, wrong)


def test_a_missing_dn_is_a_configuration_error(target):
    new = new_password()
    dn = f"cn={unique_name('ghost')},{target.server.people_dn}"

    with pytest.raises(DirectoryError) as info:
        directory.set_password(target.spec, target.admin_dn, target.admin_password, dn, new)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert info.value.code == 32
    assert "distinguished name was not found" in info.value.message
    assert_no_secret(info.value, new, target.admin_password)


def test_the_wrong_directory_type_is_a_configuration_error(target):
    old, new = new_password(), new_password()
    dn = target.add_user(old)
    wrong_type = "openldap" if target.kind == "ad" else "ad"
    spec = replace(target.spec, directory_type=wrong_type)

    with pytest.raises(DirectoryError) as info:
        directory.set_password(spec, target.admin_dn, target.admin_password, dn, new)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert "directory type" in info.value.message
    assert target.server.can_bind(dn, old)
    assert_no_secret(info.value, old, new, target.admin_password)


def test_a_readonly_admin_on_openldap_lacks_write_access(openldap, slapd):
    old, new = new_password(), new_password()
    dn = openldap.add_user(old)

    with pytest.raises(DirectoryError) as info:
        directory.set_password(openldap.spec, slapd.readonly_dn, slapd.readonly_password, dn, new)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert info.value.code == 50
    assert "lacks write access to userPassword" in info.value.message
    assert slapd.can_bind(dn, old)
    assert_no_secret(info.value, old, new, slapd.readonly_password)


def test_the_rotator_outside_its_ou_on_samba_lacks_the_reset_password_right(ad, samba):
    old, new = new_password(), new_password()
    dn = ad.add_user(old, ou_dn=samba.other_ou_dn)

    with pytest.raises(DirectoryError) as info:
        directory.set_password(ad.spec, ad.admin_dn, ad.admin_password, dn, new)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert info.value.code == 50
    assert "Reset Password right" in info.value.message
    assert samba.can_bind(dn, old)
    assert_no_secret(info.value, old, new, ad.admin_password)


def test_a_wrong_current_password_for_a_self_change_is_a_configuration_error(target):
    old, new, wrong = new_password(), new_password(), new_password()
    dn = target.add_user(old)

    with pytest.raises(DirectoryError) as info:
        directory.change_own_password(target.spec, dn, wrong, new)

    assert info.value.kind == DirectoryError.CONFIGURATION
    assert info.value.code == 49
    assert "current password is wrong" in info.value.message
    assert target.server.can_bind(dn, old)
    assert_no_secret(info.value, old, new, wrong)


# --- policy rejections --------------------------------------------------------------------------


def test_openldap_rejects_a_too_short_password_and_the_old_one_still_binds(openldap):
    old, short = new_password(), "aB1!x"
    dn = openldap.add_user(old)

    with pytest.raises(DirectoryError) as info:
        directory.set_password(openldap.spec, openldap.admin_dn, openldap.admin_password, dn, short)

    assert info.value.kind == DirectoryError.REJECTED
    assert info.value.code == 19
    assert "quality" in info.value.message
    assert openldap.server.can_bind(dn, old)
    assert_no_secret(info.value, old, short, openldap.admin_password)


@pytest.mark.parametrize(
    ("bad", "why"),
    [("aB1!x", "shorter than the directory's minimum password length of 7"), ("lowercaseonly", "complexity")],
)
def test_samba_rejects_a_password_against_its_policy_and_says_why(ad, bad, why):
    old = new_password()
    dn = ad.add_user(old)

    with pytest.raises(DirectoryError) as info:
        directory.set_password(ad.spec, ad.admin_dn, ad.admin_password, dn, bad)

    assert info.value.kind == DirectoryError.REJECTED
    assert info.value.code == 19
    assert why in info.value.message
    assert "0000052D" in info.value.detail
    assert ad.server.can_bind(dn, old)
    assert_no_secret(info.value, old, bad, ad.admin_password)


def test_samba_rejects_a_self_change_back_to_a_password_in_history(ad):
    first, second = new_password(), new_password()
    dn = ad.add_user(first)
    directory.change_own_password(ad.spec, dn, first, second)

    with pytest.raises(DirectoryError) as info:
        directory.change_own_password(ad.spec, dn, second, first)

    assert info.value.kind == DirectoryError.REJECTED
    assert "history" in info.value.message
    assert ad.server.can_bind(dn, second)
    assert_no_secret(info.value, first, second)


# --- unreachable and ambiguous ------------------------------------------------------------------


def test_a_stopped_server_is_transient_and_nothing_changes(target):
    old, new = new_password(), new_password()
    dn = target.add_user(old)

    target.server.stop()
    try:
        with pytest.raises(DirectoryError) as info:
            directory.set_password(target.spec, target.admin_dn, target.admin_password, dn, new)
        steps = directory.test_connection(target.spec, target.admin_dn, target.admin_password)
    finally:
        target.server.start()

    assert info.value.kind == DirectoryError.TRANSIENT
    assert "unreachable" in info.value.message
    assert steps == [directory.Step("TLS handshake", False, info.value.message)]
    assert target.server.can_bind(dn, old)
    assert_no_secret(info.value, old, new, target.admin_password)


def test_a_server_that_does_not_answer_is_transient(openldap, slapd):
    old, new = new_password(), new_password()
    dn = openldap.add_user(old)
    spec = replace(openldap.spec, connect_timeout=1, operation_timeout=1)

    os.kill(slapd.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryError) as info:
            directory.set_password(spec, openldap.admin_dn, openldap.admin_password, dn, new)
        elapsed = time.monotonic() - started
    finally:
        os.kill(slapd.process.pid, signal.SIGCONT)

    assert info.value.kind == DirectoryError.TRANSIENT
    assert elapsed < 5
    assert slapd.can_bind(dn, old)


def test_a_connection_lost_after_the_change_was_sent_is_ambiguous(target, monkeypatch):
    old, new = new_password(), new_password()
    dn = target.add_user(old)
    spec = replace(target.spec, operation_timeout=1)
    pid = target.server.process.pid
    # The change leaves through Connection.modify on AD and Connection.extended on OpenLDAP:
    # freeze the server just before it is sent, so the request goes out and no answer comes back.
    name = "modify" if target.kind == "ad" else "extended"
    original = getattr(ldap3.Connection, name)

    def freeze_then_send(self, *args, **kwargs):
        os.kill(pid, signal.SIGSTOP)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ldap3.Connection, name, freeze_then_send)
    try:
        with pytest.raises(DirectoryError) as info:
            directory.set_password(spec, target.admin_dn, target.admin_password, dn, new)
    finally:
        os.kill(pid, signal.SIGCONT)
        monkeypatch.undo()

    assert info.value.kind == DirectoryError.AMBIGUOUS
    assert "outcome is unknown" in info.value.message
    assert_no_secret(info.value, old, new, target.admin_password)
    # Exactly one of the two passwords opens the account: that is what reconciliation relies on.
    time.sleep(0.2)
    assert target.server.can_bind(dn, old) != target.server.can_bind(dn, new)


# --- test_connection ----------------------------------------------------------------------------


def test_connection_reports_three_good_steps(target):
    steps = directory.test_connection(target.spec, target.admin_dn, target.admin_password)

    assert [step.name for step in steps] == [
        "TLS handshake",
        "Bind as administrative credential",
        "Read naming context",
    ]
    assert all(step.ok for step in steps)
    assert target.server.suffix.lower() in steps[2].message.lower()


def test_connection_stops_at_an_untrusted_certificate(target, tmp_path):
    spec = replace(target.spec, ca_certificate=make_ca(tmp_path).ca_pem)

    steps = directory.test_connection(spec, target.admin_dn, target.admin_password)

    assert len(steps) == 1
    assert steps[0].name == "TLS handshake"
    assert not steps[0].ok
    assert "not trusted" in steps[0].message


def test_connection_stops_at_a_wrong_admin_password(target):
    wrong = new_password()

    steps = directory.test_connection(target.spec, target.admin_dn, wrong)

    assert [(step.name, step.ok) for step in steps] == [
        ("TLS handshake", True),
        ("Bind as administrative credential", False),
    ]
    assert "administrative credential's password is wrong" in steps[1].message
    assert all(wrong not in step.message for step in steps)


def test_test_connection_is_not_collected_as_a_test():
    assert directory.test_connection.__test__ is False


# --- connection reuse ---------------------------------------------------------------------------


def test_a_pooled_admin_connection_is_reused_for_the_next_change(target, monkeypatch):
    pool.clear_connection_pool()
    first, second = target.add_user("Start-Pass-123!"), target.add_user("Start-Pass-123!")
    directory.set_password(target.spec, target.admin_dn, target.admin_password, first, "Next-Pass-1234!")
    opened = []
    real_open = connection._Attempt._open
    monkeypatch.setattr(
        connection._Attempt, "_open", lambda self, *a: opened.append(1) or real_open(self, *a)
    )

    directory.set_password(target.spec, target.admin_dn, target.admin_password, second, "Next-Pass-5678!")

    assert opened == []
    assert target.server.can_bind(second, "Next-Pass-5678!")


def test_a_pooled_connection_of_a_restarted_server_is_replaced_not_used(openldap):
    pool.clear_connection_pool()
    dn = openldap.add_user("Start-Pass-123!")
    directory.set_password(openldap.spec, openldap.admin_dn, openldap.admin_password, dn, "Next-Pass-1234!")
    assert directory.verify_password(openldap.spec, dn, "Next-Pass-1234!")
    openldap.server.stop()
    openldap.server.start()

    directory.set_password(openldap.spec, openldap.admin_dn, openldap.admin_password, dn, "Next-Pass-5678!")

    assert directory.verify_password(openldap.spec, dn, "Next-Pass-5678!")
    assert not directory.verify_password(openldap.spec, dn, "Next-Pass-1234!")


def test_a_pooled_connection_is_never_used_with_another_admin_password(openldap):
    pool.clear_connection_pool()
    dn = openldap.add_user("Start-Pass-123!")
    directory.set_password(openldap.spec, openldap.admin_dn, openldap.admin_password, dn, "Next-Pass-1234!")
    with pytest.raises(DirectoryError) as caught:
        directory.set_password(openldap.spec, openldap.admin_dn, "Wrong-Admin-Pass-1!", dn, "Next-Pass-5678!")
    assert caught.value.code == 49
    assert directory.verify_password(openldap.spec, dn, "Next-Pass-1234!")
