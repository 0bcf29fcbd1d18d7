from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The API for applications and automation: tokens, REST endpoints, Vault's static-cred path."""

    name = "api"
    verbose_name = "API"

    def ready(self):
        from api import schema  # noqa: F401  (registers the bearer-token scheme with drf-spectacular)
