"""Rate limits of the API: per token (or per signed-in person), 429 with Retry-After."""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from api.models import Token


class TokenRateThrottle(SimpleRateThrottle):
    """Limit each token to PAMROTATE_API_RATE requests; a session caller is keyed by person."""

    scope = "token"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, Token):
            ident = f"token-{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
