"""Pages to manage applications and tokens: Administrators for applications, anyone for their own tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.mfa import require_verified
from api import services
from api.forms import ApplicationForm, TokenForm
from api.models import Application, Token

MANAGE = "api.manage_applications"


def _require_manager(request: HttpRequest) -> None:
    if not request.user.has_perm(MANAGE):
        raise PermissionDenied("Only Administrators manage API applications.")


def _who(request: HttpRequest) -> dict:
    return {"actor": request.user, "remote_address": request.META.get("REMOTE_ADDR")}


def _token_created(request: HttpRequest, token: Token, clear: str, back: str) -> HttpResponse:
    """Show a new token once; the page is never cached (see pamrotate.middleware)."""
    return render(request, "api/token_created.html", {"token": token, "clear": clear, "back": back})


@login_required
def application_list(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    applications = Application.objects.annotate(
        token_count=Count("tokens", filter=Q(tokens__revoked_at__isnull=True))
    ).prefetch_related("configurations")
    return render(request, "api/application_list.html", {"applications": applications})


@login_required
@require_verified
def application_create(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    form = ApplicationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        application, clear = services.create_application(
            data["name"],
            data["configurations"],
            allowed_networks=data["allowed_networks"],
            expires_at=data["expires_at"],
            is_active=data["is_active"],
            **_who(request),
        )
        token = application.tokens.get()
        return _token_created(request, token, clear, application.get_absolute_url())
    return render(request, "api/application_form.html", {"form": form, "application": None})


@login_required
def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    application = get_object_or_404(Application.objects.prefetch_related("configurations"), pk=pk)
    context = {
        "application": application,
        "tokens": application.tokens.all(),
        "form": TokenForm(submit_label="Issue a new token"),
    }
    return render(request, "api/application_detail.html", context)


@login_required
def application_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    application = get_object_or_404(Application, pk=pk)
    form = ApplicationForm(request.POST or None, instance=application)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            services.record_application_change(application, form.changed_data, **_who(request))
        messages.success(request, f"Application {application} saved.")
        return redirect(application)
    return render(request, "api/application_form.html", {"form": form, "application": application})


@login_required
@require_POST
@require_verified
def application_token_create(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    application = get_object_or_404(Application, pk=pk)
    form = TokenForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The token was not created: " + " ".join(form.errors.get("expires_days", [])))
        return redirect(application)
    token, clear = services.issue_token(
        application=application,
        name=form.cleaned_data["name"],
        expires_at=services.expiry_in(form.cleaned_data["expires_days"]),
        **_who(request),
    )
    return _token_created(request, token, clear, application.get_absolute_url())


@login_required
def personal_tokens(request: HttpRequest) -> HttpResponse:
    context = {"form": TokenForm(), "tokens": request.user.api_tokens.all()}
    return render(request, "api/personal_tokens.html", context)


@login_required
@require_POST
@require_verified
def personal_token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        context = {"form": form, "tokens": request.user.api_tokens.all()}
        return render(request, "api/personal_tokens.html", context, status=400)
    token, clear = services.issue_token(
        user=request.user,
        name=form.cleaned_data["name"],
        expires_at=services.expiry_in(form.cleaned_data["expires_days"]),
        **_who(request),
    )
    return _token_created(request, token, clear, reverse("api:personal-tokens"))


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(Token.objects.select_related("application", "user"), pk=pk)
    if token.user_id != request.user.pk:
        _require_manager(request)
    if services.revoke_token(token, **_who(request)):
        messages.success(request, f"Token {token.hint}… revoked.")
    else:
        messages.info(request, f"Token {token.hint}… was already revoked.")
    return redirect(token.application or "api:personal-tokens")
