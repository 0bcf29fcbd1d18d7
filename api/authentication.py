"""Bearer-token authentication for the API (``Authorization: Bearer``) and Vault's ``X-Vault-Token``."""

from __future__ import annotations

import hmac

from rest_framework import authentication, exceptions

from api.lookups import token_by_digest
from api.models import Application, Token, digest


class ApplicationCaller:
    """The request.user of an application's call: signed in, with no person's permissions."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, application: Application):
        self.application = application

    def __str__(self) -> str:
        return self.application.actor_name

    def get_username(self) -> str:
        return self.application.actor_name

    def has_perm(self, perm: str, obj=None) -> bool:
        return False

    def has_perms(self, perms, obj=None) -> bool:
        return False


def client_address(request) -> str | None:
    """Return the caller's address as the rest of pamrotate records it."""
    return request.META.get("REMOTE_ADDR")


def find_token(clear: str, role: tuple[str, tuple[str, ...]] | None = None) -> Token | None:
    """Return the usable token whose digest matches (compared in constant time), its application loaded
    (and, given a Vault role name and fields, that account as ``token.role_account``: api.lookups).
    """
    wanted = digest(clear)
    token = token_by_digest(wanted, role)  # one statement: the token, its application, its configurations
    if token is None or not token.is_usable or not hmac.compare_digest(token.digest, wanted):
        return None
    return token


def authenticate_token(request, clear: str, role: tuple[str, tuple[str, ...]] | None = None):
    """Return DRF's (user, token) pair for a token in clear, or raise 401 or 403 (``role``: find_token's).

    An application's token answers 403 outside its allowed networks, 401 when the token or the
    application is expired, revoked or inactive; a person's token 401 when the person is inactive.
    """
    token = find_token(clear, role) if clear else None
    if token is None:
        raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
    if token.application_id:
        application = token.application
        if not application.is_active or application.is_expired:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        if not application.allows_address(client_address(request)):
            raise exceptions.PermissionDenied("This application may not call from this network.")
        user = ApplicationCaller(application)
    else:
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
    token.touch()
    return user, token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Read ``Authorization: Bearer <token>``; no CSRF (a token is not sent by a browser on its own)."""

    keyword = "Bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Give the token as: Authorization: Bearer <token>.")
        try:
            clear = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.") from None
        return authenticate_token(request, clear)

    def authenticate_header(self, request) -> str:
        return self.keyword


class VaultTokenAuthentication(authentication.BaseAuthentication):
    """Read Vault's ``X-Vault-Token`` header (hvac sends it), for the Vault-compatible paths."""

    def authenticate(self, request):
        clear = request.META.get("HTTP_X_VAULT_TOKEN", "")
        if not clear:
            return None
        # No authenticate_header: like Vault, a missing or bad token is a 403 "permission denied".
        return authenticate_token(request, clear)
