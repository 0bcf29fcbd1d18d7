"""The operations settings, read from the environment when used (so a test or a restart sees a change).

``PAMROTATE_METRICS_TOKEN`` (or ``_FILE``): the bearer token /metrics asks for.
``PAMROTATE_METRICS_ALLOW``: addresses or networks (comma-separated) that may scrape /metrics.
Neither set: /metrics answers 404 — it is never open by default.
``PAMROTATE_SIEM_URL``: ``tcp://host:port`` or ``tls://host:port``; unset: no SIEM stream.
``PAMROTATE_SIEM_CA_FILE``: the CA bundle that signs the collector's certificate (TLS).
``PAMROTATE_SIEM_FORMAT``: ``json`` (default) or ``cef`` — the body of each RFC 5424 message.
``PAMROTATE_WEBHOOK_ALLOWED_HOSTS``: in production, the only host names webhooks may target
(comma-separated, ``.example.com`` for a domain); unset: any public HTTPS host.
``PAMROTATE_WEBHOOK_RETRY_SECONDS``: the first retry's delay, doubled each time (default 30).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

from pamrotate.settings import env_int, env_list, env_secret, env_str


def dev_mode() -> bool:
    """Return whether pamrotate runs in its local dev mode (plain http and loopback targets allowed)."""
    return getattr(settings, "MODE", "production") == "dev"


def metrics_token() -> str:
    """Return the bearer token that /metrics asks for, or "" when none is set."""
    return env_secret("PAMROTATE_METRICS_TOKEN")


def metrics_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Return the networks allowed to scrape /metrics (bad entries are skipped)."""
    networks = []
    for item in env_list("PAMROTATE_METRICS_ALLOW"):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return networks


def siem_url() -> str:
    return env_str("PAMROTATE_SIEM_URL")


def siem_ca_file() -> str:
    return env_str("PAMROTATE_SIEM_CA_FILE")


def siem_format() -> str:
    return "cef" if env_str("PAMROTATE_SIEM_FORMAT", "json").lower() == "cef" else "json"


def webhook_allowed_hosts() -> list[str]:
    return [host.lower() for host in env_list("PAMROTATE_WEBHOOK_ALLOWED_HOSTS")]


def webhook_retry_seconds() -> int:
    return max(1, env_int("PAMROTATE_WEBHOOK_RETRY_SECONDS", 30))
