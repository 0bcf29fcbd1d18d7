"""What rotation records: attempts and the password history (the audit log is the audit app)."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone

from audit.actors import PERSON, Actor
from pamrotate import crypto
from records.models import PamUser, RotationStatus
from rotation import messages


class AttemptState(models.TextChoices):
    """Where a rotation attempt stands."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown"
    RECONCILED = "reconciled", "Reconciled"
    REFUSED = "refused", "Refused"


class Trigger(models.TextChoices):
    """What started an attempt."""

    ON_DEMAND = "on_demand", "On demand"
    SCHEDULED = "scheduled", "Scheduled"
    RETRY = "retry", "Retry"


class ErrorClass(models.TextChoices):
    """How a failure is handled (DESIGN.md §3)."""

    REJECTED = "rejected", "Rejected by the directory"
    AMBIGUOUS = "ambiguous", "Outcome unknown"
    CONFIGURATION = "configuration", "Configuration or permission"
    TRANSIENT = "transient", "Directory unreachable"
    BLOCKED = "blocked", "Rotation blocked"
    BUSY = "busy", "Already rotating"
    INTERNAL = "internal", "Internal error"


def as_sentence(text: str) -> str:
    """Return a message as people read it: capital letters where sentences start, a full stop at the end.

    Messages are built from lowercase parts (rotation/ldap_errors.py) and prefixed in several
    places; every page and mail shows them through this function (the ``sentence`` filter).
    """
    text = text.strip()
    if not text:
        return ""
    text = re.sub(r"([.!?]\s+)([a-z])", lambda match: match.group(1) + match.group(2).upper(), text)
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


ACTIVE_STATES = (AttemptState.QUEUED, AttemptState.RUNNING)
OK_STATES = (AttemptState.SUCCEEDED, AttemptState.RECONCILED)
FINISHED_STATES = (AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.RECONCILED, AttemptState.REFUSED)
FAILED_STATES = (AttemptState.FAILED, AttemptState.UNKNOWN)


class ScriptsState(models.TextChoices):
    """How an attempt's post-rotation scripts (scripts/) ended; blank when none ran."""

    NONE = "", "No scripts"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown"


class RotationAttempt(models.Model):
    """One try at rotating one account's password; its pending password is the write-ahead."""

    user = models.ForeignKey(PamUser, on_delete=models.CASCADE, related_name="attempts")
    state = models.CharField(max_length=20, choices=AttemptState.choices, default=AttemptState.QUEUED)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.ON_DEMAND)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    # Rotates the user's own password with itself (a directory's administrative credential).
    self_change = models.BooleanField(default=False)
    slot = models.DateTimeField(null=True, blank=True, help_text="The scheduled time this attempt serves.")
    try_number = models.PositiveSmallIntegerField(default=1)
    # The account's own count of attempts ("Rotation #2 of ghost"); the URL keeps the global id.
    number = models.PositiveIntegerField(null=True, blank=True, editable=False)
    retry_of = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="retry"
    )
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="A queued retry waits until then before it is sent to a worker."
    )
    pending_password_encrypted = models.TextField(blank=True, editable=False)
    directory_changed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_class = models.CharField(max_length=20, choices=ErrorClass.choices, blank=True)
    error_code = models.IntegerField(null=True, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    scripts_state = models.CharField(max_length=20, choices=ScriptsState.choices, blank=True)
    scripts_message = models.CharField(max_length=500, blank=True)

    encrypted_fields = ("pending_password_encrypted",)
    # What a commit changes on an attempt.
    COMMITTED_FIELDS = (
        "state",
        "pending_password_encrypted",
        "directory_changed",
        "finished_at",
        "error_class",
        "error_code",
        "error_message",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="attempt_user_created_idx"),
            models.Index(fields=["state"], name="attempt_state_idx"),
        ]
        constraints = [
            # One scheduled attempt per account and slot, whatever races the dispatcher.
            models.UniqueConstraint(
                fields=["user", "slot", "try_number"],
                condition=models.Q(slot__isnull=False),
                name="attempt_one_per_slot_try",
            ),
        ]

    def __str__(self) -> str:
        return f"Rotation #{self.number or self.pk} of {self.user}"

    def save(self, *args, **kwargs):
        if self.number is None:
            self.number = next_numbers([self.user_id])[self.user_id]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("rotation:attempt-detail", args=[self.pk])

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def shown_error(self) -> str:
        """Return the error as shown next to its class label: a sentence, the label not repeated, the LDAP code once."""
        text = self.error_message.strip()
        label = self.get_error_class_display() if self.error_class else ""
        if label and text.lower().startswith(label.lower() + ":"):
            text = text[len(label) + 1 :]
        code = f"(LDAP {self.error_code})"
        if self.error_code is not None and code not in text:
            text = f"{text.rstrip('. ')} {code}".strip()
        return as_sentence(text)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def succeeded(self) -> bool:
        return self.state in OK_STATES

    @property
    def requester(self) -> Actor:
        """Return who asked for this attempt, rebuilt from its row (a worker's events name them)."""
        if self.requested_by_id is not None:
            return Actor(PERSON, self.requested_by_name, self.requested_by)
        return Actor.system(self.requested_by_name)

    def set_pending(self, plaintext: str) -> None:
        self.pending_password_encrypted = crypto.encrypt(plaintext) if plaintext else ""

    def get_pending(self) -> str:
        return crypto.decrypt(self.pending_password_encrypted) if self.pending_password_encrypted else ""

    # The transitions. Each sets state, error, message and timestamps in one place; the ``_all``
    # forms do it for many attempts in one statement (the batched driver uses the same ones).
    # rotation/protocol.py decides which one happens and what else goes in the same transaction.

    @classmethod
    def start_all(cls, attempts: list[RotationAttempt]) -> None:
        """Mark attempts whose account lease was just taken running (one UPDATE)."""
        now = timezone.now()
        cls.objects.filter(pk__in=[attempt.pk for attempt in attempts], state=AttemptState.QUEUED).update(
            state=AttemptState.RUNNING, started_at=now
        )
        for attempt in attempts:
            attempt.state, attempt.started_at = AttemptState.RUNNING, now

    @classmethod
    def give_back_all(cls, attempts: list[RotationAttempt]) -> None:
        """Queue running attempts again that never reached the directory, dropping their pending password (one UPDATE)."""
        cls.objects.filter(pk__in=[attempt.pk for attempt in attempts], state=AttemptState.RUNNING).update(
            state=AttemptState.QUEUED, started_at=None, pending_password_encrypted=""
        )
        for attempt in attempts:
            attempt.state, attempt.started_at, attempt.pending_password_encrypted = (
                AttemptState.QUEUED,
                None,
                "",
            )

    def take_for_sending(self) -> bool:
        """Take a waiting attempt (a retry whose wait is over, an orphan) for sending; return whether the caller won.

        Clears ``retry_at`` with one conditional UPDATE on the value the caller read, so of several
        dispatchers one sends it.
        """
        won = bool(type(self).objects.filter(pk=self.pk, retry_at=self.retry_at).update(retry_at=None))
        if won:
            self.retry_at = None
        return won

    @classmethod
    def mark_for_sending(cls, attempt_ids, now) -> int:
        """Mark queued attempts that no retry waits on to be sent again at ``now``; return how many (one UPDATE)."""
        return cls.objects.filter(
            pk__in=list(attempt_ids), state=AttemptState.QUEUED, retry_at__isnull=True
        ).update(retry_at=now)

    def refuse(self, error_class: str, message: str) -> None:
        """End an attempt that never ran (blocked, already rotating, superseded)."""
        self.state = AttemptState.REFUSED
        self._set_error(error_class, message)
        self.started_at = self.finished_at = timezone.now()
        self.save()

    def fail(self, error_class: str, message: str, code: int | None = None) -> None:
        """End an attempt as failed: the stored password is untouched and the pending one dropped."""
        self.state = AttemptState.FAILED
        self._set_error(error_class, message, code)
        self.pending_password_encrypted = ""
        self.finished_at = timezone.now()
        self.save()
        PamUser.objects.filter(pk=self.user_id).update(
            rotation_status=RotationStatus.FAILED, rotation_error=self.error_message
        )

    def mark_unknown(self, message: str, code: int | None = None) -> None:
        """Say the outcome is unknown: the pending password is kept until reconciliation decides."""
        self.state = AttemptState.UNKNOWN
        self._set_error(ErrorClass.AMBIGUOUS, message, code)
        self.save(update_fields=["state", "error_class", "error_code", "error_message"])
        PamUser.objects.filter(pk=self.user_id).update(
            rotation_status=RotationStatus.UNKNOWN, rotation_error=self.error_message
        )

    def commit(self, state: str) -> None:
        """End an attempt whose new password is now the stored one (succeeded or reconciled)."""
        self.commit_all([self], state)

    @classmethod
    def commit_all(cls, attempts: list[RotationAttempt], state: str) -> None:
        """End attempts whose new passwords are now the stored ones (one statement for all)."""
        now = timezone.now()
        for attempt in attempts:
            attempt.state = state
            attempt.pending_password_encrypted = ""
            attempt.directory_changed = True
            attempt.finished_at = now
            if state == AttemptState.SUCCEEDED:
                attempt._set_error("", "")
            else:
                attempt.error_message = messages.RECONCILED
        update_rows(cls, attempts, cls.COMMITTED_FIELDS)

    def claim_scripts(self, *, again: bool = False) -> bool:
        """Mark this attempt's post-rotation scripts running for the caller; return whether it won the claim.

        The first run claims only an attempt whose scripts never ran; ``again`` ("Run scripts
        again") any whose scripts are not running now. One conditional UPDATE, so of two
        deliveries of the same task at most one runs the scripts.
        """
        rows = type(self).objects.filter(pk=self.pk)
        if again:
            rows = rows.exclude(scripts_state=ScriptsState.RUNNING)
        else:
            rows = rows.filter(scripts_state=ScriptsState.NONE)
        won = bool(rows.update(scripts_state=ScriptsState.RUNNING))
        if won:
            self.scripts_state = ScriptsState.RUNNING
        return won

    def record_scripts(self, state: str, message: str) -> None:
        """Record how the post-rotation scripts ended (scripts/runner.py); the password is not touched."""
        self.scripts_state = state
        self.scripts_message = message[: self._meta.get_field("scripts_message").max_length]
        self.save(update_fields=["scripts_state", "scripts_message"])

    def _set_error(self, error_class: str, message: str, code: int | None = None) -> None:
        self.error_class = error_class
        self.error_code = code
        self.error_message = message[: self._meta.get_field("error_message").max_length]


def update_rows(model, rows, fields) -> None:
    """Write the named fields of many rows as one prepared UPDATE run for each (executemany).

    Django's ``bulk_update`` builds a CASE expression per field and row, which costs more than the
    rest of a batch's commit; one statement executed for many parameter rows is the cheap form.
    """
    rows = list(rows)
    if not rows:
        return
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    params = [
        [column.get_db_prep_save(getattr(row, column.attname), connection) for column in columns] + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def next_numbers(user_ids) -> dict[int, int]:
    """Return the number each account's next attempt gets (call where the account's row is locked)."""
    latest = dict(
        RotationAttempt.objects.filter(user_id__in=set(user_ids))
        .values_list("user_id")
        .annotate(latest=models.Max("number"))
        .values_list("user_id", "latest")
    )
    return {user_id: (latest.get(user_id) or 0) + 1 for user_id in user_ids}


class PasswordVersion(models.Model):
    """A password an account had before a rotation replaced it."""

    user = models.ForeignKey(PamUser, on_delete=models.CASCADE, related_name="password_versions")
    password_encrypted = models.TextField(editable=False)
    valid_from = models.DateTimeField(null=True, blank=True)
    replaced_at = models.DateTimeField()
    attempt = models.ForeignKey(
        RotationAttempt, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    encrypted_fields = ("password_encrypted",)

    class Meta:
        ordering = ["-replaced_at", "-id"]

    def __str__(self) -> str:
        return f"Password of {self.user} replaced {self.replaced_at:%Y-%m-%d %H:%M}"

    def get_password(self) -> str:
        return crypto.decrypt(self.password_encrypted)


class Heartbeat(models.Model):
    """The last time a background component proved it was alive.

    ``worker:<gateway>`` is written only by a worker of that gateway when it takes a task
    (rotation/tasks.py), never by the dispatcher: "alive" means "took a task from the broker".
    ``canary_sent_at`` is when a dispatcher sent the gateway's canary task that no worker has run
    yet (rotation/dispatch.py ``send_canaries``); ``scheduler`` is the dispatcher's own beat.
    """

    name = models.CharField(max_length=100, unique=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    canary_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        if self.seen_at is None:
            return f"{self.name} (never seen)"
        return f"{self.name} at {self.seen_at:%Y-%m-%d %H:%M:%S}"

    @staticmethod
    def worker_name(gateway: str) -> str:
        """Return the heartbeat name of a gateway's workers."""
        return f"worker:{gateway or 'default'}"

    @classmethod
    def beat(cls, name: str) -> None:
        """Record that a component is alive now."""
        cls.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})

    @classmethod
    def canary_taken(cls, gateway: str) -> None:
        """Record that a worker of the gateway ran its canary now: it took a task, nothing waits."""
        cls.objects.update_or_create(
            name=cls.worker_name(gateway), defaults={"seen_at": timezone.now(), "canary_sent_at": None}
        )

    @classmethod
    def claim_canary(cls, gateway: str, now, every) -> bool:
        """Return whether the caller should send the gateway's canary now; at most one caller wins.

        A canary goes out when none is waiting and no task was taken for ``every``; the row moves
        by a conditional UPDATE, so several dispatchers send one canary between them.
        """
        row, _ = cls.objects.get_or_create(name=cls.worker_name(gateway))
        if row.canary_sent_at is not None or (row.seen_at is not None and now - row.seen_at < every):
            return False
        return bool(
            cls.objects.filter(pk=row.pk, canary_sent_at__isnull=True, seen_at=row.seen_at).update(
                canary_sent_at=now
            )
        )
