"""Access routes: the pages under /access/, the REST API under /api/v1/access/, Vault's library paths."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from access import api, vault, views

app_name = "access"
MOUNT = settings.VAULT_MOUNT
urlpatterns = [
    path("access/", views.home, name="home"),
    path("access/users/<int:pk>/check-out/", views.check_out, name="check-out"),
    path("access/users/<int:pk>/request/", views.request_access, name="request"),
    path("access/users/<int:pk>/break-glass/", views.break_glass, name="break-glass"),
    path("access/check-outs/<int:pk>/check-in/", views.check_in, name="check-in"),
    path("access/check-outs/<int:pk>/renew/", views.renew, name="renew"),
    path("access/requests/<int:pk>/", views.request_detail, name="request-detail"),
    path("access/requests/<int:pk>/decide/", views.decide, name="decide"),
    path("access/pools/", views.pool_list, name="pool-list"),
    path("access/pools/new/", views.pool_edit, name="pool-create"),
    path("access/pools/<int:pk>/", views.pool_detail, name="pool-detail"),
    path("access/pools/<int:pk>/edit/", views.pool_edit, name="pool-edit"),
    path("access/pools/<int:pk>/check-out/", views.pool_check_out, name="pool-check-out"),
    path("access/configurations/<int:pk>/", views.configuration_access, name="configuration"),
    path("api/v1/access/accounts/<int:pk>/check-out/", api.account_check_out, name="api-check-out"),
    path("api/v1/access/accounts/<int:pk>/break-glass/", api.break_glass, name="api-break-glass"),
    path("api/v1/access/pools/<str:name>/check-out/", api.pool_check_out, name="api-pool-check-out"),
    path("api/v1/access/check-outs/", api.check_out_list, name="api-check-outs"),
    path("api/v1/access/check-outs/<int:pk>/check-in/", api.check_in, name="api-check-in"),
    path("api/v1/access/check-outs/<int:pk>/renew/", api.renew, name="api-renew"),
    path("api/v1/access/requests/", api.requests, name="api-requests"),
    path("api/v1/access/requests/<int:pk>/decide/", api.decide, name="api-decide"),
]
# Vault's library paths: api.vault_http.VaultPathMiddleware answers /v1/ from api.vault_urls alone,
# so AccessConfig.ready() adds these there too (the api app never imports access).
vault_patterns = [
    path(
        f"v1/{MOUNT}/library/manage/<str:name>/check-in",
        vault.library_manage_check_in,
        name="vault-manage-check-in",
    ),
    path(f"v1/{MOUNT}/library/<str:name>/check-out", vault.library_check_out, name="vault-check-out"),
    path(f"v1/{MOUNT}/library/<str:name>/check-in", vault.library_check_in, name="vault-check-in"),
    path(f"v1/{MOUNT}/library/<str:name>/status", vault.library_status, name="vault-status"),
    path(f"v1/{MOUNT}/library/<str:name>", vault.library_set, name="vault-library-set"),
    path("v1/sys/leases/renew", vault.lease_renew, name="vault-lease-renew"),
    path("v1/sys/leases/revoke", vault.lease_revoke, name="vault-lease-revoke"),
]
urlpatterns += vault_patterns
