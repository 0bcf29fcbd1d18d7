"""Send attempts to the worker pool (django-q2 cluster) of their configuration's gateway.

Tasks carry attempt ids only: django-q2 stores arguments and results pickled, in clear.
"""

from __future__ import annotations

from django.conf import settings

from rotation.models import RotationAttempt


def gateway_of(attempt: RotationAttempt) -> str:
    """Return the cluster name that runs an attempt."""
    return attempt.user.configuration.gateway or "default"


def enqueue_attempt(attempt: RotationAttempt) -> None:
    """Send one attempt to its gateway's workers."""
    from django_q.tasks import async_task

    async_task(
        "rotation.tasks.rotate",
        attempt.pk,
        cluster=gateway_of(attempt),
        task_name=f"rotate-attempt-{attempt.pk}",
        group="rotation",
    )


def enqueue_batch(gateway: str, attempt_ids: list[int]) -> None:
    """Send several attempts to one gateway's workers as one task."""
    from django_q.tasks import async_task

    async_task(
        "rotation.tasks.rotate_many",
        list(attempt_ids),
        cluster=gateway,
        task_name=f"rotate-attempts-{attempt_ids[0]}-{attempt_ids[-1]}",
        group="rotation",
    )


class AttemptBatcher:
    """Queue attempts to their gateways in small batches: one broker round trip per batch.

    Batches are small enough that every worker gets some (``total`` sizes them) and are sent
    as soon as they fill, so workers start while the rest is still being dispatched.
    """

    def __init__(self, total: int, workers: int | None = None, largest: int = 100):
        workers = workers or settings.Q_WORKERS
        self.size = max(1, min(largest, total // (workers * 4) or 1))
        self.pending: dict[str, list[int]] = {}

    def add(self, attempt: RotationAttempt) -> None:
        gateway = gateway_of(attempt)
        batch = self.pending.setdefault(gateway, [])
        batch.append(attempt.pk)
        if len(batch) >= self.size:
            enqueue_batch(gateway, batch)
            self.pending[gateway] = []

    def flush(self) -> None:
        for gateway, batch in self.pending.items():
            if batch:
                enqueue_batch(gateway, batch)
        self.pending = {}
