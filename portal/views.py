from datetime import datetime, time, timedelta

from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.health import portal_health
from portal.htmx import wants_fragment
from portal.models import AuditEntry
from portal.params import parse_day
from portal.registry import registry

TODAY_PAGE = "portal/today.html"

AUDIT_PER_PAGE = 50


@require_GET
@permission_required("portal.view_auditentry", raise_exception=True)
def audit_log(request: HttpRequest) -> HttpResponse:
    """Who did what, filterable by person, action, kind of object, text and dates."""
    params = request.GET
    errors: list[str] = []
    entries = AuditEntry.objects.order_by("-created_at", "-id")
    if actor := params.get("actor", "").strip():
        entries = entries.filter(actor_name__iexact=actor)
    if action := params.get("action", "").strip():
        entries = entries.filter(action__startswith=action)
    if object_type := params.get("object_type", "").strip():
        entries = entries.filter(object_type=object_type)
    if query := params.get("q", "").strip():
        entries = entries.filter(Q(object_repr__icontains=query) | Q(summary__icontains=query))
    zone = timezone.get_current_timezone()
    if since := parse_day(params.get("since", ""), "From", errors):
        entries = entries.filter(created_at__gte=datetime.combine(since, time(), tzinfo=zone))
    if until := parse_day(params.get("until", ""), "To", errors):
        end = datetime.combine(until + timedelta(days=1), time(), tzinfo=zone)
        entries = entries.filter(created_at__lt=end)
    page = Paginator(entries.select_related(None), AUDIT_PER_PAGE).get_page(params.get("page"))
    querystring = params.copy()
    querystring.pop("page", None)
    return render(
        request,
        "portal/audit_log.html",
        {
            "page": page,
            "errors": errors,
            "filters": params,
            "querystring": querystring.urlencode(),
            "actions": AuditEntry.objects.order_by("action")
            .values_list("action", flat=True)
            .distinct(),
            "object_types": AuditEntry.objects.exclude(object_type="")
            .order_by("object_type")
            .values_list("object_type", flat=True)
            .distinct(),
        },
        status=400 if errors else 200,
    )


@require_GET
def today(request: HttpRequest) -> HttpResponse:
    """The home page: the blocks the apps registered, each shown when it has something for
    this user; htmx polls refresh the live ones."""
    now = timezone.now()
    fragment = wants_fragment(request)
    live, static = [], []
    for block in registry.today_blocks:
        if fragment and not block.live:
            continue
        context = block.context(request, now)
        if context is None:
            continue
        # The blocks are the apps' own templates, rendered (and escaped) by Django.
        html = mark_safe(render_to_string(block.template, context, request=request))  # noqa: S308
        (live if block.live else static).append(html)
    context = {"now": now, "live_blocks": live, "static_blocks": static}
    if fragment:
        return render(request, f"{TODAY_PAGE}#today-live", context)
    return render(request, TODAY_PAGE, context)


@login_not_required
@never_cache
@require_GET
def api_health(request: HttpRequest) -> JsonResponse:
    """The portal's own health for `curl /api/health | jq .`: 200 healthy, 503 not."""
    report = portal_health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
