"""The image API, mounted at /api/image/ (the runbooks' curl calls keep working)."""

from django.urls import path

from images import api

app_name = "images_api"

urlpatterns = [
    path("optimize", api.api_optimize, name="optimize"),
    path("health", api.api_health, name="health"),
]
