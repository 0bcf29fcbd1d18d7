"""API routes: /api/v1/ (REST), /api/schema/ and its docs, and Vault's /v1/<mount>/ paths."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from api import docs, pages, vault_urls, views

router = SimpleRouter()
router.register("configurations", views.ConfigurationViewSet, basename="configuration")
router.register("directories", views.DirectoryViewSet, basename="directory")
router.register("users", views.UserViewSet, basename="user")
router.register("attempts", views.AttemptViewSet, basename="attempt")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")

app_name = "api"
urlpatterns = [
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", docs.swagger_ui, name="docs"),
    path("api/redoc/", docs.redoc, name="redoc"),
    path("api/redoc/redoc.standalone.js", docs.redoc_bundle, name="redoc-bundle"),
    # Vault's paths (api.vault_http.VaultPathMiddleware answers them ahead of the browser's middleware).
    *vault_urls.urlpatterns,
    path("applications/", pages.application_list, name="application-list"),
    path("applications/new/", pages.application_create, name="application-create"),
    path("applications/<int:pk>/", pages.application_detail, name="application-detail"),
    path("applications/<int:pk>/edit/", pages.application_edit, name="application-edit"),
    path("applications/<int:pk>/tokens/", pages.application_token_create, name="application-token-create"),
    path("applications/<int:pk>/approle/", pages.approle_configure, name="approle-configure"),
    path("applications/<int:pk>/secret-ids/", pages.secret_id_create, name="secret-id-create"),
    path("secret-ids/<int:pk>/revoke/", pages.secret_id_revoke, name="secret-id-revoke"),
    path("tokens/", pages.personal_tokens, name="personal-tokens"),
    path("tokens/new/", pages.personal_token_create, name="personal-token-create"),
    path("tokens/<int:pk>/revoke/", pages.token_revoke, name="token-revoke"),
]
