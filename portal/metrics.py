"""Prometheus metrics: request and task counters (multi-process: gunicorn and Celery workers
each write their own files under PROMETHEUS_MULTIPROC_DIR) and gauges of the monitored services
and KPIs read from the database at scrape time."""

import hmac
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter(
    "portal_http_requests_total", "Requests served by the portal.", ["method", "view", "status"]
)
REQUEST_SECONDS = Histogram(
    "portal_http_request_duration_seconds", "Time to answer a request.", ["view"]
)
TASKS = Counter("portal_celery_tasks_total", "Celery tasks finished.", ["task", "outcome"])
STATE_VALUES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "unmatched"
        REQUESTS.labels(request.method, view, str(response.status_code)).inc()
        REQUEST_SECONDS.labels(view).observe(time.perf_counter() - started)
        return response


def count_task(sender=None, outcome: str = "success", **kwargs) -> None:
    TASKS.labels(getattr(sender, "name", str(sender)), outcome).inc()


class HealthCollector:
    """Service states, latencies, staleness, queue lengths and KPI values, from stored results."""

    def collect(self):
        from ops.models import MonitoredService
        from ops.selectors.health import kpi_values

        state = GaugeMetricFamily(
            "portal_service_state",
            "Latest state of a monitored service: 0 ok, 1 warning, 2 critical, 3 unknown.",
            labels=["service", "kind"],
        )
        latency = GaugeMetricFamily(
            "portal_service_latency_ms", "Latency of the latest check.", labels=["service", "kind"]
        )
        stale = GaugeMetricFamily(
            "portal_service_stale",
            "1 when no result came for three intervals.",
            labels=["service", "kind"],
        )
        queues = GaugeMetricFamily(
            "portal_queue_length", "Tasks waiting in a Celery queue.", labels=["service", "queue"]
        )
        for service in MonitoredService.objects.filter(is_active=True):
            labels = [service.slug, service.kind]
            state.add_metric(labels, STATE_VALUES.get(service.state, 3))
            stale.add_metric(labels, int(service.is_stale()))
            if service.last_latency_ms is not None:
                latency.add_metric(labels, service.last_latency_ms)
            for queue, length in (service.last_metrics.get("queues") or {}).items():
                queues.add_metric([service.slug, queue], length)
        kpi = GaugeMetricFamily("portal_kpi_value", "Current KPI value.", labels=["kpi", "metric"])
        kpi_state = GaugeMetricFamily(
            "portal_kpi_state",
            "KPI state: 0 ok, 1 warning, 2 critical, 3 no data.",
            labels=["kpi", "metric"],
        )
        for value in kpi_values():
            labels = [value.kpi.name, value.kpi.metric]
            if value.value is not None:
                kpi.add_metric(labels, value.value)
            kpi_state.add_metric(labels, STATE_VALUES.get(value.state, 3))
        yield from (state, latency, stale, queues, kpi, kpi_state)
        yield from self._images()

    def _images(self):
        """The last hour of image processing: how many settled, the share that succeeded and
        the median time per image."""
        from datetime import timedelta

        from django.utils import timezone

        from images.selectors import image_stats

        stats = image_stats(since=timezone.now() - timedelta(hours=1))
        settled = GaugeMetricFamily(
            "portal_images_settled_last_hour", "Images done or failed in the last hour."
        )
        settled.add_metric([], stats.settled)
        yield settled
        if stats.success_rate is not None:
            rate = GaugeMetricFamily(
                "portal_image_success_ratio", "Share of the last hour's images optimized (0-1)."
            )
            rate.add_metric([], stats.success_rate)
            yield rate
        if stats.seconds_per_image_median is not None:
            seconds = GaugeMetricFamily(
                "portal_image_seconds_median", "Median seconds per image over the last hour."
            )
            seconds.add_metric([], stats.seconds_per_image_median)
            yield seconds


@login_not_required
@require_GET
def metrics_view(request):
    """Prometheus text format, for a bearer token equal to METRICS_TOKEN (404 when unset)."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return HttpResponse("Metrics are off: set METRICS_TOKEN.", status=404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        response = HttpResponse("A valid bearer token is needed.", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(HealthCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
