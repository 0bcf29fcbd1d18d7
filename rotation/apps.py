from django.apps import AppConfig
from django.db.backends.signals import connection_created
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
        from rotation.dispatch import ensure_dispatch_schedules
        from rotation.forkguard import track_connection

        post_migrate.connect(
            ensure_dispatch_schedules, sender=self, dispatch_uid="pamrotate-dispatch-schedules"
        )
        # The fork guard knows every connection; the dispatcher runs in `manage.py qcluster`'s main
        # process after the cluster has forked (rotation/worker.py), never in a thread started here.
        connection_created.connect(track_connection, dispatch_uid="pamrotate-fork-guard")
