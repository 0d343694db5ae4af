import csv
import json

from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_GET

from portal.models import AuditEntry
from portal.selectors import audit_entries_filtered, audit_object_urls

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


def _csv_cell(value) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: quote them."""
    text = str(value)
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@view_audit
def audit_export(request: HttpRequest) -> HttpResponse:
    """The log as CSV with the page's filters; streamed, so its size does not matter."""
    entries, errors = audit_entries_filtered(params=request.GET)
    if errors:
        return HttpResponse(" ".join(errors), status=400, content_type="text/plain")
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow([name for name, _ in AUDIT_CSV_COLUMNS])
        for entry in entries.iterator(chunk_size=2000):
            yield writer.writerow([_csv_cell(get(entry)) for _, get in AUDIT_CSV_COLUMNS])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
