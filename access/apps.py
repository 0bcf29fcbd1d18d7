from __future__ import annotations

from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Check-out and check-in, pools, rotate after use, approvals and break-glass."""

    name = "access"
    verbose_name = "Access workflows"

    def ready(self):
        # The engine and the policy publish hooks; access registers on them (nothing below imports access).
        from access import services, urls

        services.register()
        try:
            from api import vault_urls
        except ImportError:  # before the /v1/ routes had their own list, the site's list answered them
            return
        known = {str(pattern.pattern) for pattern in vault_urls.urlpatterns}
        vault_urls.urlpatterns.extend(p for p in urls.vault_patterns if str(p.pattern) not in known)
