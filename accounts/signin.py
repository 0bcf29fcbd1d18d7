"""Sign-in protection and the sign-in audit trail, around django-axes.

Rules (issue 13):
- a known user name is locked after ``AXES_FAILURE_LIMIT`` failures, counted per user name
  (case-insensitive) from every address, and per user name + address;
- an unknown user name is limited by the client address only, with its own higher threshold
  (``PAMROTATE_SIGNIN_ADDRESS_FAILURE_LIMIT``), so made-up names cannot lock out real people
  who share that address (a NAT, or a proxy that is not trusted);
- the check, the password check and the count run one at a time per user name and per address
  (``serialized``), so parallel guesses cannot all be checked before the first failure is counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import zlib

from axes.helpers import get_client_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from audit.actors import Actor
from audit.events import record_event
from audit.models import Category, Outcome

USER_AGENT_LIMIT = 200


def normalize_username(username: str | None) -> str:
    """Return the user name as locks and counts see it: stripped and lowercased."""
    return (username or "").strip().lower()[:150]


def client_address(request) -> str | None:
    """Return the client's address (AXES_CLIENT_IP_CALLABLE); pamrotate.middleware resolves proxies."""
    return request.META.get("REMOTE_ADDR") or None


def user_agent(request) -> str:
    """Return the client's user agent, shortened for the audit message."""
    return request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_LIMIT] if request is not None else ""


def is_known(username: str) -> bool:
    """Return whether a user name belongs to an account here (case-insensitive)."""
    return bool(username) and get_user_model().objects.filter(username__iexact=username).exists()


def _username_of(request_or_attempt, credentials) -> str:
    name = (credentials or {}).get("username") or getattr(request_or_attempt, "username", "")
    return normalize_username(name)


def lockout_parameters(request_or_attempt, credentials=None) -> list:
    """Return what failures are counted by (AXES_LOCKOUT_PARAMETERS): user name, or address for unknown names."""
    if is_known(_username_of(request_or_attempt, credentials)):
        return ["username", ["username", "ip_address"]]
    return ["ip_address"]


def failure_limit(request, credentials=None) -> int:
    """Return the failure limit (AXES_FAILURE_LIMIT): per user name, or the higher per-address one."""
    if is_known(_username_of(request, credentials)):
        return settings.SIGNIN_FAILURE_LIMIT
    return settings.SIGNIN_ADDRESS_FAILURE_LIMIT


def axes_username(request, credentials=None) -> str:
    """Return the user name axes stores and counts (AXES_USERNAME_CALLABLE)."""
    name = (credentials or {}).get("username")
    if name is None and request is not None and request.method == "POST":
        name = request.POST.get("username")
    return normalize_username(name)


@contextlib.contextmanager
def serialized(username: str, address: str | None):
    """Run the block in a transaction that no other sign-in for this user name or address runs beside."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for key in sorted({f"signin:user:{username}", f"signin:addr:{address}"}):
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(key.encode())])
        # SQLite: settings open every transaction with BEGIN IMMEDIATE, which already holds the
        # database's single write lock until commit, so sign-ins run one at a time.
        yield


def seconds_locked(request, username: str) -> int:
    """Return how long sign-in stays refused for this user name from this client (0 when allowed)."""
    credentials = {"username": username}
    filters = get_client_parameters(username, client_address(request), None, request, credentials)
    query = Q()
    for kwargs in filters:
        query |= Q(**{key: value for key, value in kwargs.items() if key != "user_agent"})
    latest = AccessAttempt.objects.filter(query).aggregate(latest=Max("attempt_time"))["latest"]
    if latest is None:
        return 0
    until = latest + dt.timedelta(minutes=settings.SIGNIN_LOCKOUT_MINUTES)
    return max(0, math.ceil((until - timezone.now()).total_seconds()))


def lockout_message(seconds: int) -> str:
    """Return the message a locked-out person sees, with the wait in minutes."""
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-in attempts; try again in {minutes} {unit}."


def audit(
    request, event: str, *, user=None, username: str = "", outcome: str = Outcome.OK, note: str = ""
) -> None:
    """Write one sign-in audit event with the user name, client address and user agent (never a secret)."""
    who = Actor.from_request(request, user=user, name=username)
    record_event(event, actor=who, outcome=outcome, message=note, category=Category.LOGIN)
