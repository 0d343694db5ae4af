from django.urls import path

from ops.views import checklists, health

app_name = "ops"

urlpatterns = [
    path("", checklists.today, name="today"),
    path("checklists/", checklists.template_list, name="template_list"),
    path("checklists/<slug:slug>/", checklists.template_detail, name="template_detail"),
    path("runs/start/", checklists.run_start, name="run_start"),
    path("runs/<int:pk>/", checklists.run_detail, name="run_detail"),
    path("runs/<int:pk>/poll/", checklists.run_poll, name="run_poll"),
    path("runs/<int:pk>/items/<int:item_pk>/tick/", checklists.item_tick, name="item_tick"),
    path("runs/<int:pk>/items/<int:item_pk>/skip/", checklists.item_skip, name="item_skip"),
    path("runs/<int:pk>/items/<int:item_pk>/note/", checklists.item_note, name="item_note"),
    path("health/", health.health_panel, name="health_panel"),
    path("health/<slug:slug>/", health.service_detail, name="service_detail"),
    path("api/health", health.api_health, name="api_health"),
    path("api/health/services", health.api_health_services, name="api_health_services"),
]
