"""The records pamrotate manages, in Keeper's PAM model: configurations, directories, users."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets

from django.core.exceptions import ValidationError
from django.db import connections, models
from django.urls import reverse
from django.utils import timezone

from pamrotate import crypto
from records import schedules, validators
from records.complexity import Complexity, ComplexityError
from records.validators import validate_complexity  # noqa: F401  (named by migration 0001)

DEFAULT_COMPLEXITY = "20,1,1,1,1"
# An account is overdue when its next rotation is this late without a success.
OVERDUE_GRACE = dt.timedelta(minutes=5)


def new_uid() -> str:
    """Return a Keeper-style record UID: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


class RecordUid(models.Model):
    """A stable, Keeper-style identifier for a record, used by scripts, the API, import and export."""

    uid = models.CharField("UID", max_length=22, unique=True, default=new_uid, editable=False)

    class Meta:
        abstract = True


class Environment(models.TextChoices):
    """Where a configuration's resources live (Keeper's PAM configuration types)."""

    LOCAL = "local", "Local Network"
    DOMAIN = "domain", "Domain Controller"


class DirectoryType(models.TextChoices):
    """The kind of directory server; Keeper's import keys."""

    ACTIVE_DIRECTORY = "active_directory", "Active Directory"
    OPENLDAP = "openldap", "OpenLDAP"


class RotationStatus(models.TextChoices):
    """The outcome of an account's most recent rotation attempt."""

    NEVER = "never", "Never rotated"
    RUNNING = "running", "Rotating"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown"


# The fields of one rotation schedule, in form order (forms, rescheduling and adoption use this list).
SCHEDULE_FIELDS = (
    "schedule_type",
    "schedule_time",
    "schedule_interval",
    "schedule_weekday",
    "schedule_day",
    "schedule_week",
    "schedule_cron",
    "schedule_tz",
)

# A configuration's rotation window and notice (ops/): changing one moves its users' next rotation.
WINDOW_FIELDS = ("window_mode", "window_weekdays", "window_start", "window_end", "notice_hours")


class ScheduleFields(models.Model):
    """The fields of one rotation schedule (see records/schedules.py for their meaning)."""

    schedule_type = models.CharField(
        "schedule", max_length=20, choices=schedules.TYPES, default=schedules.ON_DEMAND
    )
    schedule_time = models.TimeField("time of day", null=True, blank=True)
    schedule_interval = models.PositiveSmallIntegerField("every N days", default=1)
    schedule_weekday = models.PositiveSmallIntegerField(
        "weekday", null=True, blank=True, choices=list(enumerate(schedules.WEEKDAYS))
    )
    schedule_day = models.PositiveSmallIntegerField("day of month", null=True, blank=True)
    schedule_week = models.SmallIntegerField(
        "week of month",
        null=True,
        blank=True,
        choices=[(k, v.title()) for k, v in schedules.ORDINALS.items()],
    )
    schedule_cron = models.CharField("cron expression", max_length=100, blank=True)
    schedule_tz = models.CharField("time zone", max_length=64, default="UTC")

    class Meta:
        abstract = True

    @property
    def schedule(self) -> schedules.Schedule:
        """Return the stored fields as a Schedule."""
        return schedules.Schedule(
            type=self.schedule_type,
            time=self.schedule_time,
            interval=self.schedule_interval or 1,
            weekday=self.schedule_weekday,
            day=self.schedule_day,
            week=self.schedule_week,
            cron=self.schedule_cron,
            tz=self.schedule_tz,
        )

    def clean_schedule(self) -> None:
        """Raise ValidationError when the schedule fields do not make a runnable schedule."""
        validators.validate_schedule(self.schedule)


def _same_record(one, other) -> bool:
    """Return whether two (possibly unsaved, as in an import plan) records are the same one."""
    return one is other or (
        one is not None and other is not None and one.pk is not None and one.pk == other.pk
    )


def _related(instance, name: str):
    """Return a foreign key's record, unsaved ones included, or None when it is not set."""
    try:
        return getattr(instance, name)
    except models.ObjectDoesNotExist:
        return None


class PamConfiguration(RecordUid, ScheduleFields):
    """An environment: the worker pool that reaches it, its defaults and a rotation switch."""

    title = models.CharField(max_length=200, unique=True)
    environment = models.CharField(max_length=20, choices=Environment.choices, default=Environment.LOCAL)
    gateway = models.CharField(
        "gateway (worker pool)",
        max_length=100,
        default="default",
        help_text="The worker pool that can reach this network.",
    )
    application_folder = models.CharField(max_length=200, blank=True)
    network_id = models.CharField("network ID", max_length=100, blank=True)
    network_cidr = models.CharField(
        "network CIDR", max_length=50, blank=True, validators=[validators.validate_network_cidr]
    )
    port_mapping = models.TextField(
        blank=True,
        validators=[validators.validate_port_mapping],
        help_text="One mapping a line, such as 32636=ldaps.",
    )
    rotation_enabled = models.BooleanField(
        default=True, help_text="Off blocks every rotation of every account under this configuration."
    )
    default_password_complexity = models.CharField(
        max_length=120,
        default=DEFAULT_COMPLEXITY,
        validators=[validators.validate_complexity],
        help_text='Keeper\'s form: "length,upper,lower,digits,special[,characters]".',
    )
    manual_rotation_resets_schedule = models.BooleanField(
        "a manual rotation moves the next scheduled one",
        default=False,
    )
    heartbeat_hours = models.PositiveSmallIntegerField(
        "heartbeat every N hours",
        default=0,
        help_text="Check that each stored password still opens its account; 0 turns the heartbeat off.",
    )
    rotate_when_drifted = models.BooleanField(
        default=False,
        help_text="Rotate an account as soon as the heartbeat finds it changed outside pamrotate.",
    )
    window_mode = models.CharField(
        "rotation window",
        max_length=10,
        choices=schedules.WINDOW_MODES,
        default=schedules.WINDOW_NONE,
        help_text="A scheduled rotation that falls outside the window waits for its next start.",
    )
    window_weekdays = models.CharField(
        "window days",
        max_length=7,
        default=schedules.ALL_WEEKDAYS,
        validators=[validators.validate_window_weekdays],
        help_text="The weekdays a period starts on, as digits: 0 = Monday … 6 = Sunday (01234 = weekdays).",
    )
    window_start = models.TimeField("window starts", null=True, blank=True)
    window_end = models.TimeField(
        "window ends",
        null=True,
        blank=True,
        help_text="Not after the start: it ends the next day (22:00–05:00).",
    )
    notice_hours = models.PositiveSmallIntegerField(
        "notice N hours before",
        default=0,
        help_text="Mail (and the upcoming webhook) this many hours before each scheduled rotation; 0: no notice.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        verbose_name = "PAM configuration"

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("records:configuration-detail", args=[self.pk])

    def complexity_text(self) -> str:
        """Return the default complexity in words ("20 characters, at least 1 uppercase, …"), not Keeper's string."""
        try:
            return Complexity.parse(self.default_password_complexity).describe()
        except ComplexityError as exc:
            return f"{self.default_password_complexity} (cannot be used: {exc})"

    def clean(self) -> None:
        # Stored in one normal form whichever entry point wrote it (validators ran on each field).
        self.network_cidr = validators.normal_network_cidr(self.network_cidr)
        self.port_mapping = validators.normal_port_mapping(self.port_mapping)
        if self.schedule_type == schedules.USE_DEFAULT:
            raise ValidationError({"schedule_type": "a configuration's default cannot refer to itself"})
        self.clean_schedule()
        try:
            self.rotation_window.validate()
        except schedules.ScheduleError as exc:
            raise ValidationError({"window_mode": str(exc)}) from None

    @property
    def rotation_window(self) -> schedules.Window:
        """Return the window rotations of this configuration's accounts keep to (in its time zone)."""
        return schedules.Window(
            mode=self.window_mode,
            weekdays=self.window_weekdays,
            start=self.window_start,
            end=self.window_end,
            tz=self.schedule_tz,
        )

    @property
    def schedule(self) -> schedules.Schedule:
        """Return the default schedule, kept to the rotation window."""
        return dataclasses.replace(ScheduleFields.schedule.fget(self), window=self.rotation_window)

    def reschedule_users(self) -> None:
        """Store every user's next rotation again (after the default schedule or the switch changed)."""
        users = list(self.users.all())
        for user in users:
            user.configuration = self
            user.next_rotation_at = user.compute_next_rotation()
        PamUser.objects.bulk_update(users, ["next_rotation_at"], batch_size=500)


class PamDirectory(RecordUid, models.Model):
    """An Active Directory or OpenLDAP server and the credential that administers it."""

    title = models.CharField(max_length=200, unique=True)
    configuration = models.ForeignKey(PamConfiguration, on_delete=models.PROTECT, related_name="directories")
    hostname = models.CharField("hostname or IP", max_length=253, validators=[validators.validate_host])
    port = models.PositiveIntegerField(default=636, validators=[validators.validate_port])
    use_ssl = models.BooleanField("use SSL (LDAPS)", default=True)
    start_tls = models.BooleanField("StartTLS", default=False, help_text="OpenLDAP only.")
    ca_certificate = models.TextField(
        "CA certificate",
        blank=True,
        validators=[validators.validate_ca_certificate],
        help_text="PEM; for directories whose certificate a private CA issued.",
    )
    verify_certificate = models.BooleanField(default=True)
    alternative_ips = models.TextField(
        "alternative IPs",
        blank=True,
        validators=[validators.validate_alternative_ips],
        help_text="One a line.",
    )
    domain_name = models.CharField(max_length=253, blank=True)
    directory_type = models.CharField(max_length=20, choices=DirectoryType.choices)
    user_match = models.CharField(
        "user match (search base)", max_length=500, blank=True, validators=[validators.validate_search_base]
    )
    discovery_filter = models.CharField(
        max_length=500,
        blank=True,
        help_text="LDAP filter for discovering accounts; blank uses the directory type's default.",
    )
    administrative_credential = models.ForeignKey(
        "PamUser",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="administered_directories",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        verbose_name = "PAM directory"
        verbose_name_plural = "PAM directories"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(port__gte=1, port__lte=65535), name="directory_port_range"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("records:directory-detail", args=[self.pk])

    def clean(self) -> None:
        self.hostname = self.hostname.strip()
        self.ca_certificate = self.ca_certificate.strip()
        self.alternative_ips = validators.normal_alternative_ips(self.alternative_ips)
        self.user_match = self.user_match.strip()
        errors = {}
        if self.directory_type == DirectoryType.ACTIVE_DIRECTORY:
            if not self.use_ssl:
                errors["use_ssl"] = "Active Directory requires LDAPS: turn on SSL."
            if self.start_tls:
                errors["start_tls"] = "StartTLS is for OpenLDAP; Active Directory uses LDAPS."
        elif not self.use_ssl and not self.start_tls:
            errors["use_ssl"] = "Pick LDAPS or StartTLS: pamrotate never sends a password over plain LDAP."
        if self.use_ssl and self.start_tls:
            errors["start_tls"] = "Pick either LDAPS or StartTLS, not both."
        credential = _related(self, "administrative_credential")
        configuration = _related(self, "configuration")
        if (
            credential is not None
            and configuration is not None
            and not _same_record(_related(credential, "configuration"), configuration)
        ):
            errors["administrative_credential"] = (
                "The administrative credential must belong to the same configuration."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def alternative_ip_list(self) -> list[str]:
        """Return the alternative addresses, one per entry."""
        return [ip.strip() for ip in self.alternative_ips.replace(",", "\n").splitlines() if ip.strip()]

    @property
    def is_active_directory(self) -> bool:
        return self.directory_type == DirectoryType.ACTIVE_DIRECTORY


class RotationType(models.TextChoices):
    """How a PAM User's password is changed (Keeper's rotation types)."""

    GENERAL = "general", "On the directory"
    SCRIPTS_ONLY = "scripts_only", "Run post-rotation scripts only"


class AccountState(models.TextChoices):
    """What the last heartbeat found about an account on its directory."""

    UNCHECKED = "unchecked", "Not checked"
    OK = "ok", "Password works"
    DRIFTED = "drifted", "Changed outside pamrotate"
    DISABLED = "disabled", "Disabled"
    LOCKED = "locked", "Locked out"
    EXPIRED = "expired", "Expired"
    UNREACHABLE = "unreachable", "Could not be checked"


class PamUserQuerySet(models.QuerySet):
    """Queries over PAM users: which ones rotate, which are late, which slots are due."""

    def rotatable(self):
        """Return the users whose rotation nothing blocks (the rule rotation_blocked_reason explains)."""
        return self.filter(
            models.Q(resource__isnull=False) | models.Q(rotation_type=RotationType.SCRIPTS_ONLY),
            rotation_enabled=True,
            managed=False,
            configuration__rotation_enabled=True,
        )

    def targets(self, *, configuration=None, directory=None):
        """Return the accounts a rotation of a whole configuration or directory (object or id) covers: the rotatable ones.

        Every entry point that rotates "everything under X" (bulk view, CLI, API, demo) uses this,
        so none writes a refused attempt for a managed or switched-off account.
        """
        users = self.rotatable().select_related("configuration", "resource").order_by("title")
        if configuration is not None:
            users = users.filter(configuration=configuration)
        if directory is not None:
            users = users.filter(resource=directory)
        return users

    def overdue(self, now: dt.datetime | None = None):
        """Return the users whose rotation is more than the grace period late.

        Late means the next rotation time passed, or a queued attempt (a dispatched slot, a
        request or a released retry) has waited past the grace period without a worker taking it.
        """
        cutoff = (now or timezone.now()) - OVERDUE_GRACE
        return self.filter(models.Q(next_rotation_at__lt=cutoff) | models.Q(queued_since__lt=cutoff)).exclude(
            rotation_status=RotationStatus.RUNNING
        )

    def take_slots(self, slots: list[tuple[int, dt.datetime, dt.datetime | None]]) -> set[int]:
        """Move accounts' next rotation from their due slot to the following one; return the ids moved.

        ``slots`` holds (account id, due slot, following slot). One conditional UPDATE … RETURNING
        for all: a row moves only if it still holds its due slot, and whoever moves a slot owns
        it, so two dispatchers never take the same slot.
        """
        if not slots:
            return set()
        connection = connections[self.db]
        quote = connection.ops.quote_name
        meta = self.model._meta
        field = meta.get_field("next_rotation_at")
        table, column, key = quote(meta.db_table), quote(field.column), quote(meta.pk.column)
        # PostgreSQL cannot type a CASE of parameters that are all NULL; SQLite needs no cast.
        value = f"CAST(%s AS {field.db_type(connection)})" if connection.vendor == "postgresql" else "%s"
        cases = " ".join(f"WHEN %s THEN {value}" for _ in slots)
        due = " OR ".join(f"({key} = %s AND {column} = %s)" for _ in slots)
        sql = f"UPDATE {table} SET {column} = CASE {key} {cases} END WHERE {due} RETURNING {key}"  # noqa: S608
        prep = lambda moment: field.get_db_prep_value(moment, connection)  # noqa: E731
        params = [item for pk, _, following in slots for item in (pk, prep(following))]
        params += [item for pk, slot, _ in slots for item in (pk, prep(slot))]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}


class PamUser(RecordUid, ScheduleFields):
    """A privileged account: its login, DN, encrypted password and rotation settings."""

    title = models.CharField(max_length=200, unique=True)
    configuration = models.ForeignKey(PamConfiguration, on_delete=models.PROTECT, related_name="users")
    login = models.CharField(max_length=256)
    password_encrypted = models.TextField(blank=True, editable=False)
    distinguished_name = models.CharField(
        max_length=1024, blank=True, validators=[validators.validate_distinguished_name]
    )
    # Keeper's name, which reads as "pamrotate manages it" to Keeper and CyberArk admins: the label says what it does.
    managed = models.BooleanField(
        "never rotate (pamrotate leaves this password alone)",
        default=False,
        help_text="On: pamrotate keeps the password but never changes it.",
    )
    resource = models.ForeignKey(
        PamDirectory,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="users",
        help_text="The directory that rotates this account.",
    )
    # A new account follows its configuration: rotation on, the configuration's schedule.
    schedule_type = models.CharField(
        "schedule", max_length=20, choices=schedules.TYPES, default=schedules.USE_DEFAULT
    )
    rotation_enabled = models.BooleanField(default=True)
    rotation_type = models.CharField(
        max_length=20,
        choices=RotationType.choices,
        default=RotationType.GENERAL,
        help_text="Scripts only: no directory change; the post-rotation scripts deliver the new password.",
    )
    password_complexity = models.CharField(
        max_length=120,
        blank=True,
        validators=[validate_complexity],
        help_text="Blank uses the configuration's default. Keeper's form: \"20,1,1,1,1[,characters]\".",
    )
    last_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_rotation_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    rotation_status = models.CharField(
        max_length=20, choices=RotationStatus.choices, default=RotationStatus.NEVER, editable=False
    )
    rotation_error = models.CharField(max_length=500, blank=True, editable=False)
    account_state = models.CharField(
        max_length=20, choices=AccountState.choices, default=AccountState.UNCHECKED, editable=False
    )
    account_state_at = models.DateTimeField(null=True, blank=True, editable=False)
    account_state_detail = models.CharField(max_length=500, blank=True, editable=False)
    # Since when a queued attempt (a request, a dispatched slot or a released retry) waits for a
    # worker; the claim clears it. Kept here so "overdue" is a question about the account alone.
    queued_since = models.DateTimeField(null=True, blank=True, editable=False)
    # One rotation at a time: rotation/leases.py takes the lease for an attempt until it ends or expires.
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    lease_attempt_id = models.BigIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PamUserQuerySet.as_manager()

    encrypted_fields = ("password_encrypted",)

    class Meta:
        ordering = ["title"]
        verbose_name = "PAM user"
        # Keeper's enforcement policies; the roles migration gives them to the groups.
        permissions = [
            ("rotate_credentials", "Can rotate credentials"),
            ("reveal_password", "Can reveal a password"),
            ("configure_rotation", "Can configure rotation settings"),
        ]
        indexes = [
            models.Index(fields=["rotation_status"], name="pamuser_status_idx"),
            # Metrics (ops/metrics.py) count accounts by state and overdue ones at every scrape.
            models.Index(fields=["account_state"], name="pamuser_account_state_idx"),
            models.Index(fields=["queued_since"], name="pamuser_queued_since_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("records:user-detail", args=[self.pk])

    def clean(self) -> None:
        self.distinguished_name = self.distinguished_name.strip()
        errors = {}
        resource = _related(self, "resource")
        configuration = _related(self, "configuration")
        if (
            resource is not None
            and configuration is not None
            and not _same_record(_related(resource, "configuration"), configuration)
        ):
            errors["resource"] = "The directory must belong to the same configuration."
        scripts_only = self.rotation_type == RotationType.SCRIPTS_ONLY
        if self.rotation_enabled and resource is None and not scripts_only:
            errors["resource"] = "Pick the directory that rotates this account, or turn rotation off."
        if self.rotation_enabled and resource is not None and not self.distinguished_name:
            errors.setdefault("distinguished_name", "Rotation needs the account's distinguished name.")
        if errors:
            raise ValidationError(errors)
        self.clean_schedule()

    def set_password(self, plaintext: str) -> None:
        """Store a password encrypted (the caller saves)."""
        self.password_encrypted = crypto.encrypt(plaintext) if plaintext else ""

    def get_password(self) -> str:
        """Return the stored password in clear, for rotation and audited reveal only."""
        return crypto.decrypt(self.password_encrypted) if self.password_encrypted else ""

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    @property
    def effective_schedule(self) -> schedules.Schedule:
        """Return the schedule that applies, following "use the configuration's default"."""
        if self.schedule_type == schedules.USE_DEFAULT:
            return self.configuration.schedule
        return dataclasses.replace(self.schedule, window=self.configuration.rotation_window)

    @property
    def effective_complexity(self) -> Complexity:
        """Return the complexity that applies, following the configuration's default."""
        return Complexity.parse(self.password_complexity or self.configuration.default_password_complexity)

    @property
    def rotation_blocked_reason(self) -> str:
        """Return why this account cannot rotate now, or an empty string."""
        if self.managed:
            return "This account is managed: pamrotate never rotates it."
        if not self.rotation_enabled:
            return "Rotation is turned off for this account."
        if self.resource_id is None and self.rotation_type != RotationType.SCRIPTS_ONLY:
            return "No directory is set to rotate this account."
        if not self.configuration.rotation_enabled:
            return f"Rotation is turned off for the configuration {self.configuration}."
        if not self.distinguished_name and self.rotation_type != RotationType.SCRIPTS_ONLY:
            return "The account has no distinguished name."
        return ""

    def reschedule(self) -> None:
        """Store when the schedule next rotates this account (after a settings change)."""
        self.next_rotation_at = self.compute_next_rotation()
        type(self).objects.filter(pk=self.pk).update(next_rotation_at=self.next_rotation_at)

    def compute_next_rotation(self, after: dt.datetime | None = None) -> dt.datetime | None:
        """Return when the schedule next rotates this account, or None when it never will."""
        if self.rotation_blocked_reason:
            return None
        after = after or timezone.now()
        try:
            return self.effective_schedule.next_after(after, anchor=self.last_rotated_at or self.created_at)
        except schedules.ScheduleError:
            return None
