"""The image API, mounted at /api/image/ (the runbooks' curl calls keep working)."""

from django.urls import path

from images import views

app_name = "images_api"

urlpatterns = [
    path("optimize", views.api_optimize, name="optimize"),
    path("health", views.api_health, name="health"),
]
