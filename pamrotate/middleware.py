"""Response headers that Django's SecurityMiddleware does not set."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def forwarded_client_address(meta: dict, proxies: int) -> str | None:
    """Return the client's address behind ``proxies`` trusted proxies, from X-Forwarded-For.

    Each proxy appends the address it received from, so the client is the N-th address from the
    right; whatever a client wrote further left is ignored. Without proxies, REMOTE_ADDR.
    """
    remote = meta.get("REMOTE_ADDR") or None
    hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if not proxies or len(hops) < proxies:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:
        return remote


class ClientAddressMiddleware:
    """Put the real client address in REMOTE_ADDR (PAMROTATE_BEHIND_PROXY), for audit and lock-outs alike."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.BEHIND_PROXY_COUNT:
            request.META["PAMROTATE_PROXY_ADDR"] = request.META.get("REMOTE_ADDR", "")
            request.META["REMOTE_ADDR"] = (
                forwarded_client_address(request.META, settings.BEHIND_PROXY_COUNT) or ""
            )
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Add a Content-Security-Policy without inline script to every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        # Pages can hold a revealed password: never keep them in a shared cache.
        if request.path.startswith("/static/"):
            return response
        response.setdefault("Cache-Control", "no-store")
        return response
