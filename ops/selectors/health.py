"""Reads for the health panels, KPIs and APIs: stored results only, never a live check, and a
fixed number of queries whatever the number of services or results."""

import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import dateformat, timezone

from ops.models.health import (
    LATENCY_BUCKETS_MS,
    CheckResult,
    CheckRollup,
    CheckState,
    Kpi,
    KpiMetric,
    MonitoredService,
    ServiceKind,
)
from ops.selectors.maintenance import (
    maintenance_exclusion,
    maintenance_intervals,
    services_in_maintenance,
)
from portal.caching import cached_each
from portal.charts import Plot, plot
from portal.health import ChecksStopped, checks_stopped
from portal.registry import registry

UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
SPARK_WIDTH, SPARK_HEIGHT = 120, 28
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
RAW_RANGES = {"1h", "24h"}


@dataclass
class Tile:
    service: MonitoredService
    state: str
    uptime: dict[str, float | None]
    spark: Plot | None
    detail: str


def _uptimes(services: list[MonitoredService], now: datetime) -> dict[int, dict]:
    """Uptime per window from the hourly roll-ups: one grouped query for every service."""
    windows = {
        f"{key}_{name}": Sum(name, filter=Q(hour__gte=now - span))
        for key, span in UPTIME_WINDOWS.items()
        for name in ("checks", "up")
    }
    rows = (
        CheckRollup.objects.filter(service__in=services, hour__gte=now - UPTIME_WINDOWS["30d"])
        .values("service_id")
        .annotate(**windows)
    )
    uptimes = {}
    for row in rows:
        uptimes[row["service_id"]] = {
            key: round(100 * row[f"{key}_up"] / row[f"{key}_checks"], 2)
            if row[f"{key}_checks"]
            else None
            for key in UPTIME_WINDOWS
        }
    return uptimes


def _sparks(services: list[MonitoredService], now: datetime) -> dict[int, Plot]:
    """The last hour of each service's latency: one query for every service."""
    since = now - timedelta(hours=1)
    series: dict[int, list] = defaultdict(list)
    rows = (
        CheckResult.objects.filter(service__in=services, checked_at__gte=since)
        .order_by("checked_at")
        .values_list("service_id", "checked_at", "latency_ms", "state")
    )
    for service_id, checked_at, latency, state in rows:
        series[service_id].append((checked_at.timestamp(), latency, state))
    return {
        service_id: plot(
            points,
            width=SPARK_WIDTH,
            height=SPARK_HEIGHT,
            x_range=(since.timestamp(), now.timestamp()),
        )
        for service_id, points in series.items()
    }


def health_checks_stopped(*, tiles: list[Tile], now: datetime) -> ChecksStopped | None:
    """Whether the checks behind these tiles have stopped (the dispatcher's heartbeat is
    stale), since when and why; None while they run, or when nothing is monitored."""
    if not tiles:
        return None
    last = max(
        (tile.service.last_checked_at for tile in tiles if tile.service.last_checked_at),
        default=None,
    )
    return checks_stopped(now=now, last_result_at=last)


HISTORY_PARTS_SECONDS = 60


def _history_parts(services: list[MonitoredService], now: datetime) -> tuple[dict, dict]:
    """Uptimes and sparklines, cached per service: computed again when that service has a
    new result (its last check time is in the key, so the next poll shows it) and at least
    every minute (the windows move with the clock). One service's result leaves the others'
    figures, and so their tiles' HTML, as they were."""
    bucket = int(now.timestamp() // HISTORY_PARTS_SECONDS)
    scopes = {
        service.pk: f"{service.pk}:{service.last_checked_at}:{bucket}" for service in services
    }
    by_pk = {service.pk: service for service in services}

    def compute(pks: list[int]) -> dict:
        missing = [by_pk[pk] for pk in pks]
        uptimes, sparks = _uptimes(missing, now), _sparks(missing, now)
        return {pk: (uptimes.get(pk), sparks.get(pk)) for pk in pks}

    parts = cached_each("health-uptime-spark", scopes, compute, seconds=HISTORY_PARTS_SECONDS)
    uptimes = {pk: part[0] for pk, part in parts.items() if part and part[0] is not None}
    sparks = {pk: part[1] for pk, part in parts.items() if part and part[1] is not None}
    return uptimes, sparks


def health_tiles(*, now: datetime | None = None, only_problems: bool = False) -> list[Tile]:
    now = now or timezone.now()
    services = list(MonitoredService.objects.filter(is_active=True).order_by("name", "id"))
    uptimes, sparks = _history_parts(services, now)
    in_maintenance = services_in_maintenance(now=now)
    tiles = []
    for service in services:
        state = service.shown_state(now)
        if service.pk in in_maintenance:
            # During a maintenance window the tile says so (its own colour, not critical); the
            # checks still run and are recorded.
            state = "maintenance"
        if only_problems and state == CheckState.OK:
            continue
        detail = service.last_detail
        if state == "maintenance":
            detail = _maintenance_detail(service, in_maintenance[service.pk])
        elif state == "stale":
            detail = (
                f"no result since {_moment(service.last_checked_at, now)}: "
                "are beat and the workers running?"
                if service.last_checked_at
                else "no result yet"
            )
        tiles.append(
            Tile(
                service=service,
                state=state,
                uptime=uptimes.get(service.pk, dict.fromkeys(UPTIME_WINDOWS)),
                spark=sparks.get(service.pk),
                detail=detail,
            )
        )
    return tiles


def _moment(moment: datetime, now: datetime) -> str:
    """ "14:02:07" today, "29 Nov 14:02" before: a tile shows the moment, not an age, so its
    HTML stays the same until the next result (the page counts the age)."""
    local = timezone.localtime(moment)
    if local.date() == timezone.localtime(now).date():
        return dateformat.format(local, "H:i:s")
    return dateformat.format(local, "j M H:i")


def _maintenance_detail(service: MonitoredService, occurrence) -> str:
    until = timezone.localtime(occurrence.ends_at)
    check = f"{service.state}: {service.last_detail}" if service.last_detail else service.state
    return f"Planned maintenance “{occurrence.window.title}” until {until:%H:%M} (check: {check})"


def health_summary(tiles: list[Tile]) -> dict[str, int]:
    counts = dict.fromkeys(["ok", "warning", "critical", "unknown", "stale", "maintenance"], 0)
    for tile in tiles:
        counts[tile.state] = counts.get(tile.state, 0) + 1
    return counts


@dataclass
class KpiValue:
    kpi: Kpi
    value: float | None
    state: str
    source: str = ""
    unit: str = ""
    # Availability and error rate: ``value`` leaves planned maintenance out; this counts it in.
    with_maintenance: float | None = None

    @property
    def label(self) -> str:
        if self.value is None:
            return "no data"
        if self.kpi.metric == KpiMetric.LATENCY_P95:
            return f"≤ {self.value:g} ms" if self.value != float("inf") else "> 60 s"
        if self.kpi.metric == KpiMetric.QUEUE_SIZE:
            return f"{self.value:g}"
        return f"{self.value:.2f}%"


def _percentile_from_buckets(buckets: dict[str, int], fraction: float) -> float | None:
    total = sum(buckets.values())
    if not total:
        return None
    seen = 0
    for bound in [*map(str, LATENCY_BUCKETS_MS), "inf"]:
        seen += buckets.get(bound, 0)
        if seen >= fraction * total:
            return float(bound)
    return None


def _service_filter(kpi: Kpi, kinds: set[str] | None = None) -> Q:
    if kpi.service_id:
        return Q(service_id=kpi.service_id)
    query = Q(service__is_active=True)
    return query & Q(service__kind__in=kinds) if kinds else query


def kpi_values(*, now: datetime | None = None, kpis: list[Kpi] | None = None) -> list[KpiValue]:
    """Every KPI's value from stored results. Queries: one for the KPIs, one roll-up query per
    KPI that needs one (a handful, not per service), one for the services' latest metrics."""
    now = now or timezone.now()
    kpis = kpis if kpis is not None else list(Kpi.objects.select_related("service"))
    latest = list(
        MonitoredService.objects.filter(is_active=True).values_list("pk", "kind", "last_metrics")
    )
    values = []
    planned = _planned_maintenance(kpis, now)
    for kpi in kpis:
        since = now - timedelta(hours=kpi.window_hours)
        value, source, with_maintenance = None, "", None
        if kpi.metric in {KpiMetric.AVAILABILITY, KpiMetric.ERROR_RATE}:
            totals = CheckRollup.objects.filter(_service_filter(kpi), hour__gte=since).aggregate(
                checks=Sum("checks"), up=Sum("up"), critical=Sum("critical")
            )
            if totals["checks"]:
                part = totals["up"] if kpi.metric == KpiMetric.AVAILABILITY else totals["critical"]
                value = round(100 * part / totals["checks"], 3)
                source = f"{totals['checks']} checks"
                value, source, with_maintenance = _without_maintenance(
                    kpi, since, planned, totals, value, source
                )
        elif kpi.metric == KpiMetric.LATENCY_P95:
            buckets: dict[str, int] = defaultdict(int)
            rows = CheckRollup.objects.filter(
                _service_filter(kpi, {ServiceKind.HTTP}), hour__gte=since
            ).values_list("latency_buckets", flat=True)
            for row in rows:
                for bound, count in row.items():
                    buckets[bound] += count
            value = _percentile_from_buckets(buckets, 0.95)
            source = f"{sum(buckets.values())} HTTP checks" if buckets else ""
        elif kpi.metric == KpiMetric.CACHE_HIT_RATE:
            rates = _latest(latest, kpi, ServiceKind.REDIS, "hit_rate")
            value = min(rates) if rates else None
            source = "Redis INFO stats" if rates else ""
        elif kpi.metric == KpiMetric.QUEUE_SIZE:
            lengths = _latest(latest, kpi, ServiceKind.CELERY, "queue_max")
            value = max(lengths) if lengths else None
            source = "Celery queues" if lengths else ""
        elif kpi.metric == KpiMetric.DISK:
            usage = shutil.disk_usage(settings.VAR_DIR)
            value = round(100 * usage.used / usage.total, 1)
            source = "the portal's data volume"
        elif kpi.metric in {KpiMetric.CPU, KpiMetric.MEMORY}:
            key = f"{kpi.metric}_percent"
            reported = [m[key] for _pk, _kind, m in latest if isinstance(m.get(key), int | float)]
            value = max(reported) if reported else None
            source = "" if reported else "no monitored service reports it"
        elif kpi.metric in registry.kpi_sources:
            # Computed by the app that registered it (image processing success by images).
            value, source = registry.kpi_sources[kpi.metric].value(since)
        else:
            source = "no app provides this KPI"
        values.append(
            KpiValue(
                kpi=kpi,
                value=value,
                state=kpi.state_of(value),
                source=source,
                with_maintenance=with_maintenance,
            )
        )
    return values


def _planned_maintenance(kpis: list[Kpi], now: datetime) -> list:
    """The planned maintenance intervals of the longest availability/error-rate window."""
    hours = [
        kpi.window_hours
        for kpi in kpis
        if kpi.metric in {KpiMetric.AVAILABILITY, KpiMetric.ERROR_RATE}
    ]
    if not hours:
        return []
    return maintenance_intervals(since=now - timedelta(hours=max(hours)), until=now)


def _without_maintenance(kpi: Kpi, since: datetime, planned: list, totals: dict, value, source):
    """(value without planned maintenance, source, value with it) from the raw results inside
    the windows: one query per KPI, only when there was maintenance. Counted from the first
    whole hour, as the hourly roll-ups are."""
    first_hour = since.replace(minute=0, second=0, microsecond=0)
    if first_hour < since:
        first_hour += timedelta(hours=1)
    intervals = [
        (pk, max(start, first_hour), end) for pk, start, end in planned if end > first_hour
    ]
    if not intervals:
        return value, source, None
    inside = CheckResult.objects.filter(
        _service_filter(kpi), maintenance_exclusion(intervals)
    ).aggregate(
        checks=Count("pk"),
        up=Count("pk", filter=Q(state__in=[CheckState.OK, CheckState.WARNING])),
        critical=Count("pk", filter=Q(state=CheckState.CRITICAL)),
    )
    if not inside["checks"]:
        return value, source, None
    checks = totals["checks"] - inside["checks"]
    if checks <= 0:
        return None, "only planned maintenance in this window", value
    key = "up" if kpi.metric == KpiMetric.AVAILABILITY else "critical"
    without = round(100 * (totals[key] - inside[key]) / checks, 3)
    return without, f"{checks} checks, {inside['checks']} in planned maintenance left out", value


def _latest(latest, kpi: Kpi, kind: str, key: str) -> list[float]:
    return [
        metrics[key]
        for pk, service_kind, metrics in latest
        if (pk == kpi.service_id or (not kpi.service_id and service_kind == kind))
        and isinstance(metrics.get(key), int | float)
    ]


@dataclass
class History:
    range_key: str
    latency: Plot | None
    rows: list = field(default_factory=list)
    since: datetime | None = None
    raw: bool = True


def service_history(*, service: MonitoredService, range_key: str, now=None) -> History:
    """Latency and state over a range: raw results up to a day, hourly roll-ups beyond."""
    now = now or timezone.now()
    since = now - RANGES[range_key]
    if range_key in RAW_RANGES:
        rows = list(
            service.results.filter(checked_at__gte=since)
            .order_by("checked_at")
            .values_list("checked_at", "latency_ms", "state", "detail")
        )
        series = [(at.timestamp(), latency, state) for at, latency, state, _detail in rows]
    else:
        rollups = list(service.rollups.filter(hour__gte=since).order_by("hour"))
        rows = [
            (
                r.hour,
                round(r.latency_sum_ms / r.latency_count, 1) if r.latency_count else None,
                r.worst_state,
                f"{r.up}/{r.checks} up, max {r.latency_max_ms or 0:.0f} ms",
            )
            for r in rollups
        ]
        series = [(at.timestamp(), latency, state) for at, latency, state, _detail in rows]
    chart = (
        plot(
            series,
            width=600,
            height=160,
            x_range=(since.timestamp(), now.timestamp()),
            pad=6,
            axis=True,
        )
        if series
        else None
    )
    return History(
        range_key=range_key, latency=chart, rows=rows, since=since, raw=range_key in RAW_RANGES
    )
