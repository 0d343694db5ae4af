from django.urls import path

from ops.views import calendar, checklists, health, incident_reports, incidents, maintenance

app_name = "ops"

urlpatterns = [
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
    path("api/health/services", health.api_health_services, name="api_health_services"),
    path("incidents/", incidents.incident_list, name="incident_list"),
    path("incidents/new/", incidents.incident_new, name="incident_new"),
    path("incidents/export.csv", incident_reports.incident_export, name="incident_export"),
    path("incidents/report/", incident_reports.incident_report_view, name="incident_report"),
    path("incidents/<int:pk>/", incidents.incident_detail, name="incident_detail"),
    path("incidents/<int:pk>/poll/", incidents.incident_poll, name="incident_poll"),
    path("incidents/<int:pk>/acknowledge/", incidents.incident_ack, name="incident_ack"),
    path("incidents/<int:pk>/status/", incidents.incident_status, name="incident_status"),
    path("incidents/<int:pk>/close/", incidents.incident_close_view, name="incident_close"),
    path("incidents/<int:pk>/notes/", incidents.incident_note, name="incident_note"),
    path("incidents/<int:pk>/edit/", incidents.incident_edit, name="incident_edit"),
    path("incidents/<int:pk>/print/", incidents.incident_print, name="incident_print"),
    path("incidents/<int:pk>/postmortem/", incidents.postmortem_edit, name="postmortem_edit"),
    path("incidents/<int:pk>/actions/", incidents.action_add, name="action_add"),
    path("incidents/actions/<int:pk>/done/", incidents.action_done, name="action_done"),
    path("maintenance/", maintenance.task_list, name="maintenance_task_list"),
    path("maintenance/tasks/new/", maintenance.task_edit, name="maintenance_task_new"),
    path("maintenance/tasks/<int:pk>/", maintenance.task_detail, name="maintenance_task_detail"),
    path("maintenance/tasks/<int:pk>/edit/", maintenance.task_edit, name="maintenance_task_edit"),
    path(
        "maintenance/tasks/<int:pk>/done/",
        maintenance.task_complete,
        name="maintenance_task_complete",
    ),
    path(
        "maintenance/tasks/<int:pk>/run/",
        maintenance.task_start_run,
        name="maintenance_task_start_run",
    ),
    path("maintenance/preview/", maintenance.rule_preview, name="maintenance_rule_preview"),
    path("maintenance/windows/", maintenance.window_list, name="maintenance_window_list"),
    path("maintenance/windows/new/", maintenance.window_new, name="maintenance_window_new"),
    path(
        "maintenance/windows/<int:pk>/",
        maintenance.window_detail,
        name="maintenance_window_detail",
    ),
    path(
        "maintenance/windows/<int:pk>/cancel/",
        maintenance.window_cancel,
        name="maintenance_window_cancel",
    ),
    path(
        "maintenance/windows/<int:pk>/postmortem/",
        maintenance.window_postmortem,
        name="maintenance_window_postmortem",
    ),
    path(
        "maintenance/windows/<int:pk>/occurrences/cancel/",
        maintenance.occurrence_cancel,
        name="maintenance_occurrence_cancel",
    ),
    path(
        "maintenance/windows/<int:pk>/occurrences/<int:occurrence_pk>/complete/",
        maintenance.occurrence_complete,
        name="maintenance_occurrence_complete",
    ),
    path("calendar/", calendar.calendar_view, name="calendar"),
    path("calendar/feed/", calendar.feed_settings, name="calendar_feed_settings"),
    path("calendar/<str:token>.ics", calendar.feed, name="calendar_feed"),
]
