"""django-q2 tasks: ids in, a non-secret status out. The work is in rotation/services.py."""

from __future__ import annotations

from django_q.conf import Conf

from rotation import schedules, services
from rotation.models import Heartbeat


def rotate(attempt_id: int) -> dict:
    """Run one rotation attempt."""
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    return services.run_attempt(attempt_id).as_dict()


def rotate_many(attempt_ids: list[int]) -> dict:
    """Run several rotation attempts one after another; return how each ended."""
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    states: dict[str, int] = {}
    for attempt_id in attempt_ids:
        state = services.run_attempt(attempt_id).state
        states[state] = states.get(state, 0) + 1
    return {"attempts": len(attempt_ids), "states": states}


def dispatch() -> dict:
    """Queue due scheduled rotations and waiting retries; resolve interrupted attempts."""
    Heartbeat.beat("scheduler")
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    result = schedules.dispatch_due()
    result["reconciled"] = services.reconcile_stale()
    return result
