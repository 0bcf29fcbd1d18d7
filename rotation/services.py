"""The rotation protocol: claim, generate, write ahead, change, verify, commit — and reconcile.

Views, tasks and commands only call these functions. No function here lets a password reach a
log line, an exception message, an audit event, a task result or an attempt's error text.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import signal
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from records.models import DirectoryType, PamDirectory, PamUser, RotationStatus
from rotation import audit, ldap, notifications, passwords
from rotation.models import AttemptState, AuditEvent, ErrorClass, PasswordVersion, RotationAttempt, Trigger

log = logging.getLogger(__name__)

ACTIVE_STATES = (AttemptState.QUEUED, AttemptState.RUNNING)
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


def directory_spec(directory: PamDirectory) -> ldap.DirectorySpec:
    """Return the connection settings of a directory for rotation/ldap.py."""
    return ldap.DirectorySpec(
        host=directory.hostname,
        port=directory.port,
        use_ssl=directory.use_ssl,
        start_tls=directory.start_tls,
        ca_certificate=directory.ca_certificate,
        verify_certificate=directory.verify_certificate,
        directory_type="ad" if directory.directory_type == DirectoryType.ACTIVE_DIRECTORY else "openldap",
        alternative_ips=tuple(directory.alternative_ip_list),
        connect_timeout=float(settings.LDAP_CONNECT_TIMEOUT),
        operation_timeout=float(settings.LDAP_OPERATION_TIMEOUT),
    )


@sensitive_variables()
def admin_bind_name(directory: PamDirectory) -> tuple[str, str]:
    """Return the bind name and password of a directory's administrative credential."""
    admin = directory.administrative_credential
    if admin is None:
        raise ldap.DirectoryError(
            ldap.DirectoryError.CONFIGURATION,
            f"the directory {directory} has no administrative credential: link one on its page",
        )
    if not admin.has_password:
        raise ldap.DirectoryError(
            ldap.DirectoryError.CONFIGURATION,
            f"the administrative credential {admin} has no stored password",
        )
    return admin.distinguished_name or admin.login, admin.get_password()


def is_self_change(user: PamUser) -> bool:
    """Return whether rotating this user means changing the directory's own admin credential."""
    return user.resource is not None and user.resource.administrative_credential_id == user.pk


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
    refused ("already rotating") and the existing attempt is returned alongside in its message.
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
        )
        blocked = user.rotation_blocked_reason
        active = user.attempts.filter(state__in=ACTIVE_STATES).order_by("id").first()
        if active is not None and _never_picked_up(active):
            gateway = user.configuration.gateway
            _finish_failed(
                active,
                ErrorClass.TRANSIENT,
                f'No worker of gateway "{gateway}" took this attempt within '
                f"{QUEUE_STALE_AFTER.seconds // 60} minutes: is its qcluster running?",
            )
            active = None
        waiting_retry = active is not None and active.state == AttemptState.QUEUED and active.retry_at
        if waiting_retry and trigger == Trigger.ON_DEMAND and not blocked:
            # Someone asks now: run their request instead of waiting for the retry's backoff.
            attempt.save()
            _refuse(active, ErrorClass.BUSY, f"Superseded by on-demand attempt #{attempt.pk}.")
            if enqueue:
                transaction.on_commit(lambda: enqueue_attempt(attempt))
            return attempt
        if blocked:
            _refuse(attempt, ErrorClass.BLOCKED, blocked)
        elif active is not None:
            _refuse(attempt, ErrorClass.BUSY, f"Already rotating: attempt #{active.pk} is {active.state}.")
        else:
            attempt.save()
            if enqueue:
                transaction.on_commit(lambda: enqueue_attempt(attempt))
            return attempt
    _audit_attempt(attempt, actor=actor, remote_address=remote_address)
    return attempt


def _never_picked_up(attempt: RotationAttempt) -> bool:
    waiting_since = attempt.retry_at or attempt.created_at
    return attempt.state == AttemptState.QUEUED and waiting_since < timezone.now() - QUEUE_STALE_AFTER


def _refuse(attempt: RotationAttempt, error_class: str, message: str) -> None:
    now = timezone.now()
    attempt.state = AttemptState.REFUSED
    attempt.error_class = error_class
    attempt.error_message = message[:500]
    attempt.started_at = attempt.finished_at = now
    attempt.save()


def enqueue_attempt(attempt: RotationAttempt) -> None:
    """Send an attempt to the worker pool (gateway) of its account's configuration."""
    from django_q.tasks import async_task

    gateway = attempt.user.configuration.gateway or "default"
    async_task(
        "rotation.tasks.rotate",
        attempt.pk,
        cluster=gateway,
        task_name=f"rotate-attempt-{attempt.pk}",
        group="rotation",
    )


class AttemptBatcher:
    """Queue attempts to their gateways in small batches: one broker round trip per batch.

    Batches are small enough that every worker gets some (``total`` sizes them) and are sent
    as soon as they fill, so workers start while the rest is still being dispatched.
    """

    def __init__(self, total: int, workers: int | None = None, largest: int = 25):
        workers = workers or settings.Q_WORKERS
        self.size = max(1, min(largest, total // (workers * 4) or 1))
        self.pending: dict[str, list[int]] = {}

    def add(self, attempt: RotationAttempt) -> None:
        gateway = attempt.user.configuration.gateway or "default"
        batch = self.pending.setdefault(gateway, [])
        batch.append(attempt.pk)
        if len(batch) >= self.size:
            self._send(gateway, batch)
            self.pending[gateway] = []

    def flush(self) -> None:
        for gateway, batch in self.pending.items():
            if batch:
                self._send(gateway, batch)
        self.pending = {}

    def _send(self, gateway: str, attempt_ids: list[int]) -> None:
        from django_q.tasks import async_task

        async_task(
            "rotation.tasks.rotate_many",
            list(attempt_ids),
            cluster=gateway,
            task_name=f"rotate-attempts-{attempt_ids[0]}-{attempt_ids[-1]}",
            group="rotation",
        )


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
    if attempt.is_finished or attempt.state == AttemptState.UNKNOWN:
        if attempt.state == AttemptState.UNKNOWN:
            attempt = reconcile(attempt)
        return _result(attempt)
    if attempt.state == AttemptState.RUNNING and not _lease_expired(attempt):
        # A duplicate delivery while the first worker still holds the lease: leave it alone.
        return _result(attempt)
    if attempt.state == AttemptState.RUNNING:
        # The worker that ran this died mid-way: its outcome is unknown until reconciled.
        attempt = reconcile(_mark_unknown(attempt, "The worker stopped during the rotation."))
        return _result(attempt)

    # 1. Claim.
    if not _claim(attempt):
        attempt.refresh_from_db()
        if not attempt.is_finished:
            _refuse(attempt, ErrorClass.BUSY, "Already rotating: another attempt holds this account.")
            _audit_attempt(attempt)
        return _result(attempt)
    try:
        for stale in RotationAttempt.objects.filter(user_id=attempt.user_id, state=AttemptState.UNKNOWN):
            stale = reconcile(stale, keep_lease=True)
            if stale.state == AttemptState.UNKNOWN:
                return _finish_failed(
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
            return _finish_failed(attempt, ErrorClass.BLOCKED, blocked)
        attempt.self_change = is_self_change(user)
        return _rotate(attempt, user)
    except Exception as exc:
        # A bug or an undecryptable secret: never leave the attempt running, never drop pending.
        log.error("attempt %s: unexpected %s", attempt.pk, type(exc).__name__)
        attempt.refresh_from_db()
        if attempt.is_finished or attempt.state == AttemptState.UNKNOWN:
            return _result(attempt)
        if attempt.pending_password_encrypted:
            _mark_unknown(attempt, "An unexpected error interrupted the rotation; it will be reconciled.")
            return _result(reconcile(attempt, keep_lease=True))
        return _finish_failed(
            attempt, ErrorClass.INTERNAL, f"An internal error ({type(exc).__name__}) stopped the rotation."
        )
    finally:
        _release(attempt)


@sensitive_variables()
def _rotate(attempt: RotationAttempt, user: PamUser) -> Result:
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
            _mark_unknown(attempt, _scrub(exc, secrets_seen), code=exc.code)
            return _result(reconcile(attempt, keep_lease=True))
        return _finish_failed(
            attempt, exc.kind, _scrub(exc, secrets_seen), code=exc.code, schedule_retry=True
        )
    except Exception as exc:
        # Unexpected: the request may have reached the directory. Keep pending and reconcile.
        log.error("attempt %s: unexpected %s while changing the password", attempt.pk, type(exc).__name__)
        _mark_unknown(attempt, "An unexpected error happened while changing the password.")
        return _result(reconcile(attempt, keep_lease=True))
    attempt.directory_changed = True  # stored with the commit; reconciliation does not need it
    fault_point("after_change")
    # 5. Verify.
    try:
        verified = ldap.verify_password(spec, user.distinguished_name, new_password)
    except ldap.DirectoryError as exc:
        _mark_unknown(attempt, "The change was sent but could not be verified: " + _scrub(exc, secrets_seen))
        return _result(reconcile(attempt, keep_lease=True))
    if not verified:
        _mark_unknown(attempt, "The directory accepted the change but the new password did not bind.")
        return _result(reconcile(attempt, keep_lease=True))
    fault_point("before_commit")
    # 6. Commit.
    _commit(attempt, AttemptState.SUCCEEDED)
    return _result(attempt)


# -- 3. Reconciling an attempt whose outcome is unknown --------------------------------------


@sensitive_variables()
def reconcile(attempt: RotationAttempt, keep_lease: bool = False) -> RotationAttempt:
    """Find out which password an account has after an interrupted attempt, and keep that one.

    Binds with the pending password first, then with the stored one. The pending password is
    dropped only once the stored one is proven to work.
    """
    attempt.refresh_from_db()
    if attempt.state not in (AttemptState.UNKNOWN, AttemptState.RUNNING):
        return attempt
    user = PamUser.objects.select_related("resource").get(pk=attempt.user_id)
    if not attempt.pending_password_encrypted:
        # Nothing was written ahead, so the directory was never asked to change.
        _finish_failed(attempt, ErrorClass.INTERNAL, "Interrupted before a new password was generated.")
        if not keep_lease:
            _release(attempt)
        return attempt
    pending = attempt.get_pending()
    current = user.get_password()
    try:
        spec = directory_spec(user.resource)
        if ldap.verify_password(spec, user.distinguished_name, pending):
            _commit(attempt, AttemptState.RECONCILED)
        elif current and ldap.verify_password(spec, user.distinguished_name, current):
            # Nothing changed on the directory: this was an interruption, so it is retried
            # like any other (bounded tries per slot).
            _finish_failed(
                attempt,
                ErrorClass.TRANSIENT,
                f"the directory is unreachable at {spec.host}:{spec.port} or the rotation was "
                "interrupted during the change; the change did not take effect and the stored "
                "password still opens the account",
                code=attempt.error_code,
                schedule_retry=True,
            )
        else:
            _set_unknown_message(
                attempt,
                "Neither the pending nor the stored password opens the account. Both are kept; "
                "an administrator must check the account.",
            )
    except ldap.DirectoryError as exc:
        _set_unknown_message(
            attempt,
            "Outcome unknown; the directory could not be asked: "
            + _scrub(exc, [pending, current])
            + " pamrotate will try again.",
        )
    if not keep_lease:
        _release(attempt)
    return attempt


def reconcile_stale() -> int:
    """Reconcile every attempt that is unknown or whose worker died; return how many were tried."""
    now = timezone.now()
    stale = RotationAttempt.objects.filter(
        Q(state=AttemptState.UNKNOWN)
        | Q(state=AttemptState.RUNNING) & (Q(user__lease_until__lt=now) | Q(user__lease_until__isnull=True))
    ).select_related("user")
    count = 0
    for attempt in stale:
        if attempt.state == AttemptState.RUNNING:
            attempt = _mark_unknown(attempt, "The worker stopped during the rotation.")
        reconcile(attempt)
        count += 1
    return count


# -- Helpers ---------------------------------------------------------------------------------


def fault_point(name: str) -> None:
    """Kill this process at a named step when PAMROTATE_FAULT_POINT says so (crash tests).

    PAMROTATE_FAULT_JITTER_MS=<n> waits a random 0..n ms first, so kills land at varied moments.
    """
    if os.environ.get("PAMROTATE_FAULT_POINT") == name:
        jitter_ms = int(os.environ.get("PAMROTATE_FAULT_JITTER_MS") or 0)
        if jitter_ms > 0:
            time.sleep(random.uniform(0, jitter_ms) / 1000)  # noqa: S311 - timing, not a secret
        os.kill(os.getpid(), signal.SIGKILL)


def _claim(attempt: RotationAttempt) -> bool:
    """Take the account's lease for this attempt; False when another attempt holds it."""
    now = timezone.now()
    lease_until = now + dt.timedelta(seconds=settings.ROTATION_LEASE_SECONDS)
    with transaction.atomic():
        claimed = (
            PamUser.objects.filter(pk=attempt.user_id)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_attempt_id=attempt.pk))
            .update(
                lease_until=lease_until,
                lease_attempt_id=attempt.pk,
                rotation_status=RotationStatus.RUNNING,
            )
        )
        if claimed:
            RotationAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.RUNNING, started_at=now)
    if claimed:
        attempt.state, attempt.started_at = AttemptState.RUNNING, now
    return bool(claimed)


def _release(attempt: RotationAttempt) -> None:
    if getattr(attempt, "lease_released", False):
        return  # the commit already released it in its own transaction
    PamUser.objects.filter(pk=attempt.user_id, lease_attempt_id=attempt.pk).update(
        lease_until=None, lease_attempt_id=None
    )


def _lease_expired(attempt: RotationAttempt) -> bool:
    user = PamUser.objects.only("lease_until", "lease_attempt_id").get(pk=attempt.user_id)
    return (
        user.lease_attempt_id != attempt.pk or user.lease_until is None or user.lease_until < timezone.now()
    )


def _mark_unknown(attempt: RotationAttempt, message: str, code: int | None = None) -> RotationAttempt:
    attempt.state = AttemptState.UNKNOWN
    attempt.error_class = ErrorClass.AMBIGUOUS
    attempt.error_code = code
    attempt.error_message = message[:500]
    attempt.save(update_fields=["state", "error_class", "error_code", "error_message"])
    PamUser.objects.filter(pk=attempt.user_id).update(
        rotation_status=RotationStatus.UNKNOWN, rotation_error=message[:500]
    )
    return attempt


def _set_unknown_message(attempt: RotationAttempt, message: str) -> None:
    _mark_unknown(attempt, message, code=attempt.error_code)


def _commit(attempt: RotationAttempt, state: str) -> None:
    """Make the pending password current, keep the old one in history, and record it all."""
    now = timezone.now()
    with transaction.atomic():
        if _already_ended(attempt):
            return
        user = PamUser.objects.select_for_update().select_related("configuration").get(pk=attempt.user_id)
        if user.password_encrypted:
            PasswordVersion.objects.create(
                user=user,
                password_encrypted=user.password_encrypted,
                valid_from=user.last_rotated_at or user.created_at,
                replaced_at=now,
                attempt=attempt,
            )
            keep = list(
                user.password_versions.values_list("pk", flat=True)[: settings.PASSWORD_HISTORY_DEPTH]
            )
            user.password_versions.exclude(pk__in=keep).delete()
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
        fields = [
            "password_encrypted",
            "last_rotated_at",
            "next_rotation_at",
            "rotation_status",
            "rotation_error",
        ]
        if user.lease_attempt_id == attempt.pk:
            user.lease_until, user.lease_attempt_id = None, None
            fields += ["lease_until", "lease_attempt_id"]
            attempt.lease_released = True
        user.save(update_fields=[*fields, "updated_at"])
        attempt.state = state
        attempt.pending_password_encrypted = ""
        attempt.directory_changed = True
        attempt.finished_at = now
        if state == AttemptState.SUCCEEDED:
            attempt.error_class, attempt.error_code, attempt.error_message = "", None, ""
        else:
            attempt.error_message = "Reconciled: the new password opens the account and is now stored."
        attempt.save()
        _audit_attempt(attempt)


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


def _finish_failed(
    attempt: RotationAttempt,
    error_class: str,
    message: str,
    code: int | None = None,
    schedule_retry: bool = False,
) -> Result:
    """End an attempt as failed: the stored password is untouched and the pending one discarded."""
    now = timezone.now()
    with transaction.atomic():
        if _already_ended(attempt):
            return _result(attempt)
        attempt.state = AttemptState.FAILED
        attempt.error_class = error_class
        attempt.error_code = code
        attempt.error_message = message[:500]
        attempt.pending_password_encrypted = ""
        attempt.finished_at = now
        attempt.save()
        PamUser.objects.filter(pk=attempt.user_id).update(
            rotation_status=RotationStatus.FAILED, rotation_error=message[:500]
        )
        _audit_attempt(attempt)
        transaction.on_commit(lambda: notifications.notify_failure(attempt))
        if schedule_retry and error_class == ErrorClass.TRANSIENT and attempt.try_number <= len(RETRY_DELAYS):
            RotationAttempt.objects.create(
                user_id=attempt.user_id,
                trigger=Trigger.RETRY,
                requested_by_id=attempt.requested_by_id,
                requested_by_name=attempt.requested_by_name,
                slot=attempt.slot,
                try_number=attempt.try_number + 1,
                retry_at=now + RETRY_DELAYS[attempt.try_number - 1],
            )
    return _result(attempt)


def _audit_attempt(attempt: RotationAttempt, actor=None, remote_address: str | None = None) -> None:
    ok = attempt.state in (AttemptState.SUCCEEDED, AttemptState.RECONCILED)
    if attempt.trigger == Trigger.ON_DEMAND:
        event = AuditEvent.ROTATION_ON_DEMAND_OK if ok else AuditEvent.ROTATION_ON_DEMAND_FAIL
    else:
        event = AuditEvent.ROTATION_SCHEDULED_OK if ok else AuditEvent.ROTATION_SCHEDULED_FAIL
    message = f"Attempt #{attempt.pk} {attempt.get_state_display().lower()}"
    if attempt.error_message:
        message += f": {attempt.error_message}"
    audit.record_event(
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


# -- Reveal and connection test --------------------------------------------------------------


@sensitive_variables()
def reveal_password(
    user: PamUser, *, actor, remote_address: str | None = None, version: PasswordVersion | None = None
) -> str:
    """Return a stored password in clear and record who saw it."""
    password = version.get_password() if version is not None else user.get_password()
    what = (
        f"password version replaced {version.replaced_at:%Y-%m-%d %H:%M}" if version else "current password"
    )
    audit.record_event(
        AuditEvent.PASSWORD_REVEALED,
        instance=user,
        actor=actor,
        remote_address=remote_address,
        outcome="ok",
        message=f"Revealed the {what}",
        category="security",
    )
    return password


@sensitive_variables()
def test_connection(directory: PamDirectory, *, actor=None, remote_address: str | None = None) -> list:
    """Run Keeper's LDP-style check against a directory and record it."""
    try:
        admin_name, admin_password = admin_bind_name(directory)
    except ldap.DirectoryError as exc:
        steps = [ldap.Step("Administrative credential", False, exc.message)]
    else:
        steps = ldap.test_connection(directory_spec(directory), admin_name, admin_password)
    ok = all(step.ok for step in steps)
    audit.record_event(
        AuditEvent.CONNECTION_TESTED,
        instance=directory,
        actor=actor,
        remote_address=remote_address,
        outcome="ok" if ok else "fail",
        message="; ".join(f"{step.name}: {'ok' if step.ok else step.message}" for step in steps),
        category="directory",
    )
    return steps
