"""Script pages: attach, change and detach (Administrators), run again (Operators), decide (Administrators)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import policy
from accounts.mfa import require_verified
from accounts.policy import Action
from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent, Category, Outcome
from records import changes
from records.models import PamConfiguration, PamDirectory, PamUser, RotationType
from rotation import services
from rotation.models import AttemptState, RotationAttempt
from scripts import runner
from scripts.forms import ScriptForm
from scripts.models import PostRotationScript

OWNERS = {"user": PamUser, "directory": PamDirectory, "configuration": PamConfiguration}


def _announce(request, owner, what: str) -> None:
    """Audit a script change as a change of the record it belongs to."""
    changes.announce(
        owner, "updated", changed=[f"post-rotation script {what}"], actor=Actor.from_request(request)
    )


@login_required
def attach(request, kind: str, pk: int):
    if kind not in OWNERS:
        raise Http404
    owner = policy.get_object(request, OWNERS[kind].objects, Action.MANAGE_SCRIPTS, pk=pk)
    form = ScriptForm(request.POST or None, owner=owner)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            script = form.save()
            _announce(request, owner, f"{script.file} attached")
        messages.success(request, f"Script {script.file} attached to {owner}.")
        return redirect(owner)
    return _form_page(request, form, owner, None)


@login_required
def edit(request, pk: int):
    script = policy.get_object(request, PostRotationScript.objects, Action.MANAGE_SCRIPTS, pk=pk)
    owner = script.owner
    form = ScriptForm(request.POST or None, instance=script, owner=owner)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            _announce(request, owner, f"{script.file} changed ({', '.join(form.changed_data) or 'nothing'})")
        messages.success(request, f"Script {script.file} saved.")
        return redirect(owner)
    return _form_page(request, form, owner, script)


def _form_page(request, form, owner, script):
    """Render the script form with where the scripts directory is and whether it exists."""
    folder = settings.SCRIPTS_DIR
    context = {"form": form, "owner": owner, "script": script, "scripts_dir": folder}
    return render(request, "scripts/script_form.html", {**context, "scripts_dir_exists": folder.is_dir()})


@login_required
@require_POST
def detach(request, pk: int):
    script = policy.get_object(request, PostRotationScript.objects, Action.MANAGE_SCRIPTS, pk=pk)
    owner = script.owner
    with transaction.atomic():
        script.delete()
        _announce(request, owner, f"{script.file} detached")
    messages.success(request, f"Script {script.file} detached from {owner}.")
    return redirect(owner)


@login_required
@require_POST
@require_verified
def rerun(request, pk: int):
    attempts = RotationAttempt.objects.select_related("user__configuration")
    attempt = policy.get_object(request, attempts, Action.RERUN_SCRIPTS, pk=pk)
    reason = runner.request_rerun(attempt, actor=Actor.from_request(request))
    if reason:
        messages.error(request, f"Not run again: {reason}")
    else:
        messages.info(request, f"The scripts of rotation #{attempt.pk} are queued to run again.")
    return redirect(attempt)


@login_required
@require_POST
@require_verified
def decide(request, pk: int):
    attempt = policy.get_object(
        request, RotationAttempt.objects.select_related("user"), Action.MANAGE_SCRIPTS, pk=pk
    )
    keep = request.POST.get("keep")
    if keep not in ("pending", "stored"):
        messages.error(request, "Choose which password the account has.")
        return redirect(attempt)
    if attempt.state != AttemptState.UNKNOWN or attempt.user.rotation_type != RotationType.SCRIPTS_ONLY:
        messages.error(request, "Only an unresolved scripts-only rotation waits for this decision.")
        return redirect(attempt)
    who = request.user.get_username()
    if keep == "pending":
        services.commit_delivered(attempt)
    else:
        services.keep_stored(attempt, f"{who} decided the stored password is the one the account has.")
    audit.record_event(
        AuditEvent.SCRIPTS_DECIDED,
        instance=attempt.user,
        outcome=Outcome.OK,
        message=f"Attempt #{attempt.pk}: {who} kept the {'new (pending)' if keep == 'pending' else 'stored'} password",
        attempt_id=attempt.pk,
        category=Category.ROTATION,
        actor=Actor.from_request(request),
    )
    messages.success(request, f"Rotation #{attempt.pk} resolved: the {keep} password is kept.")
    return redirect(attempt)
