"""django-q2 tasks of ops: ids in, a non-secret state out."""

from __future__ import annotations

from ops import webhooks


def deliver(delivery_id: int) -> str:
    """Try one webhook delivery."""
    return webhooks.deliver(delivery_id)
