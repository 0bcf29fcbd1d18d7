"""django-q2 tasks: ids in, a non-secret status out. The work is in rotation/services.py."""

from __future__ import annotations

from django_q.conf import Conf

from rotation import schedules, services
from rotation.models import Heartbeat


def rotate(attempt_id: int) -> dict:
    """Run one rotation attempt."""
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    return services.run_attempt(attempt_id).as_dict()


def dispatch() -> dict:
    """Queue due scheduled rotations and waiting retries; resolve interrupted attempts."""
    Heartbeat.beat("scheduler")
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    result = schedules.dispatch_due()
    result["reconciled"] = services.reconcile_stale()
    return result
