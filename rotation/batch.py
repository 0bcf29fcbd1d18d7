"""The batched driver: rotate many accounts with a constant number of transactions (group commit).

The steps are the protocol's (rotation/protocol.py), the same ones the single driver
(rotation/services.py ``run_attempt``) runs for one account; this driver only hands them many:

1. Claim every account's lease in one conditional UPDATE (an account another attempt holds goes
   to the single driver, which refuses it as "already rotating").
2.–7. ``protocol.rotate``: check, generate and write ahead in one committed transaction, change
   and verify each account on the worker's pooled connections, commit the successes in one
   transaction of bulk statements, run the after-commit hooks, end the rest one by one.

A crash anywhere leaves each account exactly as the single driver would: its pending password
written ahead and its attempt running, which the reconciler resolves by binding. Three kinds of
attempt go to the single driver instead: one not plainly queued (running, unknown, ended), a
second attempt for an account already in the batch, and a self-change of a directory's own
credential (the batch reuses each directory's admin bind, which that change would replace).
"""

from __future__ import annotations

import time
from collections import Counter

from django.db import transaction

from rotation import protocol, services
from rotation.directories import is_self_change
from rotation.leases import Lease
from rotation.models import AttemptState, RotationAttempt
from rotation.queue import enqueue_batch, gateway_of


def run_batch(attempt_ids: list[int], *, budget_seconds: float | None = None) -> dict[str, int]:
    """Run queued attempts as one batch; return how many ended in each state.

    With ``budget_seconds``, attempts not yet sent to the directory when the budget runs out are
    given back (nothing was changed for them) and queued again as a new batch.
    """
    started = time.monotonic()
    attempts = list(
        RotationAttempt.objects.filter(pk__in=attempt_ids)
        .select_related("user__configuration", "user__resource__administrative_credential")
        .order_by("pk")
    )
    batchable, single = _split(attempts)
    states: Counter[str] = Counter()
    with Lease(batchable) as lease:
        claimed = lease.claim()
        held = {attempt.pk for attempt in claimed}
        single += [attempt.pk for attempt in batchable if attempt.pk not in held]
        if claimed:
            deadline = None if budget_seconds is None else started + budget_seconds
            ended, given_back = protocol.rotate(claimed, lease, deadline=deadline)
            states.update(ended)
            if given_back:
                _send_again(given_back)
    for attempt_id in single:
        states[services.run_attempt(attempt_id).state] += 1
    return dict(states)


def _split(attempts: list[RotationAttempt]) -> tuple[list[RotationAttempt], list[int]]:
    """Return the attempts the batch can take, and the ids of those that need the single driver."""
    batchable, single, seen = [], [], set()
    for attempt in attempts:
        plain = (
            attempt.state == AttemptState.QUEUED
            and attempt.user_id not in seen
            and not is_self_change(attempt.user)
        )
        if plain:
            batchable.append(attempt)
            seen.add(attempt.user_id)
        else:
            single.append(attempt.pk)
    return batchable, single


def _send_again(attempts: list[RotationAttempt]) -> None:
    """Queue attempts that were given back as a new batch of their gateway, once that is committed."""
    ids = [attempt.pk for attempt in attempts]
    gateway = gateway_of(attempts[0])
    transaction.on_commit(lambda: enqueue_batch(gateway, ids))
