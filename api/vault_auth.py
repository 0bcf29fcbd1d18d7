"""Vault's token and AppRole paths: lookup-self, renew-self, revoke-self, create, approle/login.

What the Agent, External Secrets Operator, Terraform and Ansible call before they read (see
shared VAULT-COMPAT.md). A token is never echoed back: its ``id`` and ``accessor`` are derived
from the stored digest. AppRole logins issue ordinary tokens (api.models.Token), hashed at rest.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from api import approle, services
from api.authentication import ApplicationCaller, client_address
from api.models import AppRole, SecretId, Token
from api.vault_http import VaultError, duration, envelope, presented_token, vault_view
from audit.actors import Actor

POLICIES = ["default"]


def accessor(token: Token) -> str:
    """Return a token's accessor: a stable name that cannot be used as the token."""
    return f"acc.{token.digest[:24]}"


def _rfc3339(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _ttl(token: Token, now: dt.datetime) -> int:
    return max(0, math.ceil((token.expires_at - now).total_seconds())) if token.expires_at else 0


def _path(token: Token) -> str:
    if token.secret_id_id:
        return "auth/approle/login"
    return "auth/token/create"


def auth_block(token: Token, clear: str, now: dt.datetime) -> dict:
    """Return Vault's ``auth`` block for a token just issued or renewed (clear text only to its holder)."""
    return {
        "client_token": clear,
        "accessor": accessor(token),
        "policies": POLICIES,
        "token_policies": POLICIES,
        "metadata": {"application": token.application.name} if token.application_id else None,
        "lease_duration": _ttl(token, now),
        "renewable": token.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": token.parent_id is None,
        "mfa_requirement": None,
        "num_uses": 0,
    }


@vault_view("GET", "POST")
@sensitive_variables()
def lookup_self(request, data: dict) -> JsonResponse:
    """``auth/token/lookup-self``: the calling token's lifetime and kind.

    ``id`` is the token the caller sent, as Vault answers (the Agent's token_file method uses it
    as its token); it is never stored, logged or shown to anyone else.
    """
    token, now = request.auth, timezone.now()
    created_ttl = int((token.expires_at - token.created_at).total_seconds()) if token.expires_at else 0
    answer = {
        "id": presented_token(request),
        "accessor": accessor(token),
        "policies": POLICIES,
        "ttl": _ttl(token, now),
        "creation_ttl": created_ttl,
        "creation_time": int(token.created_at.timestamp()),
        "issue_time": _rfc3339(token.created_at),
        "expire_time": _rfc3339(token.expires_at),
        "explicit_max_ttl": int((token.max_expires_at - token.created_at).total_seconds())
        if token.max_expires_at
        else 0,
        "renewable": token.renewable,
        "type": "service",
        "display_name": token.name or str(request.user),
        "num_uses": 0,
        "orphan": token.parent_id is None,
        "path": _path(token),
        "meta": {"application": token.application.name} if token.application_id else None,
        "entity_id": "",
        "namespace_path": "",
    }
    return JsonResponse(envelope(answer))


@vault_view("POST", reads_body=True)
def renew_self(request, data: dict) -> JsonResponse:
    """``auth/token/renew-self``: push a login's token to now + TTL (or ``increment``), never past its maximum."""
    token = request.auth
    if not token.renewable:
        raise VaultError(400, "lease is not renewable")
    token.renew(duration(data.get("increment"), "increment"))
    return JsonResponse(envelope(auth=auth_block(token, "", timezone.now())))


@vault_view("POST")
def revoke_self(request, data: dict) -> HttpResponse:
    """``auth/token/revoke-self``: revoke the calling token (and its children); 204."""
    services.revoke_token(request.auth, actor=Actor.from_request(request))
    return HttpResponse(status=204)


@vault_view("POST", reads_body=True)
@sensitive_variables("clear")
def create_token(request, data: dict) -> JsonResponse:
    """``auth/token/create``: a child token with its parent's owner and scope, expiring no later."""
    parent, now = request.auth, timezone.now()
    ttl = duration(data.get("ttl") or data.get("lease"), "ttl", default=parent.ttl_seconds or 3600)
    max_ttl = duration(data.get("explicit_max_ttl"), "explicit_max_ttl")
    limits = [now + dt.timedelta(seconds=ttl)]
    limits += [moment for moment in (parent.expires_at, parent.max_expires_at) if moment]
    if max_ttl:
        limits.append(now + dt.timedelta(seconds=max_ttl))
    renewable = data.get("renewable", True) is not False and parent.renewable
    token, clear = approle.issue_child_token(
        parent,
        name=str(data.get("display_name") or "")[:100],
        expires_at=min(limits),
        ttl_seconds=ttl if renewable else None,
        max_expires_at=min(limits[1:], default=None) if renewable else None,
        actor=Actor.from_request(request),
    )
    return JsonResponse(envelope(auth=auth_block(token, clear, now)))


@vault_view("POST", token=False, reads_body=True)
@sensitive_variables("secret", "clear")
def approle_login(request, data: dict) -> JsonResponse:
    """``auth/approle/login``: a role ID and a usable secret ID, from an allowed network, give a token."""
    role_id, secret = data.get("role_id"), data.get("secret_id")
    if not isinstance(role_id, str) or not role_id:
        raise VaultError(400, "missing role_id")
    if not isinstance(secret, str) or not secret:
        raise VaultError(400, "missing secret_id")
    role = AppRole.objects.select_related("application").filter(role_id=_uuid(role_id)).first()
    if role is None:
        raise VaultError(400, "invalid role or secret ID")
    address = client_address(request)
    application = role.application
    secret_id = SecretId.find(role, secret)
    if secret_id is None or not application.is_active or application.is_expired:
        raise VaultError(400, "invalid role or secret ID")
    if not (secret_id.allows_address(address) and application.allows_address(address)):
        raise VaultError(400, "source address unauthorized through CIDR restrictions on the secret ID")
    if not secret_id.use():
        raise VaultError(400, "invalid role or secret ID")
    actor = Actor.from_request(request, user=ApplicationCaller(application))
    token, clear = approle.issue_login_token(secret_id, actor=actor)
    return JsonResponse(envelope(auth=auth_block(token, clear, timezone.now())))


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
