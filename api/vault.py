"""Vault's LDAP secrets engine paths, so that Vault readers move to pamrotate unchanged.

``GET /v1/<mount>/static-cred/<name>`` and ``POST /v1/<mount>/rotate-role/<name>`` with the token
in ``X-Vault-Token``, answered in Vault's envelope; ``<name>`` is a PAM user's title or uid.
"""

from __future__ import annotations

import uuid

from django.db.models import Q
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from api import permissions
from api.authentication import BearerTokenAuthentication, VaultTokenAuthentication, client_address
from api.credentials import caller_identity, read_credential
from api.errors import vault_exception_handler
from records.models import PamUser
from rotation import services
from rotation.models import AttemptState


def find_role(name: str) -> PamUser:
    """Return the PAM user a Vault role name means: its uid first, else its title."""
    users = PamUser.objects.select_related("configuration", "resource")
    matches = list(users.filter(Q(uid=name) | Q(title=name))[:2])
    for pam_user in matches:
        if pam_user.uid == name:
            return pam_user
    if not matches:
        raise Http404
    return matches[0]


def envelope(data: dict | None) -> dict:
    """Return Vault's response envelope around ``data``."""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
        "mount_type": "ldap",
    }


def _seconds(delta) -> int:
    return max(0, int(delta.total_seconds())) if delta is not None else 0


class VaultView(APIView):
    """Token in X-Vault-Token (or Bearer), errors as ``{"errors": [...]}``, 403 without a token as Vault does."""

    authentication_classes = [VaultTokenAuthentication, BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get_exception_handler(self):
        return vault_exception_handler

    def account(self, name: str, allowed) -> PamUser:
        pam_user = find_role(name)
        if not allowed(self.request, pam_user):
            raise PermissionDenied("permission denied")
        return pam_user


class StaticCredView(VaultView):
    """Vault's ``static-cred``: the account's username, DN, current and previous password."""

    @extend_schema(exclude=True)
    def get(self, request, name: str):
        pam_user = self.account(name, permissions.may_read_credential)
        secret = read_credential(pam_user, request, with_previous=True)
        now = timezone.now()
        last, upcoming = pam_user.last_rotated_at, pam_user.next_rotation_at
        data = {
            "dn": pam_user.distinguished_name,
            "username": pam_user.login,
            "password": secret["password"],
            "last_password": secret["last_password"],
            "last_vault_rotation": last.isoformat() if last else None,
            "rotation_period": _seconds(upcoming - last) if last and upcoming else 0,
            "ttl": _seconds(upcoming - now) if upcoming else 0,
        }
        return Response(envelope(data))


class RotateRoleView(VaultView):
    """Vault's ``rotate-role``: queue a rotation; 204 as Vault answers, 400 when it is refused."""

    @extend_schema(exclude=True)
    def post(self, request, name: str):
        pam_user = self.account(name, permissions.may_rotate)
        attempt = services.request_rotation(
            pam_user, remote_address=client_address(request), **caller_identity(request)
        )
        if attempt.state == AttemptState.REFUSED:
            raise ValidationError({"rotation": [attempt.error_message]})
        return Response(status=status.HTTP_204_NO_CONTENT)
