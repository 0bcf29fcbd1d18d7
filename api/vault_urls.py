"""Vault's /v1/ routes, on their own: api.urls includes them (for reverse), and
api.vault_http.VaultPathMiddleware resolves /v1/ against this short list alone."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from api import vault, vault_auth

app_name = "api"
urlpatterns = [
    path(f"v1/{settings.VAULT_MOUNT}/static-cred/<path:name>", vault.static_cred, name="vault-static-cred"),
    path(f"v1/{settings.VAULT_MOUNT}/rotate-role/<path:name>", vault.rotate_role, name="vault-rotate-role"),
    path("v1/sys/health", vault.health, name="vault-health"),
    path("v1/sys/seal-status", vault.seal_status, name="vault-seal-status"),
    path("v1/sys/internal/ui/mounts", vault.ui_mounts),
    path("v1/sys/internal/ui/mounts/<path:path>", vault.ui_mounts, name="vault-ui-mounts"),
    path("v1/auth/token/lookup-self", vault_auth.lookup_self, name="vault-lookup-self"),
    path("v1/auth/token/renew-self", vault_auth.renew_self, name="vault-renew-self"),
    path("v1/auth/token/revoke-self", vault_auth.revoke_self, name="vault-revoke-self"),
    path("v1/auth/token/create", vault_auth.create_token, name="vault-token-create"),
    path("v1/auth/approle/login", vault_auth.approle_login, name="vault-approle-login"),
]
