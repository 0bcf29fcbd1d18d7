"""Vault's library paths (the LDAP engine's check-out sets), so ``bao write -f ldap/library/SET/check-out`` works.

``<mount>/library/<set>`` (PUT|POST create/update, 204; GET read), ``…/check-out`` (200 with
``service_account_name``, ``password``, a lease), ``…/check-in`` (``data.check_ins``), ``…/status``
(keyed by account, ``available``), ``<mount>/library/manage/<set>/check-in`` (forced), and
``sys/leases/renew`` / ``sys/leases/revoke`` for a check-out's lease. The HTTP rules are api.vault_http's.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.debug import sensitive_variables

from access import services
from access.models import CheckOut, EndReason, Pool
from access.services import Caller, Refused, Unavailable
from accounts import policy
from accounts.policy import Action
from api.vault_http import VaultError, duration, envelope, vault_view
from records.models import PamUser


def _names(value) -> list[str]:
    """Return a list field as Vault reads it: a JSON list or one comma-separated string."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return [name.strip() for name in value if name.strip()]
    raise VaultError(400, "service_account_names: a list of names or a comma-separated string")


def _pool(request, name: str) -> Pool:
    """Return the set a name means, if the caller may see it; one out of sight is answered as missing."""
    pool = Pool.objects.select_related("configuration").filter(name=name).first()
    if pool is None or not policy.sees(request, pool):
        if policy.actor_of(request).application is not None:
            raise VaultError(403, "permission denied")
        raise Http404
    return pool


def _accounts(request, names: list[str]) -> list[PamUser]:
    """Return the accounts named by login or title among those the caller may configure."""
    allowed = policy.scope(request, PamUser.objects.all(), "configuration", Action.CONFIGURE_ROTATION)
    found = []
    for name in names:
        matches = list(allowed.filter(Q(login=name) | Q(title=name) | Q(uid=name))[:2])
        if len(matches) != 1:
            raise VaultError(
                400, f"service account {name[:100]!r}: {'not found' if not matches else 'ambiguous'}"
            )
        found.append(matches[0])
    return found


def _set_data(pool: Pool) -> dict:
    return {
        "service_account_names": list(services.pool_members(pool).values_list("login", flat=True)),
        "ttl": pool.checkout_ttl,
        "max_ttl": pool.checkout_max_ttl,
        "disable_check_in_enforcement": False,
    }


@vault_view("GET", "POST", reads_body=True)
def library_set(request, data: dict, name: str) -> HttpResponse:
    """Read a set, or create or change it (Administrators; 204)."""
    if request.method in ("GET", "HEAD"):
        pool = _pool(request, name)
        policy.require(request, Action.CHECK_OUT, pool)
        return JsonResponse(envelope(_set_data(pool)))
    policy.require(
        request, Action.CONFIGURE_ROTATION
    )  # a role for it somewhere, before any name is looked up
    pool = Pool.objects.select_related("configuration").filter(name=name).first()
    if pool is not None and not policy.sees(request, pool):
        raise VaultError(403, "permission denied")
    names = _names(data.get("service_account_names"))
    members = _accounts(request, names) if names or pool is None else list(services.pool_members(pool))
    configurations = {user.configuration for user in members}
    if pool is None and len(configurations) != 1:
        raise VaultError(400, "service_account_names: name accounts of one configuration")
    configuration = pool.configuration if pool and not names else configurations.pop()
    services.save_pool(
        Caller.from_request(request),
        name=name,
        configuration=configuration,
        members=members,
        pool=pool,
        ttl=duration(data.get("ttl"), "ttl"),
        max_ttl=duration(data.get("max_ttl"), "max_ttl"),
        rotate_after_use_minutes=pool.rotate_after_use_minutes if pool else None,
    )
    return HttpResponse(status=204)


@vault_view("POST", reads_body=True)
@sensitive_variables()
def library_check_out(request, data: dict, name: str) -> JsonResponse:
    """Check out any free account of the set: 200 with the account and password, 400 when none is free."""
    pool = _pool(request, name)
    ttl = duration(data.get("ttl"), "ttl")
    try:
        checkout, password = services.check_out_from_pool(pool, Caller.from_request(request), ttl=ttl)
    except Unavailable as exc:
        raise VaultError(400, str(exc)) from None
    body = envelope({"service_account_name": checkout.user.login, "password": password})
    body.update(
        lease_id=checkout.lease_id(settings.VAULT_MOUNT),
        renewable=True,
        lease_duration=checkout.seconds_left(),
    )
    return JsonResponse(body)


def _check_in(request, data: dict, name: str, *, forced: bool) -> JsonResponse:
    pool = _pool(request, name)
    policy.require(request, Action.FORCE_CHECK_IN if forced else Action.CHECK_OUT, pool)
    caller = Caller.from_request(request)
    names = _names(data.get("service_account_names"))
    held = CheckOut.objects.held().filter(pool=pool).select_related("user", "pool")
    if names:
        held = held.filter(user__login__in=names)
    if not forced:
        mine = [c for c in held if c.held_by_caller(caller.person, caller.application)]
        if names and len(mine) != len(set(names)):
            raise VaultError(400, "check-in: an account named is not checked out by you")
        held = mine
    done = []
    for checkout in held:
        try:
            services.check_in(checkout, caller, reason=EndReason.FORCED if forced else EndReason.CHECKED_IN)
        except Refused:
            continue
        done.append(checkout.user.login)
    return JsonResponse(envelope({"check_ins": done}))


@vault_view("POST", reads_body=True)
def library_check_in(request, data: dict, name: str) -> JsonResponse:
    """Check in the caller's accounts of the set (all of them, or those named); each is rotated."""
    return _check_in(request, data, name, forced=False)


@vault_view("POST", reads_body=True)
def library_manage_check_in(request, data: dict, name: str) -> JsonResponse:
    """Check in accounts of the set whoever holds them (Administrators); each is rotated."""
    return _check_in(request, data, name, forced=True)


@vault_view("GET")
def library_status(request, data: dict, name: str) -> JsonResponse:
    """Say which accounts of the set are free (to whom may check out from it)."""
    pool = _pool(request, name)
    policy.require(request, Action.CHECK_OUT, pool)
    status = {
        user.login: {"available": not user.access.held_by_id and not services.unavailable_reason(user)}
        for user in services.pool_members(pool).select_related("access")
    }
    return JsonResponse(envelope(status))


def _lease(request, data: dict) -> CheckOut:
    lease_id = data.get("lease_id")
    if not isinstance(lease_id, str) or "/check-out/" not in lease_id:
        raise VaultError(400, "lease_id: not a check-out lease")
    checkout = (
        CheckOut.objects.held().filter(lease_token=lease_id.rsplit("/", 1)[-1]).select_related("user", "pool")
    )
    found = checkout.first()
    caller = Caller.from_request(request)
    if found is None or not found.held_by_caller(caller.person, caller.application):
        raise VaultError(400, "lease not found or lease is not renewable")
    return found


@vault_view("POST", reads_body=True)
def lease_renew(request, data: dict) -> JsonResponse:
    """``sys/leases/renew``: extend a check-out up to its maximum TTL."""
    checkout = _lease(request, data)
    services.renew(checkout, Caller.from_request(request), duration(data.get("increment"), "increment"))
    return JsonResponse(
        {
            **envelope(None),
            "lease_id": checkout.lease_id(settings.VAULT_MOUNT),
            "renewable": True,
            "lease_duration": checkout.seconds_left(),
        }
    )


@vault_view("POST", reads_body=True)
def lease_revoke(request, data: dict) -> HttpResponse:
    """``sys/leases/revoke``: check the account in (and rotate it)."""
    checkout = _lease(request, data)
    try:
        services.check_in(checkout, Caller.from_request(request))
    except Refused as exc:
        raise VaultError(400, str(exc)) from None
    return HttpResponse(status=204)
