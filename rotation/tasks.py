"""django-q2 tasks: ids in, a non-secret status out. The work is in rotation/services.py.

Each task first records that a worker of its gateway took a task (``Heartbeat``): only workers
write ``worker:<gateway>``, so a gateway is reported alive only when it really takes tasks.
"""

from __future__ import annotations

from django.conf import settings
from django_q.conf import Conf

from rotation import batch, heartbeat, services
from rotation import dispatch as dispatch_module
from rotation.models import Heartbeat


def rotate(attempt_id: int) -> dict:
    """Run one rotation attempt."""
    Heartbeat.beat(Heartbeat.worker_name(Conf.CLUSTER_NAME))
    return services.run_attempt(attempt_id).as_dict()


def rotate_many(attempt_ids: list[int]) -> dict:
    """Run several rotation attempts as one batch (rotation/batch.py); return how each ended.

    Attempts not yet sent to the directory after half the task timeout are queued again as a new
    batch, so slow directories never get a batch killed with attempts still unstarted.
    """
    Heartbeat.beat(Heartbeat.worker_name(Conf.CLUSTER_NAME))
    states = batch.run_batch(list(attempt_ids), budget_seconds=settings.Q_CLUSTER["timeout"] / 2)
    return {"attempts": len(attempt_ids), "states": states}


def dispatch() -> dict:
    """Run the dispatcher's tick (the django-q2 fallback for the 1-second thread)."""
    Heartbeat.beat(Heartbeat.worker_name(Conf.CLUSTER_NAME))
    return dispatch_module.tick()


def check_accounts(user_ids: list[int]) -> dict:
    """Run the account heartbeat (rotation/heartbeat.py) for these accounts; return how many ended in each state."""
    Heartbeat.beat(Heartbeat.worker_name(Conf.CLUSTER_NAME))
    states: dict[str, int] = {}
    for finding in heartbeat.check_many(user_ids):
        states[finding.state] = states.get(finding.state, 0) + 1
    return {"accounts": len(user_ids), "states": states}


def canary() -> dict:
    """Prove that a worker of this gateway takes tasks (the dispatcher sends one every 30 s)."""
    Heartbeat.canary_taken(Conf.CLUSTER_NAME)
    return {"gateway": Conf.CLUSTER_NAME}
