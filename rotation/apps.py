from django.apps import AppConfig


class RotationConfig(AppConfig):
    """Rotation attempts, password history, audit, and the rotation protocol."""

    name = "rotation"
    verbose_name = "Rotation"

    def ready(self):
        from rotation import audit  # noqa: F401  (connects the record_changed receiver)
