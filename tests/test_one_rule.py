"""Issue 20's rules written once: attempt states change only through RotationAttempt's methods, audit values are constants.

An AST pass over every non-test module (migrations and the virtualenv left out):

- outside rotation/models.py, no ``.update()`` / ``bulk_update()`` / ``update_rows()`` on
  RotationAttempt rows writes ``state``, ``scripts_state`` or ``retry_at`` (each has a method), and no
  ``<attempt>.state = …`` is assigned by hand;
- no call passes ``outcome=`` or ``category=`` a string literal, and no audit event is written with
  a literal event name: the values come from ``audit.models`` (Outcome, Category, AuditEvent).

Each check is also run on planted source, so a check that cannot fail would show here. The
methods that replaced the last hand-written updates keep their race guards (tested below), and
the scripts-only rerun that fails again ends through the protocol's step, as a first run does.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from audit.models import AuditEvent, Category, Outcome
from rotation.models import AttemptState, RotationAttempt, ScriptsState, Trigger
from scripts import runner
from tests.conftest import make_user
from tests.test_rotation import rotate
from tests.test_scripts import (  # noqa: F401 - the *_fixture names are test_scripts' fixtures, shared
    as_script_user_fixture,
    attach,
    script_account_fixture,
    scripts_dir_fixture,
    write_script,
)
from tests.test_scripts_only import no_directory, scripts_only_user  # noqa: F401 - a fixture, shared

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_PARTS = {".venv", "tests", "migrations", "node_modules", "test-artifacts", "static", "templates"}
# The one module that writes these fields: the model's transitions.
OWNER = Path("rotation/models.py")
GUARDED_FIELDS = frozenset({"state", "scripts_state", "retry_at"})
# The related name of RotationAttempt's account (``user.attempts``) and the model itself.
ATTEMPT_NAMES = frozenset({"RotationAttempt", "attempts"})
VALUE_KEYWORDS = ("outcome", "category")
EVENT_WRITERS = frozenset({"record_event", "new_event"})


def project_files() -> list[Path]:
    """Return every project module checked here, relative to the repository."""
    return sorted(
        path.relative_to(ROOT)
        for path in ROOT.rglob("*.py")
        if not SKIPPED_PARTS & set(path.relative_to(ROOT).parts)
        and not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    )


def _chain(node: ast.AST) -> list[str]:
    """Return the names along a call's receiver (``a.b(x).c`` → a, b, c), not inside its arguments."""
    names = []
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            names.append(node.id)
            return names
        else:
            return names


def _attempt_rows(tree: ast.AST) -> set[str]:
    """Return the names that hold RotationAttempt rows (the model, its related manager, variables set from them)."""
    held = set(ATTEMPT_NAMES)
    while True:
        more = {
            target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and held & set(_chain(node.value))
            for target in node.targets
            if isinstance(target, ast.Name)
        } - held
        if not more:
            return held
        held |= more


def _listed_fields(node: ast.AST | None) -> set[str]:
    """Return the field names a literal list or tuple of strings names."""
    if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return set()
    return {
        item.value for item in node.elts if isinstance(item, ast.Constant) and isinstance(item.value, str)
    }


def state_writes(source: str, filename: str = "<planted>") -> list[str]:
    """Return where a module writes an attempt's guarded fields without the model's methods."""
    tree = ast.parse(source, filename)
    rows = _attempt_rows(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            on_attempts = bool(rows & set(_chain(node.func.value)))
            if node.func.attr == "update" and on_attempts:
                written = {keyword.arg for keyword in node.keywords} & GUARDED_FIELDS
                if written:
                    found.append(f"{where}: .update({', '.join(sorted(written))}=…) on RotationAttempt rows")
            if node.func.attr == "bulk_update" and on_attempts:
                fields = node.args[1] if len(node.args) > 1 else None
                fields = next((kw.value for kw in node.keywords if kw.arg == "fields"), fields)
                if _listed_fields(fields) & GUARDED_FIELDS:
                    found.append(f"{where}: bulk_update of guarded fields on RotationAttempt rows")
        if isinstance(node, ast.Call) and _chain(node.func)[:1] == ["update_rows"]:
            model = node.args[0] if node.args else None
            fields = node.args[2] if len(node.args) > 2 else None
            if isinstance(model, ast.Name) and model.id == "RotationAttempt":
                if _listed_fields(fields) & GUARDED_FIELDS:
                    found.append(f"{where}: update_rows of guarded fields on RotationAttempt")
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if (
                        isinstance(element, ast.Attribute)
                        and element.attr in GUARDED_FIELDS
                        and isinstance(element.value, ast.Name)
                        and "attempt" in element.value.id.lower()
                    ):
                        found.append(f"{where}: {element.value.id}.{element.attr} assigned by hand")
    return found


def _is_literal(node: ast.AST) -> bool:
    """Return whether an expression is, or picks between, non-empty string literals."""
    return any(
        isinstance(part, ast.Constant) and isinstance(part.value, str) and part.value
        for part in ast.walk(node)
    )


def literal_audit_values(source: str, filename: str = "<planted>") -> list[str]:
    """Return where a module passes a literal outcome, category or audit event name."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        for keyword in node.keywords:
            if keyword.arg in VALUE_KEYWORDS and _is_literal(keyword.value):
                found.append(f"{where}: {keyword.arg}={ast.unparse(keyword.value)}")
        callee = _chain(node.func) or [""]
        writer = callee[0] in EVENT_WRITERS  # record_event(...), audit.new_event(...)
        if not writer and callee[-1] != "AuditEvent":  # AuditEvent(...), AuditEvent.objects.create(...)
            continue
        event = next((keyword.value for keyword in node.keywords if keyword.arg == "event"), None)
        if event is None and writer and node.args:
            event = node.args[0]
        if event is not None and _is_literal(event):
            found.append(f"{where}: event {ast.unparse(event)}")
    return found


def _scan(check) -> list[str]:
    found = []
    for path in project_files():
        try:
            source = (ROOT / path).read_text()
        except FileNotFoundError:  # removed while the suite runs (another checkout's edit)
            continue
        found += check(source, str(path))
    return found


def test_attempt_fields_change_only_through_the_models_methods():
    found = [line for line in _scan(state_writes) if not line.startswith(f"{OWNER}:")]
    assert found == [], "use a RotationAttempt method (rotation/models.py) instead:\n" + "\n".join(found)


def test_audit_values_are_constants_everywhere():
    found = _scan(literal_audit_values)
    assert found == [], "use audit.models' Outcome, Category and AuditEvent names:\n" + "\n".join(found)


def test_a_real_module_with_a_planted_update_is_caught():
    source = (ROOT / "rotation/dispatch.py").read_text()
    assert state_writes(source, "rotation/dispatch.py") == []
    planted = source + (
        "\n\ndef _planted(attempt):\n"
        "    RotationAttempt.objects.filter(pk=attempt.pk, retry_at=attempt.retry_at).update(retry_at=None)\n"
    )
    assert len(state_writes(planted, "rotation/dispatch.py")) == 1


@pytest.mark.parametrize(
    "planted",
    [
        "RotationAttempt.objects.filter(pk=1).update(state='failed')",
        "RotationAttempt.objects.select_for_update().filter(pk=1).exclude(x=1).update(scripts_state=S.RUNNING)",
        "user.attempts.filter(state=A.QUEUED).update(retry_at=None)",
        "rows = RotationAttempt.objects.filter(pk=1)\nrows = rows.exclude(x=1)\nrows.update(state=A.FAILED)",
        "RotationAttempt.objects.bulk_update(rows, ['state', 'finished_at'])",
        "update_rows(RotationAttempt, rows, ('scripts_state',))",
        "attempt.state = AttemptState.FAILED",
        "retry_attempt.retry_at, other = None, 1",
    ],
)
def test_a_planted_state_write_is_caught(planted):
    assert len(state_writes(planted)) == 1


@pytest.mark.parametrize(
    "harmless",
    [
        "WebhookDelivery.objects.filter(pk=1, retry_at=r).update(retry_at=None)",
        "AccessRequest.objects.filter(pk=1).update(state=RequestState.DENIED)",
        "fields.update(state=RequestState.APPROVED)",
        "RotationAttempt.objects.filter(pk=1).update(pending_password_encrypted='')",
        "update_rows(RotationAttempt, rows, ['pending_password_encrypted', 'self_change'])",
        "attempt.mark_unknown(message)",
        "run.state = RunState.FAILED",
        "RotationAttempt.objects.filter(state='queued').count()",
    ],
)
def test_harmless_code_is_not_flagged(harmless):
    assert state_writes(harmless) == []


@pytest.mark.parametrize(
    "planted",
    [
        "record_event(AuditEvent.TOKEN_CREATED, actor=a, outcome='ok', category=Category.SECURITY)",
        "audit.record_event(AuditEvent.TOKEN_CREATED, actor=a, outcome=Outcome.OK, category='security')",
        "AuditEvent(event=AuditEvent.LOGIN, outcome='ok' if ok else Outcome.FAIL)",
        "new_event('record_update', instance=u, outcome=Outcome.OK, category=Category.RECORD)",
        "AuditEvent.objects.create(event=AuditEvent.LOGIN, category='login')",
        "AuditEvent(event='password_revealed', outcome=Outcome.OK)",
    ],
)
def test_a_planted_literal_audit_value_is_caught(planted):
    assert len(literal_audit_values(planted)) == 1


@pytest.mark.parametrize(
    "harmless",
    [
        "record_event(AuditEvent.TOKEN_CREATED, actor=a, outcome=Outcome.OK, category=Category.SECURITY)",
        "AuditEvent(event=event, outcome=Outcome.OK if ok else Outcome.FAIL, message='Attempt #1 failed')",
        "cls(outcome=outcome if outcome in OUTCOMES else '')",
        "_record('Secret ID issued', actor=actor)",
    ],
)
def test_constant_audit_values_are_not_flagged(harmless):
    assert literal_audit_values(harmless) == []


# -- The methods keep the conditional UPDATEs' race guards ---------------------------------------


def _attempt(**fields) -> RotationAttempt:
    return RotationAttempt.objects.create(user=make_user(), **fields)


def test_of_two_first_claims_on_an_attempts_scripts_one_wins(db):
    attempt = _attempt(state=AttemptState.SUCCEEDED)
    other = RotationAttempt.objects.get(pk=attempt.pk)  # a second delivery read the same row

    assert attempt.claim_scripts() is True
    assert attempt.scripts_state == ScriptsState.RUNNING
    assert other.claim_scripts() is False
    assert other.claim_scripts(again=True) is False  # running: "Run scripts again" waits too
    attempt.record_scripts(ScriptsState.FAILED, "script x failed (exit 1)")
    assert other.claim_scripts() is False  # the first run happened: only "again" runs them now
    assert RotationAttempt.objects.get(pk=attempt.pk).scripts_state == ScriptsState.FAILED


@pytest.mark.parametrize(
    "state", [ScriptsState.NONE, ScriptsState.SUCCEEDED, ScriptsState.FAILED, ScriptsState.UNKNOWN]
)
def test_run_again_claims_scripts_that_are_not_running(db, state):
    attempt = _attempt(state=AttemptState.SUCCEEDED, scripts_state=state)
    other = RotationAttempt.objects.get(pk=attempt.pk)
    assert attempt.claim_scripts(again=True) is True
    assert other.claim_scripts(again=True) is False
    assert RotationAttempt.objects.get(pk=attempt.pk).scripts_state == ScriptsState.RUNNING


def test_of_two_dispatchers_one_takes_a_waiting_retry(db):
    attempt = _attempt(trigger=Trigger.RETRY, try_number=2, retry_at=timezone.now())
    other = RotationAttempt.objects.get(pk=attempt.pk)
    assert attempt.take_for_sending() is True and attempt.retry_at is None
    assert other.take_for_sending() is False
    assert RotationAttempt.objects.get(pk=attempt.pk).retry_at is None


def test_only_queued_attempts_with_no_retry_waiting_are_marked_for_sending(db):
    now = timezone.now()
    orphan = _attempt()
    waiting = _attempt(retry_at=now + dt.timedelta(minutes=2))
    running = _attempt(state=AttemptState.RUNNING)
    ids = [orphan.pk, waiting.pk, running.pk]

    assert RotationAttempt.mark_for_sending(ids, now) == 1
    assert RotationAttempt.mark_for_sending(ids, now) == 0  # a second dispatcher marks nothing
    stored = dict(RotationAttempt.objects.filter(pk__in=ids).values_list("pk", "retry_at"))
    assert stored == {orphan.pk: now, waiting.pk: now + dt.timedelta(minutes=2), running.pk: None}


# -- The scripts-only rerun ends through the protocol ---------------------------------------------


@pytest.mark.usefixtures("no_directory")
def test_a_scripts_only_rerun_that_fails_again_stays_unknown_and_is_audited_like_a_first_run(
    db, scripts_dir, django_capture_on_commit_callbacks
):
    user = scripts_only_user()
    attach(user, write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 3\n"))
    attempt = rotate(user)
    assert attempt.state == AttemptState.UNKNOWN
    pending = attempt.get_pending()
    write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 4\n")

    with django_capture_on_commit_callbacks(execute=True):
        assert runner.rerun(attempt.pk) == {"attempt": attempt.pk, "scripts": ScriptsState.FAILED}

    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.state == AttemptState.UNKNOWN and attempt.get_pending() == pending
    assert attempt.scripts_state == ScriptsState.FAILED
    assert "script deploy.sh failed (exit 4)" in attempt.error_message
    assert "Both passwords are kept" in attempt.error_message
    assert user.get_password() != pending
    events = AuditEvent.objects.filter(attempt_id=attempt.pk, event=AuditEvent.ROTATION_ON_DEMAND_FAIL)
    first, again = events.order_by("pk")
    for event in (first, again):
        assert (event.outcome, event.category) == (Outcome.FAIL, Category.ROTATION)
    assert "exit 3" in first.message
    assert again.message == f"Attempt #{attempt.pk} outcome unknown: {attempt.error_message}"
