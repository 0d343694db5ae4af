from datetime import datetime, time, timedelta

from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_GET

from portal.models import AuditEntry
from portal.params import parse_day

AUDIT_PER_PAGE = 50


@require_GET
@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page links: send them to the icon."""
    return HttpResponsePermanentRedirect(static("portal/favicon.svg"))


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
