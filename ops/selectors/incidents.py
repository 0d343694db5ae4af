"""Reads for incident pages and the manager report. Every function runs a fixed number of
queries, whatever the number of incidents or timeline entries."""

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Q,
    QuerySet,
    Sum,
)
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


class EpochSeconds(Func):
    """An interval as seconds in double precision. ``date_part`` rather than ``EXTRACT``: since
    PostgreSQL 14 ``EXTRACT`` returns numeric, which percentile_cont casts back to double and
    which sorts about twice as slowly."""

    function = "DATE_PART"
    template = "%(function)s('epoch', %(expressions)s)"
    output_field = FloatField()


def percentile(values: list[timedelta], share: float) -> timedelta | None:
    """Linear interpolation between the two nearest ranks, as PostgreSQL's percentile_cont
    (P90 of 10 values: 0.1 of the way from the 9th to the 10th; the median of an even count is
    the mean of the middle two)."""
    if not values:
        return None
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass
class SeverityStats:
    severity: Severity
    count: int = 0
    in_time: int = 0
    timed: int = 0  # acknowledged, or still unacknowledged past the response time
    corrected: int = 0  # acknowledgement times corrected after the fact (the report says so)
    mtta_median: timedelta | None = None
    mtta_p90: timedelta | None = None
    mttr_median: timedelta | None = None
    mttr_p90: timedelta | None = None

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


@dataclass
class _Figures:
    """What the report reads from the incidents of the period, whichever way it was computed."""

    counts: dict[int, list[int]]
    stats: dict[int, SeverityStats]
    total: SeverityStats
    mtta_trend: dict[int, list[timedelta | None]]
    mttr_trend: dict[int, list[timedelta | None]]


def incident_report(*, since: date, until: date, now: datetime) -> IncidentReport:
    """Incidents that started between two local days (inclusive): count per severity per
    month, time to acknowledge and to resolve (from detection) with median and P90 per
    severity and their monthly medians, the share acknowledged within the response time, and
    open action items by owner. On PostgreSQL the database computes the figures
    (percentile_cont; one grouped query); elsewhere one row per incident is read and the
    same definitions applied in Python. Either way they are cached until an incident changes
    (or the minute does)."""
    severities = severities_all()
    months = _months(since, until)
    period = Incident.objects.filter(
        started_at__gte=_local_midnight(since),
        started_at__lt=_local_midnight(until + timedelta(days=1)),
    ).order_by()
    figures = _figures_cached(period=period, severities=severities, months=months, now=now)
    return IncidentReport(
        since=since,
        until=until,
        months=months,
        severities=severities,
        counts=figures.counts,
        stats=[figures.stats[s.pk] for s in severities],
        mtta_trend=figures.mtta_trend,
        mttr_trend=figures.mttr_trend,
        total=figures.total,
        action_owners=open_action_items_by_owner(today=timezone.localdate(now)),
    )


REPORT_CACHE_SECONDS = 120


def _figures_cached(
    *, period: QuerySet, severities: list[Severity], months: list[date], now: datetime
) -> _Figures:
    """The figures, computed once per change of the incidents (and per minute, since "past
    the response time" moves with the clock): the key holds a fingerprint of the table that
    every incident write changes (each bumps its version and stamps updated_at)."""
    fingerprint = Incident.objects.order_by().aggregate(
        count=Count("id"), versions=Sum("version"), last=Max("updated_at")
    )
    key = (
        "incident-report:"
        + hashlib.sha256(
            repr(
                (
                    str(period.query),
                    [s.pk for s in severities],
                    months,
                    fingerprint,
                    int(now.timestamp() // 60),
                    timezone.get_current_timezone_name(),
                    connection.vendor,
                )
            ).encode()
        ).hexdigest()
    )
    figures = cache.get(key)
    if figures is None:
        compute = _figures_in_database if connection.vendor == "postgresql" else _figures_in_python
        figures = compute(period=period, severities=severities, months=months, now=now)
        cache.set(key, figures, REPORT_CACHE_SECONDS)
    # Severity names and codes as they are now (the figures are keyed by their ids).
    live = {s.pk: s for s in severities}
    for pk, stats in figures.stats.items():
        stats.severity = live[pk]
    return figures


def _empty_figures(severities: list[Severity], months: list[date]) -> _Figures:
    return _Figures(
        counts={s.pk: [0] * len(months) for s in severities},
        stats={s.pk: SeverityStats(severity=s) for s in severities},
        total=SeverityStats(severity=Severity(code="All", name="all severities")),
        mtta_trend={s.pk: [None] * len(months) for s in severities},
        mttr_trend={s.pk: [None] * len(months) for s in severities},
    )


_DURATIONS = ("mtta_median", "mtta_p90", "mttr_median", "mttr_p90")


def _durations(row: dict) -> dict:
    """Seconds from the database as timedeltas (rounded to the microsecond, as Python does)."""
    return {
        name: timedelta(seconds=value) if name in _DURATIONS and value is not None else value
        for name, value in row.items()
    }


# One pass over the period's incidents: ROLLUP(severity, month) groups them per severity and
# month, per severity, and all together in a single sort, so the figures cost one scan of the
# period rather than three. Django's ORM has no ROLLUP, hence SQL around the ORM's own query
# of the period (its filter, one narrow row per incident). The month is the incident's
# position among the local midnights starting each month of the report (width_bucket), so
# it follows the portal's time zone, daylight saving time included, as the Python path does.
_ROLLUP = """
SELECT GROUPING(severity_id, month) AS level, severity_id, month,
    COUNT(*) AS count,
    COUNT(*) FILTER (WHERE timed) AS timed,
    COUNT(*) FILTER (WHERE in_time) AS in_time,
    COUNT(*) FILTER (WHERE corrected) AS corrected,
    PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY to_acknowledge) AS mtta_median,
    PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY to_acknowledge) AS mtta_p90,
    PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY to_resolve) AS mttr_median,
    PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY to_resolve) AS mttr_p90
FROM (
    SELECT period.*, WIDTH_BUCKET(period.started_at, %s::timestamptz[]) - 1 AS month
    FROM ({period}) AS period
) AS incidents
GROUP BY ROLLUP(severity_id, month)
"""
# GROUPING(severity_id, month) of a row: 0 per severity and month, 1 per severity, 3 all.
_BY_MONTH, _BY_SEVERITY = 0, 1


def _figures_in_database(
    *, period: QuerySet, severities: list[Severity], months: list[date], now: datetime
) -> _Figures:
    figures = _empty_figures(severities, months)
    rows = period.annotate(
        to_acknowledge=EpochSeconds(F("acknowledged_at") - F("detected_at")),
        to_resolve=EpochSeconds(F("resolved_at") - F("detected_at")),
        timed=ExpressionWrapper(
            Q(acknowledged_at__isnull=False) | Q(response_due_at__lt=now),
            output_field=BooleanField(),
        ),
        in_time=ExpressionWrapper(
            Q(acknowledged_at__lte=F("response_due_at")), output_field=BooleanField()
        ),
        corrected=ExpressionWrapper(
            Q(acknowledged_at__isnull=False, acknowledged_recorded_at__isnull=False),
            output_field=BooleanField(),
        ),
    ).values(
        "severity_id", "started_at", "to_acknowledge", "to_resolve", "timed", "in_time", "corrected"
    )
    period_sql, period_params = rows.query.sql_with_params()
    month_starts = [_local_midnight(month) for month in months]
    with connection.cursor() as cursor:
        cursor.execute(_ROLLUP.replace("{period}", period_sql), [month_starts, *period_params])
        columns = [column.name for column in cursor.description]
        results = [_durations(dict(zip(columns, row, strict=True))) for row in cursor.fetchall()]
    for row in results:
        level, severity_id, month = row.pop("level"), row.pop("severity_id"), row.pop("month")
        if level == _BY_MONTH:
            figures.counts[severity_id][month] = row["count"]
            figures.mtta_trend[severity_id][month] = row["mtta_median"]
            figures.mttr_trend[severity_id][month] = row["mttr_median"]
            continue
        stats = figures.stats[severity_id] if level == _BY_SEVERITY else figures.total
        for name, value in row.items():
            setattr(stats, name, value)
    return figures


def _figures_in_python(
    *, period: QuerySet, severities: list[Severity], months: list[date], now: datetime
) -> _Figures:
    figures = _empty_figures(severities, months)
    index = {month: position for position, month in enumerate(months)}
    to_acknowledge: dict[object, list[timedelta]] = defaultdict(list)
    to_resolve: dict[object, list[timedelta]] = defaultdict(list)
    rows = period.values_list(
        "severity_id",
        "started_at",
        "detected_at",
        "acknowledged_at",
        "resolved_at",
        "response_due_at",
        "acknowledged_recorded_at",
    ).iterator(chunk_size=5000)
    zone = timezone.get_current_timezone()
    for severity_id, started, detected, acknowledged, resolved, due, recorded in rows:
        month = index[started.astimezone(zone).date().replace(day=1)]
        figures.counts[severity_id][month] += 1
        # Keys: a severity id, "total", and (severity id, month) for the trends.
        for key, bucket in ((severity_id, figures.stats[severity_id]), ("total", figures.total)):
            bucket.count += 1
            if acknowledged is not None:
                to_acknowledge[key].append(acknowledged - detected)
                bucket.timed += 1
                bucket.in_time += acknowledged <= due
                bucket.corrected += recorded is not None
            elif now > due:
                bucket.timed += 1
            if resolved is not None:
                to_resolve[key].append(resolved - detected)
        if acknowledged is not None:
            to_acknowledge[severity_id, month].append(acknowledged - detected)
        if resolved is not None:
            to_resolve[severity_id, month].append(resolved - detected)

    for key, bucket in [*figures.stats.items(), ("total", figures.total)]:
        bucket.mtta_median = percentile(to_acknowledge[key], 0.5)
        bucket.mtta_p90 = percentile(to_acknowledge[key], 0.9)
        bucket.mttr_median = percentile(to_resolve[key], 0.5)
        bucket.mttr_p90 = percentile(to_resolve[key], 0.9)
    for s in severities:
        for month in range(len(months)):
            figures.mtta_trend[s.pk][month] = percentile(to_acknowledge[s.pk, month], 0.5)
            figures.mttr_trend[s.pk][month] = percentile(to_resolve[s.pk, month], 0.5)
    return figures
