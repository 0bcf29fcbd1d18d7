"""The API's documentation pages: Swagger UI and Redoc from drf-spectacular-sidecar, signed-in only.

Swagger UI runs under the site's CSP as it is (its start-up script is a separate file). Redoc
cannot: it styles itself by inserting <style> elements (styled-components), which
``style-src 'self'`` blocks, so its page alone also allows inline styles. Scripts stay
``'self'`` only, and the page shows nothing but the public schema.
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.templatetags.static import static
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

REDOC_STYLE_SRC = "style-src 'self' 'unsafe-inline'"

REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"  # its side menu's footer: the CSP blocks it


@functools.cache
def _redoc_bundle() -> bytes:
    text = Path(finders.find(REDOC_BUNDLE)).read_text(encoding="utf-8")
    return text.replace(REDOC_LOGO, static("favicon.svg")).encode()


@login_required
def redoc_bundle(request):
    """Serve Redoc's bundle with its footer logo from here, not a CDN (a blocked request, a console error)."""
    response = HttpResponse(_redoc_bundle(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "max-age=86400"
    return response


swagger_ui = login_required(
    SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html")
)
_redoc = SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html")


@login_required
def redoc(request, *args, **kwargs):
    """Serve Redoc with the one CSP relaxation it needs (inline styles)."""
    response = _redoc(request, *args, **kwargs)
    response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", REDOC_STYLE_SRC
    )
    return response
