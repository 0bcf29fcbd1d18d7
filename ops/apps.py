from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: Prometheus metrics, alert webhooks, the SIEM stream and rotation notices."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self):
        # The engine publishes hooks; ops registers on them (the engine never imports ops).
        from ops import relay

        relay.register()
