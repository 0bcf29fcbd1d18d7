"""An account's lease: one rotation at a time, even across workers and hosts.

The lease is two columns of the account's row (``PamUser.lease_until`` / ``lease_attempt_id``),
taken with a conditional UPDATE and given back when the attempt ends. A dead worker's lease
expires after ``ROTATION_LEASE_SECONDS``. Only the rotation protocol takes and gives back leases.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from records.models import PamUser, RotationStatus
from rotation.models import RotationAttempt


def expiry() -> dt.datetime:
    """Return when a lease taken now runs out."""
    return timezone.now() + dt.timedelta(seconds=settings.ROTATION_LEASE_SECONDS)


def claim_all(attempts: list[RotationAttempt]) -> list[RotationAttempt]:
    """Take the accounts' leases for their attempts in one conditional UPDATE and mark those attempts running.

    Return the attempts that got their lease (an account another attempt holds is left alone);
    their ``user`` rows, when loaded, show the lease. At most one attempt per account.
    """
    if not attempts:
        return []
    until = expiry()
    holders = {attempt.user_id: attempt.pk for attempt in attempts}
    free = models.Q(lease_until__isnull=True) | models.Q(lease_until__lt=timezone.now())
    # An attempt may take its own lease again (a duplicate delivery of the same attempt).
    free |= models.Q(lease_attempt_id__in=list(holders.values()))
    holder = models.Case(
        *[models.When(pk=user_id, then=models.Value(attempt_id)) for user_id, attempt_id in holders.items()],
        output_field=models.BigIntegerField(),
    )
    with transaction.atomic():
        PamUser.objects.filter(free, pk__in=list(holders)).update(
            lease_until=until,
            lease_attempt_id=holder,
            rotation_status=RotationStatus.RUNNING,
            queued_since=None,
        )
        held = PamUser.objects.filter(pk__in=list(holders), lease_attempt_id__in=list(holders.values()))
        held = set(held.values_list("lease_attempt_id", flat=True))
        claimed = [attempt for attempt in attempts if attempt.pk in held]
        RotationAttempt.start_all(claimed)
    for attempt in claimed:
        if RotationAttempt.user.is_cached(attempt):
            attempt.user.lease_attempt_id, attempt.user.lease_until = attempt.pk, until
    return claimed


def release(attempts: list[RotationAttempt]) -> None:
    """Give the accounts' leases back, where these attempts still hold them (one UPDATE)."""
    if attempts:
        PamUser.objects.filter(
            pk__in=[attempt.user_id for attempt in attempts],
            lease_attempt_id__in=[attempt.pk for attempt in attempts],
        ).update(lease_until=None, lease_attempt_id=None)


def held_by(attempt: RotationAttempt) -> bool:
    """Return whether an attempt still holds its account's lease and the lease has not run out."""
    user = PamUser.objects.only("lease_until", "lease_attempt_id").get(pk=attempt.user_id)
    return (
        user.lease_attempt_id == attempt.pk
        and user.lease_until is not None
        and user.lease_until >= timezone.now()
    )


def release_on(user: PamUser, attempt: RotationAttempt) -> list[str]:
    """Clear the lease on an account row about to be saved, if this attempt holds it; return the fields to save."""
    if user.lease_attempt_id != attempt.pk:
        return []
    user.lease_until, user.lease_attempt_id = None, None
    return ["lease_until", "lease_attempt_id"]


class Lease:
    """The leases of a driver's attempts, as a context manager: what the block does not end is given back.

    ``claim()`` takes them (one conditional UPDATE for any number of accounts); the commit gives a
    lease back inside its own transaction and says so with ``ended()``; leaving the block gives
    back the rest, where their attempt still holds them. A Lease built with ``held=`` covers
    attempts whose leases were taken elsewhere (or that the caller resolves for someone else).
    """

    def __init__(self, attempts: list[RotationAttempt] | RotationAttempt, *, held: bool = False):
        self.attempts = attempts if isinstance(attempts, list) else [attempts]
        self.held = list(self.attempts) if held else []

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info) -> None:
        release(self.held)
        self.held = []

    def claim(self) -> list[RotationAttempt]:
        """Take the leases and mark the attempts that got theirs running; return those attempts."""
        claimed = claim_all(self.attempts)
        self.held += claimed
        return claimed

    def release(self, attempts: list[RotationAttempt]) -> None:
        """Give these attempts' leases back now (one UPDATE)."""
        release(attempts)
        self.ended(attempt.pk for attempt in attempts)

    def ended(self, attempt_ids) -> None:
        """Note that these attempts' leases were given back with their commit (no UPDATE needed)."""
        ended = set(attempt_ids)
        self.held = [attempt for attempt in self.held if attempt.pk not in ended]
