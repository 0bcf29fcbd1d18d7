"""Pages to manage applications and tokens: Administrators for applications, anyone for their own tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import policy
from accounts.mfa import require_verified
from accounts.policy import Action
from api import approle, services
from api.forms import ApplicationForm, AppRoleForm, SecretIdForm, TokenForm
from api.models import Application, AppRole, SecretId, Token
from audit.actors import Actor


def _require_manager(request: HttpRequest) -> None:
    policy.require(request, Action.MANAGE_APPLICATIONS)


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
            actor=Actor.from_request(request),
        )
        token = application.tokens.get()
        return _token_created(request, token, clear, application.get_absolute_url())
    return render(request, "api/application_form.html", {"form": form, "application": None})


@login_required
def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    application = get_object_or_404(Application.objects.prefetch_related("configurations"), pk=pk)
    approle_ = AppRole.objects.filter(application=application).first()
    context = {
        "application": application,
        "tokens": application.tokens.all(),
        "form": TokenForm(submit_label="Issue a new token"),
        "approle": approle_,
        "secret_ids": approle_.secret_ids.all() if approle_ else [],
        "approle_form": AppRoleForm(
            initial={"token_ttl": approle_.token_ttl, "token_max_ttl": approle_.token_max_ttl}
            if approle_
            else None
        ),
        "secret_id_form": SecretIdForm(),
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
            services.record_application_change(
                application, form.changed_data, actor=Actor.from_request(request)
            )
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
        actor=Actor.from_request(request),
    )
    return _token_created(request, token, clear, application.get_absolute_url())


@login_required
def personal_tokens(request: HttpRequest) -> HttpResponse:
    policy.require(request, Action.MANAGE_OWN_TOKENS)
    context = {"form": TokenForm(), "tokens": request.user.api_tokens.all()}
    return render(request, "api/personal_tokens.html", context)


@login_required
@require_POST
@require_verified
def personal_token_create(request: HttpRequest) -> HttpResponse:
    policy.require(request, Action.MANAGE_OWN_TOKENS)
    form = TokenForm(request.POST)
    if not form.is_valid():
        context = {"form": form, "tokens": request.user.api_tokens.all()}
        return render(request, "api/personal_tokens.html", context, status=400)
    token, clear = services.issue_token(
        user=request.user,
        name=form.cleaned_data["name"],
        expires_at=services.expiry_in(form.cleaned_data["expires_days"]),
        actor=Actor.from_request(request),
    )
    return _token_created(request, token, clear, reverse("api:personal-tokens"))


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(Token.objects.select_related("application", "user"), pk=pk)
    if token.user_id != request.user.pk:
        _require_manager(request)
    if services.revoke_token(token, actor=Actor.from_request(request)):
        messages.success(request, f"Token {token.hint}… revoked.")
    else:
        messages.info(request, f"Token {token.hint}… was already revoked.")
    return redirect(token.application or "api:personal-tokens")


@login_required
@require_POST
def approle_configure(request: HttpRequest, pk: int) -> HttpResponse:
    """Turn AppRole on for an application, or change its tokens' TTL and maximum."""
    _require_manager(request)
    application = get_object_or_404(Application, pk=pk)
    form = AppRoleForm(request.POST)
    if form.is_valid():
        approle.configure(application, **form.cleaned_data, actor=Actor.from_request(request))
        messages.success(request, f"AppRole of {application} saved.")
    else:
        messages.error(
            request, "AppRole not saved: " + " ".join(e for errors in form.errors.values() for e in errors)
        )
    return redirect(application)


@login_required
@require_POST
@require_verified
def secret_id_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Issue a secret ID and show it once, with the role ID it logs in with."""
    _require_manager(request)
    application = get_object_or_404(Application, pk=pk)
    role = AppRole.objects.filter(application=application).select_related("application").first()
    if role is None:
        messages.error(request, "Turn AppRole on for this application first.")
        return redirect(application)
    form = SecretIdForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "No secret ID issued: " + " ".join(e for errors in form.errors.values() for e in errors)
        )
        return redirect(role.application)
    data = form.cleaned_data
    secret_id, clear = approle.issue_secret_id(
        role,
        ttl_seconds=data["ttl_hours"] * 3600 if data["ttl_hours"] else None,
        uses=data["uses"],
        allowed_networks=data["allowed_networks"],
        actor=Actor.from_request(request),
    )
    context = {
        "secret_id": secret_id,
        "clear": clear,
        "approle": role,
        "back": role.application.get_absolute_url(),
    }
    return render(request, "api/secret_id_created.html", context)


@login_required
@require_POST
def secret_id_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke a secret ID and the tokens its logins were given."""
    _require_manager(request)
    secret_id = get_object_or_404(SecretId.objects.select_related("approle__application"), pk=pk)
    if approle.revoke_secret_id(secret_id, actor=Actor.from_request(request)):
        messages.success(request, f"Secret ID {secret_id.hint}… revoked, with the tokens its logins got.")
    else:
        messages.info(request, f"Secret ID {secret_id.hint}… was already revoked.")
    return redirect(secret_id.approle.application)
