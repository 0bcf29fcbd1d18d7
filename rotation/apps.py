import sys

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RotationConfig(AppConfig):
    """Rotation attempts, password history, audit, and the rotation protocol."""

    name = "rotation"
    verbose_name = "Rotation"

    def ready(self):
        from records import changes
        from rotation import discovery

        # records fills in a missing DN from the login through the directory (records never imports rotation).
        changes.register_dn_lookup(discovery.find_dn)
        from rotation.dispatch import ensure_dispatch_schedules, start_dispatcher_if_worker

        post_migrate.connect(
            ensure_dispatch_schedules, sender=self, dispatch_uid="pamrotate-dispatch-schedules"
        )
        start_dispatcher_if_worker(sys.argv)
