from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from portal.admin_audit import AuditedModelAdmin, HistoryAdmin
from portal.models import ApiToken, AuditEntry
from portal.services.audit import audit_record
from portal.services.tokens import api_token_create, api_token_revoke


@admin.register(AuditEntry)
class AuditEntryAdmin(HistoryAdmin):
    """Read-only: the log is append-only and only audit_record writes it."""

    list_display = [
        "created_at",
        "actor_name",
        "action",
        "object_type",
        "object_repr",
        "ip_address",
    ]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "object_repr", "summary"]
    date_hierarchy = "created_at"

    def has_delete_permission(self, request, obj=None):
        return False


# Users and groups are edited in the admin too: their changes belong in the audit log.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedModelAdmin, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(AuditedModelAdmin, GroupAdmin):
    pass


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    """Tokens are made with `manage.py create_api_token` or here; the token itself is shown
    once, in the message after saving."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return (
            ["user", "name"]
            if obj is None
            else ["user", "name", *self.readonly_fields, "revoked_at"]
        )

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, raw = api_token_create(user=obj.user, name=obj.name, actor=request.user)
        obj.pk = token.pk
        obj.prefix, obj.digest, obj.created_at = token.prefix, token.digest, token.created_at
        messages.warning(request, f"The token, shown this once: {raw}")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token, actor=request.user)


# django-axes' failed-login records: unlocking a locked-out username and address is deleting
# its row, here, and that goes to the audit log like any admin edit.
admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AuditedModelAdmin, AccessAttemptAdmin):
    actions = ["unlock", *AccessAttemptAdmin.actions]

    @admin.action(
        description="Unlock the selected (forget their failed logins)", permissions=["delete"]
    )
    def unlock(self, request, queryset):
        count = 0
        for attempt in queryset:
            audit_record(
                actor=request.user,
                action="auth.unlock",
                target=attempt,
                summary=f"Unlocked “{attempt.username}” from {attempt.ip_address}",
            )
            attempt.delete()
            count += 1
        messages.success(request, f"Unlocked {count}.")
