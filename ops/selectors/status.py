"""What the public status page shows, derived from the health of monitored services, the
incidents that name them (once published) and the maintenance windows marked public.

Everything leaves here as plain public records (``PublicIncident``, ``ComponentView``):
the templates and feeds never hold an ``Incident``, so nothing internal (timeline,
commander, notes, severity) can reach them. Every function reads a constant number of
queries, whatever the number of components, services or days."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import CharField, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Cast, Substr
from django.utils import timezone

from ops.models import (
    CheckRollup,
    CheckState,
    ComponentOverride,
    ComponentState,
    Incident,
    MaintenanceWindow,
    PublicStatus,
    PublicUpdate,
    StatusComponent,
)
from ops.models.incidents import OPEN_STATUSES
from ops.models.status import STATE_RANK
from ops.selectors.maintenance import Occurrence, window_occurrences

UPTIME_DAYS = 90
UPCOMING_DAYS = 30
# A day's bar: at least this uptime is operational, at least DEGRADED_FROM is degraded.
OPERATIONAL_FROM = 99.95
DEGRADED_FROM = 99.0

# Severity rank (0 is the most severe) → the state an open incident gives its components.
INCIDENT_STATE = {0: ComponentState.MAJOR_OUTAGE, 1: ComponentState.PARTIAL_OUTAGE}

OVERALL = {
    ComponentState.OPERATIONAL: ("none", "All systems operational"),
    ComponentState.UNDER_MAINTENANCE: ("maintenance", "Service under maintenance"),
    ComponentState.DEGRADED: ("minor", "Degraded performance"),
    ComponentState.PARTIAL_OUTAGE: ("major", "Partial system outage"),
    ComponentState.MAJOR_OUTAGE: ("critical", "Major system outage"),
}


def worst(states: Iterable[str]) -> str:
    return max(states, key=lambda state: STATE_RANK[state], default=ComponentState.OPERATIONAL)


def component_state(
    *,
    services: Iterable[tuple[str, bool]],
    incident_ranks: Iterable[int] = (),
    override: str | None = None,
) -> str:
    """A component's state from its services' (check state, in public maintenance) pairs and
    the severity ranks of the published open incidents naming them; an override wins.

    Services in maintenance do not count towards health (their failing is planned); unknown
    (never checked) ones neither. All counted services critical is a major outage, some a
    partial outage, any warning degraded. An incident of rank 0 is a major outage, 1 a partial
    outage, any other degraded. The worst wins; with nothing wrong and a service in
    maintenance, the component is under maintenance."""
    if override:
        return override
    services = list(services)
    counted = [state for state, in_maintenance in services if not in_maintenance]
    counted = [state for state in counted if state != CheckState.UNKNOWN]
    critical = sum(state == CheckState.CRITICAL for state in counted)
    health = ComponentState.OPERATIONAL
    if counted and critical == len(counted):
        health = ComponentState.MAJOR_OUTAGE
    elif critical:
        health = ComponentState.PARTIAL_OUTAGE
    elif CheckState.WARNING in counted:
        health = ComponentState.DEGRADED
    from_incidents = [INCIDENT_STATE.get(rank, ComponentState.DEGRADED) for rank in incident_ranks]
    state = worst([health, *from_incidents])
    if state == ComponentState.OPERATIONAL and any(flag for _, flag in services):
        return ComponentState.UNDER_MAINTENANCE
    return state


# Public records


@dataclass(frozen=True)
class PublicUpdateView:
    id: int
    status: str
    status_label: str
    message: str
    posted_at: datetime


@dataclass(frozen=True)
class PublicIncident:
    id: int
    title: str
    status: str
    status_label: str
    impact: str
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    components: tuple[str, ...]
    updates: tuple[PublicUpdateView, ...]

    @property
    def is_resolved(self) -> bool:
        return self.status == PublicStatus.RESOLVED


IMPACT = {0: "critical", 1: "major"}


def _public_incident(incident: Incident, names_by_service: dict[int, list[str]]) -> PublicIncident:
    """From an incident read with its public updates (newest first), services and severity."""
    updates = list(incident.public_updates.all())
    latest = updates[0]
    status = latest.status
    if incident.is_closed and status != PublicStatus.RESOLVED:
        status = PublicStatus.RESOLVED  # closed inside: it cannot get a resolved update any more
    resolved_at = None
    if status == PublicStatus.RESOLVED:
        resolved_at = latest.posted_at if latest.status == status else incident.closed_at
    components = sorted(
        {name for service in incident.services.all() for name in names_by_service[service.pk]}
    )
    return PublicIncident(
        id=incident.pk,
        title=latest.title,
        status=status,
        status_label=PublicStatus(status).label,
        impact=IMPACT.get(incident.severity.rank, "minor"),
        started_at=updates[-1].posted_at,
        updated_at=latest.posted_at,
        resolved_at=resolved_at,
        components=tuple(components),
        updates=tuple(
            PublicUpdateView(
                id=update.pk,
                status=update.status,
                status_label=update.get_status_display(),
                message=update.message,
                posted_at=update.posted_at,
            )
            for update in updates
        ),
    )


def _published() -> QuerySet[Incident]:
    return (
        Incident.objects.filter(pk__in=PublicUpdate.objects.values("incident_id"))
        .select_related("severity")
        .prefetch_related(
            Prefetch("public_updates", queryset=PublicUpdate.objects.order_by("-posted_at", "-id")),
            "services",
        )
    )


def _names_by_service(components: Iterable[StatusComponent]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for component in components:
        for service in component.services.all():
            found[service.pk].append(component.name)
    return found


def _public_components() -> list[StatusComponent]:
    return list(
        StatusComponent.objects.filter(is_public=True)
        .select_related("group")
        .prefetch_related("services")
        .order_by("group__position", "group__name", "group_id", "position", "name", "id")
    )


# Days and bars


@dataclass(frozen=True)
class DayBar:
    day: date
    uptime: float | None
    level: str  # operational / degraded / outage / none
    label: str
    incidents: tuple[str, ...]

    # The tooltip's words, made here once: 2,700 bars through the template's date and
    # floatformat filters were most of the page's cold time (bench/status.py).
    @property
    def day_text(self) -> str:
        return f"{self.day.day} {self.day:%b %Y}"

    @property
    def text(self) -> str:
        uptime = "no data" if self.uptime is None else f"{self.uptime:.2f}% uptime"
        incidents = (
            f" Incidents: {'; '.join(self.incidents)}." if self.incidents else " No incidents."
        )
        return f": {uptime}, {self.label.lower()}.{incidents}"


def _level(uptime: float | None) -> tuple[str, str]:
    if uptime is None:
        return "none", "No data"
    if uptime >= OPERATIONAL_FROM:
        return "operational", "No downtime"
    if uptime >= DEGRADED_FROM:
        return "degraded", "Some downtime"
    return "outage", "Outage"


def uptime_days(*, now: datetime, days: int = UPTIME_DAYS) -> list[date]:
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def _daily_rollups(
    service_ids: list[int], since: datetime
) -> dict[int, dict[date, tuple[int, int]]]:
    """(checks, up) per service and UTC day, summed in the database: one query."""
    # The UTC day as the first ten characters of the stored time (both databases keep it in
    # UTC): grouped by the database itself. TruncDate costs SQLite a Python call per row,
    # seconds for 30 components' 90 days (bench/status.py).
    rows = (
        CheckRollup.objects.filter(service_id__in=service_ids, hour__gte=since)
        .annotate(day=Substr(Cast("hour", output_field=CharField()), 1, 10))
        .values("service_id", "day")
        .annotate(checks=Sum("checks"), up=Sum("up"))
        .order_by()
    )
    found: dict[int, dict[date, tuple[int, int]]] = defaultdict(dict)
    for row in rows:
        day = date.fromisoformat(row["day"])
        found[row["service_id"]][day] = (row["checks"] or 0, row["up"] or 0)
    return found


def _day_incidents(
    since: datetime, now: datetime, names_by_service: dict[int, list[str]]
) -> dict[tuple[str, date], list[str]]:
    """(component name, day) → public titles of the incidents that touched it that day."""
    found: dict[tuple[str, date], list[str]] = defaultdict(list)
    incidents = _published().filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gte=since), started_at__lt=now
    )
    for incident in incidents:
        public = _public_incident(incident, names_by_service)
        first = max(public.started_at, since).astimezone(UTC).date()
        last = (public.resolved_at or now).astimezone(UTC).date()
        day = first
        while day <= last:
            for name in public.components:
                found[(name, day)].append(public.title)
            day += timedelta(days=1)
    return found


# The page


@dataclass
class ComponentView:
    id: int
    name: str
    slug: str
    description: str
    group: str
    group_id: int | None
    position: int
    state: str
    state_label: str
    updated_at: datetime
    uptime: float | None = None
    bars: list[DayBar] = field(default_factory=list)


@dataclass
class MaintenanceView:
    id: str
    title: str
    announcement: str
    starts_at: datetime
    ends_at: datetime
    in_progress: bool
    components: tuple[str, ...]


@dataclass
class StatusPage:
    now: datetime
    indicator: str
    description: str
    groups: list[tuple[str, list[ComponentView]]]
    components: list[ComponentView]
    current: list[PublicIncident]
    maintenance: list[MaintenanceView]
    days: list[date]


def _public_occurrences(*, now: datetime, days: int) -> list[Occurrence]:
    end = now + timedelta(days=days)
    windows = list(
        MaintenanceWindow.objects.filter(is_public=True, is_cancelled=False, starts_at__lt=end)
        .prefetch_related("services")
        .order_by("starts_at", "id")
    )
    return [
        occurrence
        for occurrence in window_occurrences(start=now, end=end, windows=windows)
        if not occurrence.is_cancelled and occurrence.status != "completed"
    ]


def status_page(*, now: datetime | None = None, with_bars: bool = True) -> StatusPage:
    """The whole public page: components with their derived state (and 90 days of bars),
    current incidents, maintenance in progress and ahead."""
    now = now or timezone.now()
    components = _public_components()
    names_by_service = _names_by_service(components)
    service_ids = list(names_by_service)

    occurrences = _public_occurrences(now=now, days=UPCOMING_DAYS)
    in_maintenance: set[int] = set()
    maintenance = []
    for occurrence in occurrences:
        active = occurrence.is_active(now)
        service_pks = [service.pk for service in occurrence.window.services.all()]
        if active:
            in_maintenance.update(service_pks)
        maintenance.append(
            MaintenanceView(
                id=f"{occurrence.window.pk}-{occurrence.starts_at:%Y%m%dT%H%M}",
                title=occurrence.window.title,
                announcement=occurrence.window.announcement,
                starts_at=occurrence.starts_at,
                ends_at=occurrence.ends_at,
                in_progress=active,
                components=tuple(
                    sorted({name for pk in service_pks for name in names_by_service.get(pk, [])})
                ),
            )
        )

    current = []
    ranks_by_service: dict[int, list[int]] = defaultdict(list)
    for incident in _published().exclude(status="closed"):
        public = _public_incident(incident, names_by_service)
        if public.is_resolved:
            continue
        current.append(public)
        for service in incident.services.all():
            ranks_by_service[service.pk].append(incident.severity.rank)
    current.sort(key=lambda public: public.started_at, reverse=True)

    overrides = {
        override.component_id: override.state
        for override in ComponentOverride.objects.filter(
            ended_at__isnull=True, incident__resolved_at__isnull=True
        ).exclude(incident__status="closed")
    }

    views = []
    for component in components:
        services = list(component.services.all())
        state = component_state(
            services=[(service.state, service.pk in in_maintenance) for service in services],
            incident_ranks=[rank for service in services for rank in ranks_by_service[service.pk]],
            override=overrides.get(component.pk),
        )
        changed = [service.state_changed_at for service in services if service.state_changed_at]
        views.append(
            ComponentView(
                id=component.pk,
                name=component.name,
                slug=component.slug,
                description=component.description,
                group=component.group.name if component.group else "",
                group_id=component.group_id,
                position=component.position,
                state=state,
                state_label=ComponentState(state).label,
                updated_at=max(changed, default=component.created_at),
            )
        )

    days = uptime_days(now=now)
    if with_bars:
        _add_bars(
            views,
            components,
            now=now,
            days=days,
            service_ids=service_ids,
            names_by_service=names_by_service,
        )

    groups: list[tuple[str, list[ComponentView]]] = []
    for view in views:
        if not groups or groups[-1][0] != view.group:
            groups.append((view.group, []))
        groups[-1][1].append(view)
    overall = worst([view.state for view in views])
    indicator, description = OVERALL[overall]
    if current and overall in (ComponentState.OPERATIONAL, ComponentState.UNDER_MAINTENANCE):
        indicator, description = "minor", "Incident in progress"
    return StatusPage(
        now=now,
        indicator=indicator,
        description=description,
        groups=groups,
        components=views,
        current=current,
        maintenance=maintenance,
        days=days,
    )


def _add_bars(views, components, *, now, days, service_ids, names_by_service) -> None:
    since = datetime.combine(days[0], time(0), tzinfo=UTC)
    daily = _daily_rollups(service_ids, since)
    incidents = _day_incidents(since, now, names_by_service)
    for view, component in zip(views, components, strict=True):
        total_checks = total_up = 0
        for day in days:
            checks = up = 0
            for service in component.services.all():
                day_checks, day_up = daily.get(service.pk, {}).get(day, (0, 0))
                checks += day_checks
                up += day_up
            total_checks += checks
            total_up += up
            uptime = 100 * up / checks if checks else None
            level, label = _level(uptime)
            view.bars.append(
                DayBar(
                    day=day,
                    uptime=uptime,
                    level=level,
                    label=label,
                    incidents=tuple(dict.fromkeys(incidents.get((view.name, day), []))),
                )
            )
        view.uptime = 100 * total_up / total_checks if total_checks else None


def public_incident_history(
    *, limit: int = 50, before: datetime | None = None
) -> list[PublicIncident]:
    """Published incidents, newest first (by their first public update)."""
    names_by_service = _names_by_service(_public_components())
    incidents = _published().order_by("-started_at", "-id")
    if before is not None:
        incidents = incidents.filter(started_at__lt=before)
    found = [_public_incident(incident, names_by_service) for incident in incidents[:limit]]
    return sorted(found, key=lambda public: public.started_at, reverse=True)


def public_updates_recent(*, limit: int = 50) -> list[tuple[PublicIncident, PublicUpdateView]]:
    """The latest public updates with their incident, for the Atom feed."""
    incidents = public_incident_history(limit=limit)
    entries = [(incident, update) for incident in incidents for update in incident.updates]
    entries.sort(key=lambda pair: pair[1].posted_at, reverse=True)
    return entries[:limit]


def incident_public_updates(*, incident: Incident) -> list[PublicUpdate]:
    """The incident page's list of what was published (internal page, with who posted)."""
    return list(incident.public_updates.select_related("posted_by").order_by("-posted_at", "-id"))


def incidents_on_status_page(*, limit: int = 10) -> tuple[list[Incident], list[Incident]]:
    """Open incidents on the status page now (each with ``public_title`` and
    ``public_status`` of its latest public update), and those touching a public component
    that have said nothing there yet: what customers may notice before the page says
    anything. One query."""
    latest = PublicUpdate.objects.filter(incident=OuterRef("pk")).order_by("-posted_at", "-id")
    touching = Incident.objects.filter(services__status_components__is_public=True).values("pk")
    incidents = (
        Incident.objects.filter(status__in=OPEN_STATUSES)
        .filter(Q(pk__in=touching) | Q(pk__in=PublicUpdate.objects.values("incident_id")))
        .annotate(
            public_title=Subquery(latest.values("title")[:1]),
            public_status=Subquery(latest.values("status")[:1]),
        )
        .select_related("severity")
        .order_by("-started_at", "-id")[: 2 * limit]
    )
    published, unpublished = [], []
    for incident in incidents:
        if incident.public_title is None:
            unpublished.append(incident)
        elif incident.public_status != PublicStatus.RESOLVED:
            published.append(incident)
    return published[:limit], unpublished[:limit]


def public_components_for_form() -> list[StatusComponent]:
    """The components a subscriber or an override may name, in the page's order."""
    return list(
        StatusComponent.objects.filter(is_public=True)
        .select_related("group")
        .order_by("group__position", "group__name", "group_id", "position", "name", "id")
    )


@dataclass
class IncidentStatusCard:
    """The incident page's "Status page" card: the public components its services make up,
    every public component (an override may name one the services do not), and the
    overrides that count now with the incident they belong to."""

    touched: list[StatusComponent]
    components: list[StatusComponent]
    overrides: list[ComponentOverride]
    others: list[ComponentOverride]


def incident_status_card(*, incident: Incident) -> IncidentStatusCard:
    """Two queries."""
    touching = StatusComponent.services.through.objects.filter(
        statuscomponent_id=OuterRef("pk"), monitoredservice__incidents=incident
    )
    components = list(
        StatusComponent.objects.filter(is_public=True)
        .select_related("group")
        .annotate(touched=Exists(touching))
        .order_by("group__position", "group__name", "group_id", "position", "name", "id")
    )
    overrides = list(
        ComponentOverride.objects.filter(ended_at__isnull=True, incident__resolved_at__isnull=True)
        .exclude(incident__status="closed")
        .select_related("component", "incident", "created_by")
        .order_by("-created_at")
    )
    return IncidentStatusCard(
        touched=[c for c in components if c.touched],
        components=components,
        overrides=[o for o in overrides if o.incident_id == incident.pk],
        others=[o for o in overrides if o.incident_id != incident.pk],
    )
