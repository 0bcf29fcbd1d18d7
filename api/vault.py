"""Vault's LDAP secrets engine paths, so that Vault readers move to pamrotate unchanged.

``GET /v1/<mount>/static-cred/<name>`` and ``PUT|POST /v1/<mount>/rotate-role/<name>`` with the
token in ``X-Vault-Token``, answered in Vault's envelope; ``<name>`` is a PAM user's title or uid.
Also the ``sys/`` paths clients call before reading (health, seal status, the KV preflight).
The HTTP rules (methods, headers, token, errors) are api.vault_http's.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone

from accounts import policy
from accounts.policy import Action
from api import lookups, permissions
from api.credentials import read_credential
from api.vault_http import VaultError, envelope, vault_view
from audit.actors import Actor
from records.models import PamUser
from rotation import services
from rotation.models import AttemptState

VAULT_VERSION = "1.15.0+pamrotate"  # what sys/health and sys/seal-status report: Vault's API level


# What a static-cred read uses of an account (the answer, the scope, the audit event): a PAM user
# has some sixty columns, and loading them all is most of a read's database time.
READ_FIELDS = (
    "uid", "title", "login", "distinguished_name", "password_encrypted", "configuration_id",
    "last_rotated_at", "next_rotation_at",
)  # fmt: skip


def find_role(name: str, fields: tuple[str, ...] | None = None) -> tuple[PamUser, str]:
    """Return the PAM user a Vault role name means (its uid first, else its title) and its previous
    password's ciphertext ("" when none); only ``fields`` loaded, if given. Http404 when none matches.
    """
    found = lookups.account_by_role_name(name, fields)
    if found is None:
        raise Http404
    return found


def _account(request, name: str, action: str, fields: tuple[str, ...] | None = None) -> PamUser:
    """Return the account a role name means for an action (accounts.policy); one out of sight is as missing."""
    try:
        pam_user, _previous = find_role(name, fields)
    except Http404:
        pam_user = None
    return _allowed(request, pam_user, action)


def _allowed(request, pam_user: PamUser | None, action: str) -> PamUser:
    """Return the account if the caller sees it and may do the action to it, else Vault's refusal."""
    if pam_user is None or not policy.sees(request, pam_user):
        # The same answer for a name out of the caller's scope and one that does not exist.
        raise VaultError(403, "permission denied") if permissions.application_of(request) else Http404
    if not policy.can(request, action, pam_user):
        raise VaultError(403, "permission denied")
    return pam_user


def static_ttl(pam_user: PamUser, now) -> tuple[int, int]:
    """Return Vault's (rotation_period, ttl) in whole seconds; ttl is never 0, so readers come back.

    ttl counts to the next rotation, at most PAMROTATE_VAULT_MAX_TTL: a rotation asked out of
    schedule (Rotate now, rotate-role) reaches an Agent within that time. Overdue or due: 1.
    """
    last, upcoming = pam_user.last_rotated_at, pam_user.next_rotation_at
    period = max(0, int((upcoming - last).total_seconds())) if last and upcoming else 0
    cap = settings.VAULT_MAX_TTL
    ttl = cap if upcoming is None else min(cap, int((upcoming - now).total_seconds()))
    return period, max(1, ttl)


@vault_view("GET", account=READ_FIELDS)
def static_cred(request, data: dict, name: str) -> JsonResponse:
    """Vault's ``static-cred``: the account's username, DN, current and previous password (one audit event)."""
    pam_user, previous = request.auth.role_account or (None, "")  # loaded with the token
    pam_user = _allowed(request, pam_user, Action.READ_API)
    # The previous password only to whom the policy lets reveal earlier versions (not Operators).
    secret = read_credential(
        pam_user,
        request,
        with_previous=permissions.may_read_previous(request, pam_user),
        previous_encrypted=previous,
    )
    last = pam_user.last_rotated_at
    period, ttl = static_ttl(pam_user, timezone.now())
    answer = {
        "dn": pam_user.distinguished_name,
        "username": pam_user.login,
        "password": secret["password"],
        "last_password": secret["last_password"],
        "last_vault_rotation": last.isoformat() if last else None,
        "rotation_period": period,
        "ttl": ttl,
    }
    return JsonResponse(envelope(answer, mount_type="ldap"))


@vault_view("POST")
def rotate_role(request, data: dict, name: str) -> HttpResponse:
    """Vault's ``rotate-role``: queue a rotation; 204 as Vault answers, 400 when it is refused."""
    pam_user = _account(request, name, Action.ROTATE)
    attempt = services.request_rotation(pam_user, actor=Actor.from_request(request))
    if attempt.state == AttemptState.REFUSED:
        raise VaultError(400, f"rotation: {attempt.error_message}")
    return HttpResponse(status=204)


@vault_view("GET", token=False)
def health(request, data: dict) -> JsonResponse:
    """``sys/health``: initialized, unsealed, active (any ``*code=`` parameter is accepted; 200)."""
    now = int(timezone.now().timestamp())
    return JsonResponse(
        {
            "initialized": True,
            "sealed": False,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": now,
            "version": VAULT_VERSION,
            "cluster_name": "pamrotate",
            "cluster_id": "",
        }
    )


@vault_view("GET", token=False)
def seal_status(request, data: dict) -> JsonResponse:
    """``sys/seal-status``: never sealed (pamrotate's keys are loaded at start)."""
    return JsonResponse(
        {
            "type": "shamir",
            "initialized": True,
            "sealed": False,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": VAULT_VERSION,
            "build_date": "",
            "migration": False,
            "cluster_name": "pamrotate",
            "cluster_id": "",
            "recovery_seal": False,
            "storage_type": "pamrotate",
        }
    )


@vault_view("GET", token=False)
def ui_mounts(request, data: dict, path: str = "") -> JsonResponse:
    """``sys/internal/ui/mounts/<path>``: 404, which tells a KV client "not a KV v2 mount"."""
    raise Http404
