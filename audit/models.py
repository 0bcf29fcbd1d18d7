"""The audit event: something that happened, recorded once and never changed, in fixed vocabularies."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Outcome(models.TextChoices):
    """How an event ended: the only values the audit filter, the API and every writer use."""

    OK = "ok", "Success"
    FAIL = "fail", "Failure"


class Category(models.TextChoices):
    """Which part of pamrotate an event belongs to (Keeper's envelope ``category``)."""

    RECORD = "record", "Record"
    ROTATION = "rotation", "Rotation"
    DIRECTORY = "directory", "Directory"
    HEARTBEAT = "heartbeat", "Account state"
    LOGIN = "login", "Sign-in"
    SECURITY = "security", "Security"


class AuditQuerySet(models.QuerySet):
    """Audit events can be added and read, never changed or removed in bulk."""

    def update(self, **kwargs):
        raise PermissionError("audit events cannot be changed")

    def delete(self):
        raise PermissionError("audit events cannot be deleted")

    def _raw_delete(self, using):
        raise PermissionError("audit events cannot be deleted")


class AuditEvent(models.Model):
    """Something that happened, recorded once and never changed (Keeper's event names)."""

    # Every event name pamrotate writes (Keeper's where Keeper has one); nothing writes a loose string.
    ROTATION_ON_DEMAND_OK = "record_rotation_on_demand_ok"
    ROTATION_ON_DEMAND_FAIL = "record_rotation_on_demand_fail"
    ROTATION_SCHEDULED_OK = "record_rotation_scheduled_ok"
    ROTATION_SCHEDULED_FAIL = "record_rotation_scheduled_fail"
    PASSWORD_REVEALED = "password_revealed"  # noqa: S105 - an event name
    PASSWORD_EXPORTED = "record_password_export"  # noqa: S105 - an event name
    RECORD_CREATED = "record_add"
    RECORD_UPDATED = "record_update"
    RECORD_DELETED = "record_delete"
    CONNECTION_TESTED = "connection_test"
    AUDIT_EXPORTED = "audit_export"
    AUDIT_PURGED = "audit_purge"
    CREDENTIAL_READ = "credential_read"
    APPLICATION_CREATED = "api_application_add"
    APPLICATION_UPDATED = "api_application_update"
    TOKEN_CREATED = "api_token_add"  # noqa: S105 - an event name
    TOKEN_REVOKED = "api_token_revoke"  # noqa: S105 - an event name
    SIGNIN_OK = "login"
    SIGNIN_FAILED = "login_failure"
    SIGNIN_LOCKED_OUT = "login_locked_out"
    SIGNED_OUT = "logout"
    MFA_ENROLLED = "mfa_enrolled"
    MFA_FAILED = "mfa_failure"
    RECOVERY_CODE_USED = "mfa_recovery_code_used"
    MFA_DEVICE_RESET = "mfa_device_reset"
    ROLE_CHANGED = "user_role_changed"
    PERSON_ADDED = "user_add"
    PASSWORD_CHANGED = "user_password_change"  # noqa: S105 - an event name
    DIRECTORY_DISCOVERED = "directory_discovery"
    ACCOUNT_STATE_CHANGED = "account_state_change"
    SCRIPTS_RERUN = "record_rotation_scripts_rerun"
    SCRIPTS_DECIDED = "record_rotation_scripts_decided"
    # Access workflows (access/): check-out, approvals, break-glass, rotate after use.
    CHECKED_OUT = "account_checkout"
    CHECKED_IN = "account_checkin"
    CHECKOUT_RENEWED = "account_checkout_renew"
    CHECKOUT_REFUSED = "account_checkout_refused"
    ACCESS_REQUESTED = "access_request"
    ACCESS_APPROVED = "access_request_approved"
    ACCESS_DENIED = "access_request_denied"
    ACCESS_EXPIRED = "access_request_expired"
    BREAK_GLASS = "break_glass"
    ROTATED_AFTER_USE = "rotation_after_use"
    POOL_CHANGED = "pool_change"
    # Alert settings (ops/): webhook endpoints added, resumed after giving up, removed.
    WEBHOOK_ADDED = "webhook_add"
    WEBHOOK_RESUMED = "webhook_resume"
    WEBHOOK_REMOVED = "webhook_delete"
    # The audit log's filter menu and labels (ids on hover); a new event name gets a line here.
    LABELS = {
        ROTATION_ON_DEMAND_OK: "On-demand rotation succeeded",
        ROTATION_ON_DEMAND_FAIL: "On-demand rotation failed",
        ROTATION_SCHEDULED_OK: "Scheduled rotation succeeded",
        ROTATION_SCHEDULED_FAIL: "Scheduled rotation failed",
        PASSWORD_REVEALED: "Password revealed",
        PASSWORD_EXPORTED: "Password exported",
        RECORD_CREATED: "Record created",
        RECORD_UPDATED: "Record changed",
        RECORD_DELETED: "Record deleted",
        CONNECTION_TESTED: "Connection tested",
        AUDIT_EXPORTED: "Audit log exported",
        AUDIT_PURGED: "Audit log purged",
        CREDENTIAL_READ: "Credential read through the API",
        APPLICATION_CREATED: "API application created",
        APPLICATION_UPDATED: "API application changed",
        TOKEN_CREATED: "API token created",
        TOKEN_REVOKED: "API token revoked",
        SIGNIN_OK: "Signed in",
        SIGNIN_FAILED: "Sign-in failed",
        SIGNIN_LOCKED_OUT: "Sign-in locked out",
        SIGNED_OUT: "Signed out",
        MFA_ENROLLED: "Second factor enrolled",
        MFA_FAILED: "Second factor code refused",
        RECOVERY_CODE_USED: "Recovery code used",
        MFA_DEVICE_RESET: "Second factor reset",
        ROLE_CHANGED: "Role or account changed",
        PERSON_ADDED: "Person added",
        PASSWORD_CHANGED: "Own password changed",
        DIRECTORY_DISCOVERED: "Directory accounts discovered",
        ACCOUNT_STATE_CHANGED: "Account state changed (heartbeat)",
        SCRIPTS_RERUN: "Post-rotation scripts run again",
        SCRIPTS_DECIDED: "Scripts-only outcome decided by an administrator",
        CHECKED_OUT: "Account checked out",
        CHECKED_IN: "Account checked in",
        CHECKOUT_RENEWED: "Check-out renewed",
        CHECKOUT_REFUSED: "Check-out refused",
        ACCESS_REQUESTED: "Access requested",
        ACCESS_APPROVED: "Access request approved",
        ACCESS_DENIED: "Access request denied",
        ACCESS_EXPIRED: "Access request expired",
        BREAK_GLASS: "BREAK-GLASS access",
        ROTATED_AFTER_USE: "Rotation after use requested",
        POOL_CHANGED: "Pool created or changed",
        WEBHOOK_ADDED: "Alert webhook added",
        WEBHOOK_RESUMED: "Alert webhook resumed",
        WEBHOOK_REMOVED: "Alert webhook removed",
    }

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    event = models.CharField(max_length=64, db_index=True)
    category = models.CharField(max_length=32, choices=Category.choices, default=Category.RECORD)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    remote_address = models.GenericIPAddressField(null=True, blank=True)
    record_type = models.CharField(max_length=32, blank=True)
    record_id = models.BigIntegerField(null=True, blank=True)
    # The record's UID (what the pages, the API and Keeper name it by), kept after the record is deleted.
    record_uid = models.CharField(max_length=22, blank=True, default="")
    record_title = models.CharField(max_length=200, blank=True)
    attempt_id = models.BigIntegerField(null=True, blank=True)
    message = models.CharField(max_length=1000, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        # The table the rotation app created keeps its name: the move to this app copied no row.
        db_table = "rotation_auditevent"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["record_type", "record_id"], name="audit_record_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event} {self.record_title}"

    def save(self, *args, **kwargs):
        self.ensure_new()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events cannot be deleted")

    def ensure_new(self) -> None:
        """Refuse to write an event that is stored already: the log is append-only (every writer asks)."""
        if self.pk is not None:
            raise PermissionError("audit events cannot be changed")

    @property
    def label(self) -> str:
        """Return the event's name for people (its id when it has no label)."""
        return self.LABELS.get(self.event, self.event)
