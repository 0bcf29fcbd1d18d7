"""Templates ask the access policy: ``perms`` answers through accounts.policy, not Django's groups."""

from __future__ import annotations

from accounts.policy import PolicyPermissions


def policy(request) -> dict:
    """Replace django.contrib.auth's ``perms`` with the policy's answers for this request."""
    return {"perms": PolicyPermissions(request)}
