"""The batched rotation path (group commit): same guarantees as one account at a time, fewer transactions."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from records.models import PamUser, RotationStatus, RotationType
from rotation import batch, hooks, ldap, protocol, services
from rotation.models import AttemptState, ErrorClass, PasswordVersion, RotationAttempt, Trigger
from tests.conftest import make_configuration, make_user
from tests.test_rotation import STRONG, make_env


def queued(users) -> list[int]:
    return [services.request_rotation(user, enqueue=False).pk for user in users]


def assert_rotated(env, users) -> None:
    for user in PamUser.objects.filter(pk__in=[u.pk for u in users]):
        assert user.rotation_status == RotationStatus.SUCCEEDED
        assert user.get_password() != STRONG
        assert env.server.can_bind(user.distinguished_name, user.get_password())
        assert not env.server.can_bind(user.distinguished_name, STRONG)


@pytest.mark.parametrize("kind", ["openldap", "ad"])
def test_a_batch_rotates_every_account_and_records_each_like_the_single_path(kind, request, db, unique_name):
    env = make_env(request.getfixturevalue("slapd" if kind == "openldap" else "samba"), unique_name)
    users = [env.account(unique_name(f"b{i}")) for i in range(4)]
    ids = queued(users)

    states = batch.run_batch(ids)

    assert states == {AttemptState.SUCCEEDED: 4}
    assert_rotated(env, users)
    for attempt in RotationAttempt.objects.filter(pk__in=ids):
        assert attempt.state == AttemptState.SUCCEEDED and attempt.pending_password_encrypted == ""
        assert attempt.finished_at and attempt.directory_changed
    assert PasswordVersion.objects.filter(user__in=users).count() == 4
    assert AuditEvent.objects.filter(attempt_id__in=ids, event=AuditEvent.ROTATION_ON_DEMAND_OK).count() == 4
    assert not PamUser.objects.filter(pk__in=[u.pk for u in users], lease_attempt_id__isnull=False).exists()


def test_the_batch_pays_the_same_number_of_queries_for_5_and_for_20_accounts(ldap_env, unique_name):
    counts = []
    for size in (5, 20):
        ids = queued([ldap_env.account(unique_name(f"q{size}x{i}")) for i in range(size)])
        with CaptureQueriesContext(connection) as queries:
            assert batch.run_batch(ids) == {AttemptState.SUCCEEDED: size}
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_one_failure_in_a_batch_leaves_its_stored_password_and_the_others_rotate(ldap_env, unique_name):
    good = [ldap_env.account(unique_name(f"ok{i}")) for i in range(3)]
    gone = ldap_env.account(unique_name("gone"))
    ldap_env.server.delete(gone.distinguished_name)  # the DN no longer exists: a configuration error
    ids = queued([good[0], gone, *good[1:]])

    states = batch.run_batch(ids)

    assert states == {AttemptState.SUCCEEDED: 3, AttemptState.FAILED: 1}
    assert_rotated(ldap_env, good)
    failed = RotationAttempt.objects.get(user=gone)
    assert failed.error_class == ErrorClass.CONFIGURATION and "not found" in failed.error_message
    gone.refresh_from_db()
    assert gone.get_password() == STRONG and gone.lease_attempt_id is None
    assert not RotationAttempt.objects.filter(user=gone, trigger=Trigger.RETRY).exists()  # no retry for it


def test_accounts_that_need_the_single_path_still_rotate_in_a_batch(ldap_env, unique_name):
    plain = ldap_env.account(unique_name("plain"))
    unresolved = ldap_env.account(unique_name("unres"))
    stale = RotationAttempt.objects.create(user=unresolved, state=AttemptState.UNKNOWN)
    stale.set_pending("Never-Sent-1a!")
    stale.save()
    ids = queued([plain, unresolved])

    batch.run_batch(ids)

    stale.refresh_from_db()
    assert stale.state == AttemptState.FAILED  # reconciled first: the stored password still opened it
    assert_rotated(ldap_env, [plain, unresolved])


def test_a_batch_over_its_time_budget_gives_back_what_it_did_not_send(
    ldap_env, unique_name, monkeypatch, django_capture_on_commit_callbacks
):
    users = [ldap_env.account(unique_name(f"slow{i}")) for i in range(3)]
    ids = queued(users)
    sent = []
    monkeypatch.setattr(batch, "enqueue_batch", lambda gateway, attempt_ids: sent.append(attempt_ids))

    with django_capture_on_commit_callbacks(execute=True):
        states = batch.run_batch(ids, budget_seconds=0)

    assert states == {AttemptState.SUCCEEDED: 1, "requeued": 2}
    assert sent == [ids[1:]]
    for attempt in RotationAttempt.objects.filter(pk__in=ids[1:]):
        assert attempt.state == AttemptState.QUEUED and not attempt.pending_password_encrypted
    for user in PamUser.objects.filter(pk__in=[u.pk for u in users[1:]]):
        assert user.get_password() == STRONG and user.lease_attempt_id is None
        assert ldap_env.server.can_bind(user.distinguished_name, STRONG)
    assert batch.run_batch(ids[1:]) == {AttemptState.SUCCEEDED: 2}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "fault, first, rest",
    [
        # Killed after the first account's change, before the second's: the first reconciles to
        # its new password, the others never reached the directory and fail as interruptions.
        ("after_change", AttemptState.RECONCILED, AttemptState.FAILED),
        # Killed inside the batch commit: every change happened, nothing was committed.
        ("during_commit", AttemptState.RECONCILED, AttemptState.RECONCILED),
        ("after_write_ahead", AttemptState.FAILED, AttemptState.FAILED),
    ],
)
def test_a_worker_killed_in_a_batch_leaves_every_account_with_a_stored_password_that_binds(
    slapd, unique_name, fault, first, rest
):
    env = make_env(slapd, unique_name)
    users = [env.account(unique_name(f"k{i}")) for i in range(4)]
    ids = queued(users)
    child_env = dict(
        os.environ,
        PAMROTATE_FAULT_POINT=fault,
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
    )
    code = f"import django; django.setup(); from rotation.batch import run_batch; run_batch({ids})"
    proc = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]

    attempts = RotationAttempt.objects.filter(pk__in=ids).order_by("pk")
    assert [a.state for a in attempts] == [AttemptState.RUNNING] * 4
    assert all(a.pending_password_encrypted for a in attempts)  # written ahead, never dropped
    PamUser.objects.filter(pk__in=[u.pk for u in users]).update(
        lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert services.reconcile_stale() == 4

    states = [a.state for a in RotationAttempt.objects.filter(pk__in=ids).order_by("pk")]
    assert states == [first] + [rest] * 3
    for user in PamUser.objects.filter(pk__in=[u.pk for u in users]):
        assert env.server.can_bind(user.distinguished_name, user.get_password())
    # Nothing is half-recorded: one history row and one audit event per reconciled account.
    reconciled = [
        a.user_id for a in RotationAttempt.objects.filter(pk__in=ids, state=AttemptState.RECONCILED)
    ]
    assert PasswordVersion.objects.filter(user_id__in=reconciled).count() == len(reconciled)
    assert AuditEvent.objects.filter(attempt_id__in=ids).count() == 4


# -- One protocol, two drivers: the same case ends the same way through both ------------------


def _foreign_ciphertext() -> str:
    from pamrotate import crypto

    return crypto.KeyRing([crypto.Key.generate()]).encrypt(STRONG)


def _unverified_once(monkeypatch, dns: list[str]) -> None:
    """Make the verify step's bind (the first after each change) say no; reconciliation binds for real."""
    real = ldap.verify_password
    refused = set()

    def verify(spec, dn, password):
        if dn in dns and dn not in refused:
            refused.add(dn)
            return False
        return real(spec, dn, password)

    monkeypatch.setattr(ldap, "verify_password", verify)


def _ended(attempt_id: int) -> tuple:
    """Return how an attempt ended, its account's status and its audit event, with its own names left out."""
    attempt = RotationAttempt.objects.select_related("user").get(pk=attempt_id)
    user = attempt.user

    def plain(text: str) -> str:
        return text.replace(user.distinguished_name, "<dn>").replace(f"#{attempt.pk}", "#<id>")

    event = AuditEvent.objects.get(attempt_id=attempt.pk)
    retried = RotationAttempt.objects.filter(retry_of=attempt).exists()
    return (
        attempt.state,
        attempt.error_class,
        attempt.error_code,
        plain(attempt.error_message),
        bool(attempt.pending_password_encrypted),
        retried,
        user.rotation_status,
        plain(user.rotation_error),
        user.lease_attempt_id,
        event.event,
        event.outcome,
        plain(event.message),
    )


CASES = {
    # case: (what goes wrong after the request, how the attempt ends, its error class)
    "the account is gone": (
        lambda env, users, mp: [env.server.delete(user.distinguished_name) for user in users],
        AttemptState.FAILED,
        ErrorClass.CONFIGURATION,
    ),
    "rotation was turned off": (
        lambda env, users, mp: PamUser.objects.filter(pk__in=[u.pk for u in users]).update(
            rotation_enabled=False
        ),
        AttemptState.FAILED,
        ErrorClass.BLOCKED,
    ),
    "the stored password cannot be read": (
        lambda env, users, mp: PamUser.objects.filter(pk__in=[u.pk for u in users]).update(
            password_encrypted=_foreign_ciphertext()
        ),
        AttemptState.FAILED,
        ErrorClass.INTERNAL,
    ),
    "the admin credential has no password": (
        lambda env, users, mp: PamUser.objects.filter(pk=env.directory.administrative_credential_id).update(
            password_encrypted=""
        ),
        AttemptState.FAILED,
        ErrorClass.CONFIGURATION,
    ),
    "the new password does not verify": (
        lambda env, users, mp: _unverified_once(mp, [user.distinguished_name for user in users]),
        AttemptState.RECONCILED,
        ErrorClass.AMBIGUOUS,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_failure_ends_with_the_same_state_and_message_through_both_drivers(
    ldap_env, unique_name, monkeypatch, case
):
    breaks, state, error_class = CASES[case]
    alone, batched = ldap_env.account(unique_name("one")), ldap_env.account(unique_name("many"))
    alone_id, batched_id = queued([alone, batched])
    breaks(ldap_env, [alone, batched], monkeypatch)

    services.run_attempt(alone_id)
    batch.run_batch([batched_id])

    assert _ended(alone_id) == _ended(batched_id)
    ended = RotationAttempt.objects.get(pk=batched_id)
    assert (ended.state, ended.error_class) == (state, error_class), ended.error_message


def test_a_stopped_directory_fails_and_retries_the_same_way_through_both_drivers(ldap_env, unique_name):
    alone, batched = ldap_env.account(unique_name("one")), ldap_env.account(unique_name("many"))
    alone_id, batched_id = queued([alone, batched])
    ldap_env.server.stop()
    try:
        services.run_attempt(alone_id)
        batch.run_batch([batched_id])
    finally:
        ldap_env.server.start()

    assert _ended(alone_id) == _ended(batched_id)
    ended = RotationAttempt.objects.get(pk=batched_id)
    assert (
        ended.error_class == ErrorClass.TRANSIENT and RotationAttempt.objects.filter(retry_of=ended).exists()
    )


def test_both_drivers_hand_their_attempts_to_the_one_protocol(ldap_env, unique_name, monkeypatch):
    handed = []
    real = protocol.rotate
    monkeypatch.setattr(
        protocol,
        "rotate",
        lambda attempts, lease, **kw: handed.append(len(attempts)) or real(attempts, lease, **kw),
    )
    ids = queued([ldap_env.account(unique_name(f"p{i}")) for i in range(4)])

    assert services.run_attempt(ids[0]).state == AttemptState.SUCCEEDED
    assert batch.run_batch(ids[1:]) == {AttemptState.SUCCEEDED: 3}

    assert handed == [1, 3]


def test_after_commit_hooks_run_once_for_each_commit_they_want_from_both_drivers(
    ldap_env, unique_name, monkeypatch
):
    monkeypatch.setattr(hooks, "_after_commit", [])  # only this test's hook
    seen = []
    hooks.register_after_commit(
        lambda attempt: seen.append(attempt.pk),
        wants=lambda users: {u.pk for u in users if "want" in u.login},
    )
    users = [ldap_env.account(unique_name(name)) for name in ("want1", "skip1", "want2", "skip2", "want3")]
    ids = queued(users)

    services.run_attempt(ids[0])
    services.run_attempt(ids[1])
    batch.run_batch(ids[2:])

    assert sorted(seen) == [ids[0], ids[2], ids[4]]
    assert RotationAttempt.objects.filter(pk__in=ids, state=AttemptState.SUCCEEDED).count() == 5


def test_a_registered_change_strategy_changes_passwords_the_same_way_through_both_drivers(
    db, monkeypatch, unique_name
):
    """The engine side of "how a password is changed" (the scripts plugin registers the real one)."""
    delivered, unresolved = {}, []

    def change(attempt, user, new_password):
        if "good" in user.login:
            delivered[user.pk] = new_password
            return True, ""
        return False, "the strategy could not deliver"

    strategy = hooks.ChangeStrategy(
        refused=lambda user: "this strategy refuses it" if "refused" in user.login else "",
        change=change,
        unresolved=lambda attempt: unresolved.append(attempt.pk),
        settle=lambda attempt: None,
    )
    monkeypatch.setitem(hooks._changers, RotationType.SCRIPTS_ONLY, strategy)
    configuration = make_configuration(title=unique_name("cfg"))
    users = {
        (kind, driver): make_user(
            configuration=configuration,
            login=unique_name(f"{kind}-{driver}"),
            password=STRONG,
            rotation_type=RotationType.SCRIPTS_ONLY,
            rotation_enabled=True,
        )
        for kind in ("good", "bad", "refused")
        for driver in ("one", "many")
    }
    ids = {key: services.request_rotation(user, enqueue=False).pk for key, user in users.items()}

    for kind in ("good", "bad", "refused"):
        services.run_attempt(ids[kind, "one"])
    batch.run_batch([ids[kind, "many"] for kind in ("good", "bad", "refused")])

    for kind, state, error_class in [
        ("good", AttemptState.SUCCEEDED, ""),
        ("bad", AttemptState.UNKNOWN, ErrorClass.AMBIGUOUS),
        ("refused", AttemptState.FAILED, ErrorClass.CONFIGURATION),
    ]:
        one, many = (RotationAttempt.objects.get(pk=ids[kind, driver]) for driver in ("one", "many"))
        assert (one.state, one.error_class, one.error_message) == (
            many.state,
            many.error_class,
            many.error_message,
        )
        assert (many.state, many.error_class) == (state, error_class), many.error_message
    for driver in ("one", "many"):
        good, bad = (PamUser.objects.get(pk=users[kind, driver].pk) for kind in ("good", "bad"))
        assert good.get_password() == delivered[good.pk] != STRONG
        assert bad.get_password() == STRONG  # both kept: the pending one stays on the attempt
        assert RotationAttempt.objects.get(pk=ids["bad", driver]).get_pending() not in ("", STRONG)
    assert sorted(unresolved) == sorted([ids["bad", "one"], ids["bad", "many"]])
    assert "could not deliver" in RotationAttempt.objects.get(pk=ids["bad", "many"]).error_message
