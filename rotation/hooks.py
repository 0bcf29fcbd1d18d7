"""Extension points of the rotation engine: plugins register here, the engine never names a plugin.

A plugin (``scripts`` today) registers in its ``AppConfig.ready()``:

- ``register_after_commit(run, wants=None)``: ``run(attempt)`` is called after an attempt's
  password became current (succeeded or reconciled), outside the commit's transaction. ``wants``
  (users → set of user ids) lets the engine skip accounts with nothing to do, in one query per commit.
  A hook must not raise; the engine logs and swallows what it raises anyway.
- ``register_changer(rotation_type, changer)``: how an account of that rotation type gets its new
  password when no directory changes it (``ChangeStrategy``).
- ``register_housekeeping(run)``: ``run()`` is called by the reconcile sweep (``reconcile_stale``).
- ``register_tick(run)``: ``run(now)`` is called at every dispatcher tick (about once a second in
  each qcluster); it must be quick and bounded (ops streams the audit log to the SIEM here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangeStrategy:
    """How a password is changed for a rotation type that no directory changes.

    ``refused(user)`` returns why this account cannot be rotated this way, or "" when it can.
    ``change(attempt, user, new_password)`` delivers the written-ahead password and returns
    ``(delivered, message)``: delivered → the engine commits; not → the attempt is marked unknown
    with ``message`` and ``unresolved(attempt)`` is called (both passwords are kept).
    ``settle(attempt)`` is called when the reconcile sweep meets an unknown attempt of this type
    (there is no directory to bind to).
    """

    refused: Callable
    change: Callable
    unresolved: Callable
    settle: Callable


@dataclass(frozen=True)
class _AfterCommit:
    run: Callable
    wants: Callable | None


_after_commit: list[_AfterCommit] = []
_changers: dict[str, ChangeStrategy] = {}
_housekeeping: list[Callable] = []
_ticks: list[Callable] = []
_slot_gates: list[Callable] = []


def register_after_commit(run: Callable, wants: Callable | None = None) -> None:
    """Call ``run(attempt)`` after every commit (for the accounts ``wants`` names, when given)."""
    if not any(hook.run is run for hook in _after_commit):
        _after_commit.append(_AfterCommit(run, wants))


def register_changer(rotation_type: str, changer: ChangeStrategy) -> None:
    """Make ``changer`` change the passwords of accounts of ``rotation_type``."""
    _changers[rotation_type] = changer


def register_housekeeping(run: Callable) -> None:
    """Call ``run()`` at every reconcile sweep."""
    if run not in _housekeeping:
        _housekeeping.append(run)


def register_tick(run: Callable) -> None:
    """Call ``run(now)`` at every dispatcher tick."""
    if run not in _ticks:
        _ticks.append(run)


def register_slot_gate(held: Callable) -> None:
    """Make ``held(user_ids)`` name the accounts whose scheduled slots pass without a rotation."""
    if held not in _slot_gates:
        _slot_gates.append(held)


def held_accounts(user_ids: Iterable[int]) -> set[int]:
    """Return the ids among ``user_ids`` that a slot gate holds (e.g. checked out: check-in rotates them)."""
    user_ids = list(user_ids)
    held: set[int] = set()
    for gate in _slot_gates:
        held |= set(gate(user_ids))
    return held


def changer_for(rotation_type: str) -> ChangeStrategy | None:
    """Return the registered strategy for a rotation type, or None (the directory changes it)."""
    return _changers.get(rotation_type)


def accounts_with_after_commit_work(users: Iterable) -> set[int] | None:
    """Return the ids of the users some hook wants, or None when a hook wants every account."""
    users = list(users)
    wanted: set[int] = set()
    for hook in _after_commit:
        if hook.wants is None:
            return None
        wanted |= set(hook.wants(users))
    return wanted


def after_commit(attempt) -> None:
    """Run every after-commit hook for one committed attempt; never raise."""
    for hook in _after_commit:
        try:
            hook.run(attempt)
        except Exception:  # a plugin must never undo or hide a commit
            log.exception("after-commit hook %s failed for attempt %s", hook.run.__qualname__, attempt.pk)


def housekeeping() -> None:
    """Run every housekeeping hook; never raise."""
    for run in _housekeeping:
        try:
            run()
        except Exception:
            log.exception("housekeeping hook %s failed", run.__qualname__)


def tick(now) -> None:
    """Run every tick hook; never raise."""
    for run in _ticks:
        try:
            run(now)
        except Exception:
            log.exception("tick hook %s failed", run.__qualname__)
