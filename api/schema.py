"""OpenAPI descriptions drf-spectacular cannot infer: the bearer-token scheme."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer pr_app_…`` (an application) or ``pr_pat_…`` (a person)."""

    target_class = "api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An application token (pr_app_…) or a personal token (pr_pat_…).",
        }
