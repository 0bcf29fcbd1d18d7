"""What operations keeps: webhook endpoints and their delivery log, stream cursors, and sent notices."""

from __future__ import annotations

import datetime as dt
import secrets
from base64 import b64encode
from urllib.parse import urlsplit

from django.db import models
from django.urls import reverse
from django.utils import timezone

from pamrotate import crypto
from records.models import PamUser

# After this many failed tries in a row an endpoint is marked failing: nothing more is sent to
# it until an Administrator resumes it (a test send that succeeds resumes it too).
FAILING_AFTER = 8
# One delivery is tried this many times (with back-off) before it is given up.
MAX_TRIES = 6


class WebhookEvent(models.TextChoices):
    """What an endpoint can subscribe to."""

    FAILURE = "failure", "Rotation failed"
    DRIFT = "drift", "Account drifted, disabled, locked or expired"
    OVERDUE = "overdue", "Rotation overdue"
    UPCOMING = "upcoming", "Rotation coming up"
    CHECKOUT = "checkout", "Account checked out"
    BREAK_GLASS = "break_glass", "Break-glass access"
    TEST = "test", "Test send"


class WebhookFormat(models.TextChoices):
    """The body an endpoint receives."""

    STANDARD = "standard", "Standard Webhooks (signed JSON)"
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams"


def new_signing_secret() -> str:
    """Return a Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(models.Model):
    """Where alerts go: a URL (stored encrypted, it may hold a token), its events, format and secret."""

    name = models.SlugField(max_length=64, unique=True, help_text="A short name for the command line.")
    url_encrypted = models.TextField(editable=False)
    url_host = models.CharField("host", max_length=255, editable=False)
    events = models.CharField(max_length=200, help_text="Comma-separated event names.")
    format = models.CharField(max_length=20, choices=WebhookFormat.choices, default=WebhookFormat.STANDARD)
    secret_encrypted = models.TextField(editable=False)
    failures_in_a_row = models.PositiveIntegerField(default=0, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    encrypted_fields = ("url_encrypted", "secret_encrypted")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("ops:webhook-detail", args=[self.pk])

    @property
    def url(self) -> str:
        return crypto.decrypt(self.url_encrypted) if self.url_encrypted else ""

    def set_url(self, url: str) -> None:
        """Store the URL encrypted and its host in clear (for lists and logs)."""
        self.url_encrypted = crypto.encrypt(url)
        self.url_host = (urlsplit(url).hostname or "")[:255]

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @property
    def event_list(self) -> list[str]:
        return [event for event in self.events.split(",") if event]

    def wants(self, event: str) -> bool:
        """Return whether this endpoint takes an event (every endpoint takes test sends)."""
        return event == WebhookEvent.TEST or event in self.event_list

    @property
    def is_failing(self) -> bool:
        return self.failing_since is not None

    def record_success(self) -> None:
        WebhookEndpoint.objects.filter(pk=self.pk).update(
            failures_in_a_row=0, failing_since=None, last_success_at=timezone.now()
        )

    def record_failure(self) -> bool:
        """Count a failed try; mark the endpoint failing at FAILING_AFTER in a row. Return whether it is failing."""
        WebhookEndpoint.objects.filter(pk=self.pk).update(failures_in_a_row=models.F("failures_in_a_row") + 1)
        self.refresh_from_db(fields=["failures_in_a_row", "failing_since"])
        if self.failures_in_a_row >= FAILING_AFTER and self.failing_since is None:
            self.failing_since = timezone.now()
            WebhookEndpoint.objects.filter(pk=self.pk, failing_since__isnull=True).update(
                failing_since=self.failing_since
            )
        return self.is_failing

    def resume(self) -> None:
        """Clear the failing mark: deliveries are sent again."""
        WebhookEndpoint.objects.filter(pk=self.pk).update(failures_in_a_row=0, failing_since=None)
        self.failures_in_a_row, self.failing_since = 0, None


class DeliveryState(models.TextChoices):
    """Where one delivery stands."""

    PENDING = "pending", "Waiting"
    DELIVERED = "delivered", "Delivered"
    GIVEN_UP = "given_up", "Given up"


class WebhookDelivery(models.Model):
    """One message to one endpoint, its tries and how the last one ended (the body holds no secret)."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=20, choices=WebhookEvent.choices)
    audit_event_id = models.BigIntegerField(null=True, blank=True)
    summary = models.CharField(max_length=500)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=20, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    tries = models.PositiveSmallIntegerField(default=0)
    # A pending delivery with a time waits for it; none means it is queued to a worker now.
    retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_idx")]

    def __str__(self) -> str:
        return f"{self.get_event_display()} to {self.endpoint_id} ({self.state})"

    @property
    def message_id(self) -> str:
        """Return the Standard Webhooks message id (the same on every retry, so receivers deduplicate)."""
        return f"msg_pamrotate_{self.pk}"

    def backoff(self, base_seconds: int) -> dt.timedelta:
        """Return how long to wait before the next try: doubling from the base, at most an hour."""
        return dt.timedelta(seconds=min(3600, base_seconds * 2 ** max(0, self.tries - 1)))


class StreamCursor(models.Model):
    """How far a consumer of the audit log got (the last event id it handled), and who holds its lease."""

    name = models.CharField(max_length=50, unique=True)
    last_event_id = models.BigIntegerField(default=0)
    holder = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    sent = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} at event {self.last_event_id}"


class NoticeKind(models.TextChoices):
    """Notices sent once per account and slot."""

    UPCOMING = "upcoming", "Rotation coming up"
    OVERDUE = "overdue", "Rotation overdue"


class Notice(models.Model):
    """That a notice about one account's slot was sent (so it is sent once, whichever process sends it)."""

    kind = models.CharField(max_length=20, choices=NoticeKind.choices)
    user = models.ForeignKey(PamUser, on_delete=models.CASCADE, related_name="+")
    slot = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "user", "slot"], name="notice_once_per_slot")]

    def __str__(self) -> str:
        return f"{self.kind} notice for {self.user_id} at {self.slot:%Y-%m-%d %H:%M}"


class RotationTally(models.Model):
    """Finished rotations so far for one configuration, trigger and outcome: the metrics' counters.

    Kept from the audit log by ``ops.tally`` (a cursor, exactly once per event), so a scrape reads a
    few rows instead of every attempt, and a purge of old attempts does not lower a counter.
    """

    configuration_id = models.BigIntegerField()
    configuration_title = models.CharField(max_length=200)
    trigger = models.CharField(max_length=20)
    outcome = models.CharField(max_length=20)
    count = models.BigIntegerField(default=0)
    timed = models.BigIntegerField(default=0)  # attempts with a start and an end (the histogram's count)
    seconds = models.FloatField(default=0.0)
    buckets = models.JSONField(default=list)  # cumulative counts per ops.metrics.DURATION_BUCKETS
    last_finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["configuration_title", "trigger", "outcome"]
        constraints = [
            models.UniqueConstraint(
                fields=["configuration_id", "trigger", "outcome"], name="tally_one_per_series"
            )
        ]

    def __str__(self) -> str:
        return f"{self.configuration_title} {self.trigger} {self.outcome}: {self.count}"
