"""The account heartbeat on real servers: drift, disabled, locked, expired — without ever locking anyone out."""

from __future__ import annotations

import datetime as dt
import io
import secrets
import shutil
import subprocess
import tempfile

import ldap3
import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from records.models import AccountState, PamDirectory, PamUser
from rotation import dispatch, heartbeat, services, status
from rotation.models import AttemptState, RotationAttempt
from tests.conftest import make_configuration, make_user
from tests.ldapservers import SAMBA_TOOL, SambaDC
from tests.test_rotation import STRONG, make_env, rotate

LOCKOUT_THRESHOLD = 5


@pytest.fixture(scope="module")
def strict_samba(tls_files):
    """A Samba DC of our own that locks an account after 5 bad passwords (the shared one has no threshold)."""
    directory = tempfile.mkdtemp(prefix="pamrotate-hb-")
    server = SambaDC(directory, tls=tls_files)
    try:
        subprocess.run(
            [
                SAMBA_TOOL,
                "domain",
                "passwordsettings",
                "set",
                f"--account-lockout-threshold={LOCKOUT_THRESHOLD}",
                "-s",
                str(server.smb_conf),
                "-H",
                str(server.dir / "private" / "sam.ldb"),
            ],
            check=True,
            capture_output=True,
        )
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def ad(db, strict_samba, unique_name):
    return make_env(strict_samba, unique_name)


@pytest.fixture
def ol(db, slapd, unique_name):
    return make_env(slapd, unique_name)


def rotated_earlier(user: PamUser, minutes: int = 10) -> None:
    """Make the account look rotated by pamrotate a while ago (its record saved then too)."""
    then = timezone.now() - dt.timedelta(minutes=minutes)
    PamUser.objects.filter(pk=user.pk).update(last_rotated_at=then, updated_at=then)
    user.refresh_from_db()


def admin_conn(server) -> ldap3.Connection:
    return server.connect(server.admin_bind_dn, server.admin_bind_password)


def change_out_of_band(server, dn: str, password: str) -> None:
    """Reset a password as the directory's superuser, as someone working around pamrotate would."""
    conn = admin_conn(server)
    try:
        if server.kind == "ad":
            ok = conn.extend.microsoft.modify_password(dn, password)
        else:
            ok = conn.extend.standard.modify_password(user=dn, new_password=password)
        assert ok is True, conn.result
    finally:
        conn.unbind()


def ad_attribute(server, dn: str, name: str):
    conn = admin_conn(server)
    try:
        conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[name])
        value = conn.response[0]["attributes"][name]
    finally:
        conn.unbind()
    return value[0] if isinstance(value, list) and value else value


def bad_password_count(server, dn: str) -> int:
    return int(ad_attribute(server, dn, "badPwdCount") or 0)


# -- Samba: state is read first; a bind happens only when nothing says the password changed -------


def test_a_password_changed_out_of_band_is_drifted_without_a_bind(ad, unique_name):
    user = ad.account(unique_name("drift"))
    rotated_earlier(user)
    dn = user.distinguished_name
    # Three changes: Samba, like AD, does not count a wrong password equal to one of the previous two.
    for n in range(3):
        change_out_of_band(ad.server, dn, f"Out-Of-Band-{n}-Pass!")

    finding = heartbeat.check(user)

    assert finding.state == AccountState.DRIFTED
    assert "changed on the directory" in finding.detail
    assert bad_password_count(ad.server, dn) == 0
    user.refresh_from_db()
    assert user.account_state == AccountState.DRIFTED and user.account_state_at is not None
    # The naive check — a bind with the stored password — would have counted a bad password.
    assert not ad.server.can_bind(dn, STRONG)
    assert bad_password_count(ad.server, dn) == 1


def test_a_disabled_account_is_reported_without_a_bind(ad, unique_name):
    user = ad.account(unique_name("off"))
    conn = admin_conn(ad.server)
    try:
        assert conn.modify(user.distinguished_name, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])]})
    finally:
        conn.unbind()
    assert heartbeat.check(user).state == AccountState.DISABLED
    assert bad_password_count(ad.server, user.distinguished_name) == 0


def test_a_locked_account_is_reported_without_a_bind(ad, unique_name):
    user = ad.account(unique_name("lock"))
    for _ in range(LOCKOUT_THRESHOLD):
        assert not ad.server.can_bind(user.distinguished_name, "Wrong-Password-1!")
    assert int(ad_attribute(ad.server, user.distinguished_name, "lockoutTime") or 0) > 0

    finding = heartbeat.check(user)

    assert finding.state == AccountState.LOCKED, finding.detail
    assert bad_password_count(ad.server, user.distinguished_name) == LOCKOUT_THRESHOLD


def test_an_expired_account_is_reported_without_a_bind(ad, unique_name):
    user = ad.account(unique_name("exp"))
    conn = admin_conn(ad.server)
    try:  # accountExpires one day ago, as a FILETIME
        yesterday = int((timezone.now() - dt.timedelta(days=1)).timestamp() + 11644473600) * 10_000_000
        assert conn.modify(
            user.distinguished_name, {"accountExpires": [(ldap3.MODIFY_REPLACE, [str(yesterday)])]}
        )
    finally:
        conn.unbind()
    assert heartbeat.check(user).state == AccountState.EXPIRED
    assert bad_password_count(ad.server, user.distinguished_name) == 0


def test_an_unchanged_account_binds_and_is_ok(ad, unique_name):
    user = ad.account(unique_name("fine"))
    finding = heartbeat.check(user)
    assert finding.state == AccountState.OK, finding.detail
    assert bad_password_count(ad.server, user.distinguished_name) == 0


def test_a_refused_password_is_never_tried_twice(ad, unique_name):
    """A never-rotated record saved after the out-of-band change: only a bind can tell, and only once."""
    name = unique_name("once")
    dn = ad.server.add_user(name, STRONG)
    for n in range(3):
        change_out_of_band(ad.server, dn, f"Out-Of-Band-{n}-Pass!")
    user = make_user(
        configuration=ad.directory.configuration,
        title=name,
        login=name,
        distinguished_name=dn,
        resource=ad.directory,
        rotation_enabled=True,
        password=STRONG,
    )

    assert heartbeat.check(user).detail == heartbeat.REFUSED
    assert bad_password_count(ad.server, dn) == 1
    for _ in range(3):
        assert heartbeat.check(user).state == AccountState.DRIFTED
    assert bad_password_count(ad.server, dn) == 1


def test_no_bind_when_one_more_bad_password_would_lock_the_account(ad, unique_name):
    name = unique_name("near")
    dn = ad.server.add_user(name, STRONG)
    change_out_of_band(ad.server, dn, "Out-Of-Band-0-Pass!")
    for _ in range(LOCKOUT_THRESHOLD - 1):  # someone mistyped: one short of the lock-out
        assert not ad.server.can_bind(dn, f"Typo-{secrets.token_hex(4)}-1!")
    assert bad_password_count(ad.server, dn) == LOCKOUT_THRESHOLD - 1
    # A record saved after that change, with the old password: only a bind could tell.
    user = make_user(
        configuration=ad.directory.configuration,
        title=name,
        login=name,
        distinguished_name=dn,
        resource=ad.directory,
        password=STRONG,
    )

    finding = heartbeat.check(user)

    assert finding.state == AccountState.UNCHECKED and "could lock it out" in finding.detail
    assert bad_password_count(ad.server, dn) == LOCKOUT_THRESHOLD - 1


# -- OpenLDAP: pwdChangedTime ---------------------------------------------------------------------


def test_openldap_drift_is_found_from_pwd_changed_time(ol, unique_name):
    user = ol.account(unique_name("oldrift"))
    rotated_earlier(user)
    change_out_of_band(ol.server, user.distinguished_name, "Out-Of-Band-Pass-1!")
    finding = heartbeat.check(user)
    assert finding.state == AccountState.DRIFTED and "changed on the directory" in finding.detail


def test_openldap_an_account_pamrotate_rotated_is_ok(ol, unique_name):
    user = ol.account(unique_name("olok"))
    assert rotate(user).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert heartbeat.check(user).state == AccountState.OK


def test_an_adopted_account_with_no_password_is_left_unchecked(ol, unique_name):
    user = ol.account(unique_name("nopw"))
    PamUser.objects.filter(pk=user.pk).update(password_encrypted="")
    user.refresh_from_db()
    finding = heartbeat.check(user)
    assert finding.state == AccountState.UNCHECKED and "no password is stored" in finding.detail


def test_an_unreachable_directory_is_reported(db, unique_name):
    configuration = make_configuration(title=unique_name("cfg"))
    admin = make_user(
        configuration=configuration, title=unique_name("adm"), login="cn=a", password="x-pass-1"
    )
    directory = PamDirectory.objects.create(
        title=unique_name("dir"),
        configuration=configuration,
        hostname="127.0.0.1",
        port=1,
        directory_type="openldap",
        administrative_credential=admin,
    )
    user = make_user(configuration=configuration, resource=directory, distinguished_name="cn=x,dc=y")
    assert heartbeat.check(user).state == AccountState.UNREACHABLE


# -- Changes: one event and one mail each; rotate when drifted ------------------------------------


def test_each_state_change_is_one_event_and_a_problem_one_mail(ol, unique_name, settings):
    settings.NOTIFY_EMAIL_TO = ["secops@example.test"]
    user = ol.account(unique_name("evt"))
    assert rotate(user).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    heartbeat.check(user)  # unchecked → ok: an event, no mail
    heartbeat.check(user)  # no change
    events = AuditEvent.objects.filter(event=AuditEvent.ACCOUNT_STATE_CHANGED, record_id=user.pk)
    assert events.count() == 1 and mail.outbox == []

    rotated_earlier(user)
    change_out_of_band(ol.server, user.distinguished_name, "Out-Of-Band-Pass-2!")
    heartbeat.check(user)
    heartbeat.check(user)

    assert events.count() == 2
    latest = events.latest("id")
    assert latest.outcome == "fail" and "Password works → Changed outside pamrotate" in latest.message
    assert len(mail.outbox) == 1 and user.title in mail.outbox[0].subject
    assert "Out-Of-Band-Pass-2!" not in mail.outbox[0].body


def test_rotate_when_drifted_requests_a_rotation_that_puts_things_right(ol, unique_name):
    configuration = ol.directory.configuration
    configuration.rotate_when_drifted = True
    configuration.save()
    user = ol.account(unique_name("fix"))
    rotated_earlier(user)
    change_out_of_band(ol.server, user.distinguished_name, "Out-Of-Band-Pass-3!")

    assert heartbeat.check(user).state == AccountState.DRIFTED

    attempt = RotationAttempt.objects.get(user=user)
    assert attempt.requested_by_name == "heartbeat" and attempt.state == AttemptState.QUEUED
    services.run_attempt(attempt.pk)
    user.refresh_from_db()
    assert heartbeat.check(user).state == AccountState.OK


# -- Scheduling and the command --------------------------------------------------------------------


def test_the_dispatcher_queues_due_checks_once(ol, unique_name):
    configuration = ol.directory.configuration
    configuration.heartbeat_hours = 6
    configuration.save()
    users = [ol.account(unique_name("due")) for _ in range(2)]
    off = make_user(resource=ol.directory, distinguished_name="cn=nobody,dc=x")  # no DN on the server
    PamUser.objects.filter(pk=off.pk).update(account_state_at=timezone.now())  # checked recently: not due

    result = dispatch.tick()  # django-q2 runs in sync mode in tests: the checks run here

    assert result["heartbeats_queued"] == 2
    for user in users:
        user.refresh_from_db()
        assert user.account_state == AccountState.OK
    assert dispatch.tick()["heartbeats_queued"] == 0  # just checked: not due again for 6 hours
    PamUser.objects.filter(pk=users[0].pk).update(account_state_at=timezone.now() - dt.timedelta(hours=7))
    assert heartbeat.due() == [users[0].pk]


def test_heartbeat_off_queues_nothing(ol, unique_name):
    ol.account(unique_name("nohb"))
    assert heartbeat.due() == []


def test_pam_heartbeat_prints_each_state(ol, unique_name):
    good = ol.account(unique_name("cmdok"))
    drifted = ol.account(unique_name("cmddr"))
    rotated_earlier(drifted)
    change_out_of_band(ol.server, drifted.distinguished_name, "Out-Of-Band-Pass-4!")
    out = io.StringIO()
    call_command("pam_heartbeat", "--directory", ol.directory.title, stdout=out, stderr=io.StringIO())
    lines = out.getvalue().splitlines()
    assert any(good.title in line and " ok " in f"{line} " for line in lines)
    assert any(drifted.title in line and "drifted" in line for line in lines)

    out = io.StringIO()
    call_command("pam_heartbeat", "--user", good.title, stdout=out)
    assert good.title in out.getvalue() and drifted.title not in out.getvalue()


# -- Where the states show --------------------------------------------------------------------------


def test_states_show_on_the_dashboard_lists_account_page_and_info(client, alice, db, unique_name):
    drifted = make_user(title=unique_name("d"))
    locked = make_user(title=unique_name("l"))
    fine = make_user(title=unique_name("f"))
    now = timezone.now()
    PamUser.objects.filter(pk=drifted.pk).update(
        account_state=AccountState.DRIFTED, account_state_at=now, account_state_detail="changed at noon"
    )
    PamUser.objects.filter(pk=locked.pk).update(account_state=AccountState.LOCKED, account_state_at=now)
    PamUser.objects.filter(pk=fine.pk).update(account_state=AccountState.OK, account_state_at=now)

    counts = status.counts()
    assert (counts["drifted"], counts["locked"], counts["disabled"], counts["expired"]) == (1, 1, 0, 0)
    client.force_login(alice)
    page = client.get(reverse("records:dashboard")).content.decode()
    assert 'id="count-drifted"' in page and 'id="account-state-problems"' in page
    assert drifted.title in page and locked.title in page and "changed at noon" in page

    listed = client.get(reverse("records:user-list") + "?account_state=drifted")
    assert [u.title for u in listed.context["page"]] == [drifted.title]
    assert "Changed outside pamrotate" in client.get(drifted.get_absolute_url()).content.decode()

    out = io.StringIO()
    call_command("pam_rotation", "info", drifted.title, stdout=out)
    assert "drifted" in out.getvalue() and "changed at noon" in out.getvalue()
