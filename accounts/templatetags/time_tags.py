"""Times as people read them: in the viewer's zone (accounts/timezones.py), the UTC time on hover."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

FORMATS = {"minutes": "%Y-%m-%d %H:%M", "seconds": "%Y-%m-%d %H:%M:%S", "day": "%a %Y-%m-%d %H:%M"}


@register.filter
def when(value, style: str = "minutes"):
    """Render an aware time as ``<time datetime="…Z" title="… UTC">local time and zone</time>``."""
    if not isinstance(value, dt.datetime):
        return value if value else ""
    pattern = FORMATS.get(style, FORMATS["minutes"])
    if timezone.is_naive(value):
        return value.strftime(pattern)
    utc = value.astimezone(dt.UTC)
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{} UTC">{} {}</time>',
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        utc.strftime(pattern),
        local.strftime(pattern),
        local.tzname(),
    )


@register.simple_tag(takes_context=True)
def viewer_time_zone(context) -> str:
    """Return the zone this page shows times in."""
    return timezone.get_current_timezone_name()


@register.simple_tag(takes_context=True)
def viewer_time_zone_source(context) -> str:
    """Return where the page's zone comes from: person, browser or server."""
    request = context.get("request")
    return getattr(request, "time_zone_source", "server")
