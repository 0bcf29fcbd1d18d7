"""Count failed sign-ins per username and per client address, and refuse more past the limit.

The counts live in the default cache (shared by every web process) for LOGIN_FAILURE_WINDOW
seconds from the first failure; once LOGIN_FAILURE_LIMIT is reached the password is not checked.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache


def _keys(username: str, address: str | None) -> list[str]:
    keys = []
    if username:
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append(f"login-fail:user:{digest}")
    if address:
        keys.append(f"login-fail:addr:{address}")
    return keys


def seconds_locked(username: str, address: str | None) -> int:
    """Return how many seconds sign-in stays refused for this username or address (0 = allowed)."""
    now = time.time()
    wait = 0.0
    for key in _keys(username, address):
        count, first = cache.get(key, (0, now))
        if count >= settings.LOGIN_FAILURE_LIMIT:
            wait = max(wait, first + settings.LOGIN_FAILURE_WINDOW - now)
    return max(0, math.ceil(wait))


def record_failure(username: str, address: str | None) -> None:
    """Count one failed sign-in against the username and the address."""
    now = time.time()
    window = settings.LOGIN_FAILURE_WINDOW
    for key in _keys(username, address):
        count, first = cache.get(key, (0, now))
        if now - first >= window:
            count, first = 0, now
        cache.set(key, (count + 1, first), timeout=max(1, math.ceil(first + window - now)))


def clear(username: str) -> None:
    """Forget the failures of a username after it signs in successfully."""
    cache.delete_many(_keys(username, None))
