"""The rotation protocol: request, run (claim, generate, write ahead, change, verify, commit), reconcile.

Views, tasks, commands and the API only call these functions. No function here lets a password
reach a log line, an exception message, an audit event, a task result or an attempt's error text.
State changes of an attempt are its own methods (``RotationAttempt.refuse/fail/mark_unknown/commit``);
this module decides which one happens and what else shares its transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from records.models import PamUser, RotationStatus, RotationType
from rotation import audit, ldap, notifications, passwords
from rotation.directories import admin_bind_name, directory_spec, is_self_change
from rotation.faults import fault_point
from rotation.models import (
    ACTIVE_STATES,
    AttemptState,
    AuditEvent,
    ErrorClass,
    PasswordVersion,
    RotationAttempt,
    Trigger,
    next_numbers,
)
from rotation.queue import enqueue_attempt
from scripts import runner as scripts_runner

log = logging.getLogger(__name__)

# Transient failures retry after these delays; the list's length bounds the tries.
RETRY_DELAYS = (dt.timedelta(seconds=30), dt.timedelta(minutes=2))
# A queued attempt that no worker took within this time is given up (is the gateway running?).
QUEUE_STALE_AFTER = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Result:
    """What a rotation ended as: safe to return from a task (no secret in it)."""

    attempt_id: int
    state: str
    error_class: str = ""
    message: str = ""

    def as_dict(self) -> dict:
        return {
            "attempt": self.attempt_id,
            "state": self.state,
            "error_class": self.error_class,
            "message": self.message,
        }


class Lease:
    """An account's lease for one attempt: one rotation at a time, even across workers and hosts.

    Used as a context manager: ``claim()`` takes it with a conditional UPDATE, leaving the block
    gives it back if this attempt still holds it. The commit gives it back inside its own
    transaction (one write fewer) and marks it ``released``. A dead worker's lease expires.
    """

    def __init__(self, attempt: RotationAttempt):
        self.attempt = attempt
        self.claimed: bool | None = None  # None: not claimed here (reconciling someone else's)
        self.released = False

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.claimed is not False and not self.released:
            PamUser.objects.release_lease(self.attempt.user_id, self.attempt.pk)
            self.released = True

    def claim(self) -> bool:
        """Take the account for this attempt and mark the attempt running; False when another holds it."""
        now = timezone.now()
        until = now + dt.timedelta(seconds=settings.ROTATION_LEASE_SECONDS)
        with transaction.atomic():
            self.claimed = PamUser.objects.claim_lease(self.attempt.user_id, self.attempt.pk, until)
            if self.claimed:
                RotationAttempt.objects.filter(pk=self.attempt.pk).update(
                    state=AttemptState.RUNNING, started_at=now
                )
        if self.claimed:
            self.attempt.state, self.attempt.started_at = AttemptState.RUNNING, now
        return self.claimed

    def release_with(self, user: PamUser) -> list[str]:
        """Clear the lease on a user row about to be saved; return the fields to save."""
        if user.lease_attempt_id != self.attempt.pk:
            return []
        user.lease_until, user.lease_attempt_id = None, None
        self.released = True
        return ["lease_until", "lease_attempt_id"]


# -- 1. Requesting a rotation ---------------------------------------------------------------


def request_rotation(
    user: PamUser,
    *,
    trigger: str = Trigger.ON_DEMAND,
    actor=None,
    actor_name: str = "",
    remote_address: str | None = None,
    slot: dt.datetime | None = None,
    try_number: int = 1,
    enqueue: bool = True,
) -> RotationAttempt:
    """Record a rotation request and queue it, or record why it was refused.

    A request for an account that already has a queued or running attempt is recorded as
    refused ("already rotating") and the existing attempt is named in its message.
    """
    actor_name = actor_name or (actor.get_username() if actor is not None else "")
    with transaction.atomic():
        user = PamUser.objects.select_for_update().select_related("configuration").get(pk=user.pk)
        attempt = RotationAttempt(
            user=user,
            trigger=trigger,
            requested_by=actor if actor is not None and actor.is_authenticated else None,
            requested_by_name=actor_name,
            slot=slot,
            try_number=try_number,
            self_change=is_self_change(user),
            number=next_numbers([user.pk])[user.pk],
        )
        blocked = user.rotation_blocked_reason
        active = user.attempts.filter(state__in=ACTIVE_STATES).order_by("id").first()
        if active is not None and _never_picked_up(active):
            _fail(
                active,
                ErrorClass.TRANSIENT,
                f'No worker of gateway "{user.configuration.gateway}" took this attempt within '
                f"{QUEUE_STALE_AFTER.seconds // 60} minutes: is its qcluster running?",
            )
            active = None
        waiting_retry = active is not None and active.state == AttemptState.QUEUED and active.retry_at
        if waiting_retry and trigger == Trigger.ON_DEMAND and not blocked:
            # Someone asks now: run their request instead of waiting for the retry's backoff.
            attempt.save()
            active.refuse(ErrorClass.BUSY, f"Superseded by on-demand attempt #{attempt.pk}.")
            _queue(attempt, enqueue)
            return attempt
        if blocked:
            attempt.refuse(ErrorClass.BLOCKED, blocked)
            PamUser.objects.filter(pk=user.pk).update(queued_since=None)
        elif active is not None:
            attempt.refuse(
                ErrorClass.BUSY,
                f"Already rotating: rotation #{active.number} (attempt #{active.pk}) is {active.state}.",
            )
        else:
            attempt.save()
            _queue(attempt, enqueue)
            return attempt
    _audit_attempt(attempt, actor=actor, remote_address=remote_address)
    return attempt


def request_scheduled(slots: list[tuple[PamUser, dt.datetime]]) -> list[RotationAttempt]:
    """Record the scheduled attempts of due slots the caller took, in bulk; return them.

    Call inside the transaction that took the slots, for accounts nothing blocks. The plain case,
    nothing queued or running for the account, is one INSERT and one UPDATE for the whole list;
    an account with an active attempt goes through ``request_rotation``, which records why it is
    refused (or fails the stale attempt no worker took).
    """
    users = [user for user, _ in slots]
    active = set(
        RotationAttempt.objects.filter(user__in=users, state__in=ACTIVE_STATES).values_list(
            "user_id", flat=True
        )
    )
    plain = [
        RotationAttempt(user=user, trigger=Trigger.SCHEDULED, slot=slot, self_change=is_self_change(user))
        for user, slot in slots
        if user.pk not in active
    ]
    numbers = next_numbers([attempt.user_id for attempt in plain])
    for attempt in plain:
        attempt.number = numbers[attempt.user_id]
        numbers[attempt.user_id] += 1
    RotationAttempt.objects.bulk_create(plain)
    if plain:
        PamUser.objects.filter(pk__in=[attempt.user_id for attempt in plain]).update(
            queued_since=timezone.now()
        )
    busy = [
        request_rotation(user, trigger=Trigger.SCHEDULED, slot=slot, enqueue=False)
        for user, slot in slots
        if user.pk in active
    ]
    return plain + busy


def _queue(attempt: RotationAttempt, enqueue: bool) -> None:
    """Mark the account as waiting for a worker and, once committed, send the attempt."""
    PamUser.objects.filter(pk=attempt.user_id).update(queued_since=attempt.created_at)
    if enqueue:
        transaction.on_commit(lambda: enqueue_attempt(attempt))


def _never_picked_up(attempt: RotationAttempt) -> bool:
    waiting_since = attempt.retry_at or attempt.created_at
    return attempt.state == AttemptState.QUEUED and waiting_since < timezone.now() - QUEUE_STALE_AFTER


# -- 2. Running an attempt ------------------------------------------------------------------


def run_attempt(attempt_id: int) -> Result:
    """Run one rotation attempt through the protocol; safe to call twice for the same attempt.

    1. Claim the account with a lease (one attempt at a time); reconcile an earlier attempt
       whose outcome is unknown first.
    2. Generate a password that satisfies the account's complexity.
    3. Write it ahead, encrypted, as the attempt's pending password, and commit.
    4. Change it on the directory with the administrative credential (or, for the directory's
       own credential, a self-change with the old password), over TLS only.
    5. Verify by binding as the account with the new password.
    6. Commit: pending becomes current, the old password goes to the history, audit.
    """
    attempt = RotationAttempt.objects.select_related("user").get(pk=attempt_id)
    if attempt.state == AttemptState.UNKNOWN:
        return _result(reconcile(attempt))
    if attempt.is_finished:
        return _result(attempt)
    if attempt.state == AttemptState.RUNNING:
        if not _lease_expired(attempt):
            # A duplicate delivery while the first worker still holds the lease: leave it alone.
            return _result(attempt)
        # The worker that ran this died mid-way: its outcome is unknown until reconciled.
        attempt.mark_unknown("The worker stopped during the rotation.")
        return _result(reconcile(attempt))

    with Lease(attempt) as lease:
        # 1. Claim.
        if not lease.claim():
            attempt.refresh_from_db()
            if not attempt.is_finished:
                _refuse(attempt, ErrorClass.BUSY, "Already rotating: another attempt holds this account.")
            return _result(attempt)
        try:
            return _run_claimed(attempt, lease)
        except Exception as exc:
            # A bug or an undecryptable secret: never leave the attempt running, never drop pending.
            log.error("attempt %s: unexpected %s", attempt.pk, type(exc).__name__)
            attempt.refresh_from_db()
            if attempt.is_finished or attempt.state == AttemptState.UNKNOWN:
                return _result(attempt)
            if attempt.pending_password_encrypted:
                attempt.mark_unknown("An unexpected error interrupted the rotation; it will be reconciled.")
                return _result(_reconcile(attempt, lease))
            return _fail(
                attempt,
                ErrorClass.INTERNAL,
                f"An internal error ({type(exc).__name__}) stopped the rotation.",
            )


def _run_claimed(attempt: RotationAttempt, lease: Lease) -> Result:
    for stale in RotationAttempt.objects.filter(user_id=attempt.user_id, state=AttemptState.UNKNOWN):
        if _reconcile(stale, None).state == AttemptState.UNKNOWN:
            return _fail(
                attempt,
                ErrorClass.AMBIGUOUS,
                f"Attempt #{stale.pk} is still unresolved; pamrotate will not rotate again until "
                "it knows which password the account has.",
            )
    user = PamUser.objects.select_related("resource__administrative_credential", "configuration").get(
        pk=attempt.user_id
    )
    blocked = user.rotation_blocked_reason
    if blocked:
        return _fail(attempt, ErrorClass.BLOCKED, blocked)
    attempt.self_change = is_self_change(user)
    return _rotate(attempt, user, lease)


@sensitive_variables()
def _rotate(attempt: RotationAttempt, user: PamUser, lease: Lease) -> Result:
    if user.rotation_type == RotationType.SCRIPTS_ONLY:
        return _rotate_by_scripts(attempt, user, lease)
    spec = directory_spec(user.resource)
    old_password = user.get_password()
    # 2. Generate.
    new_password = passwords.generate(user.effective_complexity)
    secrets_seen = [new_password, old_password]
    # 3. Write ahead.
    attempt.set_pending(new_password)
    attempt.save(update_fields=["pending_password_encrypted", "self_change"])
    fault_point("after_write_ahead")
    # 4. Change.
    try:
        if attempt.self_change:
            if not old_password:
                raise ldap.DirectoryError(
                    ldap.DirectoryError.CONFIGURATION,
                    "a self-change needs the current password, and none is stored",
                )
            ldap.change_own_password(spec, user.distinguished_name, old_password, new_password)
        else:
            admin_name, admin_password = admin_bind_name(user.resource)
            secrets_seen.append(admin_password)
            ldap.set_password(spec, admin_name, admin_password, user.distinguished_name, new_password)
    except ldap.DirectoryError as exc:
        if exc.kind == ldap.DirectoryError.AMBIGUOUS:
            attempt.mark_unknown(_scrub(exc, secrets_seen), code=exc.code)
            return _result(_reconcile(attempt, lease))
        return _fail(attempt, exc.kind, _scrub(exc, secrets_seen), code=exc.code, retry=True)
    except Exception as exc:
        # Unexpected: the request may have reached the directory. Keep pending and reconcile.
        log.error("attempt %s: unexpected %s while changing the password", attempt.pk, type(exc).__name__)
        attempt.mark_unknown("An unexpected error happened while changing the password.")
        return _result(_reconcile(attempt, lease))
    attempt.directory_changed = True  # stored with the commit; reconciliation does not need it
    fault_point("after_change")
    # 5. Verify.
    try:
        verified = ldap.verify_password(spec, user.distinguished_name, new_password)
    except ldap.DirectoryError as exc:
        attempt.mark_unknown("The change was sent but could not be verified: " + _scrub(exc, secrets_seen))
        return _result(_reconcile(attempt, lease))
    if not verified:
        attempt.mark_unknown("The directory accepted the change but the new password did not bind.")
        return _result(_reconcile(attempt, lease))
    fault_point("before_commit")
    # 6. Commit.
    _commit(attempt, AttemptState.SUCCEEDED, lease)
    scripts_runner.after_commit(attempt)  # outside the commit's transaction; never raises
    return _result(attempt)


@sensitive_variables()
def _rotate_by_scripts(attempt: RotationAttempt, user: PamUser, lease: Lease) -> Result:
    """Rotate a "Run PAM scripts only" account: its post-rotation scripts are the change (no directory).

    Generate, write ahead, run every script with the new password, commit when all exit 0.
    Otherwise the outcome is unknown and both passwords are kept: nothing can be asked, so only
    "Run scripts again" (scripts/runner.py, then ``commit_delivered``) or an administrator settles it.
    """
    if not scripts_runner.scripts_for(user):
        return _fail(
            attempt,
            ErrorClass.CONFIGURATION,
            "A scripts-only rotation needs a post-rotation script on the account, its directory or its "
            "configuration.",
        )
    new_password = passwords.generate(user.effective_complexity)
    attempt.set_pending(new_password)
    attempt.save(update_fields=["pending_password_encrypted", "self_change"])
    fault_point("after_write_ahead")
    outcome = scripts_runner.run_as_change(attempt, user, new_password)
    if not outcome.ok:
        attempt.mark_unknown(scripts_runner.unknown_message(outcome))
        scripts_runner.report_unresolved(attempt)
        return _result(attempt)
    _commit(attempt, AttemptState.SUCCEEDED, lease)
    return _result(attempt)


def commit_delivered(attempt: RotationAttempt) -> RotationAttempt:
    """Store an unknown scripts-only attempt's pending password: its scripts delivered it ("Run scripts again")."""
    with Lease(attempt) as lease:
        _commit(attempt, AttemptState.RECONCILED, lease)
    return attempt


def keep_stored(attempt: RotationAttempt, message: str) -> RotationAttempt:
    """End an unknown scripts-only attempt keeping the stored password (an administrator's decision)."""
    with Lease(attempt):
        _fail(attempt, ErrorClass.AMBIGUOUS, message)
    return attempt


# -- 3. Reconciling an attempt whose outcome is unknown --------------------------------------


def reconcile(attempt: RotationAttempt) -> RotationAttempt:
    """Find out which password an account has after an interrupted attempt, and keep that one.

    Binds with the pending password first, then with the stored one. The pending password is
    dropped only once the stored one is proven to work. A lease the attempt still holds is given back.
    """
    with Lease(attempt) as lease:
        return _reconcile(attempt, lease)


@sensitive_variables()
def _reconcile(attempt: RotationAttempt, lease: Lease | None) -> RotationAttempt:
    attempt.refresh_from_db()
    if attempt.state not in (AttemptState.UNKNOWN, AttemptState.RUNNING):
        return attempt
    user = PamUser.objects.select_related("resource").get(pk=attempt.user_id)
    if not attempt.pending_password_encrypted:
        # Nothing was written ahead, so the directory was never asked to change: an
        # interruption (a dead worker, a database outage), retried like any other.
        _fail(
            attempt,
            ErrorClass.TRANSIENT,
            "Interrupted before a new password was generated; nothing was changed.",
            retry=True,
        )
        return attempt
    if user.rotation_type == RotationType.SCRIPTS_ONLY:
        # No directory to bind to: it stays unknown until "Run scripts again" or an administrator decides.
        scripts_runner.settle_stale_runs(attempt)
        return attempt
    pending = attempt.get_pending()
    current = user.get_password()
    try:
        spec = directory_spec(user.resource)
        if ldap.verify_password(spec, user.distinguished_name, pending):
            _commit(attempt, AttemptState.RECONCILED, lease)
            scripts_runner.after_commit(attempt)
        elif current and ldap.verify_password(spec, user.distinguished_name, current):
            # Nothing changed on the directory: this was an interruption, so it is retried
            # like any other (bounded tries per slot).
            _fail(
                attempt,
                ErrorClass.TRANSIENT,
                f"the directory is unreachable at {spec.host}:{spec.port} or the rotation was "
                "interrupted during the change; the change did not take effect and the stored "
                "password still opens the account",
                code=attempt.error_code,
                retry=True,
            )
        else:
            attempt.mark_unknown(
                "Neither the pending nor the stored password opens the account. Both are kept; "
                "an administrator must check the account.",
                code=attempt.error_code,
            )
    except ldap.DirectoryError as exc:
        attempt.mark_unknown(
            "Outcome unknown; the directory could not be asked: "
            + _scrub(exc, [pending, current])
            + " pamrotate will try again.",
            code=attempt.error_code,
        )
    return attempt


def reconcile_stale() -> int:
    """Reconcile every attempt that is unknown or whose worker died; return how many were tried."""
    scripts_runner.settle_stale_runs()  # post-rotation script runs whose worker died become unknown
    now = timezone.now()
    stale = RotationAttempt.objects.filter(
        Q(state=AttemptState.UNKNOWN)
        | Q(state=AttemptState.RUNNING) & (Q(user__lease_until__lt=now) | Q(user__lease_until__isnull=True))
    ).select_related("user")
    count = 0
    for attempt in stale:
        if attempt.state == AttemptState.RUNNING:
            attempt.mark_unknown("The worker stopped during the rotation.")
        reconcile(attempt)
        count += 1
    return count


# -- Ending an attempt -----------------------------------------------------------------------


def _lease_expired(attempt: RotationAttempt) -> bool:
    user = PamUser.objects.only("lease_until", "lease_attempt_id").get(pk=attempt.user_id)
    return (
        user.lease_attempt_id != attempt.pk or user.lease_until is None or user.lease_until < timezone.now()
    )


def _commit(attempt: RotationAttempt, state: str, lease: Lease | None) -> None:
    """Make the pending password current, keep the old one in history, and record it all."""
    now = timezone.now()
    with transaction.atomic():
        if _already_ended(attempt):
            return
        user = PamUser.objects.select_for_update().select_related("configuration").get(pk=attempt.user_id)
        version = apply_commit(user, attempt, now)
        if version is not None:
            version.save()
            trim_history([user.pk])
        fields = list(COMMITTED_USER_FIELDS)
        if lease is not None:
            fields += lease.release_with(user)
        user.save(update_fields=fields)
        attempt.commit(state)
        _audit_attempt(attempt)


# What a commit changes on the account (besides the lease), for the single and the batched path.
COMMITTED_USER_FIELDS = (
    "password_encrypted",
    "last_rotated_at",
    "next_rotation_at",
    "rotation_status",
    "rotation_error",
    "updated_at",
)


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


def _already_ended(attempt: RotationAttempt) -> bool:
    """Lock the attempt's row; if another process ended it meanwhile, load how and say so.

    Two reconcilers (a worker and the dispatcher) may resolve the same attempt at once: only the
    first one commits, so history and audit get one entry.
    """
    stored = RotationAttempt.objects.select_for_update().get(pk=attempt.pk)
    if stored.is_finished:
        attempt.refresh_from_db()
        return True
    return False


def _fail(
    attempt: RotationAttempt,
    error_class: str,
    message: str,
    code: int | None = None,
    retry: bool = False,
) -> Result:
    """End an attempt as failed and decide, once, whether it is retried; audit and notify accordingly.

    Only a transient failure of a try that ``retry`` allows is retried, after RETRY_DELAYS.
    """
    with transaction.atomic():
        if _already_ended(attempt):
            return _result(attempt)
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
        _audit_attempt(attempt)
        transaction.on_commit(lambda: notifications.notify_failure(attempt, will_retry=will_retry))
    return _result(attempt)


def _refuse(attempt: RotationAttempt, error_class: str, message: str) -> None:
    attempt.refuse(error_class, message)
    _audit_attempt(attempt)


def _audit_attempt(attempt: RotationAttempt, actor=None, remote_address: str | None = None) -> None:
    attempt_event(attempt, actor=actor, remote_address=remote_address).save()


def attempt_event(attempt: RotationAttempt, actor=None, remote_address: str | None = None) -> AuditEvent:
    """Return the (unsaved) audit event that says how an attempt ended, in Keeper's event names."""
    ok = attempt.succeeded
    if attempt.trigger == Trigger.ON_DEMAND:
        event = AuditEvent.ROTATION_ON_DEMAND_OK if ok else AuditEvent.ROTATION_ON_DEMAND_FAIL
    else:
        event = AuditEvent.ROTATION_SCHEDULED_OK if ok else AuditEvent.ROTATION_SCHEDULED_FAIL
    message = f"Attempt #{attempt.pk} {attempt.get_state_display().lower()}"
    if attempt.error_message:
        message += f": {attempt.error_message}"
    return audit.new_event(
        event,
        instance=attempt.user,
        actor=actor if actor is not None else attempt.requested_by,
        actor_name=attempt.requested_by_name,
        remote_address=remote_address,
        outcome="ok" if ok else "fail",
        message=message,
        attempt_id=attempt.pk,
        category="rotation",
    )


def _scrub(exc: Exception, secrets_seen: list[str]) -> str:
    """Return an error's message with any secret that somehow reached it masked."""
    text = str(exc)
    for secret in secrets_seen:
        if secret:
            text = text.replace(secret, "********")
    return text[:500]


def _result(attempt: RotationAttempt) -> Result:
    return Result(attempt.pk, attempt.state, attempt.error_class, attempt.error_message)
