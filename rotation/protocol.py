"""The rotation protocol, written once: its steps take any number of claimed attempts.

The single driver (rotation/services.py ``run_attempt``) hands ``rotate`` one attempt, the batched
driver (rotation/batch.py ``run_batch``) many; neither has a step of its own. For each account:

1. Claim: the caller takes the account's lease (rotation/leases.py); that marks the attempt running.
2. Check: reconcile an earlier attempt whose outcome is unknown; end the attempt if the account
   is blocked, its earlier outcome is still unknown, or its change strategy refuses it.
3. Generate and write ahead: a new password, encrypted as the attempt's pending one and
   committed (one transaction for every account) before any directory hears of it.
4. Change: on the directory with the administrative credential (or, for the directory's own
   credential, a self-change with the old password), over TLS only; or through the change
   strategy a plugin registered for the account's rotation type (rotation/hooks.py).
5. Verify: bind as the account with the new password.
6. Commit: pending becomes current, the old password goes to the history, the schedule moves,
   the lease is given back and the audit event written, in one transaction for every account.
7. After the commit, outside its transaction: the after-commit hooks (rotation/hooks.py).
   An attempt that did not commit ends failed (retried when transient) or unknown, which
   ``reconcile`` settles by binding. Every state change is a ``RotationAttempt`` method.

No function here lets a password reach a log line, an exception message, an audit event, a task
result or an attempt's error text. Messages come from rotation/messages.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.actors import Actor
from audit.events import new_event
from audit.models import AuditEvent, Category, Outcome
from records.models import AccountState, PamUser, RotationStatus
from rotation import hooks, ldap, messages, notifications, passwords
from rotation.directories import admin_bind_name, directory_spec, is_self_change
from rotation.faults import fault_point
from rotation.leases import Lease, release_on
from rotation.models import (
    FINISHED_STATES,
    AttemptState,
    ErrorClass,
    PasswordVersion,
    RotationAttempt,
    Trigger,
    next_numbers,
    update_rows,
)

log = logging.getLogger(__name__)

# Transient failures retry after these delays; the list's length bounds the tries.
RETRY_DELAYS = (dt.timedelta(seconds=30), dt.timedelta(minutes=2))
# What a commit changes on the account, its lease included.
COMMITTED_USER_FIELDS = (
    "password_encrypted",
    "last_rotated_at",
    "next_rotation_at",
    "rotation_status",
    "rotation_error",
    "updated_at",
    "lease_until",
    "lease_attempt_id",
    "account_state",
    "account_state_at",
    "account_state_detail",
)
REQUEUED = "requeued"


@dataclass(frozen=True)
class Result:
    """What a rotation ended as: safe to return from a task (no secret in it)."""

    attempt_id: int
    state: str
    error_class: str = ""
    message: str = ""

    @classmethod
    def of(cls, attempt: RotationAttempt) -> Result:
        """Return what an attempt ended as (or stands at)."""
        return cls(attempt.pk, attempt.state, attempt.error_class, attempt.error_message)

    def as_dict(self) -> dict:
        return {
            "attempt": self.attempt_id,
            "state": self.state,
            "error_class": self.error_class,
            "message": self.message,
        }


@dataclass(frozen=True)
class Change:
    """How changing and verifying one account went (steps 4–5); no secret in it."""

    OK, FAILED, UNKNOWN = "ok", "failed", "unknown"

    kind: str
    error_class: str = ""
    message: str = ""
    code: int | None = None


def rotate(
    attempts: list[RotationAttempt], lease: Lease, *, deadline: float | None = None
) -> tuple[Counter, list[RotationAttempt]]:
    """Run steps 2–7 for claimed attempts whose ``user`` is loaded; return the end states and the attempts given back.

    With ``deadline`` (a ``time.monotonic()`` value), attempts not yet sent to a directory when
    it passes are given back (nothing changed for them), queued again for the caller to send.
    """
    states: Counter[str] = Counter()
    given_back: list[RotationAttempt] = []
    try:
        written = write_ahead(check(attempts))
        changes: dict[int, Change] = {}
        admins: dict[int, tuple[str, str]] = {}
        for index, attempt in enumerate(written):
            if deadline is not None and index and time.monotonic() > deadline:
                given_back = give_back(written[index:], lease)
                break
            changes[attempt.pk] = change_and_verify(attempt, admins)
        done = [attempt for attempt in written if attempt.pk in changes]
        fault_point("before_commit")
        succeeded = [attempt for attempt in done if changes[attempt.pk].kind == Change.OK]
        committed = {attempt.pk for attempt in commit(succeeded, AttemptState.SUCCEEDED, lease)}
        after_commit([attempt for attempt in succeeded if attempt.pk in committed])
        for attempt in done:
            if attempt.pk not in committed:
                end(attempt, changes[attempt.pk], lease)
    except Exception as exc:
        # A bug or an undecryptable secret: never leave an attempt running, never drop a pending password.
        log.error("rotation of %s attempts: unexpected %s", len(attempts), type(exc).__name__)
        for attempt in attempts:
            recover(attempt, exc, lease)
    requeued = {attempt.pk for attempt in given_back}
    states.update(attempt.state for attempt in attempts if attempt.pk not in requeued)
    if requeued:
        states[REQUEUED] = len(requeued)
    return states, given_back


# -- 2. Check ---------------------------------------------------------------------------------


def check(attempts: list[RotationAttempt]) -> list[RotationAttempt]:
    """End the claimed attempts that must not run now; return the others (their ``self_change`` set)."""
    unknown = RotationAttempt.objects.filter(
        user_id__in=[attempt.user_id for attempt in attempts], state=AttemptState.UNKNOWN
    )
    earlier: dict[int, list[RotationAttempt]] = {}
    for stale in unknown.order_by("pk"):
        earlier.setdefault(stale.user_id, []).append(stale)
    ready = []
    for attempt in attempts:
        if attempt.user_id in earlier:
            unresolved = [
                stale for stale in earlier[attempt.user_id] if reconcile(stale).state == AttemptState.UNKNOWN
            ]
            if unresolved:
                fail(
                    attempt, ErrorClass.AMBIGUOUS, messages.STILL_UNRESOLVED.format(attempt=unresolved[0].pk)
                )
                continue
            attempt.user = load_user(attempt.user_id)  # a reconciled attempt changed the account
        user = attempt.user
        changer = hooks.changer_for(user.rotation_type)
        reason = user.rotation_blocked_reason
        if not reason and changer is not None:
            reason, error_class = changer.refused(user), ErrorClass.CONFIGURATION
        elif not reason and user.resource_id is None:
            label = user.get_rotation_type_display()
            reason, error_class = messages.NO_CHANGER.format(rotation_type=label), ErrorClass.CONFIGURATION
        else:
            error_class = ErrorClass.BLOCKED
        if reason:
            fail(attempt, error_class, reason)
            continue
        attempt.self_change = is_self_change(user)
        ready.append(attempt)
    return ready


def load_user(user_id: int) -> PamUser:
    """Return an account as it is now, with what the protocol reads of its directory and configuration."""
    return PamUser.objects.select_related("resource__administrative_credential", "configuration").get(
        pk=user_id
    )


# -- 3. Generate and write ahead --------------------------------------------------------------


@sensitive_variables()
def write_ahead(attempts: list[RotationAttempt]) -> list[RotationAttempt]:
    """Generate each account's new password and store it ahead, encrypted, in one committed transaction; return those attempts.

    An account whose stored password cannot be read (a lost key) ends here, failed, before
    anything is generated or changed.
    """
    written = []
    for attempt in attempts:
        try:
            attempt.user.get_password()
        except Exception as exc:
            log.error("attempt %s: the stored password cannot be read (%s)", attempt.pk, type(exc).__name__)
            fail(attempt, ErrorClass.INTERNAL, messages.INTERNAL.format(error=type(exc).__name__))
            continue
        attempt.set_pending(passwords.generate(attempt.user.effective_complexity))
        written.append(attempt)
    with transaction.atomic():
        update_rows(RotationAttempt, written, ["pending_password_encrypted", "self_change"])
    fault_point("after_write_ahead")
    return written


# -- 4.–5. Change and verify ------------------------------------------------------------------


@sensitive_variables()
def change_and_verify(attempt: RotationAttempt, admins: dict[int, tuple[str, str]] | None = None) -> Change:
    """Change one account's password to its pending one and prove it binds; ``admins`` caches admin binds."""
    user = attempt.user
    new_password = attempt.get_pending()
    changer = hooks.changer_for(user.rotation_type)
    if changer is not None:
        delivered, message = changer.change(attempt, user, new_password)
        return Change(Change.OK) if delivered else Change(Change.UNKNOWN, ErrorClass.AMBIGUOUS, message)
    old_password = user.get_password()
    secrets_seen = [new_password, old_password]
    spec = directory_spec(user.resource)
    try:
        if attempt.self_change:
            if not old_password:
                raise ldap.DirectoryError(
                    ldap.DirectoryError.CONFIGURATION, messages.SELF_CHANGE_NEEDS_PASSWORD
                )
            ldap.change_own_password(spec, user.distinguished_name, old_password, new_password)
        else:
            admins = {} if admins is None else admins
            if user.resource_id not in admins:
                admins[user.resource_id] = admin_bind_name(user.resource)
            admin_name, admin_password = admins[user.resource_id]
            secrets_seen.append(admin_password)
            ldap.set_password(spec, admin_name, admin_password, user.distinguished_name, new_password)
    except ldap.DirectoryError as exc:
        kind = Change.UNKNOWN if exc.kind == ldap.DirectoryError.AMBIGUOUS else Change.FAILED
        return Change(kind, exc.kind, scrub(exc, secrets_seen), exc.code)
    except Exception as exc:
        # Unexpected: the request may have reached the directory. Keep pending and reconcile.
        log.error("attempt %s: unexpected %s while changing the password", attempt.pk, type(exc).__name__)
        return Change(Change.UNKNOWN, ErrorClass.AMBIGUOUS, messages.CHANGE_INTERRUPTED)
    attempt.directory_changed = True  # stored with the commit; reconciliation does not need it
    fault_point("after_change")
    try:
        verified = ldap.verify_password(spec, user.distinguished_name, new_password)
    except ldap.DirectoryError as exc:
        reason = scrub(exc, secrets_seen)
        return Change(Change.UNKNOWN, ErrorClass.AMBIGUOUS, messages.NOT_VERIFIED.format(reason=reason))
    if not verified:
        return Change(Change.UNKNOWN, ErrorClass.AMBIGUOUS, messages.DID_NOT_BIND)
    return Change(Change.OK)


def scrub(exc: Exception, secrets_seen: list[str]) -> str:
    """Return an error's message with any secret that somehow reached it masked."""
    text = str(exc)
    for secret in secrets_seen:
        if secret:
            text = text.replace(secret, "********")
    return text[:500]


# -- 6. Commit --------------------------------------------------------------------------------


def commit(attempts: list[RotationAttempt], state: str, lease: Lease | None = None) -> list[RotationAttempt]:
    """Make each pending password current, keep the old ones, give the leases back, audit: one transaction.

    Return the attempts committed. One that another process ended meanwhile (two reconcilers, a
    lease that expired) is skipped and reloaded, so history and audit get one entry each.
    """
    if not attempts:
        return []
    now = timezone.now()
    with transaction.atomic():
        open_ids = set(
            RotationAttempt.objects.select_for_update()
            .filter(pk__in=[attempt.pk for attempt in attempts])
            .exclude(state__in=FINISHED_STATES)
            .values_list("pk", flat=True)
        )
        ended = [attempt for attempt in attempts if attempt.pk not in open_ids]
        attempts = [attempt for attempt in attempts if attempt.pk in open_ids]
        users = PamUser.objects.select_for_update().select_related("configuration")
        users = {user.pk: user for user in users.filter(pk__in=[attempt.user_id for attempt in attempts])}
        versions = []
        for attempt in attempts:
            user = users[attempt.user_id]
            version = apply_commit(user, attempt, now)
            if version is not None:
                versions.append(version)
            release_on(user, attempt)
        PasswordVersion.objects.bulk_create(versions)
        trim_history(list(users))
        update_rows(PamUser, users.values(), COMMITTED_USER_FIELDS)
        fault_point("during_commit")
        RotationAttempt.commit_all(attempts, state)
        AuditEvent.objects.bulk_create([attempt_event(attempt) for attempt in attempts])
    for attempt in ended:
        attempt.refresh_from_db()
    if lease is not None:
        lease.ended(attempt.pk for attempt in attempts)
    return attempts


def apply_commit(user: PamUser, attempt: RotationAttempt, now: dt.datetime) -> PasswordVersion | None:
    """Set an account's fields for a committed attempt; return the (unsaved) history row of its old password."""
    version = None
    if user.password_encrypted:
        version = PasswordVersion(
            user=user,
            password_encrypted=user.password_encrypted,
            valid_from=user.last_rotated_at or user.created_at,
            replaced_at=now,
            attempt=attempt,
        )
    user.password_encrypted = attempt.pending_password_encrypted
    user.last_rotated_at = now
    moves_schedule = (
        attempt.trigger != Trigger.ON_DEMAND or user.configuration.manual_rotation_resets_schedule
    )
    # A due slot stays for the dispatcher, which records it (refused if this one still runs).
    if moves_schedule or user.next_rotation_at is None:
        user.next_rotation_at = user.compute_next_rotation(after=now)
    user.rotation_status = RotationStatus.SUCCEEDED
    user.rotation_error = ""
    user.updated_at = now
    if user.account_state == AccountState.DRIFTED:
        user.account_state, user.account_state_detail = AccountState.OK, messages.ROTATED_OVER_DRIFT
        user.account_state_at = now
    return version


def trim_history(user_ids) -> None:
    """Keep the newest PASSWORD_HISTORY_DEPTH earlier passwords of each account, delete the rest."""
    rows = PasswordVersion.objects.filter(user_id__in=user_ids).order_by("user_id", "-replaced_at", "-id")
    kept: dict[int, int] = {}
    old = []
    for pk, user_id in rows.values_list("pk", "user_id"):
        kept[user_id] = kept.get(user_id, 0) + 1
        if kept[user_id] > settings.PASSWORD_HISTORY_DEPTH:
            old.append(pk)
    if old:
        PasswordVersion.objects.filter(pk__in=old).delete()


# -- 7. After the commit, or the other ends ----------------------------------------------------


def after_commit(attempts: list[RotationAttempt]) -> None:
    """Run the after-commit hooks for committed attempts (one query says which accounts need them); never raise."""
    if not attempts:
        return
    try:
        wanted = hooks.accounts_with_after_commit_work(attempt.user for attempt in attempts)
    except Exception as exc:  # let each hook decide for itself
        log.error("after-commit: asking which accounts need hooks failed (%s)", type(exc).__name__)
        wanted = None
    for attempt in attempts:
        if wanted is None or attempt.user_id in wanted:
            hooks.after_commit(attempt)


def end(attempt: RotationAttempt, change: Change, lease: Lease | None) -> RotationAttempt:
    """End an attempt whose change did not succeed: failed (retried if transient), or unknown and settled."""
    if change.kind == Change.FAILED:
        fail(attempt, change.error_class, change.message, code=change.code, retry=True)
        return attempt
    return end_unknown(attempt, change.message, lease, code=change.code)


def end_unknown(attempt: RotationAttempt, message: str, lease: Lease | None, code: int | None = None):
    """Mark an attempt's outcome unknown, then settle it: reconcile by binding, or the change strategy's own way."""
    attempt.mark_unknown(message, code=code)
    changer = hooks.changer_for(attempt.user.rotation_type)
    if changer is not None:
        changer.unresolved(attempt)
        return attempt
    return reconcile(attempt, lease)


def recover(attempt: RotationAttempt, exc: Exception, lease: Lease | None) -> RotationAttempt:
    """Settle a running attempt after an unexpected error: reconcile it if a password was written ahead, else fail it."""
    attempt.refresh_from_db()
    if attempt.state != AttemptState.RUNNING:
        return attempt  # already ended (or given back) before the error
    if attempt.pending_password_encrypted:
        return end_unknown(attempt, messages.INTERRUPTED, lease)
    fail(attempt, ErrorClass.INTERNAL, messages.INTERNAL.format(error=type(exc).__name__))
    return attempt


def give_back(attempts: list[RotationAttempt], lease: Lease) -> list[RotationAttempt]:
    """Queue claimed attempts again that never reached the directory, and give their leases back; return them."""
    with transaction.atomic():
        RotationAttempt.give_back_all(attempts)
        lease.release(attempts)
    return attempts


# -- Reconciling an attempt whose outcome is unknown -------------------------------------------


@sensitive_variables()
def reconcile(attempt: RotationAttempt, lease: Lease | None = None) -> RotationAttempt:
    """Find out which password an account has after an interrupted attempt, and keep that one.

    Binds with the pending password first, then with the stored one. The pending password is
    dropped only once the stored one is proven to work.
    """
    attempt.refresh_from_db()
    if attempt.state not in (AttemptState.UNKNOWN, AttemptState.RUNNING):
        return attempt
    user = PamUser.objects.select_related("resource").get(pk=attempt.user_id)
    if not attempt.pending_password_encrypted:
        # Nothing was written ahead, so the directory was never asked to change: an
        # interruption (a dead worker, a database outage), retried like any other.
        fail(attempt, ErrorClass.TRANSIENT, messages.NOTHING_WRITTEN, retry=True)
        return attempt
    changer = hooks.changer_for(user.rotation_type)
    if changer is not None:
        # No directory to bind to: the change strategy settles it (or an administrator does).
        changer.settle(attempt)
        return attempt
    pending = attempt.get_pending()
    current = user.get_password()
    try:
        spec = directory_spec(user.resource)
        if ldap.verify_password(spec, user.distinguished_name, pending):
            after_commit(commit([attempt], AttemptState.RECONCILED, lease))
        elif current and ldap.verify_password(spec, user.distinguished_name, current):
            # Nothing changed on the directory: this was an interruption, so it is retried
            # like any other (bounded tries per slot).
            message = messages.STORED_STILL_OPENS.format(host=spec.host, port=spec.port)
            fail(attempt, ErrorClass.TRANSIENT, message, code=attempt.error_code, retry=True)
        else:
            attempt.mark_unknown(messages.NEITHER_OPENS, code=attempt.error_code)
    except ldap.DirectoryError as exc:
        reason = scrub(exc, [pending, current])
        attempt.mark_unknown(messages.NOT_ASKED.format(reason=reason), code=attempt.error_code)
    return attempt


# -- Ending an attempt -------------------------------------------------------------------------


def fail(
    attempt: RotationAttempt,
    error_class: str,
    message: str,
    code: int | None = None,
    retry: bool = False,
) -> RotationAttempt:
    """End an attempt as failed and decide, once, whether it is retried; audit and notify accordingly.

    Only a transient failure of a try that ``retry`` allows is retried, after RETRY_DELAYS.
    """
    with transaction.atomic():
        if _already_ended(attempt):
            return attempt
        attempt.fail(error_class, message, code)
        will_retry = retry and error_class == ErrorClass.TRANSIENT and attempt.try_number <= len(RETRY_DELAYS)
        if will_retry:
            retry_at = attempt.finished_at + RETRY_DELAYS[attempt.try_number - 1]
            RotationAttempt.objects.create(
                user_id=attempt.user_id,
                trigger=Trigger.RETRY,
                requested_by_id=attempt.requested_by_id,
                requested_by_name=attempt.requested_by_name,
                slot=attempt.slot,
                try_number=attempt.try_number + 1,
                retry_at=retry_at,
                retry_of=attempt,
                number=next_numbers([attempt.user_id])[attempt.user_id],
            )
            PamUser.objects.filter(pk=attempt.user_id).update(queued_since=retry_at)
        audit_attempt(attempt)
        transaction.on_commit(lambda: notifications.notify_failure(attempt, will_retry=will_retry))
    return attempt


def refuse(attempt: RotationAttempt, error_class: str, message: str) -> RotationAttempt:
    """End an attempt that never ran, and audit it."""
    attempt.refuse(error_class, message)
    audit_attempt(attempt)
    return attempt


def _already_ended(attempt: RotationAttempt) -> bool:
    """Lock the attempt's row; if another process ended it meanwhile, load how and say so."""
    stored = RotationAttempt.objects.select_for_update().get(pk=attempt.pk)
    if stored.is_finished:
        attempt.refresh_from_db()
        return True
    return False


def audit_attempt(attempt: RotationAttempt, actor: Actor | None = None) -> None:
    """Record how an attempt ended in the audit log (``actor``: who asked, else the attempt's requester)."""
    attempt_event(attempt, actor).save()


def attempt_event(attempt: RotationAttempt, actor: Actor | None = None) -> AuditEvent:
    """Return the (unsaved) audit event that says how an attempt ended, in Keeper's event names.

    ``actor`` is who asked, when the request itself is refused; an attempt a worker ends names its
    requester as the attempt's row keeps them (``RotationAttempt.requester``).
    """
    ok = attempt.succeeded
    if attempt.trigger == Trigger.ON_DEMAND:
        event = AuditEvent.ROTATION_ON_DEMAND_OK if ok else AuditEvent.ROTATION_ON_DEMAND_FAIL
    else:
        event = AuditEvent.ROTATION_SCHEDULED_OK if ok else AuditEvent.ROTATION_SCHEDULED_FAIL
    message = f"Attempt #{attempt.pk} {attempt.get_state_display().lower()}"
    if attempt.error_message:
        message += f": {attempt.error_message}"
    return new_event(
        event,
        instance=attempt.user,
        actor=actor if actor is not None else attempt.requester,
        outcome=Outcome.OK if ok else Outcome.FAIL,
        message=message,
        attempt_id=attempt.pk,
        category=Category.ROTATION,
    )
