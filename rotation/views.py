"""Rotation pages: Rotate now, an attempt's live status, reveal a password, test a connection."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from records.models import PamDirectory, PamUser
from rotation import services
from rotation.models import ErrorClass, Heartbeat, PasswordVersion, RotationAttempt

HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=2)


def _require(request, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _get_user_for(request, pk: int, perm: str) -> PamUser:
    """Return the PAM user for a rotation action, or raise 403/404."""
    _require(request, perm)
    return get_object_or_404(PamUser.objects.select_related("configuration", "resource"), pk=pk)


def _client_address(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def healthz(request):
    """Answer 200 when the database is reachable and a worker was seen in the last 2 minutes."""
    now = timezone.now()
    body = {"database": False, "worker": False, "scheduler": False, "heartbeats": {}}
    try:
        beats = {beat.name: beat.seen_at for beat in Heartbeat.objects.all()}
        body["database"] = True
    except DatabaseError:
        beats = {}
    for name, seen_at in beats.items():
        body["heartbeats"][name] = {
            "seen_at": seen_at.isoformat(),
            "age_s": round((now - seen_at).total_seconds()),
        }
    fresh = {name for name, seen_at in beats.items() if now - seen_at <= HEARTBEAT_STALE_AFTER}
    body["worker"] = any(name.startswith("worker:") for name in fresh)
    body["scheduler"] = "scheduler" in fresh
    body["ok"] = body["database"] and body["worker"]
    return JsonResponse(body, status=200 if body["ok"] else 503)


@login_required
@require_POST
def rotate_now(request, pk):
    pam_user = _get_user_for(request, pk, "records.rotate_credentials")
    attempt = services.request_rotation(pam_user, actor=request.user, remote_address=_client_address(request))
    if attempt.error_class == ErrorClass.BLOCKED:
        messages.error(request, f"Not rotated: {attempt.error_message}")
        return redirect(pam_user)
    if attempt.error_class == ErrorClass.BUSY:
        messages.warning(request, attempt.error_message)
        active = pam_user.attempts.filter(state__in=services.ACTIVE_STATES).first()
        return redirect(active or pam_user)
    messages.info(request, f"Rotation of {pam_user} queued.")
    return redirect(attempt)


@login_required
def attempt_detail(request, pk):
    _require(request, "rotation.view_rotationattempt")
    attempt = get_object_or_404(RotationAttempt.objects.select_related("user", "requested_by"), pk=pk)
    return render(request, "rotation/attempt_detail.html", {"attempt": attempt, "pam_user": attempt.user})


@login_required
def attempt_status(request, pk):
    _require(request, "rotation.view_rotationattempt")
    attempt = get_object_or_404(RotationAttempt, pk=pk)
    return JsonResponse(
        {
            "id": attempt.pk,
            "state": attempt.state,
            "state_display": attempt.get_state_display(),
            "finished": attempt.is_finished,
            "error_class": attempt.error_class,
            "error_message": attempt.error_message,
        }
    )


@login_required
@require_POST
def reveal_password(request, pk):
    pam_user = _get_user_for(request, pk, "records.reveal_password")
    version = None
    if request.POST.get("version"):
        # Old versions are for Administrators only.
        _require(request, "records.configure_rotation")
        version = get_object_or_404(PasswordVersion, pk=request.POST["version"], user=pam_user)
    if version is None and not pam_user.has_password:
        messages.error(request, "No password is stored for this account.")
        return redirect(pam_user)
    password = services.reveal_password(
        pam_user, actor=request.user, remote_address=_client_address(request), version=version
    )
    context = {
        "pam_user": pam_user,
        "password": password,
        "version": version,
        "seconds": settings.REVEAL_SECONDS,
    }
    return render(request, "rotation/reveal.html", context)


@login_required
@require_POST
def test_connection(request, pk):
    _require(request, "records.rotate_credentials")
    directory = get_object_or_404(PamDirectory.objects.select_related("administrative_credential"), pk=pk)
    steps = services.test_connection(directory, actor=request.user, remote_address=_client_address(request))
    context = {"directory": directory, "steps": steps, "ok": all(step.ok for step in steps)}
    return render(request, "rotation/test_connection.html", context)
