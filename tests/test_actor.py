"""One "who did it" value: an Actor built at the edge and handed down unchanged, never the old arguments."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from django.test import RequestFactory

from audit.actors import PERSON, SYSTEM, SYSTEM_ACTOR, Actor
from audit.events import record_event
from audit.models import AuditEvent
from rotation import protocol, services
from rotation.models import AttemptState
from tests.conftest import make_user

ROOT = Path(__file__).resolve().parent.parent
OLD_ARGUMENTS = frozenset({"actor_name", "remote_address"})
# The event's columns keep their names: building a row or querying one is data, not an argument.
COLUMN_CALLS = frozenset({"AuditEvent", "filter", "exclude", "get", "create", "update", "get_or_create"})
SKIPPED_FOLDERS = frozenset(
    {".venv", ".git", "migrations", "node_modules", "static", "test-artifacts", "data"}
)


def _name(function: ast.expr) -> str:
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def old_arguments(source: str, where: str) -> list[str]:
    """Return each place a source takes or passes ``actor_name=`` / ``remote_address=`` as an argument."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _name(node.func) not in COLUMN_CALLS:
            found += [
                f"{where}:{node.lineno} {_name(node.func)}({keyword.arg}=…)"
                for keyword in node.keywords
                if keyword.arg in OLD_ARGUMENTS
            ]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            for parameter in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
                if parameter.arg in OLD_ARGUMENTS:
                    found.append(
                        f"{where}:{node.lineno} def {getattr(node, 'name', 'lambda')}({parameter.arg})"
                    )
    return found


def project_sources():
    """Yield (relative path, text) of the project's Python files outside audit/, migrations and .venv."""
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_FOLDERS)
        relative = Path(folder).relative_to(ROOT)
        if relative.parts[:1] == ("audit",):
            continue
        for name in sorted(files):
            if name.endswith(".py"):
                yield str(relative / name), (Path(folder) / name).read_text(encoding="utf-8")


def test_no_module_outside_audit_takes_or_passes_the_old_who_arguments():
    sources = list(project_sources())
    assert len(sources) > 100 and any(path.startswith("rotation/") for path, _ in sources)
    found = [place for path, text in sources for place in old_arguments(text, path)]
    assert found == [], "pass one audit.actors.Actor (actor=...) instead:\n" + "\n".join(found)


def test_the_scan_finds_the_old_arguments_and_leaves_the_columns_alone():
    planted = (
        "def request(user, *, actor=None, actor_name=''):\n"
        "    services.request_rotation(user, remote_address='192.0.2.1')\n"
        "    AuditEvent.objects.filter(actor_name='carol', remote_address='192.0.2.1')\n"
        "    AuditEvent(actor_name='carol')\n"
    )
    assert old_arguments(planted, "x.py") == [
        "x.py:1 def request(actor_name)",
        "x.py:2 request_rotation(remote_address=…)",
    ]


def test_an_event_takes_an_actor_and_nothing_else(db, carol):
    with pytest.raises(TypeError):
        record_event(AuditEvent.RECORD_UPDATED, actor=carol)  # a User is not an Actor
    with pytest.raises(TypeError):
        record_event(AuditEvent.RECORD_UPDATED, **{"actor_name": "carol"})  # the old keyword is gone
    nobody = record_event(AuditEvent.RECORD_UPDATED)
    assert (nobody.actor_id, nobody.actor_name, nobody.remote_address) == (None, "", None)
    assert SYSTEM_ACTOR == Actor.system() and SYSTEM_ACTOR.kind == SYSTEM


def test_the_actor_handed_to_a_rotation_request_is_kept_for_its_events(db, carol):
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.9")
    request.user = carol
    who = Actor.from_request(request)
    user = make_user()  # rotation off: the request is refused and audited at once
    refused = services.request_rotation(user, actor=who, enqueue=False)
    assert refused.state == AttemptState.REFUSED
    event = AuditEvent.objects.get(attempt_id=refused.pk)
    assert (event.actor, event.actor_name, event.remote_address) == (carol, "carol", "192.0.2.9")
    # A worker ends the attempt later, without the request: its event names carol from the attempt's row.
    refused.refresh_from_db()
    assert refused.requester == Actor(PERSON, "carol", carol)
    later = protocol.attempt_event(refused)
    assert (later.actor, later.actor_name, later.remote_address) == (carol, "carol", None)


def test_a_system_actor_and_its_renaming_reach_the_attempt(db):
    user = make_user()
    attempt = services.request_rotation(user, actor=Actor.system("heartbeat").renamed("heartbeat: drifted"))
    attempt.refresh_from_db()
    assert (attempt.requested_by_id, attempt.requested_by_name) == (None, "heartbeat: drifted")
    assert attempt.requester == Actor.system("heartbeat: drifted")
    assert Actor.system("x" * 300).renamed("y" * 300).name == "y" * 150
