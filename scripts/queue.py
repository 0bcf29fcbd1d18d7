"""Send script work to the workers of an attempt's gateway (they hold the script files)."""

from __future__ import annotations

from rotation.models import RotationAttempt
from rotation.queue import gateway_of


def enqueue_rerun(attempt: RotationAttempt) -> None:
    """Send "Run scripts again" to the workers of the attempt's gateway; only the attempt's id travels."""
    from django_q.tasks import async_task

    async_task(
        "scripts.tasks.rerun",
        attempt.pk,
        cluster=gateway_of(attempt),
        task_name=f"rerun-scripts-{attempt.pk}",
        group="scripts",
    )
