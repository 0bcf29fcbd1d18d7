"""Post-rotation scripts attached to records, and what each run of one did."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from pamrotate import crypto
from records.models import PamConfiguration, PamDirectory, PamUser
from rotation.models import RotationAttempt
from scripts import files

OUTPUT_LIMIT = 64 * 1024
OWNER_FIELDS = ("user", "directory", "configuration")


def validate_command(value: str) -> None:
    """Refuse a command that is not one program name or absolute path (a command cannot smuggle code in)."""
    try:
        files.check_command(value)
    except files.ScriptRefused as exc:
        message = str(exc)
        raise ValidationError(message[0].upper() + message[1:] + ".") from None


class PostRotationScript(models.Model):
    """A file in the scripts directory that runs after each rotation under its record."""

    user = models.ForeignKey(
        PamUser, on_delete=models.CASCADE, null=True, blank=True, related_name="post_rotation_scripts"
    )
    directory = models.ForeignKey(
        PamDirectory, on_delete=models.CASCADE, null=True, blank=True, related_name="post_rotation_scripts"
    )
    configuration = models.ForeignKey(
        PamConfiguration,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="post_rotation_scripts",
    )
    file = models.CharField(
        max_length=500, help_text="A file in the scripts directory (PAMROTATE_SCRIPTS_DIR)."
    )
    command = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_command],
        help_text="The program that runs the file, such as python3, bash or pwsh; empty runs the file itself.",
    )
    additional_credentials = models.ManyToManyField(
        PamUser,
        blank=True,
        related_name="+",
        help_text="Records whose fields (password included) go into the script's input.",
    )
    order = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = "post-rotation script"
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, directory__isnull=True, configuration__isnull=True)
                    | models.Q(user__isnull=True, directory__isnull=False, configuration__isnull=True)
                    | models.Q(user__isnull=True, directory__isnull=True, configuration__isnull=False)
                ),
                name="script_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file} on {self.owner}"

    def get_absolute_url(self) -> str:
        return self.owner.get_absolute_url()

    def clean(self) -> None:
        if sum(_set(self, name) for name in OWNER_FIELDS) != 1:
            raise ValidationError("A script belongs to exactly one user, directory or configuration.")
        try:
            self.file = files.relative_name(files.resolve(self.file, executable=not self.command))
        except files.ScriptRefused as exc:
            raise ValidationError({"file": str(exc)}) from None

    @property
    def owner(self):
        """Return the record the script is attached to."""
        return self.user or self.directory or self.configuration

    @property
    def owner_kind(self) -> str:
        return next(name for name in OWNER_FIELDS if _set(self, name))

    @property
    def owner_configuration(self) -> PamConfiguration:
        owner = self.owner
        return owner if isinstance(owner, PamConfiguration) else owner.configuration

    def clean_credentials(self, credentials) -> None:
        """Refuse additional credentials from another configuration than the script's record."""
        configuration = self.owner_configuration
        foreign = [c.title for c in credentials if c.configuration_id != configuration.pk]
        if foreign:
            raise ValidationError(
                {
                    "additional_credentials": f"{', '.join(foreign)} belong to another configuration than "
                    f"{configuration}."
                }
            )


def _set(script: PostRotationScript, name: str) -> bool:
    return getattr(script, f"{name}_id") is not None or getattr(script, name, None) is not None


class RunState(models.TextChoices):
    """How one run of one script ended."""

    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    UNKNOWN = "unknown", "Outcome unknown"


class ScriptRun(models.Model):
    """One run of one script for one attempt: what ran, how it ended, its output (passwords masked)."""

    attempt = models.ForeignKey(RotationAttempt, on_delete=models.CASCADE, related_name="script_runs")
    script = models.ForeignKey(
        PostRotationScript, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    round = models.PositiveSmallIntegerField(
        default=1, help_text="1: after the rotation; 2 and up: run again."
    )
    position = models.PositiveSmallIntegerField(default=1)
    record_type = models.CharField(max_length=20)
    record_title = models.CharField(max_length=200)
    file = models.CharField(max_length=500)
    command = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.RUNNING)
    exit_code = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    worker = models.CharField(max_length=300, blank=True, help_text="host:pid of the worker that ran it.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # What it printed, passwords masked (scripts/masking.py), encrypted like passwords: output can
    # still hold secrets we cannot name (a token derived from the password, a key of its own).
    stdout_encrypted = models.TextField(blank=True, editable=False)
    stderr_encrypted = models.TextField(blank=True, editable=False)

    encrypted_fields = ("stdout_encrypted", "stderr_encrypted")  # key rotation and start checks find them

    class Meta:
        ordering = ["attempt", "round", "position"]
        indexes = [models.Index(fields=["state"], name="scriptrun_state_idx")]

    def __str__(self) -> str:
        return f"{self.file} for attempt #{self.attempt_id} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("rotation:attempt-detail", args=[self.attempt_id])

    def set_output(self, stdout: str, stderr: str) -> None:
        """Store masked output, encrypted."""
        self.stdout_encrypted = crypto.encrypt(stdout) if stdout else ""
        self.stderr_encrypted = crypto.encrypt(stderr) if stderr else ""

    @property
    def stdout(self) -> str:
        """Return the masked stdout (decrypted): show it only to whom the policy lets reveal."""
        return crypto.decrypt(self.stdout_encrypted) if self.stdout_encrypted else ""

    @property
    def stderr(self) -> str:
        """Return the masked stderr (decrypted): show it only to whom the policy lets reveal."""
        return crypto.decrypt(self.stderr_encrypted) if self.stderr_encrypted else ""

    @property
    def duration(self):
        if self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def name(self) -> str:
        """Return the script's file name, as messages name it."""
        return self.file.rsplit("/", 1)[-1]

    @property
    def summary(self) -> str:
        """Return how the run ended in a few words, e.g. "deploy.sh failed (exit 3)"."""
        if self.state == RunState.FAILED:
            detail = f"exit {self.exit_code}" if self.exit_code is not None else self.reason
            return f"{self.name} failed ({detail})"
        if self.state == RunState.TIMED_OUT:
            return f"{self.name} timed out"
        if self.state == RunState.UNKNOWN:
            return f"{self.name} outcome unknown ({self.reason or 'the worker stopped'})"
        return f"{self.name} {self.get_state_display().lower()}"
