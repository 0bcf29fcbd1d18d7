"""django-q2 tasks of the scripts app: ids in, a non-secret status out (the work is in scripts/runner.py)."""

from __future__ import annotations

from django_q.conf import Conf

from rotation.models import Heartbeat, RotationAttempt
from rotation.queue import gateway_of
from scripts import runner


def rerun(attempt_id: int) -> dict:
    """Run an attempt's post-rotation scripts again."""
    Heartbeat.beat(f"worker:{Conf.CLUSTER_NAME}")
    return runner.rerun(attempt_id)


def enqueue_rerun(attempt: RotationAttempt) -> None:
    """Send "Run scripts again" to the workers of the attempt's gateway (they hold the script files)."""
    from django_q.tasks import async_task

    async_task(
        "scripts.tasks.rerun",
        attempt.pk,
        cluster=gateway_of(attempt),
        task_name=f"rerun-scripts-{attempt.pk}",
        group="scripts",
    )
