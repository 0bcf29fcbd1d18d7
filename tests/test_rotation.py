"""The rotation protocol against real OpenLDAP and Samba AD servers started by the tests."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from records.models import DirectoryType, PamDirectory, PamUser, RotationStatus, new_uid
from rotation import directories, protocol, services
from rotation.models import AttemptState, ErrorClass, PasswordVersion, RotationAttempt, Trigger
from tests.conftest import make_configuration, make_user
from tests.ldapservers import SambaDC, SlapdServer, make_ca

STRONG = "Start-Pass-1234!"


@dataclass
class Env:
    """A configuration and directory record pointing at one real server."""

    server: SlapdServer | SambaDC
    directory: PamDirectory

    def account(
        self, name: str, cn: str | None = None, complexity: str = "", ou_dn: str | None = None, **fields
    ) -> PamUser:
        """Create an account on the server and its PAM user record, rotation on."""
        dn = self.server.add_user(name, STRONG, cn=cn, ou_dn=ou_dn)
        fields.setdefault("rotation_enabled", True)
        return make_user(
            configuration=self.directory.configuration,
            title=f"{name} {cn or ''}".strip(),
            login=name,
            distinguished_name=dn,
            resource=self.directory,
            password=STRONG,
            password_complexity=complexity,
            **fields,
        )


def make_env(server, unique) -> Env:
    configuration = make_configuration(title=unique("cfg"))
    admin = make_user(
        configuration=configuration,
        title=unique("admin"),
        login=server.rotator_dn,
        distinguished_name=server.rotator_dn,
        password=server.rotator_password,
    )
    directory = PamDirectory.objects.create(
        title=unique("dir"),
        configuration=configuration,
        hostname=server.host,
        port=server.ldaps_port,
        use_ssl=True,
        ca_certificate=server.tls.ca_pem,
        directory_type=DirectoryType.ACTIVE_DIRECTORY if server.kind == "ad" else DirectoryType.OPENLDAP,
        domain_name="example.test",
        administrative_credential=admin,
    )
    return Env(server, directory)


@pytest.fixture(params=["openldap", "ad"])
def env(request, db, unique_name) -> Env:
    server = request.getfixturevalue("slapd" if request.param == "openldap" else "samba")
    return make_env(server, unique_name)


@pytest.fixture
def ad_env(db, samba, unique_name) -> Env:
    return make_env(samba, unique_name)


def rotate(user: PamUser, **kwargs) -> RotationAttempt:
    """Request and run one rotation in this process; return the attempt as stored."""
    attempt = services.request_rotation(user, enqueue=False, **kwargs)
    if attempt.state == AttemptState.QUEUED:
        services.run_attempt(attempt.pk)
    attempt.refresh_from_db()
    return attempt


# -- Success ---------------------------------------------------------------------------------


def test_a_rotation_changes_the_password_and_the_new_one_binds(env, unique_name, bob):
    user = env.account(unique_name("rot"))
    attempt = rotate(user, actor=Actor.person(bob))

    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    user.refresh_from_db()
    new_password = user.get_password()
    assert new_password != STRONG and len(new_password) == 20
    assert env.server.can_bind(user.distinguished_name, new_password)
    assert not env.server.can_bind(user.distinguished_name, STRONG)
    assert user.rotation_status == RotationStatus.SUCCEEDED
    assert user.last_rotated_at is not None
    assert attempt.pending_password_encrypted == ""
    assert [v.get_password() for v in user.password_versions.all()] == [STRONG]
    event = AuditEvent.objects.get(attempt_id=attempt.pk)
    assert event.event == AuditEvent.ROTATION_ON_DEMAND_OK
    assert event.actor == bob and event.record_id == user.pk


def test_history_keeps_the_last_ten_passwords(ldap_env, unique_name, settings):
    settings.PASSWORD_HISTORY_DEPTH = 3
    user = ldap_env.account(unique_name("hist"))
    seen = [STRONG]
    for _ in range(4):
        assert rotate(user).state == AttemptState.SUCCEEDED
        user.refresh_from_db()
        seen.append(user.get_password())
    versions = [v.get_password() for v in PasswordVersion.objects.filter(user=user)]
    assert versions == list(reversed(seen[1:4]))


@pytest.mark.parametrize(
    "cn",
    ["Smith, John {u}", "#hash {u}", "plus+{u}", 'quote "{u}"', "Jürgen Groß {u}", "{u};semi=colon\\back"],
)
def test_distinguished_names_with_special_characters_rotate(env, unique_name, cn):
    user = env.account(unique_name("dn"), cn=cn.format(u=unique_name("")))
    attempt = rotate(user)
    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    user.refresh_from_db()
    assert env.server.can_bind(user.distinguished_name, user.get_password())


def test_a_directory_admin_credential_rotates_itself_with_a_self_change(env, unique_name):
    own = env.account(unique_name("self"))
    directory = env.directory
    directory.pk, directory.uid = None, new_uid()
    directory.title = unique_name("selfdir")
    directory.administrative_credential = own
    directory.save()
    own.resource = directory
    own.save()

    attempt = rotate(own)

    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    assert attempt.self_change
    own.refresh_from_db()
    assert env.server.can_bind(own.distinguished_name, own.get_password())
    assert not env.server.can_bind(own.distinguished_name, STRONG)


# -- Failures that leave the stored password working -------------------------------------------


@pytest.mark.parametrize(
    "kind, complexity, reason",
    [
        ("openldap", "6,1,1,1,1", "quality"),  # slapd ppolicy: pwdMinLength 8
        ("ad", "5,1,1,1,1", "short"),  # Samba default minimum length 7
        ("ad", "12,0,12,0,0", "complex"),  # lowercase only fails AD complexity
    ],
)
def test_a_password_the_directory_refuses_fails_and_the_stored_one_still_binds(
    request, db, unique_name, kind, complexity, reason
):
    server = request.getfixturevalue("slapd" if kind == "openldap" else "samba")
    env = make_env(server, unique_name)
    user = env.account(unique_name("weak"), complexity=complexity)

    attempt = rotate(user)

    assert attempt.state == AttemptState.FAILED
    assert attempt.error_class == ErrorClass.REJECTED
    assert attempt.error_code == 19
    assert reason in attempt.error_message.lower()
    user.refresh_from_db()
    assert user.get_password() == STRONG
    assert server.can_bind(user.distinguished_name, STRONG)
    assert user.rotation_status == RotationStatus.FAILED
    assert attempt.pending_password_encrypted == ""
    assert not RotationAttempt.objects.filter(user=user, trigger=Trigger.RETRY).exists()


def test_an_admin_without_the_reset_right_is_a_configuration_error_naming_the_fix(env, unique_name):
    if env.server.kind == "ad":
        user = env.account(unique_name("other"), ou_dn=env.server.other_ou_dn)
    else:
        user = env.account(unique_name("ro"))
        admin = env.directory.administrative_credential
        admin.distinguished_name = admin.login = env.server.readonly_dn
        admin.set_password(env.server.readonly_password)
        admin.save()

    attempt = rotate(user)

    assert attempt.error_class == ErrorClass.CONFIGURATION
    assert attempt.error_code == 50
    assert ("reset password" if env.server.kind == "ad" else "write") in attempt.error_message.lower()
    user.refresh_from_db()
    assert env.server.can_bind(user.distinguished_name, user.get_password())


def test_a_wrong_admin_password_fails_clearly_and_loses_nothing(env, unique_name):
    user = env.account(unique_name("wrongadm"))
    admin = env.directory.administrative_credential
    admin.set_password("Not-The-Password-9!")
    admin.save()

    attempt = rotate(user)

    assert attempt.error_class == ErrorClass.CONFIGURATION and attempt.error_code == 49
    assert "administrative credential" in attempt.error_message
    assert env.server.can_bind(user.distinguished_name, STRONG)


def test_an_untrusted_certificate_fails_before_any_password_is_sent(env, unique_name, tmp_path):
    user = env.account(unique_name("ca"))
    env.directory.ca_certificate = make_ca(tmp_path).ca_pem
    env.directory.save()

    attempt = rotate(user)

    assert attempt.error_class == ErrorClass.CONFIGURATION
    assert "not trusted" in attempt.error_message
    assert env.server.can_bind(user.distinguished_name, STRONG)


def test_a_missing_dn_is_a_configuration_error(env, unique_name):
    user = env.account(unique_name("gone"))
    env.server.delete(user.distinguished_name)

    attempt = rotate(user)

    assert attempt.error_class == ErrorClass.CONFIGURATION
    assert attempt.error_code == 32
    assert "not found" in attempt.error_message


def test_plain_ldap_is_refused_before_any_password_leaves_the_process(ldap_env, unique_name, monkeypatch):
    user = ldap_env.account(unique_name("plain"))
    PamDirectory.objects.filter(pk=ldap_env.directory.pk).update(
        use_ssl=False, start_tls=False, port=ldap_env.server.ldap_port
    )
    import socket

    opened = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(
        socket.socket, "connect", lambda self, addr: opened.append(addr) or real_connect(self, addr)
    )

    attempt = rotate(user)

    assert opened == []
    assert attempt.error_class == ErrorClass.CONFIGURATION
    assert "plain LDAP" in attempt.error_message
    monkeypatch.undo()
    assert ldap_env.server.can_bind(user.distinguished_name, STRONG)


def test_a_stopped_server_is_transient_and_a_retry_is_queued(ldap_env, unique_name):
    user = ldap_env.account(unique_name("down"))
    ldap_env.server.stop()
    try:
        attempt = rotate(user)
    finally:
        ldap_env.server.start()

    assert attempt.error_class == ErrorClass.TRANSIENT
    assert "unreachable" in attempt.error_message
    retry = RotationAttempt.objects.get(user=user, trigger=Trigger.RETRY)
    assert retry.state == AttemptState.QUEUED and retry.try_number == 2
    assert retry.retry_at > timezone.now()
    assert ldap_env.server.can_bind(user.distinguished_name, STRONG)


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("rotation_enabled", False, "turned off for this account"),
        ("managed", True, "managed"),
    ],
)
def test_blocked_rotation_is_refused_with_the_reason(ldap_env, unique_name, field, value, reason):
    user = ldap_env.account(unique_name("blk"), **{field: value})
    attempt = rotate(user)
    assert attempt.state == AttemptState.REFUSED
    assert attempt.error_class == ErrorClass.BLOCKED
    assert reason in attempt.error_message
    assert AuditEvent.objects.get(attempt_id=attempt.pk).event == AuditEvent.ROTATION_ON_DEMAND_FAIL


def test_a_configuration_switched_off_blocks_its_accounts(ldap_env, unique_name):
    user = ldap_env.account(unique_name("cfgoff"))
    ldap_env.directory.configuration.rotation_enabled = False
    ldap_env.directory.configuration.save()
    attempt = rotate(user)
    assert attempt.state == AttemptState.REFUSED
    assert "turned off for the configuration" in attempt.error_message


# -- One attempt at a time ---------------------------------------------------------------------


def test_a_second_request_while_one_is_queued_is_refused_as_already_rotating(ldap_env, unique_name):
    user = ldap_env.account(unique_name("twice"))
    first = services.request_rotation(user, enqueue=False)
    second = services.request_rotation(user, enqueue=False)
    assert first.state == AttemptState.QUEUED
    assert second.state == AttemptState.REFUSED
    assert second.error_class == ErrorClass.BUSY
    assert f"#{first.pk}" in second.error_message


@pytest.mark.django_db(transaction=True)
def test_two_workers_running_attempts_for_one_account_never_rotate_concurrently(slapd, unique_name):
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("race"))
    attempts = [RotationAttempt.objects.create(user=user) for _ in range(2)]
    results = {}

    def work(attempt_id):
        try:
            results[attempt_id] = services.run_attempt(attempt_id).state
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=work, args=(a.pk,)) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    states = sorted(results.values())
    assert AttemptState.SUCCEEDED in states
    # The other one either found the lease taken (refused) or ran strictly after the first.
    assert states in (
        sorted([AttemptState.SUCCEEDED, AttemptState.REFUSED]),
        [AttemptState.SUCCEEDED, AttemptState.SUCCEEDED],
    )
    user.refresh_from_db()
    assert slapd.can_bind(user.distinguished_name, user.get_password())
    runs = RotationAttempt.objects.filter(user=user, state=AttemptState.SUCCEEDED).order_by("started_at")
    if runs.count() == 2:
        assert runs[0].finished_at <= runs[1].started_at


def test_running_the_same_attempt_twice_rotates_once(ldap_env, unique_name):
    user = ldap_env.account(unique_name("idem"))
    attempt = services.request_rotation(user, enqueue=False)
    services.run_attempt(attempt.pk)
    user.refresh_from_db()
    password = user.get_password()
    again = services.run_attempt(attempt.pk)
    user.refresh_from_db()
    assert again.state == AttemptState.SUCCEEDED
    assert user.get_password() == password
    assert user.password_versions.count() == 1


# -- Crash safety: the worker dies at each step -----------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "fault, expected",
    [
        ("after_write_ahead", AttemptState.FAILED),
        ("after_change", AttemptState.RECONCILED),
        ("before_commit", AttemptState.RECONCILED),
    ],
)
def test_a_worker_killed_at_any_step_leaves_a_stored_password_that_binds(env, unique_name, fault, expected):
    user = env.account(unique_name("crash"))
    attempt = services.request_rotation(user, enqueue=False)
    child_env = dict(
        os.environ,
        PAMROTATE_FAULT_POINT=fault,
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
    )
    code = (
        f"import django; django.setup(); from rotation.services import run_attempt; run_attempt({attempt.pk})"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]

    attempt.refresh_from_db()
    assert attempt.state == AttemptState.RUNNING
    assert attempt.pending_password_encrypted  # written ahead, never dropped
    # The worker's lease expires; the reconciler resolves the attempt.
    PamUser.objects.filter(pk=user.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert services.reconcile_stale() == 1

    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.state == expected, attempt.error_message
    assert env.server.can_bind(user.distinguished_name, user.get_password())
    if expected == AttemptState.RECONCILED:
        assert user.get_password() != STRONG
    else:
        assert user.get_password() == STRONG
    # And the account rotates normally afterwards.
    assert rotate(user).state == AttemptState.SUCCEEDED


def test_an_undecryptable_stored_password_fails_cleanly_and_changes_nothing(ldap_env, unique_name):
    user = ldap_env.account(unique_name("nokey"))
    from pamrotate import crypto

    foreign = crypto.KeyRing([crypto.Key.generate()]).encrypt(STRONG)
    PamUser.objects.filter(pk=user.pk).update(password_encrypted=foreign)

    attempt = rotate(user)

    assert attempt.state == AttemptState.FAILED
    assert attempt.error_class == ErrorClass.INTERNAL
    assert "DecryptionError" in attempt.error_message
    user.refresh_from_db()
    assert user.lease_until is None and user.password_encrypted == foreign
    assert ldap_env.server.can_bind(user.distinguished_name, STRONG)


def test_rotate_now_supersedes_a_retry_waiting_for_its_backoff(ldap_env, unique_name):
    user = ldap_env.account(unique_name("super"))
    ldap_env.server.stop()
    try:
        first = rotate(user)
    finally:
        ldap_env.server.start()
    retry = RotationAttempt.objects.get(user=user, trigger=Trigger.RETRY)
    assert first.error_class == ErrorClass.TRANSIENT and retry.state == AttemptState.QUEUED

    attempt = rotate(user)

    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    retry.refresh_from_db()
    assert retry.state == AttemptState.REFUSED and f"#{attempt.pk}" in retry.error_message


def test_an_attempt_resolved_twice_is_committed_once(ldap_env, unique_name):
    user = ldap_env.account(unique_name("twice"))
    attempt = services.request_rotation(user, enqueue=False)
    services.run_attempt(attempt.pk)
    attempt.refresh_from_db()
    stale_copy = RotationAttempt.objects.get(pk=attempt.pk)
    stale_copy.state = AttemptState.RUNNING  # what a second reconciler loaded before the first finished
    assert protocol.commit([stale_copy], AttemptState.RECONCILED) == []
    protocol.fail(stale_copy, ErrorClass.AMBIGUOUS, "late")
    user.refresh_from_db()
    assert user.password_versions.count() == 1
    assert AuditEvent.objects.filter(attempt_id=attempt.pk).count() == 1
    assert RotationAttempt.objects.get(pk=attempt.pk).state == AttemptState.SUCCEEDED


def test_with_verification_turned_off_an_untrusted_certificate_still_rotates_and_says_so(
    ldap_env, unique_name, tmp_path
):
    user = ldap_env.account(unique_name("noverify"))
    ldap_env.directory.ca_certificate = make_ca(tmp_path).ca_pem
    ldap_env.directory.verify_certificate = False
    ldap_env.directory.save()

    assert rotate(user).state == AttemptState.SUCCEEDED
    user.refresh_from_db()
    assert ldap_env.server.can_bind(user.distinguished_name, user.get_password())
    steps = directories.test_connection(ldap_env.directory)
    assert all(step.ok for step in steps)
    assert "NOT verified" in steps[0].message


def test_the_engine_never_imports_its_plugins():
    """Plugins register on rotation/hooks.py; no module of rotation names them (imports anywhere in a file count)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "rotation"
    importing = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            importing += [
                f"{path.relative_to(root)}: {name}" for name in names if name.split(".")[0] == "scripts"
            ]
    assert importing == []
    assert len(list(root.rglob("*.py"))) > 10  # the walk saw the package
