from django.urls import path

from ops import views

app_name = "ops"
urlpatterns = [
    path("metrics", views.metrics_view, name="metrics"),
    path("ops/webhooks/", views.webhook_list, name="webhook-list"),
    path("ops/webhooks/new/", views.webhook_create, name="webhook-create"),
    path("ops/webhooks/<int:pk>/", views.webhook_detail, name="webhook-detail"),
    path("ops/webhooks/<int:pk>/test/", views.webhook_test, name="webhook-test"),
    path("ops/webhooks/<int:pk>/resume/", views.webhook_resume, name="webhook-resume"),
    path("ops/webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
]
