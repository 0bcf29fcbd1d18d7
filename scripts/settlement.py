"""Recording and settling script runs: a run's row, how a set of runs ended, and runs whose worker died.

A run is stored as ``running`` before it starts, so a worker killed meanwhile leaves a row that a
later look (``settle_stale_runs``: the attempt's page, "Run scripts again", the reconcile sweep)
marks unknown. A failure of a committed attempt's scripts warns on the account, in the audit log
and by mail; it never changes the password.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from audit import events as audit
from audit.models import AuditEvent, Category
from audit.models import Outcome as AuditOutcome
from records.models import PamUser
from rotation import notifications, protocol
from rotation.models import OK_STATES, RotationAttempt, ScriptsState, Trigger
from scripts.models import PostRotationScript, RunState, ScriptRun

# A run still "running" this long after its timeout has no worker left to finish it.
STALE_GRACE = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class Outcome:
    """How a set of script runs ended; the message names every script that did not succeed."""

    state: str
    message: str

    @property
    def ok(self) -> bool:
        return self.state == ScriptsState.SUCCEEDED


def outcome_of(runs: list[ScriptRun]) -> Outcome:
    """Return how a round of runs ended."""
    failed = [run for run in runs if run.state != RunState.SUCCEEDED]
    if not failed:
        return Outcome(ScriptsState.SUCCEEDED, f"{len(runs)} post-rotation script(s) succeeded")
    noun = "script" if len(failed) == 1 else "scripts"
    state = (
        ScriptsState.UNKNOWN if all(run.state == RunState.UNKNOWN for run in failed) else ScriptsState.FAILED
    )
    return Outcome(state, f"{noun} " + ", ".join(run.summary for run in failed))


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def start_run(attempt, script: PostRotationScript, round_number: int, position: int) -> ScriptRun:
    """Store a run as ``running`` before it starts."""
    return ScriptRun.objects.create(
        attempt=attempt,
        script=script,
        round=round_number,
        position=position,
        record_type=script.owner_kind,
        record_title=str(script.owner)[:200],
        file=script.file,
        command=script.command,
        worker=_worker_name(),
        started_at=timezone.now(),
    )


def finish_run(run: ScriptRun, state: str, *, stdout: str = "", stderr: str = "", **fields) -> ScriptRun:
    """Store how a run ended (its output encrypted)."""
    run.state = state
    run.finished_at = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    run.reason = run.reason[:500]
    if stdout or stderr:
        run.set_output(stdout, stderr)
    run.save()
    return run


def user_of(attempt: RotationAttempt) -> PamUser:
    return PamUser.objects.select_related("configuration", "resource").get(pk=attempt.user_id)


def report(attempt: RotationAttempt, outcome: Outcome, *, again: bool = False) -> None:
    """Record how a committed attempt's scripts ended; a failure warns on the account, the audit log and by mail."""
    previous = RotationAttempt.objects.only("scripts_message").get(pk=attempt.pk).scripts_message
    if outcome.ok:
        attempt.record_scripts(outcome.state, ("Run again: " if again else "") + outcome.message)
        if again and previous:
            PamUser.objects.filter(pk=attempt.user_id, rotation_error=previous).update(rotation_error="")
        return
    message = f"rotated; {outcome.message}"
    attempt.record_scripts(outcome.state, message)
    # The warning stays on the account until its next clean rotation (the commit clears it).
    PamUser.objects.filter(pk=attempt.user_id).update(rotation_error=message[:500])
    _audit_failure(attempt, f"Attempt #{attempt.pk} succeeded: {message}")
    transaction.on_commit(lambda: notifications.notify_script_failure(attempt))


def report_unresolved(attempt: RotationAttempt) -> None:
    """Audit and mail that a scripts-only attempt's scripts did not all succeed (both passwords kept)."""
    protocol.audit_attempt(attempt)  # the attempt's own event: "Attempt #N outcome unknown: …"
    transaction.on_commit(lambda: notifications.notify_script_failure(attempt))


def _audit_failure(attempt: RotationAttempt, message: str) -> None:
    scheduled = attempt.trigger != Trigger.ON_DEMAND
    audit.record_event(
        AuditEvent.ROTATION_SCHEDULED_FAIL if scheduled else AuditEvent.ROTATION_ON_DEMAND_FAIL,
        instance=user_of(attempt),
        actor=attempt.requester,
        outcome=AuditOutcome.FAIL,
        message=message,
        attempt_id=attempt.pk,
        category=Category.ROTATION,
    )


def unknown_message(outcome: Outcome) -> str:
    """Return what a scripts-only attempt says when its scripts did not all succeed."""
    return (
        f"{outcome.message}. Both passwords are kept: the new one as pending, the stored one as current. "
        "Run the scripts again, or an administrator decides which one the account has."
    )


# -- Runs whose worker is gone ----------------------------------------------------------------


def _worker_gone(run: ScriptRun, now: dt.datetime) -> bool:
    if run.started_at < now - dt.timedelta(seconds=settings.SCRIPT_TIMEOUT) - STALE_GRACE:
        return True
    host, _, pid = run.worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def settle_stale_runs(attempt: RotationAttempt | None = None) -> int:
    """Mark runs whose worker died as unknown (and their committed attempt's scripts); return how many."""
    now = timezone.now()
    running = ScriptRun.objects.filter(state=RunState.RUNNING)
    if attempt is not None:
        running = running.filter(attempt=attempt)
    stale = [run for run in running if _worker_gone(run, now)]
    for run in stale:
        finish_run(run, RunState.UNKNOWN, reason="the worker stopped while it ran")
    attempts = {run.attempt_id for run in stale}
    for dead in RotationAttempt.objects.filter(
        Q(pk__in=attempts) & Q(scripts_state=ScriptsState.RUNNING)
    ).exclude(script_runs__state=RunState.RUNNING):
        last_round = dead.script_runs.aggregate(last=Max("round"))["last"]
        runs = dead.script_runs.filter(round=last_round).exclude(state=RunState.SUCCEEDED)
        failed = [run.summary for run in runs.order_by("position")]
        outcome = Outcome(ScriptsState.UNKNOWN, "script " + ", ".join(failed))
        if dead.state in OK_STATES:
            report(dead, outcome)
        else:
            dead.record_scripts(outcome.state, outcome.message)
    return len(stale)
