"""The second factor: who needs it, whether a session has it, and the one guard for sensitive views.

Devices are django-otp devices (``accounts.models.TOTPDevice`` and ``RecoveryCodeDevice``);
django-otp's ``OTPMiddleware`` marks a session verified by the device that verified it. Room for
WebAuthn/passkeys: add a django-otp ``Device`` subclass for a passkey (for example from
django-otp-webauthn), list it in ``DEVICE_MODELS`` below and offer its enrolment next to the
authenticator app's; ``session_is_verified``, ``require_verified`` and the middleware ask "is this
session verified by any device", so nothing that guards a view changes.
"""

from __future__ import annotations

from functools import wraps

import segno
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import login as otp_login

from accounts.models import RecoveryCodeDevice, TOTPDevice

DEVICE_MODELS = (TOTPDevice, RecoveryCodeDevice)
ENROLLED_SESSION_KEY = "pamrotate_mfa_enrolled"


def is_enrolled(user) -> bool:
    """Return whether the user has a confirmed authenticator (recovery codes alone do not count)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def session_is_verified(request) -> bool:
    """Return whether this session may do what needs a second factor (always, with MFA not required)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    if not settings.REQUIRE_MFA:
        return True
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def require_verified(view):
    """Let a view run only for a session verified with a second factor (see session_is_verified)."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if session_is_verified(request):
            return view(request, *args, **kwargs)
        if not request.user.is_authenticated:
            return redirect(f"{reverse(settings.LOGIN_URL)}?next={request.path}")
        messages.error(request, "This needs a session verified with your second factor.")
        target = "accounts:mfa-verify" if is_enrolled(request.user) else "accounts:mfa-enrol"
        return redirect(reverse(target))

    return guarded


def mark_verified(request, device) -> None:
    """Mark the session verified by a device, under a new session key."""
    otp_login(request, device)
    request.session[ENROLLED_SESSION_KEY] = True
    request.session.cycle_key()


def qr_svg(uri: str) -> str:
    """Return the QR code of a URI as inline SVG markup (no style attributes, for the strict CSP)."""
    return segno.make(uri, error="m").svg_inline(
        scale=5, svgclass="qr-code", lineclass="qr-line", omitsize=False
    )


def reset(user) -> int:
    """Delete every second-factor device of a user and return how many there were."""
    return sum(
        model.objects.filter(user=user).delete()[1].get(model._meta.label, 0) for model in DEVICE_MODELS
    )
