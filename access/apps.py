from __future__ import annotations

from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Check-out and check-in, pools, rotate after use, approvals and break-glass."""

    name = "access"
    verbose_name = "Access workflows"

    def ready(self):
        # The engine and the policy publish hooks; access registers on them (nothing below imports access).
        from django.urls import URLPattern

        from access import services, urls
        from api import vault_urls

        services.register()
        # VaultPathMiddleware resolves /v1/ against api.vault_urls alone: add the library paths there,
        # unnamed (their names live in the access namespace; api.urls includes this list too).
        known = {str(pattern.pattern) for pattern in vault_urls.urlpatterns}
        vault_urls.urlpatterns.extend(
            URLPattern(p.pattern, p.callback, p.default_args)
            for p in urls.vault_patterns
            if str(p.pattern) not in known
        )
