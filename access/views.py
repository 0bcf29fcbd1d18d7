"""Access pages: check out / check in, pools, access requests and their decisions, break-glass."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from access import services
from access.forms import (
    AccessRequestForm,
    BreakGlassForm,
    CheckOutForm,
    ConfigurationAccessForm,
    DecisionForm,
    PoolForm,
)
from access.models import AccessRequest, CheckOut, ConfigurationAccess, EndReason, Pool, RequestState
from access.services import Caller, Refused, Unavailable
from accounts import policy
from accounts.mfa import require_verified
from accounts.policy import Action
from records.models import PamConfiguration, PamUser


def _account(request, pk: int) -> PamUser:
    """Return an account the person may see (404 otherwise); each step asks the policy again."""
    return policy.get_object(request, PamUser.objects.select_related("configuration"), Action.VIEW, pk=pk)


def _show_password(request, pam_user, password, *, checkout=None, grant=None):
    context = {
        "pam_user": pam_user,
        "password": password,
        "checkout": checkout,
        "grant": grant,
        "seconds": settings.REVEAL_SECONDS,
    }
    return render(request, "access/password.html", context)


@login_required
def home(request):
    """List my check-outs and requests, the requests waiting for my decision, and the pools I see."""
    mine = CheckOut.objects.held().filter(person=request.user).select_related("user", "pool")
    my_requests = AccessRequest.objects.filter(requester=request.user).select_related("user")[:50]
    waiting = [
        r
        for r in AccessRequest.objects.filter(state=RequestState.PENDING)
        .exclude(requester=request.user)
        .select_related("user", "requester")[:200]
        if policy.can(request, Action.APPROVE, r.user)
    ]
    recent = policy.scope(
        request, AccessRequest.objects.select_related("user", "requester"), "user__configuration"
    )
    pools = policy.scope(request, Pool.objects.select_related("configuration"))
    context = {
        "mine": mine,
        "my_requests": my_requests,
        "waiting": waiting,
        "recent": recent[:50],
        "pools": pools,
    }
    return render(request, "access/home.html", context)


@login_required
@require_POST
@require_verified
def check_out(request, pk):
    pam_user = _account(request, pk)
    form = CheckOutForm(request.POST)
    ttl = form.cleaned_data["ttl"] if form.is_valid() else None
    try:
        checkout, password = services.check_out(pam_user, Caller.from_request(request), ttl=ttl)
    except (Unavailable, Refused) as exc:
        messages.error(request, f"Not checked out: {exc}")
        return redirect(pam_user)
    return _show_password(request, pam_user, password, checkout=checkout)


@login_required
@require_POST
@require_verified
def pool_check_out(request, pk):
    pool = policy.get_object(request, Pool.objects.all(), Action.VIEW, pk=pk)
    try:
        checkout, password = services.check_out_from_pool(pool, Caller.from_request(request))
    except Unavailable as exc:
        messages.error(request, str(exc))
        return redirect(pool)
    return _show_password(request, checkout.user, password, checkout=checkout)


def _checkout_for(request, pk) -> CheckOut:
    checkout = get_object_or_404(CheckOut.objects.select_related("user", "pool"), pk=pk)
    if not policy.sees(request, checkout.user):
        raise PermissionDenied("Not yours to see.")
    return checkout


@login_required
@require_POST
@require_verified
def check_in(request, pk):
    checkout = _checkout_for(request, pk)
    forced = not checkout.held_by_caller(person=request.user)
    reason = EndReason.FORCED if forced else EndReason.CHECKED_IN
    try:
        services.check_in(checkout, Caller.from_request(request), reason=reason)
    except Refused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"{checkout.user} checked in; its password is being rotated.")
    return redirect(checkout.user)


@login_required
@require_POST
@require_verified
def renew(request, pk):
    checkout = _checkout_for(request, pk)
    try:
        services.renew(checkout, Caller.from_request(request))
        messages.info(request, f"Renewed until {checkout.expires_at:%Y-%m-%d %H:%M} UTC.")
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect(checkout.user)


@login_required
@require_verified
def request_access(request, pk):
    pam_user = _account(request, pk)
    policy.require(request, Action.REQUEST_ACCESS, pam_user)
    form = AccessRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            access = services.request_access(
                pam_user,
                Caller.from_request(request),
                form.cleaned_data["reason"],
                form.cleaned_data["wanted_minutes"],
            )
        except (Refused, ValidationError) as exc:
            messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
            return redirect(pam_user)
        messages.info(request, "Request sent to the approvers.")
        return redirect(access)
    return render(request, "access/request_form.html", {"form": form, "pam_user": pam_user})


def _request_for(request, pk) -> AccessRequest:
    """Return a request its requester or a person who may approve it may see; else 404."""
    access = get_object_or_404(AccessRequest.objects.select_related("user", "requester", "decided_by"), pk=pk)
    if access.requester_id != request.user.pk and not policy.can(request, Action.APPROVE, access.user):
        if not policy.can(request, Action.VIEW_AUDIT, access.user):
            raise PermissionDenied("Only the requester and the approvers see a request.")
    return access


@login_required
def request_detail(request, pk):
    access = _request_for(request, pk)
    may_decide = (
        access.state == RequestState.PENDING
        and access.requester_id != request.user.pk
        and policy.can(request, Action.APPROVE, access.user)
    )
    form = DecisionForm(initial={"minutes": access.wanted_minutes}) if may_decide else None
    return render(request, "access/request_detail.html", {"access": access, "form": form})


@login_required
@require_POST
@require_verified
def decide(request, pk):
    access = _request_for(request, pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or deny.")
        return redirect(access)
    try:
        services.decide(
            access,
            Caller.from_request(request),
            approve=form.cleaned_data["decision"] == "approve",
            comment=form.cleaned_data["comment"] or "",
            minutes=form.cleaned_data["minutes"],
        )
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect(access)


@login_required
@require_verified
def break_glass(request, pk):
    pam_user = _account(request, pk)
    policy.require(request, Action.BREAK_GLASS, pam_user)
    form = BreakGlassForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            grant, password = services.break_glass(
                pam_user,
                Caller.from_request(request),
                form.cleaned_data["justification"],
                form.cleaned_data["minutes"],
            )
        except Refused as exc:
            messages.error(request, str(exc))
            return redirect(pam_user)
        return _show_password(request, pam_user, password, grant=grant)
    return render(request, "access/break_glass.html", {"form": form, "pam_user": pam_user})


@login_required
def pool_list(request):
    pools = policy.scope(request, Pool.objects.select_related("configuration"))
    return render(request, "access/pool_list.html", {"pools": pools})


@login_required
def pool_detail(request, pk):
    pool = policy.get_object(request, Pool.objects.select_related("configuration"), Action.VIEW, pk=pk)
    members = services.pool_members(pool).select_related("access__held_by")
    return render(request, "access/pool_detail.html", {"pool": pool, "members": members})


@login_required
@require_verified
def pool_edit(request, pk=None):
    pool = None
    policy.require(request, Action.CONFIGURE_ROTATION)
    if pk is not None:
        pool = policy.get_object(request, Pool.objects.all(), Action.CONFIGURE_ROTATION, pk=pk)
    configurations = policy.scope(request, PamConfiguration.objects.all(), "pk", Action.CONFIGURE_ROTATION)
    form = PoolForm(request.POST or None, instance=pool, configurations=configurations)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            pool = services.save_pool(
                Caller.from_request(request),
                name=data["name"],
                configuration=data["configuration"],
                members=data["members"],
                pool=pool,
                ttl=data["checkout_ttl"],
                max_ttl=data["checkout_max_ttl"],
                rotate_after_use_minutes=data["rotate_after_use_minutes"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(pool)
    return render(request, "access/pool_form.html", {"form": form, "pool": pool})


@login_required
@require_verified
def configuration_access(request, pk):
    configuration = policy.get_object(
        request, PamConfiguration.objects.all(), Action.CONFIGURE_ROTATION, pk=pk
    )
    rules = ConfigurationAccess.of(configuration.pk)
    form = ConfigurationAccessForm(request.POST or None, instance=rules)
    if request.method == "POST" and form.is_valid():
        services.save_configuration_access(Caller.from_request(request), form.save(commit=False))
        messages.info(request, "Access rules saved.")
        return redirect(configuration)
    return render(request, "access/configuration_form.html", {"form": form, "configuration": configuration})
