from django.urls import path

from rotation import views

app_name = "rotation"
urlpatterns = [
    path("users/<int:pk>/rotate/", views.rotate_now, name="rotate-now"),
    path("users/<int:pk>/reveal/", views.reveal_password, name="reveal-password"),
    path("directories/<int:pk>/test/", views.test_connection, name="test-connection"),
    path("attempts/<int:pk>/", views.attempt_detail, name="attempt-detail"),
    path("attempts/<int:pk>/status.json", views.attempt_status, name="attempt-status"),
]
