from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Sign-in and people"

    def ready(self):
        from accounts import signals  # noqa: F401  (audit receivers)
