"""How rotation is doing, for people and monitors: dashboard figures, overdue and failed accounts, heartbeats.

The dashboard, its template tags, ``/healthz`` and the mails all read these, so they always agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from records.models import AccountState, PamConfiguration, PamDirectory, PamUser, RotationStatus
from rotation.models import (
    ACTIVE_STATES,
    FAILED_STATES,
    OK_STATES,
    AttemptState,
    Heartbeat,
    RotationAttempt,
    Trigger,
)
from rotation.protocol import RETRY_DELAYS

# No dispatcher (scheduler heartbeat) or no worker seen for this long: not healthy.
HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=2)


# -- Dashboard figures ---------------------------------------------------------------------------


@dataclass
class ChartDay:
    """One day's bar: successes and failures."""

    day: dt.date
    ok: int
    failed: int


def rotations_per_day(days: int = 30, now: dt.datetime | None = None) -> list[ChartDay]:
    """Return successes and failures per day for the last days, in one aggregate query.

    A failure that was retried is not counted: its retry is (the final outcome of the slot).
    """
    now = timezone.localtime(now or timezone.now())
    first = now.date() - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time.min, tzinfo=now.tzinfo)
    rows = (
        RotationAttempt.objects.filter(created_at__gte=start, retry__isnull=True)
        .annotate(day=TruncDate("created_at", tzinfo=now.tzinfo))
        .values("day")
        .annotate(
            ok=Count("id", filter=Q(state__in=OK_STATES)),
            failed=Count("id", filter=Q(state__in=FAILED_STATES)),
        )
        .order_by("day")
    )
    by_day = {row["day"]: row for row in rows}
    chart = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        row = by_day.get(day, {})
        chart.append(ChartDay(day, row.get("ok", 0), row.get("failed", 0)))
    return chart


@dataclass
class RetryNote:
    """Where the retry of a failed attempt stands: waiting for its backoff, for a worker, or running."""

    retry: RotationAttempt
    seconds: int  # until it is sent to a worker; 0 once due

    @property
    def tries(self) -> int:
        return len(RETRY_DELAYS) + 1

    def __str__(self) -> str:
        where = f"try {self.retry.try_number} of {self.tries}"
        if self.retry.state == AttemptState.RUNNING:
            return f"Retrying now ({where})"
        if self.seconds > 0:
            return f"Retrying in {self.seconds} s ({where})"
        return f"Retrying as soon as a worker takes it ({where})"


def retry_note(attempt: RotationAttempt, now: dt.datetime | None = None) -> RetryNote | None:
    """Return how the retry of an attempt stands: the attempt's own retry, or the attempt if it is a waiting retry."""
    if attempt.state in ACTIVE_STATES:
        retry = attempt if attempt.trigger == Trigger.RETRY else None
    else:
        retry = RotationAttempt.objects.filter(retry_of=attempt, state__in=ACTIVE_STATES).first()
    if retry is None:
        return None
    now = now or timezone.now()
    seconds = max(0, round((retry.retry_at - now).total_seconds())) if retry.retry_at else 0
    return RetryNote(retry, seconds)


def pending_retries(user_ids) -> dict[int, RotationAttempt]:
    """Return the queued or running retry of each of these accounts that has one, in one query."""
    retries = RotationAttempt.objects.filter(
        user_id__in=user_ids, trigger=Trigger.RETRY, state__in=ACTIVE_STATES
    )
    return {retry.user_id: retry for retry in retries}


def stall_after() -> dt.timedelta:
    """Return how long waiting work may go without its gateway taking a task (WORKER_STALL_SECONDS)."""
    return dt.timedelta(seconds=settings.WORKER_STALL_SECONDS)


@dataclass
class Stall:
    """A gateway that took no task while its canary or a queued attempt waited longer than allowed."""

    gateway: str
    seconds: int  # since its workers last took a task (or since the work started waiting)
    accounts: int  # accounts whose attempt waits for it

    def __str__(self) -> str:
        return f"gateway {self.gateway} has taken no task for {self.seconds} s"

    @property
    def message(self) -> str:
        return (
            f"The {self}: its workers are stopped, busy with a stuck task or cannot reach the database. "
            f"Rotations wait until `Q_CLUSTER_NAME={self.gateway} manage.py qcluster` runs (and takes "
            "tasks) on a host that reaches its network."
        )

    def as_dict(self) -> dict:
        return {
            "gateway": self.gateway,
            "seconds": self.seconds,
            "accounts": self.accounts,
            "message": str(self),
        }


def worker_beats() -> dict[str, Heartbeat]:
    """Return each gateway's worker heartbeat row (``worker:<gateway>``)."""
    prefix = Heartbeat.worker_name("")[: -len("default")]
    return {beat.name[len(prefix) :]: beat for beat in Heartbeat.objects.filter(name__startswith=prefix)}


def stalled_gateways(now: dt.datetime | None = None) -> dict[str, Stall]:
    """Return the gateways that have taken no task while work waited for them longer than ``stall_after``.

    Waiting work is the gateway's canary (sent every 30 s by the dispatcher) and its queued attempts
    ready to run; a gateway whose workers took any task after that work started waiting is fine,
    so an idle healthy gateway (its canaries answered) and a busy one never show here.
    """
    now = now or timezone.now()
    limit = now - stall_after()
    beats = worker_beats()
    ready = RotationAttempt.objects.filter(state=AttemptState.QUEUED).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    )
    queued = set(ready.values_list("user__configuration__gateway", flat=True).distinct())
    stalls = {}
    for gateway in set(beats) | queued:
        beat = beats.get(gateway)
        seen_at = beat.seen_at if beat else None
        unserved = ready.filter(user__configuration__gateway=gateway)
        if seen_at is not None:
            unserved = unserved.filter(created_at__gt=seen_at)  # queued after its last task was taken
        first = unserved.aggregate(since=Min("created_at"), accounts=Count("user", distinct=True))
        canary = beat.canary_sent_at if beat else None
        waiting = [
            since for since in (first["since"], canary) if since and (seen_at is None or since > seen_at)
        ]
        if not waiting or min(waiting) > limit:
            continue
        seconds = round((now - (seen_at or min(waiting))).total_seconds())
        stalls[gateway] = Stall(gateway, seconds, first["accounts"])
    return dict(sorted(stalls.items()))


def waiting_problem(attempt: RotationAttempt, now: dt.datetime | None = None) -> str:
    """Return why a queued attempt is not taken ("The gateway X has taken no task for N s: ..."), or ''."""
    if attempt is None or attempt.state != AttemptState.QUEUED:
        return ""
    now = now or timezone.now()
    if attempt.retry_at is not None and attempt.retry_at > now:
        return ""  # a retry still in its backoff: RetryNote says when it goes
    stall = stalled_gateways(now).get(attempt.user.configuration.gateway or "default")
    return stall.message if stall else ""


def due_at(user: PamUser) -> dt.datetime | None:
    """Return when an account's overdue rotation was really due: its oldest waiting slot or request."""
    times = [when for when in (user.next_rotation_at, user.queued_since) if when is not None]
    return min(times) if times else None


def overdue_reason(
    user: PamUser, now: dt.datetime | None = None, stalls: dict | None = None, scheduler: bool | None = None
) -> str:
    """Return why an overdue account has not rotated: its gateway takes no task, or no scheduler; else ''.

    A gateway is named only for an account waiting in its queue; an account never dispatched
    waits for the scheduler (every qcluster's dispatcher).
    """
    now = now or timezone.now()
    if user.queued_since is not None:
        stall = (stalled_gateways(now) if stalls is None else stalls).get(
            user.configuration.gateway or "default"
        )
        return stall.message if stall else ""
    if scheduler is None:
        scheduler = health(now)["scheduler"]
    if not scheduler:
        return (
            "The scheduler is not running: no qcluster dispatched due rotations in the last "
            f"{int(HEARTBEAT_STALE_AFTER.total_seconds() // 60)} minutes."
        )
    return ""


def overdue_users(now: dt.datetime | None = None):
    """Return the accounts whose rotation is late, most overdue first (PamUser.objects.overdue's rule)."""
    return PamUser.objects.overdue(now).order_by("next_rotation_at")


def failed_users():
    """Return the accounts whose last rotation failed or has an unknown outcome."""
    return PamUser.objects.filter(rotation_status__in=(RotationStatus.FAILED, RotationStatus.UNKNOWN))


def counts(configurations=None) -> dict:
    """Return the dashboard's record and problem counts; ``configurations`` (ids) narrows them to a scope."""
    users = PamUser.objects.all()
    configuration_rows, directories = PamConfiguration.objects.all(), PamDirectory.objects.all()
    if configurations is not None:
        users = users.filter(configuration_id__in=configurations)
        configuration_rows = configuration_rows.filter(pk__in=configurations)
        directories = directories.filter(configuration_id__in=configurations)
    return {
        "configurations": configuration_rows.count(),
        "directories": directories.count(),
        "users": users.count(),
        "rotating": users.rotatable().count(),
        "failed": failed_users().filter(pk__in=users.values("pk")).count(),
        "overdue": users.overdue().count(),
        **account_state_counts(users),
    }


ACCOUNT_PROBLEMS = (AccountState.DRIFTED, AccountState.DISABLED, AccountState.LOCKED, AccountState.EXPIRED)


def account_problem_users():
    """Return the accounts the heartbeat found drifted, disabled, locked or expired."""
    return PamUser.objects.filter(account_state__in=ACCOUNT_PROBLEMS)


def account_state_counts(users=None) -> dict:
    """Return how many accounts (of ``users``, default all) the heartbeat found in each problem state, in one query."""
    problems = account_problem_users()
    if users is not None:
        problems = problems.filter(pk__in=users.values("pk"))
    rows = dict(
        problems.values_list("account_state").annotate(n=Count("id")).values_list("account_state", "n")
    )
    return {state.value: rows.get(state.value, 0) for state in ACCOUNT_PROBLEMS}


def health(now: dt.datetime | None = None) -> dict:
    """Return whether the database answers, the scheduler ran lately and every gateway takes tasks.

    ``ok`` (what /healthz answers 200 for) needs the database, a dispatcher that ran in the last
    two minutes, a worker that took a task in that time, and no stalled gateway (``stalled``
    names each, with how long it has taken no task).
    """
    now = now or timezone.now()
    try:
        beats = dict(Heartbeat.objects.values_list("name", "seen_at"))
        stalls = [stall.as_dict() for stall in stalled_gateways(now).values()]
        database = True
    except DatabaseError:
        beats, stalls, database = {}, [], False
    fresh = {
        name
        for name, seen_at in beats.items()
        if seen_at is not None and now - seen_at <= HEARTBEAT_STALE_AFTER
    }
    worker = any(name.startswith("worker:") for name in fresh) and not stalls
    scheduler = "scheduler" in fresh
    return {
        "ok": database and worker and scheduler,
        "database": database,
        "worker": worker,
        "scheduler": scheduler,
        "stalled": stalls,
        "heartbeats": {
            name: {
                "seen_at": seen_at.isoformat() if seen_at else None,
                "age_s": round((now - seen_at).total_seconds()) if seen_at else None,
            }
            for name, seen_at in beats.items()
        },
    }
