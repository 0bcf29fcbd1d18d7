"""The viewer's time zone: their own setting, else their browser's (a cookie tz.js sets), else the server's.

``TimeZoneMiddleware`` activates it for each request, so every aware time a template shows is in
that zone; ``accounts/templatetags/time_tags.py`` renders it with the UTC time on hover.
"""

from __future__ import annotations

import functools
import zoneinfo
from urllib.parse import unquote

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

COOKIE = "pamrotate_tz"
SESSION_KEY = "pamrotate_time_zone"  # the person's own setting, put in the session at sign-in
PERSON, BROWSER, SERVER = "person", "browser", "server"


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# In tzdata but no place: "Factory" (an unset zone) and "localtime" (whatever this host is set to).
NOT_OFFERED = frozenset({"Factory", "localtime", "posixrules"})


def zone_names() -> list[str]:
    """Return every IANA zone name this host knows that a picker offers, sorted."""
    return sorted(_zones() - NOT_OFFERED)


def is_zone(name: str) -> bool:
    """Return whether a name is an IANA time zone this host knows."""
    return name in _zones()


def remember(request: HttpRequest, name: str) -> None:
    """Keep a person's chosen zone in their session (at sign-in and after they change it)."""
    request.session[SESSION_KEY] = name


def zone_for(request: HttpRequest) -> tuple[str, str]:
    """Return the viewer's zone name and where it comes from (person, browser or server)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and hasattr(request, "session"):
        # Read from the session, not the database: no query per page (accounts/signals.py fills it).
        chosen = request.session.get(SESSION_KEY, "")
        if chosen and is_zone(chosen):
            return chosen, PERSON
    browser = unquote(request.COOKIES.get(COOKIE, ""))
    if browser and is_zone(browser):
        return browser, BROWSER
    return settings.TIME_ZONE, SERVER


class TimeZoneMiddleware:
    """Activate the viewer's time zone for the request (after sessions and authentication)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name, source = zone_for(request)
        request.time_zone_source = source
        timezone.activate(zoneinfo.ZoneInfo(name))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
