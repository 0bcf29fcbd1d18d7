"""Who may call the API: applications (Keeper's KSM applications) and their tokens, personal tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from records.models import PamConfiguration

APPLICATION_PREFIX = "pr_app_"
PERSONAL_PREFIX = "pr_pat_"
LOGIN_PREFIX = "pr_login_"  # a token an AppRole login or auth/token/create issued
SECRET_ID_PREFIX = "pr_sid_"  # noqa: S105 - a prefix, not a secret
# Writing last_used_at on every call would make each read a write: once a minute is enough.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def digest(token: str) -> str:
    """Return the SHA-256 hex digest a token is stored as."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def validate_cidrs(value: str) -> None:
    """Reject a client-network list with an entry that is not an IPv4 or IPv6 network."""
    bad = []
    for entry in cidr_entries(value):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            bad.append(entry)
    if bad:
        raise ValidationError(f"Not a network (use 10.0.0.0/24 or 2001:db8::/64): {', '.join(bad[:5])}")


def cidr_entries(value: str) -> list[str]:
    """Return the entries of a comma- or line-separated network list."""
    return [entry.strip() for entry in value.replace(",", "\n").splitlines() if entry.strip()]


def address_in(networks_text: str, address: str | None) -> bool:
    """Return whether an address is inside a network list (any address, when the list is empty)."""
    networks = cidr_entries(networks_text)
    if not networks:
        return True
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(entry, strict=False) for entry in networks)


class Application(models.Model):
    """A program that reads credentials of the accounts in its configurations (a KSM application)."""

    name = models.CharField(max_length=100, unique=True)
    configurations = models.ManyToManyField(
        PamConfiguration,
        related_name="applications",
        help_text="It may read and rotate the accounts of these configurations, nothing else.",
    )
    allowed_networks = models.TextField(
        "allowed client networks",
        blank=True,
        validators=[validate_cidrs],
        help_text="CIDRs, one a line; blank allows any address.",
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Blank never expires.")
    is_active = models.BooleanField("active", default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_applications", "Can manage API applications and their tokens")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("api:application-detail", args=[self.pk])

    @property
    def actor_name(self) -> str:
        """Return how the audit log names this application."""
        return f"application:{self.name}"[:150]

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @cached_property
    def configuration_ids(self) -> frozenset[int]:
        """Return the ids of its configurations (read once per request: the access policy asks often)."""
        through = Application.configurations.through  # the link table alone: no join
        return frozenset(
            through.objects.filter(application_id=self.pk).values_list("pamconfiguration_id", flat=True)
        )

    def allows_address(self, address: str | None) -> bool:
        """Return whether a client address is inside the allowed networks (any, when none are set)."""
        return address_in(self.allowed_networks, address)


class TokenQuerySet(models.QuerySet):
    """Queries over tokens."""

    def usable(self, now: dt.datetime | None = None):
        """Return the tokens that are neither revoked nor expired."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class Token(models.Model):
    """A bearer token of an application or a person, stored only as its SHA-256 digest."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, so that a person can tell tokens apart; not enough to use one.
    hint = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # A token from an AppRole login or auth/token/create: renewable by ttl_seconds up to max_expires_at,
    # revoked with its parent (Vault's token tree) and with the secret ID it was issued for.
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    secret_id = models.ForeignKey(
        "SecretId", on_delete=models.CASCADE, null=True, blank=True, related_name="tokens"
    )
    ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_expires_at = models.DateTimeField(null=True, blank=True)

    objects = TokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(application__isnull=True, user__isnull=False)
                | models.Q(application__isnull=False, user__isnull=True),
                name="token_application_xor_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hint}… ({self.owner_name})"

    @classmethod
    def issue(cls, *, application: Application | None = None, user=None, created_by=None, **fields) -> tuple:
        """Create a token and return it with its clear text, which is never stored or shown again."""
        prefix = APPLICATION_PREFIX if application is not None else PERSONAL_PREFIX
        if fields.get("parent") is not None or fields.get("secret_id") is not None:
            prefix = LOGIN_PREFIX
        clear = prefix + secrets.token_urlsafe(32)
        token = cls(
            application=application,
            user=user,
            created_by=created_by if created_by is not None and created_by.is_authenticated else None,
            digest=digest(clear),
            hint=clear[: len(prefix) + 4],
            **fields,
        )
        token.full_clean()
        token.save()
        return token, clear

    @property
    def owner_name(self) -> str:
        """Return the application's audit name or the person's user name."""
        if self.application_id:
            return self.application.actor_name
        return self.user.get_username()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def renewable(self) -> bool:
        return self.ttl_seconds is not None

    def revoke(self) -> bool:
        """Revoke the token and the tokens created from it; return False when it already was."""
        now = timezone.now()
        done = bool(Token.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=now))
        ids = [self.pk]
        while ids:  # Vault's token tree: a child dies with its parent
            ids = list(
                Token.objects.filter(parent_id__in=ids, revoked_at__isnull=True).values_list("pk", flat=True)
            )
            Token.objects.filter(pk__in=ids).update(revoked_at=now)
        return done

    def renew(self, increment: int | None = None) -> dt.datetime:
        """Push a renewable token's expiry to now + its TTL (or a shorter increment), never past its maximum."""
        seconds = min(increment or self.ttl_seconds, self.ttl_seconds)
        expires = timezone.now() + dt.timedelta(seconds=seconds)
        if self.max_expires_at is not None:
            expires = min(expires, self.max_expires_at)
        Token.objects.filter(pk=self.pk).update(expires_at=expires)
        self.expires_at = expires
        return expires

    def touch(self) -> None:
        """Record that the token was used now (at most one write a minute)."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION:
            Token.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class AppRole(models.Model):
    """Vault's AppRole for an application: a public role ID, secret IDs to log in with, token lifetimes."""

    application = models.OneToOneField(Application, on_delete=models.CASCADE, related_name="approle")
    role_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    token_ttl = models.PositiveIntegerField(
        "token TTL (seconds)", default=3600, validators=[MinValueValidator(60), MaxValueValidator(31 * 86400)]
    )
    token_max_ttl = models.PositiveIntegerField(
        "token maximum TTL (seconds)",
        default=86400,
        validators=[MinValueValidator(60), MaxValueValidator(366 * 86400)],
        help_text="Renewals never push a login's token past this age.",
    )

    def __str__(self) -> str:
        return f"AppRole of {self.application}"

    def clean(self) -> None:
        if self.token_max_ttl < self.token_ttl:
            raise ValidationError({"token_max_ttl": "The maximum TTL must be at least the TTL."})


class SecretIdQuerySet(models.QuerySet):
    def usable(self, now: dt.datetime | None = None):
        """Return the secret IDs that are neither revoked, expired nor used up."""
        now = now or timezone.now()
        return (
            self.filter(revoked_at__isnull=True)
            .filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))
            .filter(models.Q(uses_left__isnull=True) | models.Q(uses_left__gt=0))
        )


class SecretId(models.Model):
    """A secret ID of an AppRole, stored only as its SHA-256 digest, with a TTL, a use count and networks."""

    approle = models.ForeignKey(AppRole, on_delete=models.CASCADE, related_name="secret_ids")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False)
    accessor = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    uses_left = models.PositiveIntegerField(null=True, blank=True, help_text="Blank: unlimited logins.")
    allowed_networks = models.TextField(
        "allowed client networks", blank=True, validators=[validate_cidrs], help_text="Blank: any address."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_name = models.CharField(max_length=150, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = SecretIdQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.hint}…"

    @classmethod
    def issue(cls, approle: AppRole, **fields) -> tuple:
        """Create a secret ID and return it with its clear text, which is never stored or shown again."""
        clear = SECRET_ID_PREFIX + secrets.token_urlsafe(32)
        secret_id = cls(
            approle=approle, digest=digest(clear), hint=clear[: len(SECRET_ID_PREFIX) + 4], **fields
        )
        secret_id.full_clean()
        secret_id.save()
        return secret_id, clear

    @classmethod
    def find(cls, approle: AppRole, clear: str) -> SecretId | None:
        """Return the usable secret ID of this role whose digest matches, or None."""
        wanted = digest(clear)
        found = cls.objects.usable().filter(approle=approle, digest=wanted).first()
        if found is None or not hmac.compare_digest(found.digest, wanted):
            return None
        return found

    def allows_address(self, address: str | None) -> bool:
        """Return whether a login from this address is allowed (any, when no network is set)."""
        return address_in(self.allowed_networks, address)

    def use(self) -> bool:
        """Spend one login; return False when none was left (another login took the last)."""
        if self.uses_left is None:
            return True
        return bool(
            SecretId.objects.filter(pk=self.pk, uses_left__gt=0).update(uses_left=models.F("uses_left") - 1)
        )

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        if self.uses_left == 0:
            return "used up"
        return "active"
