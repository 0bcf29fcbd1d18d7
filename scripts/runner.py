"""Run an account's post-rotation scripts with Keeper's contract (KEEPER-FORMAT.md §6).

Each script gets one base64 line on stdin (scripts/payload.py), an argv list (no shell), a
minimal environment (PATH, HOME, LANG, TMPDIR), a fresh working directory removed afterwards,
and ``SCRIPT_TIMEOUT`` seconds before its whole process group is killed. Exit 0 is success.
Output is kept up to 64 KiB per stream with every password of the payload masked. A run is
stored as ``running`` before it starts, so a worker killed meanwhile leaves a row that a later
look (``settle_stale_runs``) marks unknown. Delivery is at least once: "Run scripts again" repeats.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from records.models import PamUser, RotationType
from rotation import audit, notifications
from rotation.faults import fault_point
from rotation.models import OK_STATES, AttemptState, AuditEvent, RotationAttempt, ScriptsState, Trigger
from scripts import files, payload
from scripts.models import OUTPUT_LIMIT, PostRotationScript, RunState, ScriptRun

log = logging.getLogger(__name__)

MASK = b"********"
# A run still "running" this long after its timeout has no worker left to finish it.
STALE_GRACE = dt.timedelta(seconds=30)
# How long a script's leftover children may hold its output open after it exited.
LEFTOVER_SECONDS = 1.0
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Outcome:
    """How a set of script runs ended; the message names every script that did not succeed."""

    state: str
    message: str

    @property
    def ok(self) -> bool:
        return self.state == ScriptsState.SUCCEEDED


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


def _user(attempt: RotationAttempt) -> PamUser:
    return PamUser.objects.select_related("configuration", "resource").get(pk=attempt.user_id)


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
        user = _user(attempt)
        if user.rotation_type == RotationType.SCRIPTS_ONLY:
            return None
        scripts = scripts_for(user)
        if not scripts:
            return None
        claimed = RotationAttempt.objects.filter(pk=attempt.pk, scripts_state=ScriptsState.NONE).update(
            scripts_state=ScriptsState.RUNNING
        )
        if not claimed:
            return None
        new_password, old_password = _passwords_now(user)
        outcome = _deliver(attempt, user, scripts, new_password, old_password, round_number=1)
        _report(attempt, outcome)
        return outcome
    except Exception as exc:  # scripts must never undo or hide a committed rotation
        log.error("attempt %s: post-rotation scripts stopped by %s", attempt.pk, type(exc).__name__)
        outcome = Outcome(
            ScriptsState.UNKNOWN, f"the scripts were interrupted by an internal error ({type(exc).__name__})"
        )
        _report(attempt, outcome)
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
    user = _user(attempt)
    if (
        attempt.scripts_state == ScriptsState.RUNNING
        or attempt.script_runs.filter(state=RunState.RUNNING).exists()
    ):
        return "Its scripts are running now."
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


def request_rerun(attempt: RotationAttempt, *, actor=None, remote_address: str | None = None) -> str:
    """Queue "Run scripts again" for an attempt on its gateway's workers; return why not, or an empty string."""
    from scripts.tasks import enqueue_rerun

    reason = refused_reason(attempt)
    if reason:
        return reason
    audit.record_event(
        AuditEvent.SCRIPTS_RERUN,
        instance=attempt.user,
        actor=actor,
        remote_address=remote_address,
        outcome="ok",
        message=f"Attempt #{attempt.pk}: post-rotation scripts queued to run again",
        attempt_id=attempt.pk,
        category="rotation",
    )
    transaction.on_commit(lambda: enqueue_rerun(attempt))
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
    claimed = (
        RotationAttempt.objects.filter(pk=attempt_id)
        .exclude(scripts_state=ScriptsState.RUNNING)
        .update(scripts_state=ScriptsState.RUNNING)
    )
    if not claimed:  # a second delivery of the same task is running it
        return {"attempt": attempt_id, "scripts": "refused", "message": "Its scripts are running now."}
    attempt.refresh_from_db()
    user = _user(attempt)
    round_number = (attempt.script_runs.aggregate(last=Max("round"))["last"] or 0) + 1
    if attempt.state == AttemptState.UNKNOWN:
        outcome = _deliver(
            attempt, user, scripts_for(user), attempt.get_pending(), user.get_password(), round_number
        )
        _settle_scripts_only(attempt, outcome)
    else:
        new_password, old_password = _passwords_now(user)
        outcome = _deliver(attempt, user, scripts_for(user), new_password, old_password, round_number)
        _report(attempt, outcome, again=True)
    return {"attempt": attempt_id, "scripts": outcome.state}


def _settle_scripts_only(attempt: RotationAttempt, outcome: Outcome) -> None:
    from rotation import services

    if outcome.ok:
        attempt.record_scripts(
            outcome.state, "Run again: every script succeeded; the pending password is now stored."
        )
        services.commit_delivered(attempt)
        return
    attempt.record_scripts(outcome.state, outcome.message)
    attempt.mark_unknown(unknown_message(outcome))
    report_unresolved(attempt)


def report_unresolved(attempt: RotationAttempt) -> None:
    """Audit and mail that a scripts-only attempt's scripts did not all succeed (both passwords kept)."""
    _audit_failure(attempt, f"Attempt #{attempt.pk} outcome unknown: {attempt.error_message}")
    transaction.on_commit(lambda: notifications.notify_script_failure(attempt))


def _audit_failure(attempt: RotationAttempt, message: str) -> None:
    scheduled = attempt.trigger != Trigger.ON_DEMAND
    audit.record_event(
        AuditEvent.ROTATION_SCHEDULED_FAIL if scheduled else AuditEvent.ROTATION_ON_DEMAND_FAIL,
        instance=_user(attempt),
        actor=attempt.requested_by,
        actor_name=attempt.requested_by_name,
        outcome="fail",
        message=message,
        attempt_id=attempt.pk,
        category="rotation",
    )


def unknown_message(outcome: Outcome) -> str:
    """Return what a scripts-only attempt says when its scripts did not all succeed."""
    return (
        f"{outcome.message}. Both passwords are kept: the new one as pending, the stored one as current. "
        "Run the scripts again, or an administrator decides which one the account has."
    )


# -- Delivering to each script ----------------------------------------------------------------


@sensitive_variables()
def _deliver(attempt, user, scripts, new_password, old_password, round_number) -> Outcome:
    runs = [
        _run(attempt, user, script, new_password, old_password, round_number, position)
        for position, script in enumerate(scripts, 1)
    ]
    failed = [run for run in runs if run.state != RunState.SUCCEEDED]
    if not failed:
        return Outcome(ScriptsState.SUCCEEDED, f"{len(runs)} post-rotation script(s) succeeded")
    noun = "script" if len(failed) == 1 else "scripts"
    state = (
        ScriptsState.UNKNOWN if all(run.state == RunState.UNKNOWN for run in failed) else ScriptsState.FAILED
    )
    return Outcome(state, f"{noun} " + ", ".join(run.summary for run in failed))


def _report(attempt: RotationAttempt, outcome: Outcome, *, again: bool = False) -> None:
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


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@sensitive_variables()
def _run(attempt, user, script, new_password, old_password, round_number, position) -> ScriptRun:
    """Run one script and store its result (its row says ``running`` while it runs)."""
    run = ScriptRun.objects.create(
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
    try:
        argv = _argv(script)
    except files.ScriptRefused as exc:
        return _finish(run, RunState.FAILED, reason=f"refused: {exc}")
    line = payload.build(user, new_password, old_password, list(script.additional_credentials.all()))
    result = execute(argv, line.line, settings.SCRIPT_TIMEOUT)
    state = (
        RunState.TIMED_OUT
        if result.timed_out
        else RunState.SUCCEEDED
        if result.exit_code == 0
        else RunState.FAILED
    )
    return _finish(
        run,
        state,
        exit_code=result.exit_code,
        reason=result.error or (f"killed after {settings.SCRIPT_TIMEOUT} s" if result.timed_out else ""),
        stdout=mask(result.stdout, line.secrets),
        stderr=mask(result.stderr, line.secrets),
    )


def _finish(run: ScriptRun, state: str, **fields) -> ScriptRun:
    run.state = state
    run.finished_at = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    run.reason = run.reason[:500]
    run.save()
    return run


def _argv(script: PostRotationScript) -> list[str]:
    """Return the argv that runs a script, checking the file again right before it runs."""
    path = files.resolve(script.file, executable=not script.command)
    if not script.command:
        return [str(path)]
    program = shutil.which(script.command, path=_environment("/")["PATH"])
    if program is None:
        raise files.ScriptRefused(f"the command {script.command!r} is not found on PATH")
    return [program, str(path)]


def _environment(workdir: str) -> dict[str, str]:
    """Return a script's whole environment: no PAMROTATE_*, no DATABASE_URL, no key material."""
    return {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": os.path.expanduser("~"),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TMPDIR": workdir,
    }


# -- One process ------------------------------------------------------------------------------


@dataclass
class Execution:
    """What one process did: exit code (None when killed at the timeout or not started), output, error."""

    exit_code: int | None
    timed_out: bool
    stdout: bytes
    stderr: bytes
    error: str = ""


def execute(argv: list[str], stdin_line: str, timeout: float) -> Execution:
    """Run argv in a fresh directory and session, feed it one line, collect its output; kill its group at the end."""
    workdir = tempfile.mkdtemp(prefix="pamrotate-script-")
    try:
        try:
            process = subprocess.Popen(  # noqa: S603 - argv from a checked file, no shell
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env=_environment(workdir),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return Execution(None, False, b"", b"", error=f"could not start: {exc.strerror}")
        fault_point("during_scripts")
        return _collect(process, (stdin_line + "\n").encode(), timeout)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _collect(process: subprocess.Popen, data: bytes, timeout: float) -> Execution:
    deadline = time.monotonic() + timeout
    keep = OUTPUT_LIMIT + len(data) + 64  # past the limit, enough to mask a password cut by it
    buffers = {process.stdout: bytearray(), process.stderr: bytearray()}
    selector = selectors.DefaultSelector()
    for stream in (process.stdin, process.stdout, process.stderr):
        os.set_blocking(stream.fileno(), False)
    selector.register(process.stdin, selectors.EVENT_WRITE)
    selector.register(process.stdout, selectors.EVENT_READ)
    selector.register(process.stderr, selectors.EVENT_READ)
    pending = memoryview(data)
    timed_out, exited_at = False, None
    while selector.get_map():
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if exited_at is None and process.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > LEFTOVER_SECONDS:
            break  # a child it left behind holds the pipes open
        for key, _events in selector.select(min(0.2, deadline - now)):
            stream = key.fileobj
            if stream is process.stdin:
                try:
                    pending = pending[os.write(stream.fileno(), pending) :]
                except BlockingIOError:
                    continue
                except OSError:  # it exited or closed stdin without reading it all
                    pending = pending[:0]
                if not pending:
                    selector.unregister(stream)
                    stream.close()
                continue
            try:
                chunk = os.read(stream.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(stream)
                continue
            room = keep - len(buffers[stream])
            if room > 0:
                buffers[stream] += chunk[:room]  # the rest is read and dropped, so the script never blocks
    selector.close()
    if not timed_out:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    _kill_group(process)
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if not stream.closed:
            stream.close()
    return Execution(
        None if timed_out else process.returncode,
        timed_out,
        bytes(buffers[process.stdout]),
        bytes(buffers[process.stderr]),
    )


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the script's whole process group: itself and every child it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def mask(data: bytes, secrets: list[str]) -> str:
    """Return output as text with every secret masked (as written and JSON-escaped), cut at 64 KiB."""
    forms = set()
    for secret in secrets:
        if secret:
            forms |= {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for form in sorted(forms, key=len, reverse=True):
        data = data.replace(form.encode(), MASK)
    cut = len(data) > OUTPUT_LIMIT
    text = data[:OUTPUT_LIMIT].decode("utf-8", "replace")
    return text + "\n[output cut at 64 KiB]" if cut else text


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
        _finish(run, RunState.UNKNOWN, reason="the worker stopped while it ran")
    attempts = {run.attempt_id for run in stale}
    for dead in RotationAttempt.objects.filter(
        Q(pk__in=attempts) & Q(scripts_state=ScriptsState.RUNNING)
    ).exclude(script_runs__state=RunState.RUNNING):
        last_round = dead.script_runs.aggregate(last=Max("round"))["last"]
        runs = dead.script_runs.filter(round=last_round).exclude(state=RunState.SUCCEEDED)
        failed = [run.summary for run in runs.order_by("position")]
        outcome = Outcome(ScriptsState.UNKNOWN, "script " + ", ".join(failed))
        if dead.state in OK_STATES:
            _report(dead, outcome)
        else:
            dead.record_scripts(outcome.state, outcome.message)
    return len(stale)
