"""URL routes: records and rotation pages, login, and the admin for superusers."""

from django.contrib import admin
from django.urls import include, path

from records import views as record_views
from rotation import views as rotation_views

urlpatterns = [
    path("accounts/login/", record_views.login_view, name="login"),
    path("accounts/logout/", record_views.logout_view, name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", rotation_views.healthz, name="healthz"),
    path("rotation/", include("rotation.urls")),
    path("", include("records.urls")),
]
