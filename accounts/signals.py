"""Audit every sign-in, failure and sign-out, and stamp new sessions for the session rules."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts import mfa, sessions, signin, timezones
from accounts.models import Preference
from audit.models import AuditEvent, Outcome


@receiver(user_logged_in)
def signed_in(sender, request, user, **kwargs):
    """Record a sign-in and stamp the (new) session with its start and the person's MFA state."""
    if request is None or not hasattr(request, "session"):
        return
    sessions.stamp(request)
    request.session[mfa.ENROLLED_SESSION_KEY] = mfa.is_enrolled(user)
    timezones.remember(request, Preference.zone_of(user))
    backend = getattr(user, "backend", "") or ""
    how = "directory" if "directory" in backend.lower() or "ldap" in backend.lower() else "local password"
    signin.audit(request, AuditEvent.SIGNIN_OK, user=user, note=f"signed in with a {how}")


@receiver(user_logged_out)
def signed_out(sender, request, user, **kwargs):
    """Record a sign-out."""
    if request is not None and user is not None:
        signin.audit(request, AuditEvent.SIGNED_OUT, user=user)


@receiver(user_login_failed)
def sign_in_failed(sender, credentials, request=None, **kwargs):
    """Record a failed password check, and a lock-out when this failure reached the limit."""
    if request is None:
        return
    username = signin.normalize_username(credentials.get("username"))
    signin.audit(request, AuditEvent.SIGNIN_FAILED, username=username, outcome=Outcome.FAIL,
                 note="wrong user name or password")  # fmt: skip
    # django-axes (whose receiver runs first) flags the request when this failure hit the limit.
    if getattr(request, "axes_locked_out", False):
        signin.audit(request, AuditEvent.SIGNIN_LOCKED_OUT, username=username, outcome=Outcome.FAIL,
                     note="failure limit reached")  # fmt: skip
