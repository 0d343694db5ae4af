from django.urls import path

from ops.views import checklists, health, incident_reports, incidents, releases

app_name = "ops"

urlpatterns = [
    path("checklists/", checklists.template_list, name="template_list"),
    path("checklists/<slug:slug>/", checklists.template_detail, name="template_detail"),
    path("runs/start/", checklists.run_start, name="run_start"),
    path("runs/<int:pk>/", checklists.run_detail, name="run_detail"),
    path("runs/<int:pk>/poll/", checklists.run_poll, name="run_poll"),
    path("runs/<int:pk>/cancel/", checklists.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/undo/", checklists.run_undo, name="run_undo"),
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
    path("incidents/<int:pk>/reopen/", incidents.incident_reopen_view, name="incident_reopen"),
    path("incidents/<int:pk>/notes/", incidents.incident_note, name="incident_note"),
    path("incidents/<int:pk>/edit/", incidents.incident_edit, name="incident_edit"),
    path("incidents/<int:pk>/print/", incidents.incident_print, name="incident_print"),
    path("incidents/<int:pk>/postmortem/", incidents.postmortem_edit, name="postmortem_edit"),
    path("incidents/<int:pk>/actions/", incidents.action_add, name="action_add"),
    path("incidents/actions/<int:pk>/done/", incidents.action_done, name="action_done"),
    path("releases/", releases.environment_list, name="environment_list"),
    path("releases/<slug:slug>/", releases.environment_detail, name="environment_detail"),
    path("releases/<slug:slug>/deploy/", releases.deploy_new, name="deploy_new"),
    path("releases/<slug:slug>/rollback/", releases.rollback_new, name="rollback_new"),
    path("deploys/<int:pk>/", releases.deploy_detail, name="deploy_detail"),
    path("deploys/<int:pk>/cancel/", releases.deploy_cancel_view, name="deploy_cancel"),
    path("deploys/<int:pk>/approve/", releases.deploy_approve_view, name="deploy_approve"),
    path("deploys/<int:pk>/pin/", releases.deploy_pin_view, name="deploy_pin"),
    path("backups/", releases.backup_list, name="backup_list"),
    path(
        "backups/targets/<slug:slug>/", releases.backup_target_detail, name="backup_target_detail"
    ),
    path("backups/targets/<slug:slug>/new/", releases.backup_new, name="backup_new"),
    path("backups/<int:pk>/", releases.backup_detail, name="backup_detail"),
    path("backups/<int:pk>/verify/", releases.backup_verify, name="backup_verify"),
]
