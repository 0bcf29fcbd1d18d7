from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """PAM configurations, directories and users."""

    name = "records"
    verbose_name = "PAM records"

    def ready(self):
        from audit import events
        from pamrotate import lookups  # noqa: F401  (registers IntegerFieldIn on every integer field)
        from records import filters

        # The audit log filters by configuration or directory through what records says they cover.
        events.register_scope("configuration", filters.configuration_scope)
        events.register_scope("directory", filters.directory_scope)
