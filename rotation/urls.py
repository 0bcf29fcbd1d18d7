from django.urls import path

from rotation import views

app_name = "rotation"
urlpatterns = []
