"""Admin edits go to the audit log like every other action."""

import json

from django.contrib import admin
from django.contrib.admin.models import LogEntry

from portal.services.audit import audit_record


def _message_text(message) -> str:
    """The admin's own wording ("Changed Name and Due time.") of its change message."""
    if isinstance(message, list):
        message = LogEntry(change_message=json.dumps(message)).get_change_message()
    return str(message)[:500]


class AuditedModelAdmin(admin.ModelAdmin):
    def log_addition(self, request, obj, message):
        audit_record(
            actor=request.user,
            action=f"admin.{obj._meta.model_name}.add",
            target=obj,
            summary=_message_text(message),
        )
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        audit_record(
            actor=request.user,
            action=f"admin.{obj._meta.model_name}.change",
            target=obj,
            summary=_message_text(message),
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            audit_record(
                actor=request.user, action=f"admin.{obj._meta.model_name}.delete", target=obj
            )
        return super().log_deletions(request, queryset)


class HistoryAdmin(AuditedModelAdmin):
    """Records the portal writes through its services (runs, results, incidents, batches, the
    audit log): shown read-only, never added, changed or deleted here."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
