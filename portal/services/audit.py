"""The one way anything is written to the audit log."""

from typing import Any

from django.db import models

from portal.middleware import client_address
from portal.models import AuditEntry

SYSTEM = "system"


def audit_record(
    *,
    actor,
    action: str,
    target: models.Model | None = None,
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. ``actor`` None means the system; the client address comes from the
    request being served, if any. Call it inside the transaction of the change it records, so
    a change rolled back leaves no entry."""
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEntry.objects.create(
        actor=user,
        actor_name=user.get_username() if user else SYSTEM,
        action=action,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        object_repr=str(target)[:300] if target is not None else "",
        summary=summary[:500],
        before=before,
        after=after,
        ip_address=client_address.get(),
    )
