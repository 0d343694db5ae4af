"""Status page changes: public updates of an incident (what customers read, separate from
its internal timeline) and overrides of a component's derived state for an incident."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ops.models import (
    ComponentOverride,
    ComponentState,
    Incident,
    PublicStatus,
    PublicUpdate,
    StatusComponent,
    TimelineKind,
)
from ops.services.incidents import incident_lock
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record

MAX_TITLE = 200
MAX_MESSAGE = 5000
MAX_REASON = 500


def _public_status(value: str) -> str:
    if value not in PublicStatus.values:
        known = ", ".join(label.lower() for label in PublicStatus.labels)
        raise ActionRefused(
            f"“{value}” is not a public status; choose one of {known}.", field="status"
        )
    return value


@transaction.atomic
def public_update_post(
    *,
    incident: Incident,
    user,
    status: str,
    message: str,
    title: str = "",
    now: datetime | None = None,
) -> PublicUpdate:
    """Post one public update (investigating, identified, monitoring, resolved) with its
    message. The title is the public one: required on the first update, kept from the
    previous update when left empty. A resolved update ends the incident's overrides."""
    require_perm(user, "ops.update_incident", "You may not post updates to incidents.")
    now = now or timezone.now()
    status = _public_status((status or "").strip())
    message = (message or "").strip()
    title = (title or "").strip()
    if not message:
        raise ActionRefused("Write the message customers will read.", field="message")
    if len(message) > MAX_MESSAGE:
        raise ActionRefused(
            f"The message is too long ({len(message)} characters; at most {MAX_MESSAGE}).",
            field="message",
        )
    if len(title) > MAX_TITLE:
        raise ActionRefused(
            f"The public title is too long ({len(title)} characters; at most {MAX_TITLE}).",
            field="title",
        )
    incident = incident_lock(incident)
    if incident.is_closed:
        raise ActionRefused(
            "This incident is closed: it can no longer get public updates.", status=409
        )
    previous = incident.public_updates.order_by("-posted_at", "-id").first()
    if not title:
        if previous is None:
            raise ActionRefused(
                "Give the incident a public title: customers do not see the internal one.",
                field="title",
            )
        title = previous.title
    update = PublicUpdate.objects.create(
        incident=incident,
        title=title,
        status=status,
        message=message,
        posted_by=user,
        posted_at=now,
    )
    if status == PublicStatus.RESOLVED:
        incident.component_overrides.filter(ended_at__isnull=True).update(ended_at=now)
    incident.add_entry(
        kind=TimelineKind.NOTIFICATION,
        text=f"Status page: {update.get_status_display()} — {message}",
        user=user,
        now=now,
    )
    audit_record(
        actor=user,
        action="status.update",
        target=incident,
        summary=f"{update.get_status_display()}: {title}"[:500],
        after={"title": title, "status": status, "message": message},
    )
    return update


@transaction.atomic
def component_override_set(
    *,
    component: StatusComponent,
    incident: Incident,
    state: str,
    reason: str,
    user,
    now: datetime | None = None,
) -> ComponentOverride:
    """A person's word on a component's state while the incident is open (recorded)."""
    require_perm(user, "ops.publish_statuscomponent", "You may not override component states.")
    now = now or timezone.now()
    if state not in ComponentState.values:
        raise ActionRefused(f"“{state}” is not a component state.", field="state")
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("Say why the derived state is wrong.", field="reason")
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"The reason is too long (at most {MAX_REASON}).", field="reason")
    incident = incident_lock(incident)
    if incident.is_closed or incident.resolved_at is not None:
        raise ActionRefused("An override lasts as long as an open incident.", status=409)
    component.overrides.filter(ended_at__isnull=True).update(ended_at=now)
    override = ComponentOverride.objects.create(
        component=component,
        incident=incident,
        state=state,
        reason=reason,
        created_by=user,
        created_at=now,
    )
    audit_record(
        actor=user,
        action="status.override",
        target=component,
        summary=f"{component.name}: {override.get_state_display()} ({incident.reference})",
        after={"state": state, "reason": reason, "incident": incident.pk},
    )
    return override


@transaction.atomic
def component_override_end(
    *, override: ComponentOverride, user, now: datetime | None = None
) -> ComponentOverride:
    require_perm(user, "ops.publish_statuscomponent", "You may not override component states.")
    now = now or timezone.now()
    if override.ended_at is not None:
        raise ActionRefused("This override has already ended.", status=409)
    override.ended_at = now
    override.save(update_fields=["ended_at"])
    audit_record(
        actor=user,
        action="status.override_end",
        target=override.component,
        summary=f"{override.component.name}: override ended",
    )
    return override
