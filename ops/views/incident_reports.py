"""The manager's incident report (counts, MTTA and MTTR per month and severity, as SVG
charts) and the incident list as CSV with the list's filters."""

from datetime import date, timedelta

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from ops import charts
from ops.forms.incidents import incident_filters_from
from ops.selectors.incidents import incident_report, incidents_filtered
from portal.exports import csv_response
from portal.params import parse_day

REPORT_MONTHS = 12

view_report = permission_required("ops.view_incident_report", raise_exception=True)


CSV_COLUMNS = [
    ("reference", lambda i: i.reference),
    ("title", lambda i: i.title),
    ("severity", lambda i: i.severity.code),
    ("status", lambda i: i.status),
    ("commander", lambda i: i.commander.get_username() if i.commander else ""),
    ("affected_services", lambda i: i.affected_services),
    ("started_at", lambda i: i.started_at.isoformat()),
    ("detected_at", lambda i: i.detected_at.isoformat()),
    ("acknowledged_at", lambda i: i.acknowledged_at.isoformat() if i.acknowledged_at else ""),
    ("mitigated_at", lambda i: i.mitigated_at.isoformat() if i.mitigated_at else ""),
    ("resolved_at", lambda i: i.resolved_at.isoformat() if i.resolved_at else ""),
    ("closed_at", lambda i: i.closed_at.isoformat() if i.closed_at else ""),
    ("minutes_to_acknowledge", lambda i: _minutes(i.time_to_acknowledge)),
    ("minutes_to_resolve", lambda i: _minutes(i.time_to_resolve)),
    (
        "acknowledged_in_time",
        lambda i: "" if i.acknowledged_in_time is None else int(i.acknowledged_in_time),
    ),
    ("personal_data", lambda i: int(i.personal_data)),
]


def _minutes(value: timedelta | None) -> str:
    return "" if value is None else f"{value.total_seconds() / 60:.1f}"


@require_GET
@view_report
def incident_export(request: HttpRequest) -> HttpResponse:
    """The list as CSV, with the same filters; streamed, so its size does not matter."""
    filters, errors = incident_filters_from(request.GET)
    if errors:
        return HttpResponse(" ".join(errors), status=400, content_type="text/plain")
    incidents = incidents_filtered(filters=filters).iterator(chunk_size=1000)
    return csv_response(incidents, CSV_COLUMNS, name="incidents")


def _default_period(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    for _ in range(REPORT_MONTHS - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    return first, today


@require_GET
@view_report
def incident_report_view(request: HttpRequest) -> HttpResponse:
    errors: list[str] = []
    today = timezone.localdate()
    default_since, default_until = _default_period(today)
    since = parse_day(request.GET.get("since", "").strip(), "From", errors) or default_since
    until = parse_day(request.GET.get("until", "").strip(), "To", errors) or default_until
    if since > until:
        errors.append("From must not be after To.")
        since, until = default_since, default_until
    if (until - since).days > 366 * 5:
        errors.append("Choose a period of at most five years.")
        since, until = default_since, default_until
    report = incident_report(since=since, until=until, now=timezone.now())
    names = [severity.code for severity in report.severities]
    context = {
        "report": report,
        "errors": errors,
        "legend": charts.legend(names),
        "count_chart": charts.stacked_bars(
            title="Incidents per month by severity",
            months=report.months,
            series=[(s.code, report.counts[s.pk]) for s in report.severities],
        ),
        "mtta_chart": charts.lines(
            title="Median time to acknowledge per month",
            months=report.months,
            series=[(s.code, report.mtta_trend[s.pk]) for s in report.severities],
        ),
        "mttr_chart": charts.lines(
            title="Median time to resolve per month",
            months=report.months,
            series=[(s.code, report.mttr_trend[s.pk]) for s in report.severities],
        ),
        "export_url": reverse("ops:incident_export")
        + f"?since={since:%Y-%m-%d}&until={until:%Y-%m-%d}",
    }
    return render(
        request, "ops/incidents/incident_report.html", context, status=400 if errors else 200
    )
