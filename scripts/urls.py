from django.urls import path

from scripts import views

app_name = "scripts"
urlpatterns = [
    path("<str:kind>/<int:pk>/attach/", views.attach, name="attach"),
    path("<int:pk>/edit/", views.edit, name="edit"),
    path("<int:pk>/detach/", views.detach, name="detach"),
    path("attempts/<int:pk>/rerun/", views.rerun, name="rerun"),
    path("attempts/<int:pk>/decide/", views.decide, name="decide"),
]
