"""Who signs in and how: where an account comes from, its TOTP device and its recovery codes.

Secrets are never stored in clear: the TOTP seed is encrypted with the vault's key ring
(pamrotate/crypto.py) and a recovery code is kept as its SHA-256 digest only.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from base64 import b32encode
from binascii import unhexlify
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from accounts.timezones import is_zone
from pamrotate import crypto

RECOVERY_CODE_COUNT = 10
TOTP_KEY_BYTES = 20


class Source(models.TextChoices):
    LOCAL = "local", "Local"
    DIRECTORY = "directory", "Directory"


class Profile(models.Model):
    """Where a person's account comes from (a local password or the directory)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signin_profile"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LOCAL)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_source_display()})"

    @classmethod
    def source_of(cls, user) -> str:
        """Return the source of a user's account; one without a profile is local."""
        profile = cls.objects.filter(user=user).only("source").first()
        return profile.source if profile else Source.LOCAL

    @classmethod
    def mark(cls, user, source: str) -> None:
        """Record where a user's account comes from."""
        cls.objects.update_or_create(user=user, defaults={"source": source})


def validate_time_zone(value: str) -> None:
    """Refuse a time zone name that is not in the IANA database."""
    if value and not is_zone(value):
        raise ValidationError(f"{value} is not an IANA time zone name (for example Europe/Berlin).")


class Preference(models.Model):
    """A person's own display settings: the time zone pages show times in (blank: the browser's)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="Times on every page are shown in this zone; blank uses your browser's zone.",
    )

    def __str__(self) -> str:
        return f"{self.user}: {self.time_zone or 'browser time zone'}"

    @classmethod
    def zone_of(cls, user) -> str:
        """Return the zone a person chose, or an empty string."""
        return cls.objects.filter(user=user).values_list("time_zone", flat=True).first() or ""


def hash_recovery_code(code: str) -> str:
    """Return the stored form of a recovery code: the SHA-256 of its letters and digits, lowercased."""
    normalized = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normalized.encode()).hexdigest()


class TOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """An RFC 6238 authenticator app (SHA-1, 6 digits, 30 s) whose seed is stored encrypted."""

    key_encrypted = models.TextField()
    encrypted_fields = ("key_encrypted",)  # rotate_encryption_key re-encrypts it; start-up checks it
    step = 30
    digits = 6
    tolerance = 1
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    @classmethod
    def start(cls, user) -> TOTPDevice:
        """Create an unconfirmed device with a new random seed for a user to enrol."""
        key = _new_totp_key()
        return cls.objects.create(user=user, name="Authenticator app", confirmed=False,
                                  key_encrypted=crypto.encrypt(key.hex()))  # fmt: skip

    @property
    def bin_key(self) -> bytes:
        """Return the seed as bytes (decrypted)."""
        return unhexlify(crypto.decrypt(self.key_encrypted))

    @property
    def secret_base32(self) -> str:
        """Return the seed as the base32 text authenticator apps and oathtool take."""
        return b32encode(self.bin_key).decode()

    def config_url(self, issuer: str = "pamrotate") -> str:
        """Return the otpauth:// URI the QR code carries."""
        label = quote(f"{issuer}:{self.user.get_username()}")
        query = urlencode({"secret": self.secret_base32, "issuer": issuer, "algorithm": "SHA1",
                           "digits": self.digits, "period": self.step})  # fmt: skip
        return f"otpauth://totp/{label}?{query}"

    def verify_token(self, token) -> bool:
        """Check a code once: a code at or before the last accepted time step is refused (no replay)."""
        allowed, _ = self.verify_is_allowed()
        token = str(token).strip().replace(" ", "")
        if not allowed or not (token.isascii() and token.isdigit() and len(token) == self.digits):
            if allowed:
                self.throttle_increment(commit=True)
            return False
        totp = TOTP(self.bin_key, self.step, 0, self.digits, self.drift)
        totp.time = time.time()
        if not totp.verify(int(token), self.tolerance, self.last_t + 1):
            self.throttle_increment(commit=True)
            return False
        self.last_t = totp.t()
        self.drift = totp.drift
        self.throttle_reset(commit=False)
        self.set_last_used_timestamp(commit=False)
        self.save()
        return True

    def get_throttle_factor(self) -> int:
        return 1


class RecoveryCodeDevice(ThrottlingMixin, Device):
    """A person's one-time recovery codes, each stored as a digest and deleted when used."""

    class Meta(Device.Meta):
        verbose_name = "recovery codes"

    @classmethod
    def issue(cls, user, count: int = RECOVERY_CODE_COUNT) -> list[str]:
        """Replace a user's recovery codes with new ones and return them (the only time they exist in clear)."""
        codes = [_new_recovery_code() for _ in range(count)]
        with transaction.atomic():
            cls.objects.filter(user=user).delete()
            device = cls.objects.create(user=user, name="Recovery codes", confirmed=True)
            RecoveryCode.objects.bulk_create(
                RecoveryCode(device=device, code_hash=hash_recovery_code(code)) for code in codes
            )
        return codes

    def verify_token(self, token) -> bool:
        """Accept an unused code once, deleting it."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        with transaction.atomic():
            used = RecoveryCode.objects.filter(
                device=self, code_hash=hash_recovery_code(str(token))
            ).delete()[0]
        if not used:
            self.throttle_increment(commit=True)
            return False
        self.throttle_reset(commit=True)
        return True

    def remaining(self) -> int:
        """Return how many codes are left."""
        return self.codes.count()

    def get_throttle_factor(self) -> int:
        return 1


class RecoveryCode(models.Model):
    """One recovery code's SHA-256 digest."""

    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "code_hash"], name="recovery_code_unique")]

    def __str__(self) -> str:
        return f"recovery code of {self.device.user}"


def _new_totp_key() -> bytes:
    """Return a new random TOTP seed."""
    return secrets.token_bytes(TOTP_KEY_BYTES)


def _new_recovery_code() -> str:
    """Return a random recovery code of 60 bits, written xxxx-xxxx-xxxx in lowercase base32."""
    text = b32encode(secrets.token_bytes(10)).decode().lower()[:12]
    return f"{text[:4]}-{text[4:8]}-{text[8:]}"


class GrantRole(models.IntegerChoices):
    """The role a grant gives (the same order as accounts.policy.Role)."""

    VIEWER = 1, "Viewer"
    OPERATOR = 2, "Operator"
    ADMINISTRATOR = 3, "Administrator"


class Grant(models.Model):
    """A role on some configurations (or all), given to a person or to a directory group."""

    role = models.PositiveSmallIntegerField(choices=GrantRole.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="grants"
    )
    group_dn = models.CharField(
        "directory group DN",
        max_length=500,
        blank=True,
        help_text="Members of this directory group (read at each sign-in) get the role.",
    )
    all_configurations = models.BooleanField(default=False)
    configurations = models.ManyToManyField("records.PamConfiguration", blank=True, related_name="grants")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group_dn="")
                    | models.Q(user__isnull=True) & ~models.Q(group_dn="")
                ),
                name="grant_person_or_group",
            )
        ]

    def __str__(self) -> str:
        who = self.user.get_username() if self.user_id else f"group {self.group_dn}"
        where = "all configurations" if self.all_configurations else "some configurations"
        return f"{who}: {self.get_role_display()} on {where}"

    def clean(self) -> None:
        self.group_dn = self.group_dn.strip()
        if bool(self.user_id) == bool(self.group_dn):
            raise ValidationError("A grant is given to one person or to one directory group.")

    @classmethod
    def pairs_for(cls, user) -> list[tuple[int, int | None]]:
        """Return (role, configuration id) for every grant that reaches a person; None means every configuration."""
        groups = DirectoryGroupMembership.objects.filter(user=user).values("group_dn")
        rows = cls.objects.filter(models.Q(user=user) | models.Q(group_dn__in=groups)).values_list(
            "role", "all_configurations", "configurations"
        )
        pairs = []
        for role, everywhere, configuration_id in rows:  # one query: a row per granted configuration
            if everywhere:
                pairs.append((role, None))
            if configuration_id is not None:
                pairs.append((role, configuration_id))
        return pairs


class DirectoryGroupMembership(models.Model):
    """A directory group a person was in at their last directory sign-in (for group grants)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_groups"
    )
    group_dn = models.CharField(max_length=500)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "group_dn"], name="directory_group_once")]

    def __str__(self) -> str:
        return f"{self.user} in {self.group_dn}"

    @classmethod
    def replace(cls, user, group_dns: list[str]) -> None:
        """Record exactly these groups for a person."""
        with transaction.atomic():
            cls.objects.filter(user=user).exclude(group_dn__in=group_dns).delete()
            have = set(cls.objects.filter(user=user).values_list("group_dn", flat=True))
            cls.objects.bulk_create(cls(user=user, group_dn=dn) for dn in group_dns if dn not in have)
