"""When rotations happen: one ``tick`` dispatches due accounts once per slot and releases retries.

``tick`` runs once a second in the main process of every qcluster (rotation/worker.py, after the
cluster has forked its workers), and as a django-q2 schedule (two rows, 30 s apart) as a fallback;
both call the same function. It is safe to run twice at once: an
account's slot is taken by a conditional UPDATE of its ``next_rotation_at``, and a unique
constraint allows one attempt per account, slot and try.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from records.models import PamUser
from rotation import heartbeat, hooks, notifications, services
from rotation.models import AttemptState, Heartbeat, RotationAttempt
from rotation.queue import AttemptBatcher, enqueue_attempt

log = logging.getLogger(__name__)

DISPATCH_FUNC = "rotation.tasks.dispatch"
DISPATCH_SCHEDULES = ("pamrotate-dispatch-a", "pamrotate-dispatch-b")
# A queued attempt not started after this long, with nothing waiting in its broker, was lost.
ORPHANED_AFTER = dt.timedelta(seconds=60)


# A canary waiting this long with nothing in its gateway's queue was lost: send another.
CANARY_LOST_AFTER = dt.timedelta(minutes=5)

# Due accounts are taken and recorded in chunks of this many, one transaction each.
DISPATCH_CHUNK = 25


def dispatch_due(now: dt.datetime | None = None) -> dict:
    """Queue one scheduled attempt for every account whose next rotation is due.

    After downtime an account that missed several slots rotates once: its next rotation moves
    to the first slot after now, not to the next missed one. Accounts are taken in chunks: one
    transaction moves each slot (a conditional UPDATE: whoever moves ``next_rotation_at`` off a
    slot owns it) and records the chunk's attempts, so an outage never loses a slot.
    """
    now = now or timezone.now()
    dispatched = skipped = 0
    # Ids first, records a chunk at a time: memory stays flat however many accounts are due (and a
    # list, not a server-side cursor: queueing a task may close this process's connection).
    due = PamUser.objects.filter(next_rotation_at__lte=now)
    due_ids = list(due.order_by("next_rotation_at", "pk").values_list("pk", flat=True))
    batches = AttemptBatcher(total=len(due_ids))
    for start in range(0, len(due_ids), DISPATCH_CHUNK):
        chunk = list(
            due.filter(pk__in=due_ids[start : start + DISPATCH_CHUNK])
            .select_related("configuration", "resource")
            .order_by("next_rotation_at", "pk")
        )
        try:
            with transaction.atomic():
                attempts, blocked = _take_slots(chunk, now)
        except IntegrityError:
            # Another dispatcher recorded one of these slots: take them one by one instead.
            attempts, blocked = [], 0
            for user in chunk:
                try:
                    with transaction.atomic():
                        one, one_blocked = _take_slots([user], now)
                except IntegrityError:
                    continue
                attempts += one
                blocked += one_blocked
        for attempt in attempts:
            if attempt.state == AttemptState.QUEUED:
                batches.add(attempt)
        dispatched += len(attempts)
        skipped += blocked
    batches.flush()
    retried = release_retries(now)
    return {"dispatched": dispatched, "skipped": skipped, "retried": retried}


def _take_slots(users: list[PamUser], now: dt.datetime) -> tuple[list[RotationAttempt], int]:
    """Move each account's due slot on and record its scheduled attempt; return them and how many were blocked."""
    moved = PamUser.objects.take_slots(
        [(user.pk, user.next_rotation_at, user.compute_next_rotation(after=now)) for user in users]
    )
    owned = [(user, user.next_rotation_at) for user in users if user.pk in moved]
    # A held account (checked out) lets its slot pass: rotating it would end the holder's copy early,
    # and its check-in rotates it anyway.
    held = hooks.held_accounts(user.pk for user, _slot in owned) if owned else set()
    rotating = [
        (user, slot) for user, slot in owned if not user.rotation_blocked_reason and user.pk not in held
    ]
    return services.request_scheduled(rotating), len(owned) - len(rotating)


def release_retries(now: dt.datetime) -> int:
    """Send every queued retry whose wait is over to its worker pool."""
    released = 0
    waiting = RotationAttempt.objects.filter(state=AttemptState.QUEUED, retry_at__lte=now).select_related(
        "user__configuration"
    )
    for attempt in waiting:
        if attempt.take_for_sending():
            enqueue_attempt(attempt)
            released += 1
    return released


def resend_orphans(now: dt.datetime | None = None, older_than: dt.timedelta = ORPHANED_AFTER) -> int:
    """Mark for sending again the queued attempts that no worker started and no broker holds.

    A dispatch or a task cut short by a database outage leaves attempts queued that nothing will
    run. When a gateway's broker has nothing waiting, its attempts queued for longer than
    ``older_than`` are such orphans: ``release_retries`` sends them. Running one twice is safe.
    """
    from django_q.brokers import get_broker

    now = now or timezone.now()
    orphans = RotationAttempt.objects.filter(
        state=AttemptState.QUEUED, retry_at__isnull=True, created_at__lt=now - older_than
    ).values_list("pk", "user__configuration__gateway")
    by_gateway: dict[str, list[int]] = {}
    for pk, gateway in orphans:
        by_gateway.setdefault(gateway or "default", []).append(pk)
    marked = 0
    for gateway, ids in by_gateway.items():
        if get_broker(gateway).queue_size():
            continue  # a backlog is still draining: they may be in it
        marked += RotationAttempt.mark_for_sending(ids, now)
    if marked:
        log.warning("re-sending %s queued attempts that no worker took (after an outage?)", marked)
    return marked


def notify_overdue_accounts(now: dt.datetime | None = None) -> int:
    """Mail the overdue accounts (each at most once an hour); return how many were named."""
    return notifications.notify_overdue(PamUser.objects.overdue(now).select_related("configuration"))


def has_due_work(now: dt.datetime) -> bool:
    """Return whether an account is due or a retry is waiting (one cheap indexed query each)."""
    return (
        PamUser.objects.filter(next_rotation_at__lte=now).exists()
        or RotationAttempt.objects.filter(state=AttemptState.QUEUED, retry_at__lte=now).exists()
    )


def tick(now: dt.datetime | None = None, *, housekeeping: bool = True) -> dict:
    """Do the dispatcher's work once: due slots and retries, then (with ``housekeeping``) the rest.

    Housekeeping reconciles interrupted attempts, marks orphaned queued attempts for sending
    again, mails overdue accounts, queues due account heartbeats (rotation/heartbeat.py), sends
    each gateway its canary and beats the scheduler's heartbeat. The qcluster's dispatcher does
    it every WORKER_CANARY_SECONDS (30 s); the django-q2 fallback task every time.
    """
    now = now or timezone.now()
    result = dispatch_due(now) if has_due_work(now) else {"dispatched": 0, "skipped": 0, "retried": 0}
    hooks.tick(now)
    if housekeeping:
        result["reconciled"] = services.reconcile_stale()
        result["orphans"] = resend_orphans(now)
        result["overdue_notified"] = notify_overdue_accounts(now)
        result["heartbeats_queued"] = heartbeat.queue_due(now)
        result["canaries"] = send_canaries(now)
        Heartbeat.beat("scheduler")
    return result


def gateways() -> set[str]:
    """Return the gateways that should have a worker: every configuration's, and this process's own."""
    from django_q.conf import Conf

    from records.models import PamConfiguration

    named = PamConfiguration.objects.values_list("gateway", flat=True).distinct()
    return {gateway or "default" for gateway in named} | {Conf.CLUSTER_NAME}


def send_canaries(now: dt.datetime | None = None) -> int:
    """Send each gateway a canary task when none is waiting and it took no task lately; return how many.

    A worker that runs it writes the gateway's heartbeat (rotation/tasks.py ``canary``); one left
    waiting is how /healthz and the pages know that a gateway takes no task (rotation/status.py).
    A canary still waiting after ``CANARY_LOST_AFTER`` with nothing queued or running for its
    gateway was lost (a failed task is not retried): another is sent, and the wait still counts
    from the first.
    """
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    now = now or timezone.now()
    # Half the period: a canary answered just after the last round is due again at the next one.
    every = dt.timedelta(seconds=settings.WORKER_CANARY_SECONDS / 2)
    sent = 0
    for gateway in sorted(gateways()):
        send = Heartbeat.claim_canary(gateway, now, every)
        if not send:
            waiting = Heartbeat.objects.filter(
                name=Heartbeat.worker_name(gateway), canary_sent_at__lt=now - CANARY_LOST_AFTER
            ).exists()
            broker = get_broker(gateway) if waiting else None
            send = waiting and not broker.queue_size() and not broker.lock_size()
        if send:
            # save=False: a taken canary leaves no result row (2,880 a day per gateway would push the
            # rotations out of django-q2's 1,000 kept results); a failed one is kept.
            async_task(
                "rotation.tasks.canary",
                cluster=gateway,
                task_name=f"canary-{gateway}",
                group="canary",
                save=False,
            )
            sent += 1
    return sent


def ensure_dispatch_schedules(**kwargs) -> None:
    """Create the dispatcher's django-q2 schedules if they are missing (run after migrate)."""
    from django_q.models import Schedule

    start = timezone.now().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    for offset, name in enumerate(DISPATCH_SCHEDULES):
        Schedule.objects.get_or_create(
            name=name,
            defaults={
                "func": DISPATCH_FUNC,
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
                "next_run": start + dt.timedelta(seconds=30 * offset),
            },
        )
