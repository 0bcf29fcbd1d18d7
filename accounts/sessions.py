"""Session rules: an idle timeout, an absolute lifetime, and signing a person out everywhere."""

from __future__ import annotations

import importlib
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.models import Session
from django.utils import timezone

STARTED_KEY = "pamrotate_signed_in_at"
SEEN_KEY = "pamrotate_seen_at"
# Refresh the last-seen time at most this often, so that most requests do not write the session.
SEEN_RESOLUTION = 60


def stamp(request) -> None:
    """Record in a new session when it started."""
    now = int(time.time())
    request.session[STARTED_KEY] = now
    request.session[SEEN_KEY] = now


def expired_reason(request, now: float | None = None) -> str:
    """Return why this session has ended (idle or too old), or "" while it is still good."""
    now = time.time() if now is None else now
    started = request.session.get(STARTED_KEY)
    seen = request.session.get(SEEN_KEY, started)
    if started is None:  # a session from before these rules: its clock starts now
        stamp(request)
        return ""
    if now - started > settings.SESSION_ABSOLUTE_HOURS * 3600:
        return f"You were signed out: sessions last at most {settings.SESSION_ABSOLUTE_HOURS} hours."
    if now - seen > settings.SESSION_IDLE_MINUTES * 60:
        return f"You were signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity."
    if now - seen > SEEN_RESOLUTION:
        request.session[SEEN_KEY] = int(now)
    return ""


def sign_out_everywhere(user) -> int:
    """Delete every session of a user, on every device; return how many there were."""
    store = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    removed = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            store(session.session_key).delete()
            removed += 1
    return removed


class SessionRulesMiddleware:
    """Sign out a session that was idle too long or that outlived the absolute lifetime."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            reason = expired_reason(request)
            if reason:
                logout(request)
                messages.info(request, reason)
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)
