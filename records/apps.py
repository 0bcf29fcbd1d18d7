from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """PAM configurations, directories and users."""

    name = "records"
    verbose_name = "PAM records"
