from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log: events, who did them, and how they are read, exported and purged (imports no app)."""

    name = "audit"
    verbose_name = "Audit log"
