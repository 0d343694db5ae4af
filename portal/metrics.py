"""Prometheus metrics: request and task counters (multi-process: gunicorn and Celery workers
each write their own files under PROMETHEUS_MULTIPROC_DIR) and the gauges the apps register
(monitored services, KPIs, image processing), read from the database at scrape time."""

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

from portal.registry import registry

REQUESTS = Counter(
    "portal_http_requests_total", "Requests served by the portal.", ["method", "view", "status"]
)
REQUEST_SECONDS = Histogram(
    "portal_http_request_duration_seconds", "Time to answer a request.", ["view"]
)
TASKS = Counter("portal_celery_tasks_total", "Celery tasks finished.", ["task", "outcome"])


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


class RegisteredCollector:
    """What the apps registered (portal.registry): read from the database at scrape time."""

    def collect(self):
        for collect in registry.metrics_collectors:
            yield from collect()


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
    collectors = CollectorRegistry()
    multiprocess.MultiProcessCollector(collectors)
    collectors.register(RegisteredCollector())
    return HttpResponse(generate_latest(collectors), content_type=CONTENT_TYPE_LATEST)
