from django.contrib import admin

from ops.models import (
    ActionItem,
    Backup,
    BackupTarget,
    BackupVerification,
    ChecklistItem,
    ChecklistRun,
    ChecklistSection,
    ChecklistTemplate,
    CheckResult,
    CheckRollup,
    Deploy,
    Environment,
    Incident,
    IncidentNotification,
    Kpi,
    MonitoredService,
    Postmortem,
    RunItem,
    Severity,
    TimelineEntry,
)
from ops.services.health import monitored_service_set_active
from ops.services.health_checks import describe_target
from portal.admin_audit import AuditedModelAdmin, HistoryAdmin


class ChecklistSectionInline(admin.TabularInline):
    model = ChecklistSection
    extra = 0


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    extra = 0
    fields = ["position", "section", "parent", "text", "command", "help_text"]
    ordering = ["position", "id"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Offer only this checklist's sections and items as sections and parents.
        template_id = request.resolver_match.kwargs.get("object_id")
        if db_field.name in {"section", "parent"}:
            model = ChecklistSection if db_field.name == "section" else ChecklistItem
            kwargs["queryset"] = model.objects.filter(template_id=template_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(AuditedModelAdmin):
    list_display = ["name", "cadence", "schedule_label", "is_active", "source_file", "updated_at"]
    list_filter = ["cadence", "is_active", "source_file"]
    search_fields = ["name", "context", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["source_file", "source_key", "next_run_at", "created_at", "updated_at"]
    inlines = [ChecklistSectionInline, ChecklistItemInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "context", "description", "is_active"]}),
        (
            "Schedule",
            {
                "fields": [
                    "cadence",
                    "due_time",
                    "due_weekday",
                    "due_day",
                    "complete_within",
                    "estimated_minutes",
                    "next_run_at",
                ]
            },
        ),
        ("Origin", {"fields": ["source_file", "source_key", "created_at", "updated_at"]}),
    ]

    @admin.display(description="Schedule")
    def schedule_label(self, obj: ChecklistTemplate) -> str:
        return obj.schedule_label()


class RunItemInline(admin.TabularInline):
    model = RunItem
    extra = 0
    can_delete = False
    fields = ["position", "text", "state", "done_by", "done_at", "note", "skip_reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChecklistRun)
class ChecklistRunAdmin(HistoryAdmin):
    """Runs are history: they change only through ticks in the portal, so read-only here."""

    list_display = ["title", "label", "status", "period_start", "items_done", "items_total"]
    list_filter = ["status", "template"]
    search_fields = ["title", "label"]
    date_hierarchy = "created_at"
    list_select_related = ["template"]
    inlines = [RunItemInline]


@admin.register(ChecklistSection)
class ChecklistSectionAdmin(AuditedModelAdmin):
    list_display = ["title", "template", "position"]
    list_filter = ["template"]
    search_fields = ["title", "template__name"]
    list_select_related = ["template"]


@admin.register(ChecklistItem)
class ChecklistItemAdmin(AuditedModelAdmin):
    list_display = ["text", "template", "section", "parent", "position"]
    list_filter = ["template"]
    search_fields = ["text", "command", "template__name"]
    list_select_related = ["template", "section", "parent"]
    autocomplete_fields = ["template"]
    raw_id_fields = ["section", "parent"]


@admin.register(RunItem)
class RunItemAdmin(HistoryAdmin):
    """History: items change only through ticks in the portal."""

    list_display = ["text", "run", "state", "done_by", "done_at"]
    list_filter = ["state"]
    search_fields = ["text", "note", "skip_reason", "run__title"]
    list_select_related = ["run", "done_by"]


@admin.register(MonitoredService)
class MonitoredServiceAdmin(AuditedModelAdmin):
    """Admins add and edit services (their targets reach inside the network). Managers may
    pause and resume them (the actions, or the Active box), and see the rest read-only, the
    target masked."""

    list_display = ["name", "kind", "state", "last_checked_at", "interval_seconds", "is_active"]
    list_filter = ["kind", "state", "is_active"]
    search_fields = ["name"]
    actions = ["pause", "resume"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = [
        "state",
        "state_changed_at",
        "last_checked_at",
        "last_latency_ms",
        "last_detail",
        "last_metrics",
        "next_check_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "kind", "target", "is_active"]}),
        ("Schedule", {"fields": ["interval_seconds", "timeout_seconds"]}),
        (
            "Thresholds",
            {
                "fields": [
                    ("latency_warning_ms", "latency_critical_ms"),
                    "expected_status",
                    "body_contains",
                    ("json_field", "json_value"),
                    ("days_warning", "days_critical"),
                    ("queue_warning", "queue_critical"),
                ]
            },
        ),
        ("Latest result", {"fields": readonly_fields}),
    ]

    def _may_edit(self, request) -> bool:
        return request.user.has_perm("ops.change_monitoredservice")

    def _may_pause(self, request) -> bool:
        return self._may_edit(request) or request.user.has_perm("ops.pause_monitoredservice")

    def has_change_permission(self, request, obj=None):
        return self._may_pause(request)

    def has_pause_permission(self, request):
        return self._may_pause(request)

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if self._may_edit(request) else {}

    def get_fieldsets(self, request, obj=None):
        if self._may_edit(request):
            return self.fieldsets
        first = ["name", "slug", "kind", "shown_target", "is_active"]
        return [(None, {"fields": first}), *self.fieldsets[1:]]

    def get_readonly_fields(self, request, obj=None):
        if self._may_edit(request):
            return self.readonly_fields
        editable = {"is_active"}
        fields = [f.name for f in self.model._meta.fields if f.name not in editable]
        return ["shown_target", *fields]

    @admin.display(description="Target")
    def shown_target(self, obj: MonitoredService) -> str:
        return describe_target(obj.target)

    def save_model(self, request, obj, form, change):
        if change and not self._may_edit(request):
            # A Manager's save can only have changed Active: the service decides and audits.
            stored = MonitoredService.objects.get(pk=obj.pk)
            active = form.cleaned_data["is_active"]
            monitored_service_set_active(service=stored, active=active, actor=request.user)
            return
        super().save_model(request, obj, form, change)

    def log_change(self, request, obj, message):
        if self._may_edit(request):
            return super().log_change(request, obj, message)
        # Recorded by monitored_service_set_active; only Django's own admin history here.
        return admin.ModelAdmin.log_change(self, request, obj, message)

    @admin.action(description="Pause checking the selected services", permissions=["pause"])
    def pause(self, request, queryset):
        for service in queryset:
            monitored_service_set_active(service=service, active=False, actor=request.user)

    @admin.action(description="Resume checking the selected services", permissions=["pause"])
    def resume(self, request, queryset):
        for service in queryset:
            monitored_service_set_active(service=service, active=True, actor=request.user)


@admin.register(Kpi)
class KpiAdmin(AuditedModelAdmin):
    list_display = ["name", "metric", "service", "target", "warning", "critical", "window_hours"]
    list_editable = ["target", "warning", "critical"]
    list_select_related = ["service"]


@admin.register(CheckResult)
class CheckResultAdmin(HistoryAdmin):
    """Results are written by the checks only."""

    list_display = ["service", "checked_at", "state", "latency_ms", "detail"]
    list_filter = ["state", "service"]
    date_hierarchy = "checked_at"
    list_select_related = ["service"]


@admin.register(CheckRollup)
class CheckRollupAdmin(CheckResultAdmin):
    list_display = ["service", "hour", "checks", "up", "critical", "worst_state"]
    list_filter = ["worst_state", "service"]
    date_hierarchy = "hour"


# Incidents


@admin.register(Severity)
class SeverityAdmin(AuditedModelAdmin):
    list_display = [
        "code",
        "name",
        "rank",
        "response_time",
        "escalation_time",
        "postmortem_required",
        "response_template",
        "is_active",
    ]
    list_editable = ["is_active"]
    list_select_related = ["response_template"]
    search_fields = ["code", "name", "description"]
    autocomplete_fields = ["response_template"]

    def has_delete_permission(self, request, obj=None):
        # Incidents keep their severity (PROTECT); deactivate a level instead.
        return super().has_delete_permission(request, obj) and (
            obj is None or not obj.incidents.exists()
        )


class TimelineEntryInline(admin.TabularInline):
    model = TimelineEntry
    extra = 0
    can_delete = False
    fields = ["created_at", "author_name", "kind", "text", "corrects"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(HistoryAdmin):
    list_display = ["__str__", "severity", "status", "commander", "started_at", "acknowledged_at"]
    list_filter = ["status", "severity", "personal_data"]
    search_fields = ["title", "summary", "affected_services"]
    date_hierarchy = "started_at"
    list_select_related = ["severity", "commander"]
    inlines = [TimelineEntryInline]


@admin.register(TimelineEntry)
class TimelineEntryAdmin(HistoryAdmin):
    list_display = ["created_at", "incident", "kind", "author_name", "text"]
    list_filter = ["kind"]
    search_fields = ["text", "author_name"]
    list_select_related = ["incident"]


@admin.register(Postmortem)
class PostmortemAdmin(HistoryAdmin):
    list_display = ["incident", "updated_at", "updated_by"]
    search_fields = ["summary", "root_cause", "incident__title"]
    list_select_related = ["incident", "updated_by"]


@admin.register(ActionItem)
class ActionItemAdmin(HistoryAdmin):
    list_display = ["text", "owner", "due_date", "done_at", "postmortem"]
    list_filter = ["done_at"]
    search_fields = ["text", "owner__username"]
    list_select_related = ["owner", "postmortem__incident"]


@admin.register(IncidentNotification)
class IncidentNotificationAdmin(HistoryAdmin):
    list_display = ["incident", "step", "created_at", "emailed_to", "webhook_status"]
    list_filter = ["step"]
    list_select_related = ["incident"]


@admin.register(Environment)
class EnvironmentAdmin(AuditedModelAdmin):
    """Where versions are deployed; the token stays in the named environment variable."""

    list_display = ["name", "app_id", "promotion_order", "requires_manager", "token_variable"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Deploy)
class DeployAdmin(HistoryAdmin):
    """Deploys change only through their jobs and the deploy pages."""

    list_display = ["__str__", "status", "phase", "do_deployment_id", "created_by", "created_at"]
    list_filter = ["status", "kind", "environment"]
    search_fields = ["version", "do_deployment_id"]
    list_select_related = ["environment", "created_by"]


@admin.register(BackupTarget)
class BackupTargetAdmin(AuditedModelAdmin):
    list_display = ["name", "url_variable", "environment", "keep_daily", "keep_weekly"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Backup)
class BackupAdmin(HistoryAdmin):
    list_display = ["__str__", "status", "size_bytes", "verified_at", "pruned_at"]
    list_filter = ["status", "target"]
    list_select_related = ["target"]


@admin.register(BackupVerification)
class BackupVerificationAdmin(HistoryAdmin):
    list_display = ["__str__", "status", "restore_seconds", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["backup__target"]
