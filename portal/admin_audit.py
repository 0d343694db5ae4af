"""Admin edits go to the audit log like every other action, with the changed fields' old and
new values (secrets masked: fields named like one, credentials in URLs)."""

import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import models

from portal.secrets import MASK, is_secret_name, mask_text
from portal.services.audit import audit_record

# Stamped by the save itself: always "changed", never what the person changed.
AUTOMATIC = {"updated_at", "modified_at", "last_login"}


def _message_text(message) -> str:
    """The admin's own wording ("Changed Name and Due time.") of its change message."""
    if isinstance(message, list):
        message = LogEntry(change_message=json.dumps(message)).get_change_message()
    return str(message)[:500]


def _plain(value: Any) -> Any:
    """A field's value as JSON can hold it (and a person can read it)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta | Decimal):
        return str(value)
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def _shown(name: str, value: Any) -> Any:
    if is_secret_name(name) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [mask_text(item) if isinstance(item, str) else item for item in value]
    return value


def snapshot(obj: models.Model) -> dict[str, Any]:
    """Every field a person can change: concrete fields (a foreign key by its text) and
    many-to-many ones (as sorted texts), read from the object as it is now."""
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.primary_key or field.name in AUTOMATIC or getattr(field, "auto_now", False):
            continue
        if field.is_relation:
            values[field.name] = _plain(getattr(obj, field.name, None))
        else:
            values[field.name] = _plain(field.value_from_object(obj))
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            values[field.name] = sorted(str(item) for item in getattr(obj, field.name).all())
    return values


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    """The fields whose value differs, old and new, secrets masked."""
    names = [name for name in after if before.get(name) != after[name]]
    return (
        {name: _shown(name, before.get(name)) for name in names},
        {name: _shown(name, after[name]) for name in names},
    )


def _pending(request) -> dict:
    """Old values read before a save, kept on the request until the save is logged."""
    if not hasattr(request, "_admin_audit_before"):
        request._admin_audit_before = {"objects": {}, "inlines": []}
    return request._admin_audit_before


def _stored(obj: models.Model) -> models.Model | None:
    return type(obj)._default_manager.filter(pk=obj.pk).first()


class AuditedModelAdmin(admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        if change:
            # The form has already written its values onto obj: the old ones are in the
            # database until this save.
            stored = _stored(obj)
            if stored is not None:
                _pending(request)["objects"][(obj._meta.label, obj.pk)] = snapshot(stored)
        return super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        """Inline rows (a checklist's items): their old values, to log with the parent."""
        olds = {}
        for inline_form in formset.initial_forms:
            instance = inline_form.instance
            if instance.pk is not None and inline_form.has_changed():
                stored = _stored(instance)
                if stored is not None:
                    olds[instance.pk] = snapshot(stored)
        result = super().save_formset(request, form, formset, change)
        for obj, _fields in formset.changed_objects:
            if obj.pk in olds:
                _pending(request)["inlines"].append((obj, olds[obj.pk]))
        return result

    def log_addition(self, request, obj, message):
        _, after = changes({}, snapshot(obj))
        audit_record(
            actor=request.user,
            action=f"admin.{obj._meta.model_name}.add",
            target=obj,
            summary=_message_text(message),
            after={name: value for name, value in after.items() if value not in (None, "", [])},
        )
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        pending = _pending(request)
        old = pending["objects"].pop((obj._meta.label, obj.pk), None)
        before, after = changes(old, snapshot(obj)) if old is not None else ({}, {})
        for inline, inline_old in pending["inlines"]:
            label = f"{inline._meta.verbose_name} “{inline}”"
            inline_before, inline_after = changes(inline_old, snapshot(inline))
            for name in inline_after:
                before[f"{label}: {name}"] = inline_before[name]
                after[f"{label}: {name}"] = inline_after[name]
        pending["inlines"].clear()
        audit_record(
            actor=request.user,
            action=f"admin.{obj._meta.model_name}.change",
            target=obj,
            summary=_message_text(message),
            before=before or None,
            after=after or None,
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            audit_record(
                actor=request.user,
                action=f"admin.{obj._meta.model_name}.delete",
                target=obj,
                before={name: _shown(name, value) for name, value in snapshot(obj).items()},
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
