"""django-q2 tasks: ids in, a non-secret status out. The work is in rotation/services.py."""

from __future__ import annotations

import time

from django.conf import settings
from django_q.conf import Conf
from django_q.tasks import async_task

from rotation import schedules, services
from rotation.models import Heartbeat


def rotate(attempt_id: int) -> dict:
    """Run one rotation attempt."""
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    return services.run_attempt(attempt_id).as_dict()


def rotate_many(attempt_ids: list[int]) -> dict:
    """Run several rotation attempts one after another; return how each ended.

    A batch stops starting new attempts after half the task timeout and queues the rest as a
    new batch, so slow directories never get a batch killed with attempts still unstarted.
    """
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    budget = settings.Q_CLUSTER["timeout"] / 2
    started = time.monotonic()
    states: dict[str, int] = {}
    for index, attempt_id in enumerate(attempt_ids):
        if index and time.monotonic() - started > budget:  # always make progress
            rest = attempt_ids[index:]
            async_task(
                "rotation.tasks.rotate_many",
                rest,
                cluster=Conf.CLUSTER_NAME,
                task_name=f"rotate-attempts-{rest[0]}-{rest[-1]}",
            )
            states["requeued"] = len(rest)
            break
        state = services.run_attempt(attempt_id).state
        states[state] = states.get(state, 0) + 1
    return {"attempts": len(attempt_ids), "states": states}


def dispatch() -> dict:
    """Queue due scheduled rotations and waiting retries; resolve interrupted attempts."""
    Heartbeat.beat("scheduler")
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    result = schedules.dispatch_due()
    result["reconciled"] = services.reconcile_stale()
    result["overdue_notified"] = schedules.notify_overdue_accounts()
    return result
