"""Reads for maintenance: the task list, upcoming occurrences, which services are in a window
now, the maintenance intervals the KPIs leave out, and the calendar's events. Each makes a
fixed number of queries whatever the number of windows and tasks."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from ops.models.maintenance import (
    LIVE_STATUSES,
    MAX_DURATION,
    MaintenanceTask,
    MaintenanceWindow,
    OccurrenceStatus,
    WindowOccurrence,
)
from portal.registry import CalendarEvent


def tasks_due(*, team: str = "", owner_id: int | None = None) -> QuerySet[MaintenanceTask]:
    """Active tasks sorted by due date (the soonest, i.e. the most overdue, first)."""
    tasks = MaintenanceTask.objects.filter(is_active=True).select_related(
        "owner", "checklist_template"
    )
    if team:
        tasks = tasks.filter(team=team)
    if owner_id:
        tasks = tasks.filter(owner_id=owner_id)
    return tasks.order_by("next_due_at", "name", "id")


def tasks_needing_attention(*, now: datetime) -> list[MaintenanceTask]:
    """Overdue tasks and those due within the coming week."""
    return list(tasks_due().filter(next_due_at__lt=now + timedelta(days=7)))


def task_teams() -> list[str]:
    return list(
        MaintenanceTask.objects.exclude(team="")
        .order_by("team")
        .values_list("team", flat=True)
        .distinct()
    )


@dataclass
class Occurrence:
    """A window's occurrence, stored or only computed from its rule."""

    window: MaintenanceWindow
    starts_at: datetime
    ends_at: datetime
    status: str
    stored: WindowOccurrence | None = None

    @property
    def status_label(self) -> str:
        return OccurrenceStatus(self.status).label

    @property
    def is_cancelled(self) -> bool:
        return self.status == OccurrenceStatus.CANCELLED

    def is_active(self, now: datetime) -> bool:
        return self.status in LIVE_STATUSES and self.starts_at <= now < self.ends_at


def _live_windows() -> QuerySet[MaintenanceWindow]:
    return MaintenanceWindow.objects.filter(is_cancelled=False)


def window_occurrences(
    *, start: datetime, end: datetime, windows: list[MaintenanceWindow] | None = None
) -> list[Occurrence]:
    """Every occurrence overlapping [start, end) of the given (or all live) windows: computed
    from their rules, with the stored state of those that have one. Two queries plus one for
    the services when the windows are read here."""
    if windows is None:
        windows = list(
            _live_windows()
            # Only windows that may have an occurrence in the range: one-off windows are at
            # most MAX_DURATION long, and no window occurs before its first start.
            .filter(starts_at__lt=end)
            .exclude(rrule="", starts_at__lt=start - MAX_DURATION)
            .select_related("postmortem_incident")
            .prefetch_related("services")
            .order_by("starts_at", "id")
        )
    if not windows:
        return []
    longest = max(window.duration for window in windows)
    stored = {
        (row.window_id, row.starts_at): row
        for row in WindowOccurrence.objects.filter(
            window__in=windows, starts_at__lt=end, starts_at__gte=start - longest
        )
    }
    found = []
    for window in windows:
        for begins in window.starts_between(start - window.duration, end):
            ends = begins + window.duration
            if ends <= start:
                continue
            row = stored.get((window.pk, begins))
            found.append(
                Occurrence(
                    window=window,
                    starts_at=begins,
                    ends_at=row.ends_at if row else ends,
                    status=row.status if row else OccurrenceStatus.SCHEDULED,
                    stored=row,
                )
            )
    return sorted(found, key=lambda occurrence: (occurrence.starts_at, occurrence.window.pk))


def upcoming_occurrences(*, now: datetime, days: int = 7) -> list[Occurrence]:
    return [
        occurrence
        for occurrence in window_occurrences(start=now, end=now + timedelta(days=days))
        if not occurrence.is_cancelled and occurrence.status != OccurrenceStatus.COMPLETED
    ]


def services_in_maintenance(*, now: datetime | None = None) -> dict[int, Occurrence]:
    """The monitored services inside a live window now, each with its occurrence."""
    now = now or timezone.now()
    found: dict[int, Occurrence] = {}
    for occurrence in window_occurrences(start=now, end=now + timedelta(seconds=1)):
        if occurrence.is_active(now):
            for service in occurrence.window.services.all():
                found.setdefault(service.pk, occurrence)
    return found


def deploy_freezes(*, now: datetime | None = None) -> list[Occurrence]:
    """The occurrences in progress now of windows that forbid deploys (change freezes)."""
    now = now or timezone.now()
    windows = list(
        _live_windows()
        .filter(forbids_deploys=True, starts_at__lte=now)
        .exclude(rrule="", starts_at__lt=now - MAX_DURATION)
        .order_by("starts_at", "id")
    )
    if not windows:
        return []
    occurrences = window_occurrences(start=now, end=now + timedelta(seconds=1), windows=windows)
    return [occurrence for occurrence in occurrences if occurrence.is_active(now)]


def maintenance_intervals(
    *, since: datetime, until: datetime
) -> list[tuple[int, datetime, datetime]]:
    """(service id, start, end) of every planned (not emergency, not cancelled) maintenance
    between since and until: what availability "excluding planned maintenance" leaves out."""
    windows = list(_live_windows().filter(is_emergency=False).prefetch_related("services"))
    intervals = []
    for occurrence in window_occurrences(start=since, end=until, windows=windows):
        if occurrence.is_cancelled:
            continue
        for service in occurrence.window.services.all():
            intervals.append(
                (service.pk, max(occurrence.starts_at, since), min(occurrence.ends_at, until))
            )
    return intervals


def maintenance_exclusion(intervals: list[tuple[int, datetime, datetime]]) -> Q:
    """A filter on check results (service, checked_at) inside any of the intervals."""
    query = Q(pk__in=[])
    for service_id, begins, ends in intervals:
        query |= Q(service_id=service_id, checked_at__gte=begins, checked_at__lt=ends)
    return query


def windows_needing_postmortem() -> list[MaintenanceWindow]:
    return list(
        MaintenanceWindow.objects.filter(
            is_emergency=True,
            postmortem_incident__isnull=True,
            occurrences__status=OccurrenceStatus.COMPLETED,
        ).distinct()
    )


# The calendar (registered as a portal.registry.CalendarSource by ops.hooks)


def _window_event(occurrence: Occurrence, now: datetime) -> CalendarEvent:
    window = occurrence.window
    status = occurrence.status
    if status in LIVE_STATUSES and occurrence.ends_at <= now:
        status = "ended"
    return CalendarEvent(
        uid=f"window-{window.pk}-{occurrence.starts_at:%Y%m%dT%H%M%SZ}@ops-portal",
        title=window.title,
        start=occurrence.starts_at,
        end=occurrence.ends_at,
        kind="emergency-maintenance" if window.is_emergency else "maintenance",
        status=status,
        url=window.get_absolute_url(),
        description=window.description,
        team=window.team,
        services=tuple(service.slug for service in window.services.all()),
    )


def calendar_window_events(*, start: datetime, end: datetime) -> list[CalendarEvent]:
    now = timezone.now()
    return [
        _window_event(occurrence, now) for occurrence in window_occurrences(start=start, end=end)
    ]


def calendar_window_series(*, start: datetime, end: datetime) -> list[CalendarEvent]:
    """Each live window once, in its own zone, with its rule and its cancelled occurrences as
    exceptions (EXDATE): what a calendar app expands itself."""
    windows = list(_live_windows().prefetch_related("services").order_by("starts_at", "id"))
    cancelled: dict[int, list[datetime]] = {}
    for window_id, starts_at in WindowOccurrence.objects.filter(
        window__in=windows, status=OccurrenceStatus.CANCELLED
    ).values_list("window_id", "starts_at"):
        cancelled.setdefault(window_id, []).append(starts_at)
    events = []
    for window in windows:
        if not window.rrule and not start <= window.starts_at < end:
            continue
        tz = window.tz
        first = window.starts_at.astimezone(tz)
        events.append(
            CalendarEvent(
                uid=f"window-{window.pk}@ops-portal",
                title=window.title,
                start=first,
                end=(window.starts_at + window.duration).astimezone(tz),
                kind="emergency-maintenance" if window.is_emergency else "maintenance",
                status="cancelled" if not window.rrule and window.pk in cancelled else "",
                url=window.get_absolute_url(),
                description=window.description,
                team=window.team,
                services=tuple(service.slug for service in window.services.all()),
                tzid=window.time_zone,
                rrule=window.rrule,
                exdates=tuple(
                    moment.astimezone(tz) for moment in sorted(cancelled.get(window.pk, []))
                )
                if window.rrule
                else (),
            )
        )
    return events


def calendar_task_events(*, start: datetime, end: datetime) -> list[CalendarEvent]:
    """Each active task on its next due date, all day."""
    now = timezone.now()
    tasks = MaintenanceTask.objects.filter(
        is_active=True, next_due_at__gte=start, next_due_at__lt=end
    ).only("pk", "name", "team", "next_due_at", "time_zone", "description")
    events = []
    for task in tasks:
        day = timezone.localtime(task.next_due_at).date()
        events.append(
            CalendarEvent(
                uid=f"task-{task.pk}-{day:%Y%m%d}@ops-portal",
                title=f"Due: {task.name}",
                start=day,
                end=day + timedelta(days=1),
                kind="task",
                status="overdue" if task.next_due_at <= now else "due",
                url=task.get_absolute_url(),
                description=task.description,
                team=task.team,
            )
        )
    return events
