import sys

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RotationConfig(AppConfig):
    """Rotation attempts, password history, audit, and the rotation protocol."""

    name = "rotation"
    verbose_name = "Rotation"

    def ready(self):
        # Connect the record_changed (audit) and lookup_dn (discovery) receivers.
        from rotation import audit, discovery  # noqa: F401
        from rotation.dispatch import ensure_dispatch_schedules, start_dispatcher_if_worker

        post_migrate.connect(
            ensure_dispatch_schedules, sender=self, dispatch_uid="pamrotate-dispatch-schedules"
        )
        start_dispatcher_if_worker(sys.argv)
