"""Run an account's post-rotation scripts with Keeper's contract (KEEPER-FORMAT.md §6): which, when, and the entry points.

Each script gets one base64 line on stdin (scripts/payload.py) and runs under its own supervisor
as the script user (scripts/process.py, scripts/supervise.py); its output is masked
(scripts/masking.py) and stored encrypted; runs are recorded and settled in scripts/settlement.py.
Delivery is at least once: "Run scripts again" repeats. The engine reaches this module only
through the hooks ``ScriptsConfig.ready()`` registers (rotation/hooks.py).
"""

from __future__ import annotations

import logging
import shutil

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.views.decorators.debug import sensitive_variables

from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent, Category
from audit.models import Outcome as AuditOutcome
from records.models import PamUser, RotationType
from rotation import protocol, services
from rotation.models import OK_STATES, AttemptState, RotationAttempt, ScriptsState
from scripts import files, masking, payload, process, queue, settlement
from scripts.models import PostRotationScript, RunState, ScriptRun
from scripts.settlement import (  # noqa: F401 - part of this module's interface (rotation calls them)
    Outcome,
    outcome_of,
    report,
    report_unresolved,
    settle_stale_runs,
    unknown_message,
    user_of,
)

log = logging.getLogger(__name__)

# Why "Run scripts again" is refused while a delivery runs them; what a rerun that stored the password says.
SCRIPTS_RUNNING = "Its scripts are running now."
RERUN_STORED = "Run again: every script succeeded; the pending password is now stored."


# -- Which scripts --------------------------------------------------------------------------


def scripts_for(user: PamUser) -> list[PostRotationScript]:
    """Return the scripts a rotation of ``user`` runs: its own, its directory's, its configuration's, each in order."""
    scripts = PostRotationScript.objects.prefetch_related("additional_credentials__configuration")
    ordered = list(scripts.filter(user_id=user.pk))
    if user.resource_id is not None:
        ordered += list(scripts.filter(directory_id=user.resource_id))
    return ordered + list(scripts.filter(configuration_id=user.configuration_id))


def accounts_with_scripts(users) -> set[int]:
    """Return the ids of those accounts whose rotation runs post-rotation scripts (one query for a batch)."""
    users = list(users)
    attached = PostRotationScript.objects.filter(
        Q(user_id__in=[user.pk for user in users])
        | Q(directory_id__in=[user.resource_id for user in users if user.resource_id])
        | Q(configuration_id__in={user.configuration_id for user in users})
    ).values_list("user_id", "directory_id", "configuration_id")
    owners = {
        owner for row in attached for owner in zip(("user", "directory", "configuration"), row, strict=True)
    }
    return {
        user.pk
        for user in users
        if ("user", user.pk) in owners
        or ("directory", user.resource_id) in owners
        or ("configuration", user.configuration_id) in owners
    }


@sensitive_variables()
def _passwords_now(user: PamUser) -> tuple[str, str]:
    """Return (stored password, the one before it) of an account."""
    previous = user.password_versions.order_by("-replaced_at", "-id").first()
    return user.get_password(), previous.get_password() if previous is not None else ""


# -- The entry points -------------------------------------------------------------------------


def after_commit(attempt: RotationAttempt) -> Outcome | None:
    """Run the post-rotation scripts of a committed general rotation; return how they ended (None: none ran).

    Contract, for every path that commits a rotation (single or batched):
    - call it once per attempt that committed (succeeded, or reconciled to the new password),
      after the commit's transaction, never inside one: scripts take seconds;
    - it reads the new password from the account and the old one from its latest
      ``PasswordVersion``, so call it before another rotation of the same account commits;
    - it never raises and never changes the password: a failing script is recorded on the
      attempt (``scripts_state``/``scripts_message``), shown on the account, audited and mailed;
    - it does nothing for a scripts-only account (its scripts were the change) and nothing for
      an attempt whose scripts already ran (a second call, a re-delivered task).
    """
    try:
        user = user_of(attempt)
        if user.rotation_type == RotationType.SCRIPTS_ONLY:
            return None
        scripts = scripts_for(user)
        if not scripts:
            return None
        if not attempt.claim_scripts():
            return None
        new_password, old_password = _passwords_now(user)
        outcome = _deliver(attempt, user, scripts, new_password, old_password, round_number=1)
        report(attempt, outcome)
        return outcome
    except Exception as exc:  # scripts must never undo or hide a committed rotation
        log.error("attempt %s: post-rotation scripts stopped by %s", attempt.pk, type(exc).__name__)
        outcome = Outcome(
            ScriptsState.UNKNOWN, f"the scripts were interrupted by an internal error ({type(exc).__name__})"
        )
        report(attempt, outcome)
        return outcome


@sensitive_variables()
def run_as_change(attempt: RotationAttempt, user: PamUser, new_password: str) -> Outcome:
    """Run a scripts-only account's scripts as its change, with the pending password; record how they ended."""
    scripts = scripts_for(user)
    attempt.record_scripts(ScriptsState.RUNNING, "")
    outcome = _deliver(attempt, user, scripts, new_password, user.get_password(), round_number=1)
    attempt.record_scripts(outcome.state, outcome.message)
    return outcome


def refused_reason(attempt: RotationAttempt) -> str:
    """Return why an attempt's scripts cannot run again now, or an empty string."""
    settle_stale_runs(attempt)
    attempt.refresh_from_db()
    user = user_of(attempt)
    if (
        attempt.scripts_state == ScriptsState.RUNNING
        or attempt.script_runs.filter(state=RunState.RUNNING).exists()
    ):
        return SCRIPTS_RUNNING
    if not scripts_for(user):
        return "No post-rotation script is attached to this account, its directory or its configuration."
    scripts_only = user.rotation_type == RotationType.SCRIPTS_ONLY
    if scripts_only and attempt.state == AttemptState.UNKNOWN and attempt.pending_password_encrypted:
        return ""
    if attempt.state in OK_STATES and not scripts_only:
        return ""
    if attempt.state in OK_STATES:
        latest = user.attempts.filter(state__in=OK_STATES).order_by("-finished_at", "-id").first()
        if latest is not None and latest.pk == attempt.pk:
            return ""
        return "A later rotation replaced this attempt's password; run that attempt's scripts instead."
    return "Only a rotation that committed, or a scripts-only rotation whose scripts failed, can run its scripts again."


def request_rerun(attempt: RotationAttempt, *, actor: Actor) -> str:
    """Queue "Run scripts again" for an attempt on its gateway's workers; return why not, or an empty string."""
    reason = refused_reason(attempt)
    if reason:
        return reason
    audit.record_event(
        AuditEvent.SCRIPTS_RERUN,
        instance=attempt.user,
        actor=actor,
        outcome=AuditOutcome.OK,
        message=f"Attempt #{attempt.pk}: post-rotation scripts queued to run again",
        attempt_id=attempt.pk,
        category=Category.ROTATION,
    )
    transaction.on_commit(lambda: queue.enqueue_rerun(attempt))
    return ""


@sensitive_variables()
def rerun(attempt_id: int) -> dict:
    """Run an attempt's scripts again with the current password (scripts-only: the pending one); return a non-secret status.

    For a scripts-only attempt whose outcome is unknown, success stores the pending password.
    """
    attempt = RotationAttempt.objects.get(pk=attempt_id)
    reason = refused_reason(attempt)
    if reason:
        return {"attempt": attempt_id, "scripts": "refused", "message": reason}
    if not attempt.claim_scripts(again=True):  # a second delivery of the same task is running it
        return {"attempt": attempt_id, "scripts": "refused", "message": SCRIPTS_RUNNING}
    attempt.refresh_from_db()
    user = user_of(attempt)
    round_number = (attempt.script_runs.aggregate(last=Max("round"))["last"] or 0) + 1
    if attempt.state == AttemptState.UNKNOWN:
        outcome = _deliver(
            attempt, user, scripts_for(user), attempt.get_pending(), user.get_password(), round_number
        )
        _settle_scripts_only(attempt, outcome)
    else:
        new_password, old_password = _passwords_now(user)
        outcome = _deliver(attempt, user, scripts_for(user), new_password, old_password, round_number)
        report(attempt, outcome, again=True)
    return {"attempt": attempt_id, "scripts": outcome.state}


def _settle_scripts_only(attempt: RotationAttempt, outcome: Outcome) -> None:
    """Settle an unknown scripts-only attempt by how its scripts ran again: store the pending password, or stay unknown.

    The same steps a first run's outcome takes: the commit (reconciled) with its after-commit
    hooks, or the protocol's unknown end, which reports through this app's change strategy.
    """
    if outcome.ok:
        attempt.record_scripts(outcome.state, RERUN_STORED)
        services.commit_delivered(attempt)
        return
    attempt.record_scripts(outcome.state, outcome.message)
    protocol.end_unknown(attempt, unknown_message(outcome), None)


# -- Delivering to each script ----------------------------------------------------------------


@sensitive_variables()
def _deliver(attempt, user, scripts, new_password, old_password, round_number) -> Outcome:
    runs = [
        _run(attempt, user, script, new_password, old_password, round_number, position)
        for position, script in enumerate(scripts, 1)
    ]
    return outcome_of(runs)


@sensitive_variables()
def _run(attempt, user, script, new_password, old_password, round_number, position) -> ScriptRun:
    """Run one script and store its result (its row says ``running`` while it runs)."""
    run = settlement.start_run(attempt, script, round_number, position)
    try:
        file, command = _program(script)
    except files.ScriptRefused as exc:
        return settlement.finish_run(run, RunState.FAILED, reason=f"refused: {exc}")
    line = payload.build(user, new_password, old_password, list(script.additional_credentials.all()))
    result = process.execute(file, command, line.line, settings.SCRIPT_TIMEOUT)
    state = (
        RunState.TIMED_OUT
        if result.timed_out
        else RunState.SUCCEEDED
        if result.exit_code == 0
        else RunState.FAILED
    )
    reason = result.error or (f"killed after {settings.SCRIPT_TIMEOUT} s" if result.timed_out else "")
    return settlement.finish_run(
        run,
        state,
        exit_code=result.exit_code,
        reason="; ".join(part for part in (reason, result.warning) if part),
        stdout=masking.mask(result.stdout, line.secrets),
        stderr=masking.mask(result.stderr, line.secrets),
    )


def _program(script: PostRotationScript):
    """Return (the script file, its interpreter's absolute path or ""), checking both again right before it runs."""
    path = files.resolve(script.file, executable=not script.command)
    if not script.command:
        return path, ""
    files.check_command(script.command)
    program = shutil.which(script.command, path=process.script_path())
    if program is None:
        raise files.ScriptRefused(f"the command {script.command!r} is not found on PATH")
    return path, program


# -- The engine's change strategy (registered by ScriptsConfig.ready) ---------------------------


def refused_for_change(user: PamUser) -> str:
    """Return why a scripts-only account cannot be rotated by its scripts, or ""."""
    if scripts_for(user):
        return ""
    return "A scripts-only rotation needs a post-rotation script on the account, its directory or its configuration."


@sensitive_variables()
def change_by_scripts(attempt: RotationAttempt, user: PamUser, new_password: str) -> tuple[bool, str]:
    """Deliver a scripts-only account's new password by running its scripts; return (delivered, message)."""
    outcome = run_as_change(attempt, user, new_password)
    return outcome.ok, outcome.message if outcome.ok else unknown_message(outcome)
