"""How rotation is doing, for people and monitors: dashboard figures, overdue and failed accounts, heartbeats.

The dashboard, its template tags, ``/healthz`` and the mails all read these, so they always agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import DatabaseError
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.timesince import timesince

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

HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=2)
# A running worker takes a queued attempt within a second (poll 0.5 s); one left waiting longer,
# on a gateway with no fresh worker heartbeat, waits for a worker that is not there.
WORKER_EXPECTED_WITHIN = dt.timedelta(seconds=10)


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


def worker_seen() -> dict[str, dt.datetime]:
    """Return when a worker of each gateway (heartbeat ``worker:<cluster>``) was last seen."""
    prefix = "worker:"
    beats = Heartbeat.objects.filter(name__startswith=prefix).values_list("name", "seen_at")
    return {name[len(prefix) :]: seen_at for name, seen_at in beats}


def gateway_problem(gateway: str, now: dt.datetime | None = None, seen: dict | None = None) -> str:
    """Return why a gateway's rotations do not start ("No worker of gateway X is running..."), or ''."""
    now = now or timezone.now()
    gateway = gateway or "default"
    seen_at = (worker_seen() if seen is None else seen).get(gateway)
    if seen_at is not None and now - seen_at <= HEARTBEAT_STALE_AFTER:
        return ""
    last = (
        "none has ever been seen"
        if seen_at is None
        else f"the last one was seen {timesince(seen_at, now)} ago"
    )
    return (
        f'No worker of gateway "{gateway}" is running ({last}): its rotations wait until '
        f"`Q_CLUSTER_NAME={gateway} manage.py qcluster` runs on a host that reaches its network."
    )


def waiting_problem(attempt: RotationAttempt, now: dt.datetime | None = None) -> dict | None:
    """Return why a queued attempt is not taken (its gateway has no running worker), or None.

    ``show_after_s`` is how long the page waits before showing it: a running worker takes an
    attempt within WORKER_EXPECTED_WITHIN, so until then it would be a false alarm.
    """
    if attempt is None or attempt.state != AttemptState.QUEUED:
        return None
    now = now or timezone.now()
    since = max(attempt.created_at, attempt.retry_at or attempt.created_at)
    if since > now:
        return None  # a retry still in its backoff: RetryNote says when it goes
    reason = gateway_problem(attempt.user.configuration.gateway, now)
    if not reason:
        return None
    show_after = WORKER_EXPECTED_WITHIN - (now - since)
    return {"reason": reason, "show_after_s": max(0, round(show_after.total_seconds()))}


def due_at(user: PamUser) -> dt.datetime | None:
    """Return when an account's overdue rotation was really due: its oldest waiting slot or request."""
    times = [when for when in (user.next_rotation_at, user.queued_since) if when is not None]
    return min(times) if times else None


def overdue_reason(
    user: PamUser, now: dt.datetime | None = None, seen: dict | None = None, scheduler: bool | None = None
) -> str:
    """Return why an overdue account has not rotated: no worker of its gateway, or no scheduler; else ''.

    Workers beat when they run a task, so a gateway is named only for an account waiting in its queue;
    an account never dispatched waits for the scheduler (every qcluster's dispatcher).
    """
    now = now or timezone.now()
    if user.queued_since is not None:
        return gateway_problem(user.configuration.gateway, now, seen)
    if scheduler is None:
        scheduler = health(now)["scheduler"]
    if not scheduler:
        return (
            "The scheduler is not running: no qcluster dispatched due rotations in the last "
            f"{int(HEARTBEAT_STALE_AFTER.total_seconds() // 60)} minutes."
        )
    return ""


def stalled_gateways(now: dt.datetime | None = None) -> list[tuple[str, str, int]]:
    """Return (gateway, reason, accounts waiting) for each gateway with queued work and no running worker."""
    now = now or timezone.now()
    waiting = (
        PamUser.objects.filter(
            Q(attempts__state=AttemptState.QUEUED, attempts__created_at__lt=now - WORKER_EXPECTED_WITHIN)
            & (Q(attempts__retry_at__isnull=True) | Q(attempts__retry_at__lt=now - WORKER_EXPECTED_WITHIN))
        )
        .values_list("configuration__gateway")
        .annotate(n=Count("id", distinct=True))
        .values_list("configuration__gateway", "n")
    )
    seen = worker_seen()
    stalled = []
    for gateway, count in sorted(waiting):
        reason = gateway_problem(gateway, now, seen)
        if reason:
            stalled.append((gateway or "default", reason, count))
    return stalled


def overdue_users(now: dt.datetime | None = None):
    """Return the accounts whose rotation is late, most overdue first (PamUser.objects.overdue's rule)."""
    return PamUser.objects.overdue(now).order_by("next_rotation_at")


def failed_users():
    """Return the accounts whose last rotation failed or has an unknown outcome."""
    return PamUser.objects.filter(rotation_status__in=(RotationStatus.FAILED, RotationStatus.UNKNOWN))


def counts() -> dict:
    """Return the dashboard's record and problem counts."""
    users = PamUser.objects.all()
    return {
        "configurations": PamConfiguration.objects.count(),
        "directories": PamDirectory.objects.count(),
        "users": users.count(),
        "rotating": users.rotatable().count(),
        "failed": failed_users().count(),
        "overdue": users.overdue().count(),
        **account_state_counts(),
    }


ACCOUNT_PROBLEMS = (AccountState.DRIFTED, AccountState.DISABLED, AccountState.LOCKED, AccountState.EXPIRED)


def account_problem_users():
    """Return the accounts the heartbeat found drifted, disabled, locked or expired."""
    return PamUser.objects.filter(account_state__in=ACCOUNT_PROBLEMS)


def account_state_counts() -> dict:
    """Return how many accounts the heartbeat found in each problem state, in one query."""
    rows = dict(
        account_problem_users()
        .values_list("account_state")
        .annotate(n=Count("id"))
        .values_list("account_state", "n")
    )
    return {state.value: rows.get(state.value, 0) for state in ACCOUNT_PROBLEMS}


def health(now: dt.datetime | None = None) -> dict:
    """Return whether the database answers and a worker and the scheduler were seen recently.

    ``ok`` (what /healthz answers 200 for) needs the database and a fresh worker heartbeat.
    """
    now = now or timezone.now()
    try:
        beats = dict(Heartbeat.objects.values_list("name", "seen_at"))
        database = True
    except DatabaseError:
        beats, database = {}, False
    fresh = {name for name, seen_at in beats.items() if now - seen_at <= HEARTBEAT_STALE_AFTER}
    worker = any(name.startswith("worker:") for name in fresh)
    return {
        "ok": database and worker,
        "database": database,
        "worker": worker,
        "scheduler": "scheduler" in fresh,
        "heartbeats": {
            name: {"seen_at": seen_at.isoformat(), "age_s": round((now - seen_at).total_seconds())}
            for name, seen_at in beats.items()
        },
    }
