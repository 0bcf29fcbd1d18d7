"""Record pages: the dashboard, then list / new / detail / edit / delete for each record type."""

from django.urls import path

from records import views

app_name = "records"
urlpatterns = [path("", views.dashboard, name="dashboard")]

for record_type, prefix, list_view, detail_view in [
    ("configuration", "configurations", views.configuration_list, views.configuration_detail),
    ("directory", "directories", views.directory_list, views.directory_detail),
    ("user", "users", views.user_list, views.user_detail),
]:
    kind = {"record_type": record_type}
    urlpatterns += [
        path(f"{prefix}/", list_view, name=f"{record_type}-list"),
        path(f"{prefix}/new/", views.record_create, kind, name=f"{record_type}-create"),
        path(f"{prefix}/<int:pk>/", detail_view, name=f"{record_type}-detail"),
        path(f"{prefix}/<int:pk>/edit/", views.record_edit, kind, name=f"{record_type}-edit"),
        path(f"{prefix}/<int:pk>/delete/", views.record_delete, kind, name=f"{record_type}-delete"),
    ]
urlpatterns += [
    path("import/", views.import_upload, name="import"),
    path("import/preview/", views.import_preview, name="import-preview"),
    path("import/confirm/", views.import_confirm, name="import-confirm"),
    path("import/cancel/", views.import_cancel, name="import-cancel"),
    path("schedule-preview/", views.schedule_preview, name="schedule-preview"),
]
