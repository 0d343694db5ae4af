import apprise
from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ops.models import (
    ActionItem,
    Alert,
    AlertRule,
    AlertSend,
    Backup,
    BackupTarget,
    BackupVerification,
    BreachRecord,
    CalendarFeedToken,
    ChecklistItem,
    ChecklistRun,
    ChecklistSection,
    ChecklistTemplate,
    CheckResult,
    CheckRollup,
    ComponentGroup,
    ComponentOverride,
    DataSource,
    DataSourceTable,
    DataSubjectRequest,
    Deploy,
    Environment,
    ErasureLedgerEntry,
    EscalationPolicy,
    EscalationStep,
    GdprJob,
    Incident,
    IncidentNotification,
    Kpi,
    MaintenanceTask,
    MaintenanceWindow,
    MonitoredService,
    NotificationChannel,
    OnCallOverride,
    OnCallSchedule,
    Postmortem,
    ProcessingActivity,
    PublicUpdate,
    RestoreTest,
    RotationMember,
    RunbookSource,
    RunItem,
    Severity,
    Silence,
    StatusComponent,
    StatusDelivery,
    StatusNotice,
    StatusSubscriber,
    TaskCompletion,
    TimelineEntry,
    VendorContact,
    WindowNotice,
    WindowOccurrence,
)
from ops.models.incidents import OPEN_STATUSES
from ops.runbooks.markdown import render_inline
from ops.runbooks.plan import plan_as_text
from ops.services.health import monitored_service_set_active
from ops.services.health_checks import describe_target
from ops.services.maintenance import TASK_FIELDS, maintenance_task_save, task_schedule_problems
from portal.admin_audit import AuditedModelAdmin, HistoryAdmin
from portal.services.audit import audit_record


def _rendered(text: str):
    """Item text as the pages show it: its inline Markdown rendered, raw HTML escaped."""
    return mark_safe(render_inline(text))  # noqa: S308 - markdown-it escapes; html is off


class ChecklistSectionInline(admin.TabularInline):
    model = ChecklistSection
    extra = 0


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    extra = 0
    fields = ["position", "section", "parent", "text", "command", "help_text", "due_after_minutes"]
    ordering = ["position", "id"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Offer only this checklist's sections and items as sections and parents.
        template_id = request.resolver_match.kwargs.get("object_id")
        if db_field.name in {"section", "parent"}:
            model = ChecklistSection if db_field.name == "section" else ChecklistItem
            kwargs["queryset"] = model.objects.filter(template_id=template_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class RetiredFilter(admin.SimpleListFilter):
    title = "retired"
    parameter_name = "retired"

    def lookups(self, request, model_admin):
        return [("no", "Live"), ("yes", "Retired")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(retired_at__isnull=self.value() == "no")
        return queryset


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "cadence",
        "schedule_label",
        "is_active",
        "retired_at",
        "source",
        "updated_at",
    ]
    list_filter = ["cadence", "is_active", RetiredFilter, "source"]
    list_select_related = ["source"]
    search_fields = ["name", "context", "description", "source__name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = [
        "source",
        "source_key",
        "retired_at",
        "next_run_at",
        "created_at",
        "updated_at",
    ]
    inlines = [ChecklistSectionInline, ChecklistItemInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "context", "description", "is_active"]}),
        (
            "Schedule",
            {
                "fields": [
                    "cadence",
                    "weekdays_only",
                    "due_time",
                    "time_zone",
                    "due_weekday",
                    "due_day",
                    "due_week",
                    "complete_within",
                    "estimated_minutes",
                    "next_run_at",
                ]
            },
        ),
        (
            "Origin",
            {"fields": ["source", "source_key", "retired_at", "created_at", "updated_at"]},
        ),
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
    # The text may hold links: the change link is the id, so no link sits inside another.
    list_display = ["id", "shown_text", "template", "section", "parent", "position"]
    list_display_links = ["id"]
    list_filter = ["template"]
    search_fields = ["text", "command", "template__name"]
    list_select_related = ["template", "section", "parent"]
    autocomplete_fields = ["template"]
    raw_id_fields = ["section", "parent"]
    readonly_fields = ["shown_text"]

    @admin.display(description="Text as shown", ordering="text")
    def shown_text(self, obj: ChecklistItem):
        return _rendered(obj.text)


class RunbookTemplateInline(admin.TabularInline):
    model = ChecklistTemplate
    extra = 0
    can_delete = False
    fields = ["name", "source_key", "schedule", "retired_at"]
    readonly_fields = fields
    show_change_link = True
    ordering = ["retired_at", "source_key"]

    @admin.display(description="Schedule")
    def schedule(self, obj: ChecklistTemplate) -> str:
        return obj.schedule_label()

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RunbookSource)
class RunbookSourceAdmin(HistoryAdmin):
    """Sources change only through `manage.py import_runbook`: shown read-only here, with the
    plan of their last import and the templates they define (retired ones last)."""

    list_display = ["name", "short_hash", "imported_at", "imported_by", "live", "retired"]
    search_fields = ["name"]
    list_select_related = ["imported_by"]
    inlines = [RunbookTemplateInline]
    fields = [
        "name",
        "root",
        "sha256",
        "imported_at",
        "imported_by",
        "created_at",
        "last_plan_shown",
    ]

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.display(description="SHA-256")
    def short_hash(self, obj: RunbookSource) -> str:
        return obj.sha256[:12]

    @admin.display(description="Live templates", ordering="live_count")
    def live(self, obj: RunbookSource) -> int:
        return obj.live_count

    @admin.display(description="Retired", ordering="retired_count")
    def retired(self, obj: RunbookSource) -> int:
        return obj.retired_count

    @admin.display(description="Last plan")
    def last_plan_shown(self, obj: RunbookSource):
        if not obj.last_plan:
            return "—"
        return format_html("<pre>{}</pre>", plan_as_text([obj.last_plan]))

    def get_queryset(self, request):
        # The counts in one query, not two per row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_count=Count("templates", filter=Q(templates__retired_at__isnull=True)),
                retired_count=Count("templates", filter=Q(templates__retired_at__isnull=False)),
            )
        )


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


class TaskCompletionInline(admin.TabularInline):
    model = TaskCompletion
    extra = 0
    fields = ["done_at", "done_by", "due_at", "note", "run"]
    readonly_fields = fields
    can_delete = False


class MaintenanceTaskAdminForm(forms.ModelForm):
    """The schedule's errors beside its fields, as in the portal's own form."""

    class Meta:
        model = MaintenanceTask
        fields = [*TASK_FIELDS]

    def clean(self):
        data = super().clean()
        problems = task_schedule_problems(
            rrule=data.get("rrule", ""),
            first_due_at=data.get("first_due_at"),
            time_zone=data.get("time_zone", ""),
        )
        for field, message in problems.items():
            self.add_error(field, message)
        return data


@admin.register(MaintenanceTask)
class MaintenanceTaskAdmin(AuditedModelAdmin):
    form = MaintenanceTaskAdminForm
    list_display = ["name", "schedule_label", "team", "owner", "next_due_at", "last_done_at"]
    list_filter = ["team", "is_active", "due_from"]
    search_fields = ["name", "description", "team"]
    readonly_fields = ["next_due_at", "last_done_at", "source_key", "created_at", "updated_at"]
    inlines = [TaskCompletionInline]

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name] for name in TASK_FIELDS if name in form.cleaned_data
        }
        # The form has already copied its values onto obj: the service compares with the
        # stored row to see whether the schedule moved.
        stored = MaintenanceTask.objects.get(pk=obj.pk) if change else None
        saved = maintenance_task_save(user=request.user, fields=fields, task=stored)
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()


class WindowOccurrenceInline(admin.TabularInline):
    model = WindowOccurrence
    extra = 0
    fields = ["starts_at", "ends_at", "status", "cancel_reason", "pre_run", "post_run"]
    readonly_fields = ["starts_at", "ends_at", "pre_run", "post_run"]
    ordering = ["-starts_at"]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(AuditedModelAdmin):
    """Scheduling goes through the portal's form (its checks and overrides); the admin edits
    details such as the postmortem link and the checklists."""

    list_display = [
        "title",
        "schedule_label",
        "starts_at",
        "time_zone",
        "is_emergency",
        "forbids_deploys",
        "is_cancelled",
    ]
    list_filter = ["is_emergency", "forbids_deploys", "is_cancelled", "impact", "team"]
    search_fields = ["title", "description"]
    filter_horizontal = ["services"]
    readonly_fields = [
        "starts_at",
        "time_zone",
        "rrule",
        "duration",
        "override_reason",
        "override_by",
        "overlap_reason",
        "source_key",
        "created_by",
        "created_at",
        "updated_at",
        "is_cancelled",
        "cancel_reason",
    ]
    inlines = [WindowOccurrenceInline]

    def has_add_permission(self, request):
        return False


@admin.register(WindowNotice)
class WindowNoticeAdmin(admin.ModelAdmin):
    list_display = [
        "occurrence",
        "kind",
        "created_at",
        "email_state",
        "emailed_to",
        "webhook_state",
        "webhook_status",
    ]
    list_filter = ["kind", "email_state", "webhook_state"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TaskCompletion)
class TaskCompletionAdmin(admin.ModelAdmin):
    list_display = ["task", "done_at", "done_by", "due_at", "run"]
    list_filter = ["task"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WindowOccurrence)
class WindowOccurrenceAdmin(admin.ModelAdmin):
    list_display = ["window", "starts_at", "ends_at", "status", "pre_run", "post_run"]
    list_filter = ["status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CalendarFeedToken)
class CalendarFeedTokenAdmin(AuditedModelAdmin):
    """Revoke a feed by setting its revoked time; the secret itself is never stored."""

    list_display = ["user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


# GDPR. Requests themselves are handled on their pages (where each view of a subject's data is
# audited), not here; sources and the register of processing activities are edited here.


class DataSourceTableInline(admin.TabularInline):
    model = DataSourceTable
    extra = 1
    fields = ["table", "subject_column", "personal_columns", "erasure_action", "anonymize_columns"]


@admin.register(DataSource)
class DataSourceAdmin(AuditedModelAdmin):
    list_display = ["name", "connection_env", "is_active"]
    inlines = [DataSourceTableInline]


@admin.register(DataSourceTable)
class DataSourceTableAdmin(AuditedModelAdmin):
    list_display = ["table", "source", "subject_column", "erasure_action"]
    list_filter = ["source"]


@admin.register(ProcessingActivity)
class ProcessingActivityAdmin(AuditedModelAdmin):
    list_display = ["name", "legal_basis", "retention", "updated_at"]
    search_fields = ["name", "purpose"]


@admin.register(GdprJob)
class GdprJobAdmin(HistoryAdmin):
    list_display = ["__str__", "status", "steps_done", "steps_total", "created_at"]
    exclude = ["result"]

    def get_readonly_fields(self, request, obj=None):
        return [field for field in super().get_readonly_fields(request, obj) if field != "result"]


@admin.register(ErasureLedgerEntry)
class ErasureLedgerEntryAdmin(HistoryAdmin):
    list_display = ["request", "source_name", "table", "action", "rows", "erased_at"]


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(HistoryAdmin):
    """Deadlines and outcomes only: the subject's identifiers and the identity evidence are
    shown on the request's page, where each view is audited."""

    list_display = ["__str__", "status", "received_at", "due_at", "assignee"]
    list_filter = ["kind", "status"]
    hidden = {"subject_email", "subject_keys", "subject_name", "details", "identity_evidence"}

    def get_fields(self, request, obj=None):
        return [field for field in self.get_readonly_fields(request, obj)]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name not in self.hidden]


@admin.register(BreachRecord)
class BreachRecordAdmin(HistoryAdmin):
    list_display = ["incident", "authority_notified_at", "subjects_decision"]


class ChannelAdminForm(forms.ModelForm):
    """The stored URL is write-only here too: the field is always empty, and left empty it
    keeps the URL it had."""

    url_secret = forms.CharField(
        label="Apprise URL", required=False, widget=forms.PasswordInput(render_value=False)
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "owner", "url_env", "url_secret", "is_active"]

    def clean_url_secret(self):
        value = self.cleaned_data["url_secret"].strip()
        if not value and self.instance.pk:
            return self.instance.url_secret
        if value and not apprise.Apprise().add(value):
            raise forms.ValidationError("Apprise cannot read this URL.")
        return value


@admin.register(NotificationChannel)
class NotificationChannelAdmin(AuditedModelAdmin):
    form = ChannelAdminForm
    list_display = ["name", "owner", "where", "is_active"]


class RotationMemberInline(admin.TabularInline):
    model = RotationMember
    extra = 1


class OnCallOverrideInline(admin.TabularInline):
    model = OnCallOverride
    extra = 0


@admin.register(OnCallSchedule)
class OnCallScheduleAdmin(AuditedModelAdmin):
    list_display = ["name", "role", "handoff", "handoff_time", "time_zone"]
    inlines = [RotationMemberInline, OnCallOverrideInline]


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    extra = 1


@admin.register(RotationMember)
class RotationMemberAdmin(AuditedModelAdmin):
    list_display = ["schedule", "position", "user"]
    list_select_related = ["schedule", "user"]


@admin.register(OnCallOverride)
class OnCallOverrideAdmin(AuditedModelAdmin):
    list_display = ["schedule", "user", "starts_at", "ends_at", "reason"]
    list_select_related = ["schedule", "user"]


@admin.register(EscalationStep)
class EscalationStepAdmin(AuditedModelAdmin):
    list_display = ["policy", "after_minutes", "label", "schedule", "user", "channel"]
    list_select_related = ["policy", "schedule", "user", "channel"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(AuditedModelAdmin):
    list_display = ["name", "repeat_every_minutes", "repeat_times"]
    inlines = [EscalationStepInline]


@admin.register(AlertRule)
class AlertRuleAdmin(AuditedModelAdmin):
    list_display = ["name", "severity", "source", "threshold", "for_minutes", "is_active"]
    list_filter = ["severity", "source", "is_active"]
    readonly_fields = ["pending_since", "clear_since", "last_value", "last_evaluated_at"]


@admin.register(Alert)
class AlertAdmin(HistoryAdmin):
    """Alerts change by evaluation and acknowledgement only."""

    list_display = ["rule", "status", "severity", "fired_at", "acknowledged_by", "resolved_at"]
    list_filter = ["status", "severity"]
    list_select_related = ["rule", "acknowledged_by"]


@admin.register(AlertSend)
class AlertSendAdmin(HistoryAdmin):
    list_display = ["created_at", "alert", "channel", "recipient", "status", "attempts", "error"]
    list_filter = ["status"]
    list_select_related = ["alert__rule", "channel", "recipient"]


@admin.register(Silence)
class SilenceAdmin(AuditedModelAdmin):
    list_display = ["reason", "service", "rule", "starts_at", "ends_at"]


@admin.register(VendorContact)
class VendorContactAdmin(AuditedModelAdmin):
    list_display = ["area", "vendor", "contact", "method", "plan"]
    filter_horizontal = ["services"]


@admin.register(Environment)
class EnvironmentAdmin(AuditedModelAdmin):
    """Where versions are deployed; the token stays in the named environment variable."""

    list_display = [
        "name",
        "app_id",
        "green_app_id",
        "live_colour",
        "promotion_order",
        "requires_manager",
        "token_variable",
    ]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["services"]
    readonly_fields = ["live_colour"]


@admin.register(Deploy)
class DeployAdmin(HistoryAdmin):
    """Deploys change only through their jobs and the deploy pages."""

    list_display = ["__str__", "status", "phase", "do_deployment_id", "created_by", "created_at"]
    list_filter = ["status", "kind", "environment"]
    search_fields = ["version", "do_deployment_id"]
    list_select_related = ["environment", "created_by"]


@admin.register(BackupTarget)
class BackupTargetAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "url_variable",
        "environment",
        "keep_daily",
        "keep_weekly",
        "restore_test_target",
    ]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(RestoreTest)
class RestoreTestAdmin(HistoryAdmin):
    """Restore tests change only through their jobs and the backup pages."""

    list_display = ["__str__", "status", "restore_seconds", "created_at"]
    list_filter = ["status", "source"]
    list_select_related = ["source", "destination"]


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


# The public status page


class StatusComponentInline(admin.TabularInline):
    model = StatusComponent
    fields = ["name", "position", "is_public"]
    extra = 0
    show_change_link = True


@admin.register(ComponentGroup)
class ComponentGroupAdmin(AuditedModelAdmin):
    list_display = ["name", "position"]
    list_editable = ["position"]
    inlines = [StatusComponentInline]


@admin.register(StatusComponent)
class StatusComponentAdmin(AuditedModelAdmin):
    """What customers see on the status page: a name, a public description, and the
    monitored services whose health (and incidents) make its state."""

    list_display = ["name", "group", "position", "is_public"]
    list_editable = ["position", "is_public"]
    list_filter = ["group", "is_public"]
    search_fields = ["name", "description"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["services"]
    fields = ["name", "slug", "group", "position", "description", "services", "is_public"]


class ComponentOverrideForm(forms.ModelForm):
    class Meta:
        model = ComponentOverride
        fields = ["component", "incident", "state", "reason", "ended_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.fields["incident"].queryset = Incident.objects.filter(status__in=OPEN_STATUSES)

    def clean(self):
        data = super().clean()
        incident = data.get("incident")
        if incident is not None and self.instance.pk is None and not incident.is_open:
            self.add_error(
                "incident", "An override lasts as long as an open incident; this one is not."
            )
        return data


@admin.register(ComponentOverride)
class ComponentOverrideAdmin(AuditedModelAdmin):
    """A component's state set by hand for the length of an incident (it stops counting when
    the incident is resolved, a resolved public update is posted, or it is ended here)."""

    form = ComponentOverrideForm
    list_display = ["component", "state", "incident", "created_by", "created_at", "ended_at"]
    list_filter = ["state"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        return super().save_model(request, obj, form, change)


@admin.register(PublicUpdate)
class PublicUpdateAdmin(HistoryAdmin):
    """What was published, read-only: a correction is a new update from the incident page."""

    list_display = ["posted_at", "incident", "status", "title", "posted_by"]
    list_filter = ["status"]
    search_fields = ["title", "message"]
    list_select_related = ["incident", "posted_by"]


@admin.register(StatusSubscriber)
class StatusSubscriberAdmin(HistoryAdmin):
    """Who gets the status page's e-mail (Managers): read-only (people subscribe and
    unsubscribe themselves); a Manager may delete one on request. The address never reaches
    the audit log, which names the subscriber's id."""

    list_display = ["email", "confirmed_at", "what", "created_at"]
    list_filter = [("confirmed_at", admin.EmptyFieldListFilter), "all_components"]
    search_fields = ["email"]
    exclude = ["components"]
    readonly_fields = ["email", "all_components", "what", "confirmed_at", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("components")

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields

    @admin.display(description="Components")
    def what(self, obj) -> str:
        if obj.all_components:
            return "All"
        return ", ".join(component.name for component in obj.components.all()) or "—"

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("ops.delete_statussubscriber")

    def log_deletions(self, request, queryset):
        for obj in queryset:
            audit_record(actor=request.user, action="admin.statussubscriber.delete", target=obj)
        return admin.ModelAdmin.log_deletions(self, request, queryset)


class StatusDeliveryInline(admin.TabularInline):
    model = StatusDelivery
    fields = ["subscriber", "status", "attempts", "sent_at", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    show_change_link = False


@admin.register(StatusNotice)
class StatusNoticeAdmin(HistoryAdmin):
    """What subscribers were told, with each delivery's state (sent, retried, failed)."""

    list_display = ["created_at", "subject", "recipients", "sent", "failed", "fanned_out_at"]
    search_fields = ["subject", "key"]
    inlines = [StatusDeliveryInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                sent_count=Count("deliveries", filter=Q(deliveries__status="sent")),
                failed_count=Count("deliveries", filter=Q(deliveries__status="failed")),
            )
        )

    @admin.display(description="Sent", ordering="sent_count")
    def sent(self, obj) -> int:
        return obj.sent_count

    @admin.display(description="Failed", ordering="failed_count")
    def failed(self, obj) -> int:
        return obj.failed_count


@admin.register(StatusDelivery)
class StatusDeliveryAdmin(HistoryAdmin):
    """Each e-mail to a subscriber: its state, attempts and last error (read-only)."""

    list_display = ["created_at", "kind", "notice", "subscriber", "status", "attempts", "error"]
    list_filter = ["status", "kind"]
    list_select_related = ["notice", "subscriber"]
