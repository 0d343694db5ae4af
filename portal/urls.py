from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import views
from portal.accounts import LoginView
from portal.metrics import metrics_view

admin.site.site_header = "Ops portal administration"
admin.site.site_title = "Ops portal admin"

urlpatterns = [
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.today, name="today"),
    path("api/health", views.api_health, name="api_health"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("audit/", views.audit_log, name="audit_log"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("images/", include("images.urls")),
    path("api/image/", include("images.api_urls")),
    path("", include("ops.urls")),
]
