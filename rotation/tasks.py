"""django-q2 tasks: ids in, a non-secret status out. The work is in rotation/services.py."""

from __future__ import annotations

from rotation import services


def rotate(attempt_id: int) -> dict:
    """Run one rotation attempt."""
    return services.run_attempt(attempt_id).as_dict()


def reconcile_stale() -> dict:
    """Resolve attempts whose outcome is unknown or whose worker died."""
    return {"reconciled": services.reconcile_stale()}
