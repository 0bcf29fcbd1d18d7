"""URL routes: records and rotation pages, login, and the admin for superusers."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import views as account_views
from rotation import views as rotation_views

urlpatterns = [
    path("accounts/login/", account_views.sign_in, name="login"),
    path("accounts/logout/", account_views.sign_out, name="logout"),
    path("accounts/", include("accounts.urls")),
    # The admin signs in through pamrotate's sign-in (lock-outs, second factor, audit).
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("healthz", rotation_views.healthz, name="healthz"),
    path("", include("ops.urls")),
    path("rotation/", include("rotation.urls")),
    path("scripts/", include("scripts.urls")),
    path("", include("access.urls")),
    path("", include("api.urls")),
    path("", include("records.urls")),
]
handler404 = "api.errors.page_not_found"  # JSON under /api/ and /v1/
