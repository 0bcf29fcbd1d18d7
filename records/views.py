"""Record pages: dashboard, lists, details, and create / edit / delete."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import models, transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts import policy, roles
from accounts.mfa import require_verified
from accounts.policy import Action
from accounts.timezones import zone_names
from audit.actors import Actor
from records import changes, filters, import_report, import_stash, imports, keeper, repoint, schedules
from records.complexity import ComplexityError
from records.forms import FORMS, ImportForm, SchedulePreviewForm
from records.models import (
    AccountState,
    DirectoryType,
    PamConfiguration,
    PamDirectory,
    PamUser,
    RotationStatus,
)

PAGE_SIZE = 25
USER_SORTS = {
    "title": "title",
    "-title": "-title",
    "next": "next_rotation_at",
    "-next": "-next_rotation_at",
    "last": "last_rotated_at",
    "-last": "-last_rotated_at",
}
RECORD_TYPES = {"configuration": PamConfiguration, "directory": PamDirectory, "user": PamUser}
RECORD_NAMES = {model: name for name, model in RECORD_TYPES.items()}
TIME_ZONES = zone_names()
PREVIEW_ERRORS = (schedules.ScheduleError, IndexError, KeyError, TypeError, ValueError, OverflowError)


def _page(request: HttpRequest, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _schedule_preview(schedule: schedules.Schedule) -> tuple[str, list[dt.datetime], str]:
    """Return a schedule's description, its next three runs, and an error if it cannot run."""
    try:
        return schedule.describe(), schedule.next_runs(timezone.now(), 3), ""
    except PREVIEW_ERRORS as exc:
        return "", [], str(exc)


def _schedule_summary(schedule: schedules.Schedule) -> dict:
    """Return a schedule's description and next three runs, in UTC and its own zone, as JSON data."""
    try:
        schedule.validate()
        description, runs = schedule.describe(), schedule.next_runs(timezone.now(), 3)
        local = [run.astimezone(schedules.zone(schedule.tz)) for run in runs]
    except PREVIEW_ERRORS as exc:
        return {"ok": False, "error": str(exc)}
    return {
        "ok": True,
        "description": description,
        "next_runs": [run.strftime("%Y-%m-%dT%H:%M:%SZ") for run in runs],
        "next_runs_local": [run.strftime("%a %Y-%m-%d %H:%M %Z") for run in local],
    }


def _administrators() -> list:
    """Return a few active people who can give someone a role (Administrators and superusers)."""
    people = get_user_model().objects.filter(Q(is_superuser=True) | Q(groups__name=roles.ADMINISTRATORS))
    return list(people.filter(is_active=True).distinct().order_by("username")[:5])


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if not policy.can(request, Action.VIEW):
        # Signed in but given no role yet: say so, and whom to ask, rather than a bare 403.
        return render(request, "records/no_role.html", {"administrators": _administrators()})
    # The figures come from rotation's template tags (rotation/status.py), like /healthz's.
    return render(request, "records/dashboard.html")


@login_required
def configuration_list(request: HttpRequest) -> HttpResponse:
    policy.require(request, Action.VIEW)
    queryset = policy.scope(request, PamConfiguration.objects, "pk").annotate(
        directory_count=Count("directories", distinct=True), user_count=Count("users", distinct=True)
    )
    queryset, selected = filters.filter_configurations(request.GET, queryset)
    context = {"page": _page(request, queryset.order_by("title")), "q": selected["q"]}
    return render(request, "records/configuration_list.html", context)


@login_required
def directory_list(request: HttpRequest) -> HttpResponse:
    policy.require(request, Action.VIEW)
    queryset = PamDirectory.objects.select_related("configuration", "administrative_credential")
    queryset, selected = filters.filter_directories(request.GET, policy.scope(request, queryset))
    context = {
        "page": _page(request, queryset.order_by("title")),
        "q": selected["q"],
        "configurations": policy.scope(request, PamConfiguration.objects.only("id", "title"), "pk"),
        "directory_types": DirectoryType.choices,
        "selected": selected,
    }
    return render(request, "records/directory_list.html", context)


@login_required
def user_list(request: HttpRequest) -> HttpResponse:
    policy.require(request, Action.VIEW)
    queryset = PamUser.objects.select_related("configuration", "resource")
    queryset, selected = filters.filter_users(request.GET, policy.scope(request, queryset))
    sort = request.GET.get("sort", "title")
    sort = sort if sort in USER_SORTS else "title"
    order = USER_SORTS[sort]
    nulls = models.F(order.lstrip("-"))
    ordering = nulls.desc(nulls_last=True) if order.startswith("-") else nulls.asc(nulls_last=True)
    context = {
        "page": _page(request, queryset.order_by(ordering, "title", "pk")),
        "selected": selected,
        "sort": sort,
        "configurations": policy.scope(request, PamConfiguration.objects.only("id", "title"), "pk"),
        "directories": policy.scope(request, PamDirectory.objects.only("id", "title")),
        "directory_types": DirectoryType.choices,
        "statuses": RotationStatus.choices,
        "account_states": AccountState.choices,
    }
    return render(request, "records/user_list.html", context)


@login_required
def configuration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    configuration = policy.get_object(request, PamConfiguration.objects, Action.VIEW, pk=pk)
    description, next_runs, schedule_error = _schedule_preview(configuration.schedule)
    context = {
        "configuration": configuration,
        "directories": configuration.directories.all(),
        "pam_users": configuration.users.select_related("resource")[:200],
        "user_count": configuration.users.count(),
        "schedule_description": description,
        "next_runs": next_runs,
        "schedule_error": schedule_error,
        "complexity": configuration.complexity_text(),
    }
    return render(request, "records/configuration_detail.html", context)


@login_required
def directory_detail(request: HttpRequest, pk: int) -> HttpResponse:
    directory = policy.get_object(
        request,
        PamDirectory.objects.select_related("configuration", "administrative_credential"),
        Action.VIEW,
        pk=pk,
    )
    context = {
        "directory": directory,
        "pam_users": directory.users.select_related("configuration")[:200],
        "user_count": directory.users.count(),
        # What "Rotate all its accounts now" would start, for its confirmation.
        "rotate_count": policy.scope(
            request, PamUser.objects.targets(directory=pk), action=Action.ROTATE
        ).count(),
    }
    return render(request, "records/directory_detail.html", context)


@login_required
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pam_user = policy.get_object(
        request, PamUser.objects.select_related("configuration", "resource"), Action.VIEW, pk=pk
    )
    description, next_runs, schedule_error = _schedule_preview(pam_user.effective_schedule)
    try:
        complexity = pam_user.effective_complexity.describe()
    except ComplexityError as exc:
        complexity = f"Invalid: {exc}"
    context = {
        "pam_user": pam_user,
        "schedule_description": description,
        "next_runs": next_runs if pam_user.next_rotation_at or not pam_user.rotation_blocked_reason else [],
        "schedule_error": schedule_error,
        "complexity": complexity,
        "attempts": pam_user.attempts.all()[:10],
        "password_versions": pam_user.password_versions.defer("password_encrypted")[:10],
        "administered_directories": pam_user.administered_directories.all(),
    }
    return render(request, "records/user_detail.html", context)


def _warn_unverified(request: HttpRequest, instance, changed: list[str]) -> None:
    """Warn loudly when certificate verification was just turned off for a directory."""
    if (
        isinstance(instance, PamDirectory)
        and not instance.verify_certificate
        and "verify_certificate" in changed
    ):
        messages.warning(
            request,
            f"Certificate verification is OFF for {instance}: pamrotate will send passwords to "
            "whatever server answers at this address. Configure its CA certificate instead.",
        )


def _form_schedule(instance) -> schedules.Schedule:
    """Return the schedule a form describes, following a user's "use the configuration's default"."""
    if isinstance(instance, PamUser) and instance.schedule_type == schedules.USE_DEFAULT:
        if instance.configuration_id:
            return instance.configuration.schedule
    return instance.schedule


def _typed_credential(form) -> str:
    """Return the credential typed in this save: retyped, or entered just now (records.repoint)."""
    data, new = form.cleaned_data, getattr(form, "new_credential", None)
    typed = data.get("credential_password") or (new.get_password() if new is not None else "")
    return typed or data.get("password") or ""


def _save_form(request: HttpRequest, form, record, *, created: bool) -> None:
    """Save a record form (and a directory's new credential with it); RepointRefused saves nothing."""
    proof = repoint.Proof.of(request, _typed_credential(form))
    actor = Actor.from_request(request)
    with transaction.atomic():
        if getattr(form, "new_credential", None) is not None:
            changes.save_record(form.new_credential, created=True, actor=actor)
            record.administrative_credential = form.new_credential
        changes.save_record(record, created=created, changed=form.changed_data, proof=proof, actor=actor)


def _edit(request: HttpRequest, model, instance=None) -> HttpResponse:
    form_class = FORMS[model]
    initial = {}
    if instance is None and (configuration := filters.int_param(request.GET, "configuration")) is not None:
        initial["configuration"] = configuration
    form = form_class(
        request.POST or None,
        instance=instance,
        initial=initial,
        can_configure_rotation=policy.can(request, Action.CONFIGURE_ROTATION, instance),
    )
    if request.method == "POST" and form.is_valid():
        record = form.save(commit=False)
        # The configuration the record is saved into must be in the actor's scope too.
        policy.require(request, Action.EDIT if instance else Action.CREATE, record)
        try:
            _save_form(request, form, record, created=instance is None)
        except repoint.RepointRefused as exc:
            form.add_error(None, exc.messages[0])
        else:
            _warn_unverified(request, record, form.changed_data)
            messages.success(request, f"{model._meta.verbose_name} {record} saved.")
            return redirect(record)
    preview = {}
    if form.is_bound and "schedule_type" in form.fields and not form.errors.get("schedule_type"):
        preview = _schedule_summary(_form_schedule(form.instance))
    context = {
        "form": form,
        "record": instance,
        "record_type": RECORD_NAMES[model],
        "verbose_name": model._meta.verbose_name,
        "verbose_name_plural": model._meta.verbose_name_plural,
        "time_zones": TIME_ZONES if "schedule_tz" in form.fields else [],
        "schedule_summary": preview,
        "schedule_runs": list(
            zip(preview.get("next_runs_local", []), preview.get("next_runs", []), strict=True)
        ),
    }
    return render(request, "records/record_form.html", context)


@login_required
def record_create(request: HttpRequest, record_type: str) -> HttpResponse:
    model = RECORD_TYPES[record_type]
    policy.require(request, Action.CREATE, model)
    return _edit(request, model)


@login_required
def record_edit(request: HttpRequest, record_type: str, pk: int) -> HttpResponse:
    model = RECORD_TYPES[record_type]
    return _edit(request, model, policy.get_object(request, model.objects, Action.EDIT, pk=pk))


REFERRER_SHOWN = 20


def _referrers(record) -> list[dict]:
    """Return what still refers to a record and so blocks its deletion (the PROTECT links), per kind."""
    if isinstance(record, PamConfiguration):
        kinds = [
            ("directory", "directories", record.directories.all()),
            ("user", "users", record.users.all()),
        ]
    elif isinstance(record, PamDirectory):
        kinds = [("user it rotates", "users it rotates", record.users.all())]
    else:
        kinds = [
            ("directory it administers", "directories it administers", record.administered_directories.all())
        ]
    found = []
    for one, many, queryset in kinds:
        shown = list(queryset.order_by("title")[: REFERRER_SHOWN + 1])
        if shown:
            count = len(shown) if len(shown) <= REFERRER_SHOWN else queryset.count()
            label = one if count == 1 else many
            found.append({"label": label, "count": count, "records": shown[:REFERRER_SHOWN]})
    return found


@login_required
def record_delete(request: HttpRequest, record_type: str, pk: int) -> HttpResponse:
    model = RECORD_TYPES[record_type]
    record = policy.get_object(request, model.objects, Action.DELETE, pk=pk)
    blockers = []
    if request.method == "POST":
        try:
            changes.delete_record(record, actor=Actor.from_request(request))
        except models.ProtectedError as exc:
            blockers = sorted(exc.protected_objects, key=str)
            messages.error(
                request,
                f"{record} is still in use, so it was not deleted: delete or move its directories "
                "and users first.",
            )
        else:
            messages.success(request, f"{model._meta.verbose_name} {record} deleted.")
            return redirect(f"records:{record_type}-list")
    context = {
        "record": record,
        "record_type": record_type,
        "verbose_name": model._meta.verbose_name,
        "blockers": blockers[:20],
        "referrers": [] if blockers else _referrers(record),
    }
    return render(request, "records/record_confirm_delete.html", context, status=409 if blockers else 200)


@login_required
@require_GET
def schedule_preview(request: HttpRequest) -> JsonResponse:
    policy.require(request, Action.VIEW)
    form = SchedulePreviewForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"ok": False, "error": form.error_message()})
    return JsonResponse(_schedule_summary(form.schedule()))


# -- Import a Keeper project file: upload → preview (a dry run) → confirm ------------------------


def _require_import(request: HttpRequest) -> None:
    policy.require(request, Action.IMPORT)


def _run_import(request: HttpRequest, text: str, *, dry_run: bool) -> import_report.ImportReport:
    """Import (or dry-run) a file as the signed-in user; return the report with the file's passwords hidden."""
    try:
        projects = keeper.parse(text)
    except keeper.KeeperError as exc:
        return import_report.ImportReport(
            rejected=[import_report.Item("file", "", str(exc))], dry_run=dry_run
        )
    try:
        report = imports.import_projects(
            projects,
            actor=Actor.from_request(request),
            dry_run=dry_run,
        )
    except import_report.ImportRejected as exc:
        report = exc.report
    report.hide(imports.passwords_in(projects))
    return report


@login_required
@require_verified
def import_upload(request: HttpRequest) -> HttpResponse:
    _require_import(request)
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    if form.is_valid():
        import_stash.stash(request, form.file_name, form.cleaned_data["file"])
        return redirect("records:import-preview")
    return render(request, "records/import.html", {"form": form})


@login_required
@require_GET
def import_preview(request: HttpRequest) -> HttpResponse:
    _require_import(request)
    stashed = import_stash.stashed(request)
    if stashed is None:
        messages.info(request, "Upload a Keeper project file to preview its import.")
        return redirect("records:import")
    name, text = stashed
    report = _run_import(request, text, dry_run=True)
    return render(request, "records/import_preview.html", {"file_name": name, "report": report})


@login_required
@require_POST
@require_verified
def import_confirm(request: HttpRequest) -> HttpResponse:
    _require_import(request)
    stashed = import_stash.stashed(request)
    if stashed is None:
        messages.error(request, "There is no upload waiting to be imported; upload the file again.")
        return redirect("records:import")
    name, text = stashed
    report = _run_import(request, text, dry_run=False)
    if not report.ok:
        messages.error(
            request, f"{name} was rejected and nothing was written: the records changed since the preview."
        )
        return redirect("records:import-preview")
    import_stash.discard(request)
    messages.success(
        request, f"Imported {name}: {len(report.created)} records created, {len(report.skipped)} skipped."
    )
    return redirect("records:configuration-list")


@login_required
@require_POST
def import_cancel(request: HttpRequest) -> HttpResponse:
    _require_import(request)
    import_stash.discard(request)
    messages.info(request, "Import cancelled; nothing was written.")
    return redirect("records:configuration-list")
