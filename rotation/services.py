"""The rotation service: request a rotation, run one attempt, reconcile what is left unknown.

Views, tasks, commands and the API only call these functions. ``run_attempt`` is the protocol's
single driver: it claims one account and hands it to rotation/protocol.py, whose steps the
batched driver (rotation/batch.py) runs for many accounts at once.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.actors import SYSTEM_ACTOR, Actor
from records.models import PamUser
from rotation import hooks, leases, messages, protocol
from rotation.directories import is_self_change
from rotation.leases import Lease
from rotation.models import ACTIVE_STATES, AttemptState, ErrorClass, RotationAttempt, Trigger, next_numbers
from rotation.protocol import Result
from rotation.queue import enqueue_attempt

log = logging.getLogger(__name__)

# A queued attempt that no worker took within this time is given up (is the gateway running?).
QUEUE_STALE_AFTER = dt.timedelta(minutes=15)


# -- 1. Requesting a rotation ---------------------------------------------------------------


def request_rotation(
    user: PamUser,
    *,
    trigger: str = Trigger.ON_DEMAND,
    actor: Actor = SYSTEM_ACTOR,
    slot: dt.datetime | None = None,
    try_number: int = 1,
    enqueue: bool = True,
) -> RotationAttempt:
    """Record a rotation request and queue it, or record why it was refused.

    A request for an account that already has a queued or running attempt is recorded as
    refused ("already rotating") and the existing attempt is named in its message. ``actor`` (who
    asks) is kept on the attempt, so the events of the worker that runs it name them too.
    """
    with transaction.atomic():
        user = PamUser.objects.select_for_update().select_related("configuration").get(pk=user.pk)
        attempt = RotationAttempt(
            user=user,
            trigger=trigger,
            requested_by=actor.user,
            requested_by_name=actor.name,
            slot=slot,
            try_number=try_number,
            self_change=is_self_change(user),
            number=next_numbers([user.pk])[user.pk],
        )
        blocked = user.rotation_blocked_reason
        active = user.attempts.filter(state__in=ACTIVE_STATES).order_by("id").first()
        if active is not None and _never_picked_up(active):
            message = messages.NEVER_PICKED_UP.format(
                gateway=user.configuration.gateway, minutes=QUEUE_STALE_AFTER.seconds // 60
            )
            protocol.fail(active, ErrorClass.TRANSIENT, message)
            active = None
        waiting_retry = active is not None and active.state == AttemptState.QUEUED and active.retry_at
        if waiting_retry and trigger == Trigger.ON_DEMAND and not blocked:
            # Someone asks now: run their request instead of waiting for the retry's backoff.
            attempt.save()
            active.refuse(ErrorClass.BUSY, messages.SUPERSEDED.format(attempt=attempt.pk))
            _queue(attempt, enqueue)
            return attempt
        if blocked:
            attempt.refuse(ErrorClass.BLOCKED, blocked)
            PamUser.objects.filter(pk=user.pk).update(queued_since=None)
        elif active is not None:
            message = messages.ALREADY_ROTATING.format(
                number=active.number, attempt=active.pk, state=active.state
            )
            attempt.refuse(ErrorClass.BUSY, message)
        else:
            attempt.save()
            _queue(attempt, enqueue)
            return attempt
    protocol.audit_attempt(attempt, actor)
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
    """Run one rotation attempt through the protocol (rotation/protocol.py); safe to call twice for the same attempt.

    An attempt whose outcome is unknown, or whose worker died, is reconciled instead; one that
    ended, or that a live worker still runs, is left as it is.
    """
    attempt = RotationAttempt.objects.select_related("user").get(pk=attempt_id)
    if attempt.state == AttemptState.UNKNOWN:
        return Result.of(reconcile(attempt))
    if attempt.is_finished:
        return Result.of(attempt)
    if attempt.state == AttemptState.RUNNING:
        if leases.held_by(attempt):
            # A duplicate delivery while the first worker still holds the lease: leave it alone.
            return Result.of(attempt)
        # The worker that ran this died mid-way: its outcome is unknown until reconciled.
        attempt.mark_unknown(messages.WORKER_STOPPED)
        return Result.of(reconcile(attempt))
    with Lease(attempt) as lease:
        if not lease.claim():
            attempt.refresh_from_db()
            if not attempt.is_finished:
                protocol.refuse(attempt, ErrorClass.BUSY, messages.LEASE_HELD)
            return Result.of(attempt)
        attempt.user = protocol.load_user(attempt.user_id)  # as it is now that this attempt holds it
        protocol.rotate([attempt], lease)
    return Result.of(attempt)


def commit_delivered(attempt: RotationAttempt) -> RotationAttempt:
    """Store an unknown attempt's pending password: its change strategy delivered it after all ("Run scripts again")."""
    with Lease(attempt, held=True) as lease:
        protocol.after_commit(protocol.commit([attempt], AttemptState.RECONCILED, lease))
    return attempt


def keep_stored(attempt: RotationAttempt, message: str) -> RotationAttempt:
    """End an unknown attempt keeping the stored password (an administrator's decision)."""
    with Lease(attempt, held=True):
        protocol.fail(attempt, ErrorClass.AMBIGUOUS, message)
    return attempt


# -- 3. Reconciling an attempt whose outcome is unknown --------------------------------------


def reconcile(attempt: RotationAttempt) -> RotationAttempt:
    """Find out which password an account has after an interrupted attempt and keep that one; give its lease back."""
    with Lease(attempt, held=True) as lease:
        return protocol.reconcile(attempt, lease)


def reconcile_stale() -> int:
    """Reconcile every attempt that is unknown or whose worker died; return how many were tried.

    The plugins' housekeeping runs first (post-rotation script runs whose worker died become unknown).
    """
    hooks.housekeeping()
    now = timezone.now()
    stale = RotationAttempt.objects.filter(
        Q(state=AttemptState.UNKNOWN)
        | Q(state=AttemptState.RUNNING) & (Q(user__lease_until__lt=now) | Q(user__lease_until__isnull=True))
    ).select_related("user")
    count = 0
    for attempt in stale:
        if attempt.state == AttemptState.RUNNING:
            attempt.mark_unknown(messages.WORKER_STOPPED)
        reconcile(attempt)
        count += 1
    return count
