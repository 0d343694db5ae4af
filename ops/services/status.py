"""Status page changes: public updates of an incident (what customers read, separate from
its internal timeline) and overrides of a component's derived state for an incident."""

from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from ops.models import (
    ComponentGroup,
    ComponentOverride,
    ComponentState,
    Incident,
    MonitoredService,
    PublicStatus,
    PublicUpdate,
    StatusComponent,
    TimelineKind,
)
from ops.services.incidents import incident_lock, incident_overrides_end, override_end_recorded
from ops.services.status_cache import status_cache_bump
from ops.services.status_subscribers import status_link, status_notice_queue
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
        incident_overrides_end(
            incident=incident, user=user, now=now, why="the public update says resolved"
        )
    components = list(
        StatusComponent.objects.filter(is_public=True, services__incidents=incident)
        .distinct()
        .order_by("position", "name")
    )
    affected = ", ".join(component.name for component in components)
    status_notice_queue(
        key=f"update:{update.pk}",
        subject=f"[{update.get_status_display()}] {title}",
        body=(
            f"{title}\n\n{update.get_status_display()}: {message}\n\n"
            + (f"Affected: {affected}\n" if affected else "")
            + f"Posted {now.astimezone(UTC):%d %b %Y %H:%M} UTC. "
            f"History: {status_link('ops:status_history')}#incident-{incident.pk}\n"
        ),
        components=components,
        now=now,
    )
    status_cache_bump()
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


def override_states() -> list[tuple[str, str]]:
    return list(ComponentState.choices)


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
    """A person working the incident sets a component's state by hand, with the reason, for
    as long as the incident is open (it ends when the incident is resolved, when a resolved
    public update is posted, or by hand). Recorded in the audit log and on the timeline."""
    require_perm(user, "ops.publish_statuscomponent", "You may not override component states.")
    now = now or timezone.now()
    if state not in ComponentState.values:
        raise ActionRefused(f"“{state}” is not a component state.", field="state")
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("Say why the derived state is wrong.", field="reason")
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"The reason is too long (at most {MAX_REASON}).", field="reason")
    if not component.is_public:
        raise ActionRefused(
            f"{component.name} is not on the status page: nobody would see the override.",
            field="component",
        )
    incident = incident_lock(incident)
    if incident.is_closed or incident.resolved_at is not None:
        raise ActionRefused("An override lasts as long as an open incident.", status=409)
    replaced = list(
        component.overrides.select_for_update()
        .filter(ended_at__isnull=True)
        .select_related("incident")
    )
    component.overrides.filter(pk__in=[old.pk for old in replaced]).update(ended_at=now)
    override = ComponentOverride.objects.create(
        component=component,
        incident=incident,
        state=state,
        reason=reason,
        created_by=user,
        created_at=now,
    )
    for old in replaced:
        if old.incident_id != incident.pk:
            old.incident.add_entry(
                kind=TimelineKind.NOTIFICATION,
                text=f"Status page: override of {component.name} replaced by one of "
                f"{incident.reference}.",
                user=user,
                now=now,
            )
    incident.add_entry(
        kind=TimelineKind.NOTIFICATION,
        text=f"Status page: {component.name} shown as {override.get_state_display()} until the "
        f"incident is resolved — {reason}",
        user=user,
        now=now,
    )
    audit_record(
        actor=user,
        action="status.override",
        target=component,
        summary=f"{component.name}: {override.get_state_display()} ({incident.reference})",
        before={"overrides_ended": [old.pk for old in replaced]} if replaced else None,
        after={"state": state, "reason": reason, "incident": incident.pk},
    )
    status_cache_bump()
    return override


@transaction.atomic
def component_override_end(
    *, override: ComponentOverride, user, now: datetime | None = None
) -> ComponentOverride:
    """End an override by hand: the component's state is derived again."""
    require_perm(user, "ops.publish_statuscomponent", "You may not override component states.")
    now = now or timezone.now()
    if not ComponentOverride.objects.filter(pk=override.pk, ended_at__isnull=True).update(
        ended_at=now
    ):
        raise ActionRefused("This override has already ended.", status=409)
    override.ended_at = now
    override_end_recorded(
        incident=override.incident,
        override=override,
        user=user,
        now=now,
        why="ended by hand, the state is derived again",
    )
    status_cache_bump()
    return override


# What the demo shows on a first run (setup_portal --demo)

DEMO_COMPONENTS = (
    # group, component, slug, public description, the demo's monitored services (slugs)
    ("Portal", "Web app", "web-app", "The pages and the API.", ("portal-web",)),
    (
        "Portal",
        "Background jobs",
        "background-jobs",
        "Checks, notices, images.",
        ("celery-workers",),
    ),
    ("Data", "Database", "database", "Where everything is stored.", ("portal-database",)),
    ("Data", "Cache and queues", "cache-and-queues", "Sessions, cache, task queues.", ("redis",)),
)


@transaction.atomic
def status_demo_components() -> int:
    """Components made of the demo's monitored services, so the status page is not empty on
    a first run; a component whose services are not monitored here is left out, and one that
    exists is left as it is. Returns how many were made."""
    services = {service.slug: service for service in MonitoredService.objects.all()}
    made = 0
    for position, (group_name, name, slug, description, slugs) in enumerate(DEMO_COMPONENTS):
        members = [services[s] for s in slugs if s in services]
        if not members or StatusComponent.objects.filter(slug=slug).exists():
            continue
        group, _created = ComponentGroup.objects.get_or_create(
            name=group_name, defaults={"position": 0 if group_name == "Portal" else 1}
        )
        component = StatusComponent.objects.create(
            name=name, slug=slug, group=group, position=position, description=description
        )
        component.services.set(members)
        audit_record(
            actor=None,
            action="status.component.demo",
            target=component,
            summary=f"{name}: {', '.join(member.name for member in members)}",
        )
        made += 1
    if made:
        status_cache_bump()
    return made
