"""django-q2 tasks of the scripts app: ids in, a non-secret status out (the work is in scripts/runner.py)."""

from __future__ import annotations

from django_q.conf import Conf

from rotation.models import Heartbeat
from scripts import runner


def rerun(attempt_id: int) -> dict:
    """Run an attempt's post-rotation scripts again."""
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    return runner.rerun(attempt_id)
