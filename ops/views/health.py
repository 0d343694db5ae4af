"""Health panels, the service page and the JSON health APIs. Pages read stored results only:
checks run in the background."""

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ops.models import MonitoredService
from ops.selectors.health import (
    RANGES,
    health_checks_stopped,
    health_summary,
    health_tiles,
    kpi_values,
    service_history,
)
from ops.services.health_checks import describe_target
from portal.auth import login_or_token_required
from portal.htmx import wants_fragment

PANEL_PAGE = "ops/health/health_panel.html"


def _panel_context(now) -> dict:
    tiles = health_tiles(now=now)
    return {
        "now": now,
        "tiles": tiles,
        "summary": health_summary(tiles),
        "checks_stopped": health_checks_stopped(tiles=tiles, now=now),
        "poll_seconds": settings.HEALTH_POLL_SECONDS,
    }


@require_GET
@permission_required("ops.view_health", raise_exception=True)
def health_panel(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = _panel_context(now)
    if wants_fragment(request):
        return render(request, f"{PANEL_PAGE}#health-tiles", context)
    context["kpis"] = kpi_values(now=now)
    return render(request, PANEL_PAGE, context)


@require_GET
@permission_required("ops.view_health", raise_exception=True)
def service_detail(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(MonitoredService, slug=slug)
    range_key = request.GET.get("range", "24h")
    if range_key not in RANGES:
        range_key = "24h"
    now = timezone.now()
    return render(
        request,
        "ops/health/service_detail.html",
        {
            "service": service,
            "state": service.shown_state(now),
            "target": describe_target(service.target),
            "history": service_history(service=service, range_key=range_key, now=now),
            "ranges": list(RANGES),
            "kpis": kpi_values(now=now, kpis=list(service.kpis.all())),
            "incidents": service.incidents.select_related("severity").order_by("-detected_at")[:20],
            "now": now,
        },
    )


@login_or_token_required
@never_cache
@require_GET
def api_health_services(request: HttpRequest) -> JsonResponse:
    if not request.user.has_perm("ops.view_health"):
        raise PermissionDenied("You may not see the health of services.")
    now = timezone.now()
    services = [
        {
            "name": tile.service.name,
            "slug": tile.service.slug,
            "kind": tile.service.kind,
            "state": tile.state,
            "stale": tile.state == "stale",
            "latency_ms": tile.service.last_latency_ms,
            "detail": tile.detail,
            "checked_at": tile.service.last_checked_at.isoformat()
            if tile.service.last_checked_at
            else None,
            "uptime_percent": tile.uptime,
        }
        for tile in health_tiles(now=now)
    ]
    return JsonResponse({"checked_at": now.isoformat(), "services": services})
