"""Rotate a batch of accounts with a constant number of transactions (group commit), same guarantees.

The single-account protocol (rotation/services.py) pays its claim, write-ahead and commit
transactions for every account. A batch pays them once:

1. Claim every account's lease in one conditional UPDATE (an account another attempt holds goes
   to the single path, which refuses it as "already rotating").
2. Generate and write ahead every pending password in one committed transaction, **before** any
   of them touches the directory.
3. Change and verify each account on the worker's pooled connections.
4. Commit the successes (current password, history row, trim, next slot, lease release, attempt,
   audit event) in one transaction of bulk statements; then run each one's post-rotation scripts.

A crash anywhere leaves each account exactly as the single-account protocol would: its pending
password written ahead and its attempt running, which the reconciler resolves by binding. A
failure or an unknown outcome of one account is handled by the single path's own functions.
Accounts that need more than the plain path (an unknown earlier attempt to reconcile first, a
self-change of a directory's own credential, scripts-only rotation, a blocked account, a second
attempt for the same account, an attempt not plainly queued) run through ``services.run_attempt``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from records.models import PamUser, RotationType
from rotation import ldap, passwords, services
from rotation.directories import admin_bind_name, directory_spec, is_self_change
from rotation.faults import fault_point
from rotation.models import AttemptState, AuditEvent, ErrorClass, PasswordVersion, RotationAttempt
from rotation.queue import enqueue_batch
from scripts import runner as scripts_runner

log = logging.getLogger(__name__)

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


def run_batch(attempt_ids: list[int], *, budget_seconds: float | None = None) -> dict[str, int]:
    """Run queued attempts as one batch; return how many ended in each state.

    With ``budget_seconds``, attempts not yet sent to the directory when the budget runs out are
    given back (nothing was changed for them) and queued again as a new batch.
    """
    started = time.monotonic()
    attempts = list(
        RotationAttempt.objects.filter(pk__in=attempt_ids)
        .select_related("user__configuration", "user__resource__administrative_credential")
        .order_by("pk")
    )
    batchable, single = _split(attempts)
    claimed = _claim(batchable)
    single += [attempt.pk for attempt in batchable if attempt not in claimed]
    states: Counter[str] = Counter()
    if claimed:
        states.update(_rotate(claimed, started, budget_seconds))
    for attempt_id in single:
        states[services.run_attempt(attempt_id).state] += 1
    return dict(states)


def _split(attempts: list[RotationAttempt]) -> tuple[list[RotationAttempt], list[int]]:
    """Return the attempts the batch can take, and the ids of those that need the single path."""
    user_ids = [attempt.user_id for attempt in attempts]
    unresolved = set(
        RotationAttempt.objects.filter(user_id__in=user_ids, state=AttemptState.UNKNOWN).values_list(
            "user_id", flat=True
        )
    )
    batchable, single, seen = [], [], set()
    for attempt in attempts:
        user = attempt.user
        plain = (
            attempt.state == AttemptState.QUEUED
            and user.pk not in unresolved
            and user.pk not in seen
            and user.rotation_type == RotationType.GENERAL
            and not user.rotation_blocked_reason
            and not is_self_change(user)
        )
        if plain:
            batchable.append(attempt)
            seen.add(user.pk)
        else:
            single.append(attempt.pk)
    return batchable, single


def _claim(attempts: list[RotationAttempt]) -> list[RotationAttempt]:
    """1. Take the leases of the batch's accounts in one UPDATE; mark the attempts that got theirs running."""
    if not attempts:
        return []
    now = timezone.now()
    until = now + dt.timedelta(seconds=settings.ROTATION_LEASE_SECONDS)
    with transaction.atomic():
        held = PamUser.objects.claim_leases({attempt.user_id: attempt.pk for attempt in attempts}, until)
        RotationAttempt.objects.filter(pk__in=held, state=AttemptState.QUEUED).update(
            state=AttemptState.RUNNING, started_at=now
        )
    claimed = [attempt for attempt in attempts if attempt.pk in held]
    for attempt in claimed:
        attempt.state, attempt.started_at = AttemptState.RUNNING, now
        attempt.user.lease_attempt_id, attempt.user.lease_until = attempt.pk, until
    return claimed


@sensitive_variables()
def _rotate(attempts: list[RotationAttempt], started: float, budget_seconds: float | None) -> Counter:
    """2.–4. Write ahead, change and verify each account, commit the successes together."""
    try:
        # 2. Generate and write ahead, in one committed transaction.
        for attempt in attempts:
            attempt.set_pending(passwords.generate(attempt.user.effective_complexity))
        with transaction.atomic():
            _update_rows(RotationAttempt, attempts, ["pending_password_encrypted"])
        fault_point("after_write_ahead")
        # 3. Change and verify, one account after another, on pooled connections.
        outcomes: dict[int, tuple] = {}
        admins: dict[int, tuple[str, str]] = {}
        for index, attempt in enumerate(attempts):
            if budget_seconds is not None and index and time.monotonic() - started > budget_seconds:
                _give_back(attempts[index:])
                break
            outcomes[attempt.pk] = _change_and_verify(attempt, admins)
            if outcomes[attempt.pk][0] == OK:
                fault_point("after_change")
        done = [attempt for attempt in attempts if attempt.pk in outcomes]
        fault_point("before_commit")
        # 4. Commit the successes in one transaction.
        committed = _commit([attempt for attempt in done if outcomes[attempt.pk][0] == OK])
    except Exception as exc:
        # A bug or an undecryptable secret: hand every attempt of the batch to the single path's
        # recovery, which keeps any pending password until a bind decides.
        log.error("batch of %s attempts: unexpected %s", len(attempts), type(exc).__name__)
        return _recover(attempts)
    with_scripts = scripts_runner.accounts_with_scripts(a.user for a in done if a.pk in committed)
    for attempt in done:
        if attempt.pk in committed and attempt.user_id in with_scripts:
            scripts_runner.after_commit(attempt)  # after the commit's transaction; never raises
    states: Counter[str] = Counter({AttemptState.SUCCEEDED: len(committed)})
    if len(done) < len(attempts):
        states["requeued"] = len(attempts) - len(done)
    for attempt in done:
        if attempt.pk in committed:
            continue
        kind, *details = outcomes[attempt.pk]
        states[_end_one(attempt, kind, details)] += 1
    return states


@sensitive_variables()
def _change_and_verify(attempt: RotationAttempt, admins: dict[int, tuple[str, str]]) -> tuple:
    """Change one account's password on its directory and bind with it; return the outcome."""
    user = attempt.user
    new_password = attempt.get_pending()
    secrets_seen = [new_password]
    spec = directory_spec(user.resource)
    try:
        if user.resource_id not in admins:
            admins[user.resource_id] = admin_bind_name(user.resource)
        admin_name, admin_password = admins[user.resource_id]
        secrets_seen.append(admin_password)
        ldap.set_password(spec, admin_name, admin_password, user.distinguished_name, new_password)
    except ldap.DirectoryError as exc:
        message = services._scrub(exc, secrets_seen)
        if exc.kind == ldap.DirectoryError.AMBIGUOUS:
            return UNKNOWN, message, exc.code
        return FAILED, exc.kind, message, exc.code
    except Exception as exc:
        log.error("attempt %s: unexpected %s while changing the password", attempt.pk, type(exc).__name__)
        return UNKNOWN, "An unexpected error happened while changing the password.", None
    attempt.directory_changed = True
    try:
        verified = ldap.verify_password(spec, user.distinguished_name, new_password)
    except ldap.DirectoryError as exc:
        return (
            UNKNOWN,
            "The change was sent but could not be verified: " + services._scrub(exc, secrets_seen),
            None,
        )
    if not verified:
        return UNKNOWN, "The directory accepted the change but the new password did not bind.", None
    return (OK,)


def _commit(attempts: list[RotationAttempt]) -> set[int]:
    """Make each pending password current, keep the old ones, release the leases, audit: one transaction."""
    if not attempts:
        return set()
    now = timezone.now()
    with transaction.atomic():
        # Another reconciler may have ended one meanwhile (a lease that expired): skip it.
        running = set(
            RotationAttempt.objects.select_for_update()
            .filter(pk__in=[attempt.pk for attempt in attempts], state=AttemptState.RUNNING)
            .values_list("pk", flat=True)
        )
        attempts = [attempt for attempt in attempts if attempt.pk in running]
        users = PamUser.objects.select_for_update().select_related("configuration")
        users = {user.pk: user for user in users.filter(pk__in=[attempt.user_id for attempt in attempts])}
        versions = []
        for attempt in attempts:
            user = users[attempt.user_id]
            version = services.apply_commit(user, attempt, now)
            if version is not None:
                versions.append(version)
            if user.lease_attempt_id == attempt.pk:
                user.lease_until, user.lease_attempt_id = None, None
            attempt.commit(AttemptState.SUCCEEDED, save=False)
            attempt.finished_at = now
        PasswordVersion.objects.bulk_create(versions)
        services.trim_history(list(users))
        _update_rows(
            PamUser, users.values(), [*services.COMMITTED_USER_FIELDS, "lease_until", "lease_attempt_id"]
        )
        fault_point("during_commit")
        _update_rows(
            RotationAttempt,
            attempts,
            [
                "state",
                "pending_password_encrypted",
                "directory_changed",
                "finished_at",
                "error_class",
                "error_code",
                "error_message",
            ],
        )
        AuditEvent.objects.bulk_create([services.attempt_event(attempt) for attempt in attempts])
    return running


def _end_one(attempt: RotationAttempt, kind: str, details: list) -> str:
    """End one account's attempt that did not succeed, through the single path; return its state."""
    lease = services.Lease(attempt)
    lease.claimed = True
    with lease:
        if kind == FAILED:
            error_class, message, code = details
            return services._fail(attempt, error_class, message, code=code, retry=True).state
        message, code = details
        attempt.mark_unknown(message, code=code)
        return services._reconcile(attempt, lease).state


def _give_back(attempts: list[RotationAttempt]) -> None:
    """Return claimed attempts that never reached the directory to the queue, as a new batch."""
    ids = [attempt.pk for attempt in attempts]
    with transaction.atomic():
        RotationAttempt.objects.filter(pk__in=ids, state=AttemptState.RUNNING).update(
            state=AttemptState.QUEUED, started_at=None, pending_password_encrypted=""
        )
        for attempt in attempts:
            PamUser.objects.release_lease(attempt.user_id, attempt.pk)
        gateway = attempts[0].user.configuration.gateway or "default"
        transaction.on_commit(lambda: enqueue_batch(gateway, ids))


def _recover(attempts: list[RotationAttempt]) -> Counter:
    """After an unexpected error: resolve each attempt as the single path would."""
    states: Counter[str] = Counter()
    for attempt in attempts:
        attempt.refresh_from_db()
        lease = services.Lease(attempt)
        lease.claimed = True
        with lease:
            if attempt.state == AttemptState.RUNNING and attempt.pending_password_encrypted:
                attempt.mark_unknown("An unexpected error interrupted the rotation; it will be reconciled.")
                attempt = services._reconcile(attempt, lease)
            elif attempt.state == AttemptState.RUNNING:
                services._fail(attempt, ErrorClass.INTERNAL, "An internal error stopped the rotation.")
                attempt.refresh_from_db()
        states[attempt.state] += 1
    return states


def _update_rows(model, rows, fields: list[str]) -> None:
    """Write the named fields of many rows as one prepared UPDATE run for each (executemany).

    Django's ``bulk_update`` builds a CASE expression per field and row, which costs more than the
    rest of a batch's commit; one statement executed for many parameter rows is the cheap form.
    """
    rows = list(rows)
    if not rows:
        return
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    params = [
        [column.get_db_prep_save(getattr(row, column.attname), connection) for column in columns] + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
