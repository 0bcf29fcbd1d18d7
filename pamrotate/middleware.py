"""Response headers that Django's SecurityMiddleware does not set."""

from __future__ import annotations

from django.conf import settings


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
