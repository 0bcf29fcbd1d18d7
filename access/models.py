"""Who holds an account, for how long, and who agreed: pools, check-outs, access requests, settings."""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from records.models import PamConfiguration, PamUser

DAY = 86400
TEN_YEARS = 10 * 366 * DAY
DEFAULT_TTL = 3600
DEFAULT_MAX_TTL = DAY
# A pending request nobody decided on within this time expires.
PENDING_FOR = dt.timedelta(days=1)
_seconds = [MinValueValidator(1), MaxValueValidator(TEN_YEARS)]
_minutes = [MinValueValidator(0), MaxValueValidator(TEN_YEARS // 60)]
pool_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", "Use letters, digits, '.', '_' and '-'."
)


def new_lease_token() -> str:
    return secrets.token_urlsafe(18)


class TimeLimits(models.Model):
    """A check-out's TTL and maximum TTL, and the rotate-after-use delay (minutes; empty: off)."""

    checkout_ttl = models.PositiveIntegerField(
        "check-out TTL (seconds)", default=DEFAULT_TTL, validators=_seconds
    )
    checkout_max_ttl = models.PositiveIntegerField(
        "maximum TTL (seconds)", default=DEFAULT_MAX_TTL, validators=_seconds, help_text="Renewals stop here."
    )
    rotate_after_use_minutes = models.PositiveIntegerField(
        "rotate after use (minutes)",
        null=True,
        blank=True,
        validators=_minutes,
        help_text="Rotate the password this long after a person reveals or reads it. Empty: off.",
    )

    class Meta:
        abstract = True

    def clean(self) -> None:
        if self.checkout_ttl and self.checkout_max_ttl and self.checkout_ttl > self.checkout_max_ttl:
            raise ValidationError({"checkout_ttl": "The TTL cannot exceed the maximum TTL."})


class ConfigurationAccess(TimeLimits):
    """A configuration's access rules: check-out times, approval, rotate after use."""

    configuration = models.OneToOneField(PamConfiguration, on_delete=models.CASCADE, related_name="access")
    require_approval = models.BooleanField(
        "require approval",
        default=False,
        help_text="A person needs an approved request to reveal or check out.",
    )
    rotate_after_approval = models.BooleanField(
        "rotate when an approval ends",
        default=True,
        help_text="Break-glass windows always end in a rotation.",
    )

    def __str__(self) -> str:
        return f"access rules of {self.configuration}"

    @classmethod
    def of(cls, configuration_id: int) -> ConfigurationAccess:
        """Return a configuration's rules (the defaults, unsaved, when none were set)."""
        found = cls.objects.filter(configuration_id=configuration_id).first()
        return found or cls(configuration_id=configuration_id)


class Pool(TimeLimits):
    """A set of service accounts that share a purpose (Vault's library set): check-out takes any free one."""

    name = models.CharField(max_length=100, unique=True, validators=[pool_name_validator])
    configuration = models.ForeignKey(PamConfiguration, on_delete=models.PROTECT, related_name="pools")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("access:pool-detail", args=[self.pk])


class AccountAccess(models.Model):
    """One account's place in the access workflows: its pool, its own after-use delay, who holds it."""

    user = models.OneToOneField(PamUser, on_delete=models.CASCADE, related_name="access")
    # An account belongs to at most one pool: the one-to-one row holds that one link.
    pool = models.ForeignKey(Pool, on_delete=models.SET_NULL, null=True, blank=True, related_name="members")
    rotate_after_use_minutes = models.PositiveIntegerField(null=True, blank=True, validators=_minutes)
    # The check-out that holds the account: taken by a conditional UPDATE (``CheckOut.claim``).
    held_by = models.OneToOneField(
        "CheckOut", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The last reveal or read (audit event id) that rotate-after-use has dealt with.
    used_event_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"access of {self.user}"

    @classmethod
    def of(cls, user: PamUser) -> AccountAccess:
        return cls.objects.get_or_create(user=user)[0]


class EndReason(models.TextChoices):
    CHECKED_IN = "checked_in", "Checked in"
    EXPIRED = "expired", "Expired"
    FORCED = "forced", "Checked in by an administrator"


class CheckOutQuerySet(models.QuerySet):
    def held(self):
        return self.filter(ended_at__isnull=True)


class CheckOut(models.Model):
    """An account handed exclusively to one person or application until checked in or expired."""

    user = models.ForeignKey(PamUser, on_delete=models.CASCADE, related_name="checkouts")
    pool = models.ForeignKey(Pool, on_delete=models.SET_NULL, null=True, blank=True, related_name="checkouts")
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    application = models.ForeignKey(
        "api.Application", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    holder_name = models.CharField(max_length=150)
    lease_token = models.CharField(max_length=40, unique=True, default=new_lease_token, editable=False)
    started_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    max_expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True)
    ended_by_name = models.CharField(max_length=150, blank=True)
    rotation_attempt_id = models.BigIntegerField(null=True, blank=True)
    rotation_note = models.CharField(max_length=500, blank=True)

    objects = CheckOutQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} held by {self.holder_name}"

    @property
    def is_held(self) -> bool:
        return self.ended_at is None

    def lease_id(self, mount: str) -> str:
        """Return Vault's lease id for this check-out."""
        where = f"library/{self.pool.name}" if self.pool_id else "checkout"
        return f"{mount}/{where}/check-out/{self.lease_token}"

    def seconds_left(self, now: dt.datetime | None = None) -> int:
        return max(0, int((self.expires_at - (now or timezone.now())).total_seconds()))

    def held_by_caller(self, person=None, application=None) -> bool:
        """Return whether this check-out belongs to the person or application asking."""
        if application is not None:
            return self.application_id == application.pk
        return person is not None and self.person_id == person.pk


class RequestState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"


class AccessRequestQuerySet(models.QuerySet):
    def granting(self, person, user, now: dt.datetime | None = None):
        """Return the approved, unexpired requests that let a person reach one account."""
        return self.filter(
            requester=person, user=user, state=RequestState.APPROVED, granted_until__gt=now or timezone.now()
        )


class AccessRequest(models.Model):
    """A person's request for one account for a time (dual control), or an administrator's break-glass."""

    user = models.ForeignKey(PamUser, on_delete=models.CASCADE, related_name="access_requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500)
    wanted_minutes = models.PositiveIntegerField(
        "for how long (minutes)",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
    )
    state = models.CharField(max_length=16, choices=RequestState.choices, default=RequestState.PENDING)
    break_glass = models.BooleanField(default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.CharField(max_length=500, blank=True)
    granted_until = models.DateTimeField(null=True, blank=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    rotation_attempt_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AccessRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "granted_until"], name="access_request_state_idx")]

    def __str__(self) -> str:
        kind = "break-glass" if self.break_glass else "request"
        return f"{kind} #{self.pk} for {self.user}"

    def get_absolute_url(self) -> str:
        return reverse("access:request-detail", args=[self.pk])

    @property
    def is_active_grant(self) -> bool:
        return (
            self.state == RequestState.APPROVED
            and bool(self.granted_until)
            and self.granted_until > timezone.now()
        )
