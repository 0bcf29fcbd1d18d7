"""API routes: /api/v1/ (REST), /api/schema/ and its docs, and Vault's /v1/<mount>/ paths."""

from __future__ import annotations

from django.conf import settings
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from api import docs, pages, vault, views

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
    path(
        f"v1/{settings.VAULT_MOUNT}/static-cred/<path:name>",
        vault.StaticCredView.as_view(),
        name="vault-static-cred",
    ),
    path(
        f"v1/{settings.VAULT_MOUNT}/rotate-role/<path:name>",
        vault.RotateRoleView.as_view(),
        name="vault-rotate-role",
    ),
    path("applications/", pages.application_list, name="application-list"),
    path("applications/new/", pages.application_create, name="application-create"),
    path("applications/<int:pk>/", pages.application_detail, name="application-detail"),
    path("applications/<int:pk>/edit/", pages.application_edit, name="application-edit"),
    path("applications/<int:pk>/tokens/", pages.application_token_create, name="application-token-create"),
    path("tokens/", pages.personal_tokens, name="personal-tokens"),
    path("tokens/new/", pages.personal_token_create, name="personal-token-create"),
    path("tokens/<int:pk>/revoke/", pages.token_revoke, name="token-revoke"),
]
