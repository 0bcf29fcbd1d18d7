from django.urls import path

from rotation import views

app_name = "rotation"
urlpatterns = [
    path("users/<int:pk>/rotate/", views.rotate_now, name="rotate-now"),
    path("users/<int:pk>/reveal/", views.reveal_password, name="reveal-password"),
    path("users/<int:pk>/history/", views.user_history, name="user-history"),
    path("users/<int:pk>/check/", views.check_now, name="heartbeat-now"),
    path("users/<int:pk>/status.json", views.user_status, name="user-status"),
    path("directories/<int:pk>/test/", views.test_connection, name="test-connection"),
    path("directories/test/", views.test_unsaved_connection, name="test-unsaved-connection"),
    path("directories/<int:pk>/discover/", views.discover_accounts, name="discover-accounts"),
    path("directories/<int:pk>/adopt/", views.adopt_accounts, name="adopt-accounts"),
    path("attempts/<int:pk>/", views.attempt_detail, name="attempt-detail"),
    path("attempts/<int:pk>/status.json", views.attempt_status, name="attempt-status"),
    path("bulk/", views.bulk_rotate, name="bulk-rotate"),
    path("bulk/<str:token>/", views.bulk_status, name="bulk-status"),
    path("bulk/<str:token>/status.json", views.bulk_status_json, name="bulk-status-json"),
    path("audit/", views.audit_log, name="audit-log"),
]
