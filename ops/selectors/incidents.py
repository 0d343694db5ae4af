"""Reads for incident pages and the manager report. Every function runs a fixed number of
queries, whatever the number of incidents or timeline entries."""

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ops.models import ActionItem, Incident, Severity, TimelineEntry
from ops.models.incidents import OPEN_STATUSES

HOME_LIMIT = 20


@dataclass
class IncidentFilters:
    severity: str = ""
    status: str = ""
    service: str = ""
    commander: str = ""
    since: date | None = None
    until: date | None = None
    q: str = ""


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.get_current_timezone())


def incidents_filtered(*, filters: IncidentFilters) -> QuerySet[Incident]:
    """The list, newest first: severity code, status ("open" for any open one), affected
    service, commander's username, started between two local days (inclusive), text."""
    incidents = (
        Incident.objects.select_related("severity", "commander")
        .prefetch_related("services")
        .order_by("-started_at", "-id")
    )
    if filters.severity:
        incidents = incidents.filter(severity__code=filters.severity)
    if filters.status == "open":
        incidents = incidents.filter(status__in=OPEN_STATUSES)
    elif filters.status:
        incidents = incidents.filter(status=filters.status)
    if filters.service:
        incidents = incidents.filter(
            Q(affected_services__icontains=filters.service)
            | Q(services__name__icontains=filters.service)
            | Q(services__slug=filters.service)
        ).distinct()
    if filters.commander:
        incidents = incidents.filter(commander__username=filters.commander)
    if filters.since:
        incidents = incidents.filter(started_at__gte=_local_midnight(filters.since))
    if filters.until:
        incidents = incidents.filter(started_at__lt=_local_midnight(filters.until + timedelta(1)))
    if filters.q:
        incidents = incidents.filter(
            Q(title__icontains=filters.q)
            | Q(summary__icontains=filters.q)
            | Q(customer_impact__icontains=filters.q)
        )
    return incidents


def incidents_open(*, limit: int = HOME_LIMIT) -> list[Incident]:
    """Open incidents for the home page, the most urgent clock first."""
    return list(
        Incident.objects.filter(status__in=OPEN_STATUSES)
        .select_related("severity", "commander")
        .order_by("acknowledged_at", "response_due_at", "id")[:limit]
    )


def incident_timeline(*, incident: Incident) -> list[TimelineEntry]:
    return list(
        TimelineEntry.objects.filter(incident=incident)
        .select_related("corrects")
        .order_by("created_at", "id")
    )


def severities_all() -> list[Severity]:
    return list(Severity.objects.order_by("rank", "code"))


def incident_responders() -> QuerySet:
    """People who may update incidents: the commanders and action item owners offered."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(groups__permissions__codename="update_incident")
            | Q(user_permissions__codename="update_incident")
        )
        .distinct()
        .order_by("username")
    )


def open_action_items_by_owner(*, today: date) -> list[dict]:
    return list(
        ActionItem.objects.filter(done_at__isnull=True)
        .values("owner__username")
        .annotate(open=Count("id"), late=Count("id", filter=Q(due_date__lt=today)))
        .order_by("-open", "owner__username")
    )


# The report


def percentile(values: list[timedelta], share: float) -> timedelta | None:
    """Nearest-rank percentile (P90: the smallest value at least 90% of values reach)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class SeverityStats:
    severity: Severity
    count: int = 0
    to_acknowledge: list[timedelta] = field(default_factory=list)
    to_resolve: list[timedelta] = field(default_factory=list)
    in_time: int = 0
    timed: int = 0  # acknowledged, or still unacknowledged past the response time
    corrected: int = 0  # acknowledgement times corrected after the fact (the report says so)

    @property
    def mtta_median(self):
        return statistics.median(self.to_acknowledge) if self.to_acknowledge else None

    @property
    def mtta_p90(self):
        return percentile(self.to_acknowledge, 0.9)

    @property
    def mttr_median(self):
        return statistics.median(self.to_resolve) if self.to_resolve else None

    @property
    def mttr_p90(self):
        return percentile(self.to_resolve, 0.9)

    @property
    def in_time_share(self) -> int | None:
        return round(100 * self.in_time / self.timed) if self.timed else None


@dataclass
class IncidentReport:
    since: date
    until: date
    months: list[date]
    severities: list[Severity]
    counts: dict[int, list[int]]  # severity id -> count per month
    stats: list[SeverityStats]
    mtta_trend: dict[int, list[timedelta | None]]  # severity id -> median per month
    mttr_trend: dict[int, list[timedelta | None]]
    total: SeverityStats
    action_owners: list[dict]

    @property
    def rows(self) -> list[tuple[Severity, list[int], int]]:
        return [(s, self.counts[s.pk], sum(self.counts[s.pk])) for s in self.severities]

    @property
    def month_totals(self) -> list[int]:
        return [sum(column) for column in zip(*self.counts.values(), strict=True)] or [
            0 for _ in self.months
        ]


def _months(since: date, until: date) -> list[date]:
    months, month = [], since.replace(day=1)
    while month <= until:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def incident_report(*, since: date, until: date, now: datetime) -> IncidentReport:
    """Incidents that started between two local days (inclusive): count per severity per
    month, time to acknowledge and to resolve (from detection) with median and P90 per
    severity and their monthly medians, the share acknowledged within the response time, and
    open action items by owner. Three queries whatever the number of incidents."""
    severities = severities_all()
    months = _months(since, until)
    index = {month: position for position, month in enumerate(months)}
    counts = {s.pk: [0] * len(months) for s in severities}
    stats = {s.pk: SeverityStats(severity=s) for s in severities}
    total = SeverityStats(severity=Severity(code="All", name="all severities"))
    monthly_ack: dict[tuple[int, int], list[timedelta]] = defaultdict(list)
    monthly_res: dict[tuple[int, int], list[timedelta]] = defaultdict(list)
    rows = (
        Incident.objects.filter(
            started_at__gte=_local_midnight(since),
            started_at__lt=_local_midnight(until + timedelta(days=1)),
        )
        .order_by()
        .values_list(
            "severity_id",
            "started_at",
            "detected_at",
            "acknowledged_at",
            "resolved_at",
            "response_due_at",
            "acknowledged_recorded_at",
        )
        .iterator(chunk_size=5000)
    )
    zone = timezone.get_current_timezone()
    for severity_id, started, detected, acknowledged, resolved, due, recorded in rows:
        month = index[started.astimezone(zone).date().replace(day=1)]
        counts[severity_id][month] += 1
        for bucket in (stats[severity_id], total):
            bucket.count += 1
            if acknowledged is not None:
                bucket.to_acknowledge.append(acknowledged - detected)
                bucket.timed += 1
                bucket.in_time += acknowledged <= due
                bucket.corrected += recorded is not None
            elif now > due:
                bucket.timed += 1
            if resolved is not None:
                bucket.to_resolve.append(resolved - detected)
        if acknowledged is not None:
            monthly_ack[severity_id, month].append(acknowledged - detected)
        if resolved is not None:
            monthly_res[severity_id, month].append(resolved - detected)

    def trend(values: dict) -> dict[int, list[timedelta | None]]:
        return {
            s.pk: [
                statistics.median(values[s.pk, m]) if values.get((s.pk, m)) else None
                for m in range(len(months))
            ]
            for s in severities
        }

    return IncidentReport(
        since=since,
        until=until,
        months=months,
        severities=severities,
        counts=counts,
        stats=[stats[s.pk] for s in severities],
        mtta_trend=trend(monthly_ack),
        mttr_trend=trend(monthly_res),
        total=total,
        action_owners=open_action_items_by_owner(today=timezone.localdate(now)),
    )
