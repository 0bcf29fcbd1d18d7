"""Rotation pages: Rotate now (one or many), live status, history, the audit log, reveal, test."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import policy
from accounts.mfa import require_verified
from accounts.policy import Action
from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent, Category, Outcome
from records import repoint
from records.filters import configurations_and_directories
from records.forms import RETYPE_SECRET, DirectoryForm
from records.models import PamDirectory, PamUser
from rotation import directories, discovery, heartbeat, ldap, reveal, services, status
from rotation.forms import AdoptForm, DiscoveryFilterForm
from rotation.models import (
    ACTIVE_STATES,
    OK_STATES,
    AttemptState,
    ErrorClass,
    PasswordVersion,
    RotationAttempt,
)

HISTORY_PAGE_SIZE = 25
BULK_LIMIT = 1000  # accounts per bulk request
BULK_KEEP = 5  # bulk runs remembered per session


def _get_user_for(request, pk: int, action: str) -> PamUser:
    """Return the PAM user for an action, or raise 403/404 (accounts.policy decides)."""
    return policy.get_object(
        request, PamUser.objects.select_related("configuration", "resource"), action, pk=pk
    )


def healthz(request):
    """Answer 200 when the database answers, the dispatcher runs and every gateway takes tasks; else 503 naming why."""
    body = status.health()
    return JsonResponse(body, status=200 if body["ok"] else 503)


@login_required
@require_POST
@require_verified
def rotate_now(request, pk):
    pam_user = _get_user_for(request, pk, Action.ROTATE)
    attempt = services.request_rotation(pam_user, actor=Actor.from_request(request))
    if attempt.error_class == ErrorClass.BLOCKED:
        messages.error(request, f"Not rotated: {attempt.error_message}")
        return redirect(pam_user)
    if attempt.error_class == ErrorClass.BUSY:
        messages.warning(request, attempt.error_message)
        active = pam_user.attempts.filter(state__in=ACTIVE_STATES).first()
        return redirect(active or pam_user)
    messages.info(request, f"Rotation of {pam_user} queued.")
    return redirect(attempt)


@login_required
@require_POST
@require_verified
def check_now(request, pk):
    pam_user = _get_user_for(request, pk, Action.ROTATE)
    if not heartbeat.checkable().filter(pk=pam_user.pk).exists():
        messages.warning(request, "Not checked: the heartbeat needs the account's directory and DN.")
    else:
        heartbeat.queue_check(pam_user)
        messages.info(request, f"Check of {pam_user} queued: its account state updates in a few seconds.")
    return redirect(pam_user)


@login_required
def attempt_detail(request, pk):
    attempt = policy.get_object(
        request, RotationAttempt.objects.select_related("user", "requested_by"), Action.VIEW_ATTEMPTS, pk=pk
    )
    return render(request, "rotation/attempt_detail.html", {"attempt": attempt, "pam_user": attempt.user})


@login_required
def attempt_status(request, pk):
    attempt = policy.get_object(
        request, RotationAttempt.objects.select_related("user"), Action.VIEW_ATTEMPTS, pk=pk
    )
    retry = status.retry_note(attempt)
    waits_for_retry = retry is not None and retry.retry != attempt
    return JsonResponse(
        {
            "id": attempt.pk,
            "state": attempt.state,
            "state_display": "Retrying" if waits_for_retry else attempt.get_state_display(),
            "finished": attempt.is_finished and not waits_for_retry,
            "error_class": attempt.error_class,
            "error_message": attempt.error_message,
            "waiting": status.waiting_problem(attempt),
        }
    )


@login_required
@require_POST
@require_verified
def reveal_password(request, pk):
    pam_user = _get_user_for(request, pk, Action.REVEAL_CURRENT)
    version = None
    if request.POST.get("version"):
        policy.require(request, Action.REVEAL_PREVIOUS, pam_user)
        version_id = audit.parse_id(request.POST["version"])
        version = get_object_or_404(PasswordVersion, pk=version_id or 0, user=pam_user)
    if version is None and not pam_user.has_password:
        messages.error(request, "No password is stored for this account.")
        return redirect(pam_user)
    password = reveal.reveal_password(pam_user, actor=Actor.from_request(request), version=version)
    context = {
        "pam_user": pam_user,
        "password": password,
        "version": version,
        "seconds": settings.REVEAL_SECONDS,
    }
    return render(request, "rotation/reveal.html", context)


@login_required
@require_POST
@require_verified
def test_connection(request, pk):
    directory = policy.get_object(
        request,
        PamDirectory.objects.select_related("administrative_credential"),
        Action.TEST_CONNECTION,
        pk=pk,
    )
    steps = directories.test_connection(directory, actor=Actor.from_request(request))
    context = {"directory": directory, "steps": steps, "ok": all(step.ok for step in steps)}
    return render(request, "rotation/test_connection.html", context)


@login_required
@require_POST
@require_verified
def test_unsaved_connection(request):
    """Test a directory form's settings as typed; nothing is saved and no password is sent back."""
    policy.require(request, Action.TEST_CONNECTION)
    directory_id = request.GET.get("directory", "")
    instance = None
    if directory_id.isascii() and directory_id.isdigit() and len(directory_id) < 19:
        instance = policy.get_object(
            request, PamDirectory.objects, Action.TEST_CONNECTION, pk=int(directory_id)
        )
    form = DirectoryForm(request.POST, instance=instance)
    if not form.is_valid():
        errors = [
            f"{form.fields[name].label if name in form.fields else 'form'}: {message}"
            for name, messages in form.errors.items()
            for message in messages
            if message != RETYPE_SECRET
        ]
        return JsonResponse({"ok": False, "steps": [], "errors": errors})
    directory = form.save(commit=False)  # unsaved, as is a credential created on the form
    try:  # a stored credential is sent only where it was entered for, tested or saved
        repoint.check(directory, repoint.Proof.of(request, form.cleaned_data.get("credential_password", "")))
    except repoint.RepointRefused as exc:
        return JsonResponse({"ok": False, "steps": [], "errors": exc.messages})
    steps = directories.test_connection(directory, actor=Actor.from_request(request))
    return JsonResponse(
        {
            "ok": all(step.ok for step in steps),
            "steps": [{"name": step.name, "ok": step.ok, "message": step.message} for step in steps],
        }
    )


# -- History and live status of one account --------------------------------------------------


@login_required
def user_history(request, pk):
    pam_user = _get_user_for(request, pk, Action.VIEW_ATTEMPTS)
    attempts = Paginator(pam_user.attempts.order_by("-created_at", "-id"), HISTORY_PAGE_SIZE)
    context = {
        "pam_user": pam_user,
        "page": attempts.get_page(request.GET.get("page")),
        "password_versions": pam_user.password_versions.defer("password_encrypted"),
    }
    return render(request, "rotation/user_history.html", context)


@login_required
def user_status(request, pk):
    pam_user = _get_user_for(request, pk, Action.VIEW)
    active = pam_user.attempts.filter(state__in=ACTIVE_STATES).order_by("id").values("id", "state").first()
    return JsonResponse(
        {
            "id": pam_user.pk,
            "rotation_status": pam_user.rotation_status,
            "rotation_status_display": pam_user.get_rotation_status_display(),
            "last_rotated_at": pam_user.last_rotated_at.isoformat() if pam_user.last_rotated_at else None,
            "next_rotation_at": pam_user.next_rotation_at.isoformat() if pam_user.next_rotation_at else None,
            "active_attempt": active,
        }
    )


# -- The audit log -----------------------------------------------------------------------------


@login_required
def audit_log(request):
    policy.require(request, Action.VIEW_AUDIT)
    filters = audit.AuditFilters.from_query(request.GET)
    events = filters.apply(policy.scope_events(request, AuditEvent.objects.all()))
    if "format" in request.GET:
        return _export(request, events, filters, request.GET["format"])
    configurations, directory_choices = configurations_and_directories()
    allowed = policy.configurations_for(request, Action.VIEW_AUDIT)
    if allowed is not policy.ALL:  # the filter menus name only the actor's configurations and directories
        visible = set(
            policy.scope(request, PamDirectory.objects.all(), action=Action.VIEW_AUDIT).values_list(
                "pk", flat=True
            )
        )
        configurations = [(pk, title) for pk, title in configurations if pk in allowed]
        directory_choices = [(pk, title) for pk, title in directory_choices if pk in visible]
    context = {
        "page": audit.event_page(events, request.GET.get("before"), request.GET.get("after")),
        "filters": filters,
        "events": audit.KNOWN_EVENTS,
        "outcomes": audit.OUTCOMES,
        "configurations": configurations,
        "directories": directory_choices,
        "account": policy.scope(request, PamUser.objects.filter(pk=filters.account)).first()
        if filters.account
        else None,
    }
    return render(request, "rotation/audit_log.html", context)


def _export(request, events, filters: audit.AuditFilters, fmt: str):
    """Stream the filtered events as CSV or JSON lines, and record who took them."""
    if fmt not in audit.EXPORT_FORMATS:
        raise Http404("Unknown export format.")
    content_type, extension, write = audit.EXPORT_FORMATS[fmt]
    audit.record_event(
        AuditEvent.AUDIT_EXPORTED,
        actor=Actor.from_request(request),
        outcome=Outcome.OK,
        category=Category.SECURITY,
        message=f"Exported the audit log as {extension.upper()} (filters: {filters.describe()})",
    )
    response = StreamingHttpResponse(write(audit.export_rows(events)), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="pamrotate-audit-{stamp}.{extension}"'
    return response


# -- Bulk rotation -----------------------------------------------------------------------------


def _bulk_targets(request, data):
    """Return the accounts a bulk request names: checked user ids, or a configuration's or directory's."""
    ids = [pk for pk in map(audit.parse_id, data.getlist("user")) if pk is not None]
    if ids:
        return list(
            policy.scope(request, PamUser.objects.select_related("configuration"), action=Action.ROTATE)
            .order_by("title")
            .filter(pk__in=ids[:BULK_LIMIT])
        )
    for name in ("configuration", "directory"):
        pk = audit.parse_id(data.get(name))
        if pk is not None:
            targets = policy.scope(request, PamUser.objects.targets(**{name: pk}), action=Action.ROTATE)
            return list(targets[:BULK_LIMIT])
    return []


@login_required
@require_POST
@require_verified
def bulk_rotate(request):
    policy.require(request, Action.ROTATE)
    targets = _bulk_targets(request, request.POST)
    if not targets:
        messages.warning(request, "No accounts were selected to rotate.")
        return redirect("records:user-list")
    actor = Actor.from_request(request)
    ids = [services.request_rotation(user, actor=actor).pk for user in targets]
    token = secrets.token_urlsafe(8)
    runs = request.session.get("bulk_rotations", {})
    runs[token] = ids
    request.session["bulk_rotations"] = dict(list(runs.items())[-BULK_KEEP:])
    messages.info(request, f"Rotation of {len(ids)} account(s) requested.")
    return redirect("rotation:bulk-status", token=token)


def _bulk_ids(request, token: str) -> list[int]:
    policy.require(request, Action.VIEW_ATTEMPTS)
    ids = request.session.get("bulk_rotations", {}).get(token)
    if not ids:
        raise Http404("This bulk rotation is not known in this session.")
    return ids


def _bulk_progress(ids: list[int]) -> dict:
    """Count a bulk run's attempts by outcome in one aggregate query."""
    counts = RotationAttempt.objects.filter(pk__in=ids).aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(state__in=ACTIVE_STATES)),
        succeeded=Count("id", filter=Q(state__in=OK_STATES)),
        failed=Count("id", filter=Q(state__in=(AttemptState.FAILED, AttemptState.UNKNOWN))),
        refused=Count("id", filter=Q(state=AttemptState.REFUSED)),
    )
    counts["finished"] = counts["total"] - counts["active"]
    counts["percent"] = round(100 * counts["finished"] / counts["total"]) if counts["total"] else 100
    counts["done"] = counts["active"] == 0
    return counts


@login_required
def bulk_status(request, token):
    ids = _bulk_ids(request, token)
    attempts = RotationAttempt.objects.filter(pk__in=ids).select_related("user").order_by("user__title")
    context = {"token": token, "attempts": attempts, "progress": _bulk_progress(ids)}
    return render(request, "rotation/bulk_status.html", context)


@login_required
def bulk_status_json(request, token):
    return JsonResponse(_bulk_progress(_bulk_ids(request, token)))


# -- Discovery: list a directory's accounts and adopt them --------------------------------------

# Rows on the results page: "select all" then stays under Django's 1,000 form fields a request;
# "adopt every unmanaged account matching the filter" covers the rest.
DISCOVERY_SHOWN = 500


def _get_directory_for_discovery(request, pk: int) -> PamDirectory:
    """Return the directory to discover, for Administrators (create users, configure rotation), or 403/404."""
    return policy.get_object(
        request,
        PamDirectory.objects.select_related("configuration", "administrative_credential"),
        Action.DISCOVER,
        pk=pk,
    )


def _discovered(request, directory: PamDirectory):
    """Run discovery and apply the page's filters; None (with a message) when the directory failed."""
    try:
        found = discovery.discover(directory, actor=Actor.from_request(request))
    except ldap.DirectoryError as exc:
        messages.error(request, f"Discovery failed: {exc}")
        return None, None
    filters = DiscoveryFilterForm(request.POST or request.GET)
    return found, filters.apply(found)


@login_required
@require_http_methods(["GET", "POST"])  # GET: the results page can be reloaded and linked
@require_verified
def discover_accounts(request, pk):
    directory = _get_directory_for_discovery(request, pk)
    found, shown = _discovered(request, directory)
    if found is None:
        return redirect(directory)
    context = {
        "directory": directory,
        "found_count": len(found),
        "adopted_count": sum(1 for item in found if item.adopted),
        "shown": shown[:DISCOVERY_SHOWN],
        "shown_count": len(shown),
        "truncated": len(shown) > DISCOVERY_SHOWN,
        "filters": DiscoveryFilterForm(request.POST or request.GET),
        "adopt_form": AdoptForm(),
    }
    return render(request, "rotation/discover.html", context)


@login_required
@require_POST
@require_verified
def adopt_accounts(request, pk):
    directory = _get_directory_for_discovery(request, pk)
    form = AdoptForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing adopted: " + "; ".join(m for ms in form.errors.values() for m in ms))
        return redirect(directory)
    if request.POST.get("all") == "1":
        found, shown = _discovered(request, directory)
        dns = [item.account.dn for item in shown or () if not item.adopted]
    else:
        dns = request.POST.getlist("dn")
    if not dns:
        messages.warning(request, "Nothing adopted: select at least one account that is not yet managed.")
        return redirect(directory)
    try:
        result = discovery.adopt(
            directory,
            dns,
            template=form.instance,
            actor=Actor.from_request(request),
        )
    except (ldap.DirectoryError, ValidationError) as exc:
        messages.error(request, f"Nothing adopted: {exc}")
        return redirect(directory)
    messages.success(
        request,
        f"{len(result.created)} accounts adopted; {len(result.already_managed)} were already managed"
        + (f", {len(result.not_found)} were not found on the directory" if result.not_found else "")
        + ". Their first rotation sets a password.",
    )
    return redirect(reverse("records:user-list") + f"?directory={directory.pk}")
