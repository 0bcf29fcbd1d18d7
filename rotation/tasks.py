"""django-q2 tasks: ids in, a non-secret status out. The work is in rotation/services.py."""

from __future__ import annotations

import time

from django.conf import settings
from django_q.conf import Conf

from rotation import dispatch as dispatch_module
from rotation import services
from rotation.models import Heartbeat
from rotation.queue import enqueue_batch


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
            enqueue_batch(Conf.CLUSTER_NAME, rest)
            states["requeued"] = len(rest)
            break
        state = services.run_attempt(attempt_id).state
        states[state] = states.get(state, 0) + 1
    return {"attempts": len(attempt_ids), "states": states}


def dispatch() -> dict:
    """Run the dispatcher's tick (the django-q2 fallback for the 1-second thread)."""
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    return dispatch_module.tick()
