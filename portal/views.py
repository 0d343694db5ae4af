import json

from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.exports import csv_response
from portal.health import portal_health
from portal.htmx import wants_fragment
from portal.models import AuditEntry
from portal.registry import registry
from portal.selectors import audit_entries_filtered, audit_object_urls

TODAY_PAGE = "portal/today.html"

AUDIT_PER_PAGE = 50
view_audit = permission_required("portal.view_auditentry", raise_exception=True)


@require_GET
@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page links: send them to the icon."""
    return HttpResponsePermanentRedirect(static("portal/favicon.svg"))


@require_GET
@view_audit
def audit_log(request: HttpRequest) -> HttpResponse:
    """Who did what, filterable by person, action, kind of object, text and dates; each entry
    links to the object it is about while that exists."""
    params = request.GET
    entries, errors = audit_entries_filtered(params=params)
    page = Paginator(entries, AUDIT_PER_PAGE).get_page(params.get("page"))
    urls = audit_object_urls(entries=page.object_list)
    for entry in page.object_list:
        entry.object_url = urls.get(entry.pk, "")
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
    live, fixed = [], []
    for block in registry.today_blocks:
        if fragment and not block.live:
            continue
        context = block.context(request, now)
        if context is None:
            continue
        # The blocks are the apps' own templates, rendered (and escaped) by Django.
        html = mark_safe(render_to_string(block.template, context, request=request))  # noqa: S308
        (live if block.live else fixed).append(html)
    context = {"now": now, "live_blocks": live, "static_blocks": fixed}
    if fragment:
        return render(request, f"{TODAY_PAGE}#today-live", context)
    return render(request, TODAY_PAGE, context)


@login_not_required
@never_cache
@require_GET
def api_health(request: HttpRequest) -> JsonResponse:
    """The portal's own health for `curl /api/health | jq .`: 200 healthy (or starting), 503
    not."""
    report = portal_health()
    return JsonResponse(report, status=503 if report["status"] == "fail" else 200)


AUDIT_CSV_COLUMNS = [
    ("created_at", lambda e: e.created_at.isoformat()),
    ("actor", lambda e: e.actor_name),
    ("action", lambda e: e.action),
    ("object_type", lambda e: e.object_type),
    ("object_id", lambda e: e.object_id),
    ("object", lambda e: e.object_repr),
    ("summary", lambda e: e.summary),
    ("before", lambda e: "" if e.before is None else json.dumps(e.before, ensure_ascii=False)),
    ("after", lambda e: "" if e.after is None else json.dumps(e.after, ensure_ascii=False)),
    ("ip_address", lambda e: e.ip_address or ""),
]


@require_GET
@view_audit
def audit_export(request: HttpRequest) -> HttpResponse:
    """The log as CSV with the page's filters; streamed, so its size does not matter."""
    entries, errors = audit_entries_filtered(params=request.GET)
    if errors:
        return HttpResponse(" ".join(errors), status=400, content_type="text/plain")
    return csv_response(entries.iterator(chunk_size=2000), AUDIT_CSV_COLUMNS, name="audit")
