"""The REST API of the access workflows (/api/v1/access/…): the same services and policy as the pages."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.decorators import api_view
from rest_framework.response import Response

from access import schema, services
from access.forms import AccessRequestForm, BreakGlassForm, CheckOutForm, DecisionForm
from access.models import AccessRequest, CheckOut, EndReason, Pool
from access.services import Caller, Refused, Unavailable
from accounts import policy
from accounts.policy import Action
from records.models import PamUser


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise exceptions.ParseError("The body must be a JSON object.")
    return {
        key: value
        for key, value in request.data.items()
        if isinstance(value, str | int | bool) or value is None
    }


def _valid(form: forms.Form) -> dict:
    if not form.is_valid():
        raise exceptions.ValidationError(form.errors.get_json_data())
    return form.cleaned_data


def _checkout_json(checkout: CheckOut, password: str | None = None) -> dict:
    body = {
        "id": checkout.pk,
        "account": checkout.user_id,
        "login": checkout.user.login,
        "pool": checkout.pool.name if checkout.pool_id else None,
        "holder": checkout.holder_name,
        "lease_id": checkout.lease_id(settings.VAULT_MOUNT),
        "expires_at": checkout.expires_at,
        "max_expires_at": checkout.max_expires_at,
        "ttl": checkout.seconds_left(),
        "ended_at": checkout.ended_at,
        "end_reason": checkout.end_reason,
    }
    if password is not None:
        body["password"] = password
    return body


def _request_json(access: AccessRequest) -> dict:
    return {
        "id": access.pk,
        "account": access.user_id,
        "requester": str(access.requester),
        "reason": access.reason,
        "wanted_minutes": access.wanted_minutes,
        "state": access.state,
        "break_glass": access.break_glass,
        "decided_by": str(access.decided_by) if access.decided_by_id else None,
        "comment": access.comment,
        "granted_until": access.granted_until,
    }


def _account(request, pk, action: str) -> PamUser:
    return policy.get_object(request, PamUser.objects.select_related("configuration"), action, pk=pk)


@extend_schema(request=schema.CheckOutBody, responses=schema.CheckOutWithPassword)
@api_view(["POST"])
@sensitive_variables()
def account_check_out(request, pk):
    """Check out one account: 200 with its password and lease, 400 when it is not free."""
    pam_user = _account(request, pk, Action.CHECK_OUT)
    ttl = _valid(CheckOutForm(_body(request)))["ttl"]
    try:
        checkout, password = services.check_out(pam_user, Caller.from_request(request), ttl=ttl)
    except (Unavailable, Refused) as exc:
        raise exceptions.ValidationError({"detail": str(exc)}) from None
    return Response(_checkout_json(checkout, password))


@extend_schema(request=schema.CheckOutBody, responses=schema.CheckOutWithPassword)
@api_view(["POST"])
@sensitive_variables()
def pool_check_out(request, name):
    """Check out any free account of a pool: 200, or 400 when none is free."""
    policy.require(request, Action.CHECK_OUT)
    pool = Pool.objects.filter(name=name).first()
    if pool is None or not policy.sees(request, pool):
        raise exceptions.NotFound()
    policy.require(request, Action.CHECK_OUT, pool)
    ttl = _valid(CheckOutForm(_body(request)))["ttl"]
    try:
        checkout, password = services.check_out_from_pool(pool, Caller.from_request(request), ttl=ttl)
    except Unavailable as exc:
        raise exceptions.ValidationError({"detail": str(exc)}) from None
    return Response(_checkout_json(checkout, password))


@extend_schema(responses=schema.CheckOutOut(many=True))
@api_view(["GET"])
def check_out_list(request):
    """List the check-outs the caller holds now."""
    caller = Caller.from_request(request)
    held = CheckOut.objects.held().select_related("user", "pool")
    mine = (
        held.filter(application=caller.application)
        if caller.application
        else held.filter(person=caller.person)
    )
    return Response([_checkout_json(checkout) for checkout in mine[:200]])


def _checkout(request, pk) -> CheckOut:
    policy.require(request, Action.CHECK_OUT)
    checkout = CheckOut.objects.select_related("user", "pool").filter(pk=pk).first()
    if checkout is None or not policy.sees(request, checkout.user):
        raise exceptions.NotFound()
    return checkout


@extend_schema(request=schema.CheckInBody, responses=schema.CheckOutOut)
@api_view(["POST"])
def check_in(request, pk):
    """Check in (the holder; ``"force": true`` for an Administrator): the password is rotated."""
    checkout = _checkout(request, pk)
    forced = _body(request).get("force") is True
    try:
        services.check_in(
            checkout,
            Caller.from_request(request),
            reason=EndReason.FORCED if forced else EndReason.CHECKED_IN,
        )
    except Refused as exc:
        raise exceptions.ValidationError({"detail": str(exc)}) from None
    return Response(_checkout_json(checkout))


@extend_schema(request=schema.CheckOutBody, responses=schema.CheckOutOut)
@api_view(["POST"])
def renew(request, pk):
    """Extend a check-out (by ``ttl`` seconds, else its TTL) up to its maximum TTL."""
    checkout = _checkout(request, pk)
    ttl = _valid(CheckOutForm(_body(request)))["ttl"]
    try:
        services.renew(checkout, Caller.from_request(request), ttl)
    except Refused as exc:
        raise exceptions.ValidationError({"detail": str(exc)}) from None
    return Response(_checkout_json(checkout))


@extend_schema(methods=["GET"], responses=schema.AccessRequestOut(many=True))
@extend_schema(methods=["POST"], request=schema.AccessRequestBody, responses={201: schema.AccessRequestOut})
@api_view(["GET", "POST"])
def requests(request):
    """List the requests the caller made or may decide; POST ``{account, reason, wanted_minutes}`` asks for one."""
    if request.method == "GET":
        mine = AccessRequest.objects.filter(requester=request.user.pk).select_related(
            "user", "requester", "decided_by"
        )
        visible = policy.scope(
            request,
            AccessRequest.objects.select_related("user", "requester", "decided_by"),
            "user__configuration",
            Action.APPROVE,
        )
        found = {access.pk: access for access in [*mine[:100], *visible[:100]]}
        return Response([_request_json(access) for access in found.values()])
    policy.require(request, Action.REQUEST_ACCESS)
    body = _body(request)
    account = body.get("account") if isinstance(body.get("account"), int) else 0
    pam_user = _account(request, account, Action.REQUEST_ACCESS)
    data = _valid(AccessRequestForm(body))
    try:
        access = services.request_access(
            pam_user, Caller.from_request(request), data["reason"], data["wanted_minutes"]
        )
    except Refused as exc:
        raise exceptions.ValidationError({"detail": str(exc)}) from None
    return Response(_request_json(access), status=201)


@extend_schema(request=schema.DecisionBody, responses=schema.AccessRequestOut)
@api_view(["POST"])
def decide(request, pk):
    """Approve or deny a pending request: ``{decision: approve|deny, comment, minutes}``."""
    policy.require(request, Action.APPROVE)
    access = AccessRequest.objects.select_related("user").filter(pk=pk).first()
    if access is None or not policy.sees(request, access.user):
        raise exceptions.NotFound()
    data = _valid(DecisionForm(_body(request)))
    try:
        services.decide(
            access,
            Caller.from_request(request),
            approve=data["decision"] == "approve",
            comment=data["comment"] or "",
            minutes=data["minutes"],
        )
    except Refused as exc:
        raise exceptions.PermissionDenied(str(exc)) from None
    return Response(_request_json(access))


@extend_schema(request=schema.BreakGlassBody, responses=schema.BreakGlassOut)
@api_view(["POST"])
@sensitive_variables()
def break_glass(request, pk):
    """An Administrator takes the password at once: ``{justification, minutes}``; approvers are alerted."""
    pam_user = _account(request, pk, Action.BREAK_GLASS)
    data = _valid(BreakGlassForm(_body(request)))
    try:
        access, password = services.break_glass(
            pam_user, Caller.from_request(request), data["justification"], data["minutes"]
        )
    except Refused as exc:
        raise exceptions.ValidationError({"detail": str(exc)}) from None
    return Response({**_request_json(access), "password": password})
