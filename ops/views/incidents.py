"""Incident pages: the list, opening one, its live page and the htmx actions on it, editing,
the postmortem and its action items, the printable report, the manager report and CSV."""

import csv
from datetime import date, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from ops import charts
from ops.forms.incidents import (
    ActionItemForm,
    IncidentEditForm,
    IncidentOpenForm,
    PostmortemForm,
    StatusForm,
)
from ops.models import ActionItem, Incident, IncidentStatus, Postmortem
from ops.selectors.checklists import run_items, run_kpi_evidence
from ops.selectors.incidents import (
    IncidentFilters,
    incident_report,
    incident_responders,
    incident_timeline,
    incidents_filtered,
    severities_all,
)
from ops.services.incidents import (
    action_item_add,
    action_item_set_done,
    incident_acknowledge,
    incident_close,
    incident_note_add,
    incident_open,
    incident_set_status,
    incident_update,
    postmortem_draft_timeline,
    postmortem_save,
)
from portal.errors import ActionRefused
from portal.htmx import render_fragments, wants_fragment
from portal.params import parse_day

LIST_PAGE = "ops/incidents/incident_list.html"
DETAIL_PAGE = "ops/incidents/incident_detail.html"
PER_PAGE = 25
REPORT_MONTHS = 12

view_incidents = permission_required("ops.view_incident", raise_exception=True)
view_report = permission_required("ops.view_incident_report", raise_exception=True)


# The list and its filters


def _filters_from(request: HttpRequest) -> tuple[IncidentFilters, list[str]]:
    params, errors = request.GET, []
    filters = IncidentFilters(
        severity=params.get("severity", "").strip(),
        status=params.get("status", "").strip(),
        service=params.get("service", "").strip(),
        commander=params.get("commander", "").strip(),
        since=parse_day(params.get("since", "").strip(), "From", errors),
        until=parse_day(params.get("until", "").strip(), "To", errors),
        q=params.get("q", "").strip(),
    )
    if filters.status and filters.status not in {"open", *IncidentStatus.values}:
        errors.append(f"Unknown status “{filters.status}”.")
        filters.status = ""
    if filters.since and filters.until and filters.since > filters.until:
        errors.append("From must not be after To.")
    return filters, errors


def _querystring(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_GET
@view_incidents
def incident_list(request: HttpRequest) -> HttpResponse:
    filters, errors = _filters_from(request)
    page = Paginator(incidents_filtered(filters=filters), PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "filters": filters,
        "errors": errors,
        "now": timezone.now(),
        "querystring": _querystring(request),
        "severities": severities_all(),
        "statuses": IncidentStatus.choices,
        "commanders": incident_responders(),
        "can_open": request.user.has_perm("ops.open_incident"),
        "can_export": request.user.has_perm("ops.view_incident_report"),
    }
    status = 400 if errors else 200
    if wants_fragment(request):
        return render(request, f"{LIST_PAGE}#incident-table", context, status=status)
    return render(request, LIST_PAGE, context, status=status)


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


def _csv_cell(value) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: quote them."""
    text = str(value)
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@view_report
def incident_export(request: HttpRequest) -> HttpResponse:
    """The list as CSV, with the same filters; streamed, so its size does not matter."""
    filters, errors = _filters_from(request)
    if errors:
        return HttpResponse(" ".join(errors), status=400, content_type="text/plain")
    writer = csv.writer(_Echo())
    incidents = incidents_filtered(filters=filters)

    def rows():
        yield writer.writerow([name for name, _ in CSV_COLUMNS])
        for incident in incidents.iterator(chunk_size=1000):
            yield writer.writerow([_csv_cell(get(incident)) for _, get in CSV_COLUMNS])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="incidents-{stamp}.csv"'
    return response


# Opening


@require_http_methods(["GET", "POST"])
@view_incidents
def incident_new(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("ops.open_incident"):
        raise PermissionDenied("You may not open incidents.")
    form = IncidentOpenForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                incident = incident_open(user=request.user, **form.cleaned_data)
            except ActionRefused as refused:
                form.add_refusal(refused)
            else:
                messages.success(request, f"Opened {incident.reference}.")
                if wants_fragment(request):
                    return HttpResponseClientRedirect(incident.get_absolute_url())
                return redirect(incident)
        status = 400
    return render(request, "ops/incidents/incident_new.html", {"form": form}, status=status)


# The incident page


def _get_incident_for_user(request: HttpRequest, pk: int) -> Incident:
    if not request.user.has_perm("ops.view_incident"):
        raise PermissionDenied("You may not see incidents.")
    return get_object_or_404(
        Incident.objects.select_related(
            "severity", "commander", "acknowledged_by", "closed_by", "opened_by"
        ),
        pk=pk,
    )


def _detail_context(request: HttpRequest, incident: Incident, **extra) -> dict:
    user = request.user
    postmortem = Postmortem.objects.filter(incident=incident).first()
    actions = list(postmortem.actions.select_related("owner", "done_by")) if postmortem else []
    run, now = incident.checklist_runs.order_by("created_at").first(), timezone.now()
    return {
        "incident": incident,
        "now": now,
        "timeline": incident_timeline(incident=incident),
        "run": run,
        # The response checklist is ticked on the incident's page too.
        "run_items": run_items(run=run) if run else [],
        "kpi_evidence": run_kpi_evidence(run=run, now=now) if run else {},
        "can_tick": user.has_perm("ops.tick_checklistrun"),
        "postmortem": postmortem,
        "actions": actions,
        "can_update": user.has_perm("ops.update_incident") and not incident.is_closed,
        "can_close": user.has_perm("ops.close_incident"),
        "can_edit_postmortem": user.has_perm("ops.edit_postmortem"),
        "status_form": StatusForm(initial={"status": incident.status}, auto_id="status_%s"),
        "action_form": extra.pop("action_form", None) or ActionItemForm(),
        "poll_seconds": settings.INCIDENT_POLL_SECONDS,
        **extra,
    }


@require_GET
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    return render(request, DETAIL_PAGE, _detail_context(request, incident))


@require_GET
def incident_poll(request: HttpRequest, pk: int) -> HttpResponse:
    """The clocks every time; the summary, checklist and timeline when the incident changed
    since the version the page shows; 286 (stop polling) once it is closed."""
    incident = _get_incident_for_user(request, pk)
    try:
        since = max(0, int(request.GET.get("since", "0")))
    except ValueError:
        return HttpResponse("since must be a whole number", status=400)
    poller = {"incident": incident, "poll_seconds": settings.INCIDENT_POLL_SECONDS}
    parts = [(f"{DETAIL_PAGE}#incident-poller", poller)]
    if since >= incident.version and not incident.is_closed:
        clocks = {"incident": incident, "now": timezone.now(), "oob": True}
        parts.append((f"{DETAIL_PAGE}#incident-clocks", clocks))
        return render_fragments(request, parts)
    context = _detail_context(request, incident, oob=True)
    parts += [(f"{DETAIL_PAGE}#{name}", context) for name in REFRESHED]
    response = render_fragments(request, parts)
    if incident.is_closed:
        response.status_code = HttpResponseStopPolling.status_code
    return response


REFRESHED = ["incident-clocks", "incident-checklist", "incident-timeline"]


def _after_action(
    request: HttpRequest, incident: Incident, *, error: str = "", status: int = 200
) -> HttpResponse:
    """htmx: the summary (the swap target) with the clocks, checklist, timeline and poller
    out of band; otherwise back to the page."""
    if not wants_fragment(request):
        if status >= 400:
            return HttpResponse(error, status=status, content_type="text/plain")
        response = redirect(incident)
        response.status_code = 303
        return response
    context = _detail_context(request, incident, action_error=error)
    oob = {**context, "oob": True}
    parts = [(f"{DETAIL_PAGE}#incident-summary", context)]
    parts += [(f"{DETAIL_PAGE}#{name}", oob) for name in [*REFRESHED, "incident-poller"]]
    return render_fragments(request, parts, status=status)


def _incident_action(request: HttpRequest, pk: int, action) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    try:
        incident = action(incident)
    except PermissionDenied as denied:
        return _after_action(request, incident, error=str(denied), status=403)
    except ActionRefused as refused:
        incident.refresh_from_db()
        return _after_action(request, incident, error=refused.message, status=refused.status)
    incident = _get_incident_for_user(request, pk)
    return _after_action(request, incident)


@require_POST
def incident_ack(request: HttpRequest, pk: int) -> HttpResponse:
    return _incident_action(
        request, pk, lambda incident: incident_acknowledge(incident=incident, user=request.user)
    )


@require_POST
def incident_status(request: HttpRequest, pk: int) -> HttpResponse:
    status = request.POST.get("status", "")
    return _incident_action(
        request,
        pk,
        lambda incident: incident_set_status(incident=incident, user=request.user, status=status),
    )


@require_POST
def incident_close_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _incident_action(
        request, pk, lambda incident: incident_close(incident=incident, user=request.user)
    )


@require_POST
def incident_note(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    text = request.POST.get("text", "")
    corrects = request.POST.get("corrects", "").strip()
    error, status = "", 200
    try:
        incident_note_add(
            incident=incident,
            user=request.user,
            text=text,
            corrects=int(corrects) if corrects.isdigit() else None,
        )
    except PermissionDenied as denied:
        error, status = str(denied), 403
    except ActionRefused as refused:
        error, status = refused.message, refused.status
    if not wants_fragment(request):
        if error:
            messages.error(request, error)
        return redirect(incident)
    incident = _get_incident_for_user(request, pk)
    context = _detail_context(request, incident, note_error=error, note_text=text if error else "")
    oob = {**context, "oob": True}
    parts = [(f"{DETAIL_PAGE}#incident-note-form", context)]
    if not error:
        parts += [
            (f"{DETAIL_PAGE}#{name}", oob) for name in ["incident-timeline", "incident-poller"]
        ]
    return render_fragments(request, parts, status=status)


# Editing


@require_http_methods(["GET", "POST"])
def incident_edit(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    if not request.user.has_perm("ops.update_incident"):
        raise PermissionDenied("You may not update incidents.")
    initial = IncidentEditForm.initial_for(incident)
    form = IncidentEditForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            try:
                incident_update(incident=incident, user=request.user, **changes)
            except ActionRefused as refused:
                form.add_refusal(refused)
            else:
                messages.success(request, "Saved." if changes else "Nothing changed.")
                if wants_fragment(request):
                    return HttpResponseClientRedirect(incident.get_absolute_url())
                return redirect(incident)
        status = 400
    return render(
        request,
        "ops/incidents/incident_edit.html",
        {"incident": incident, "form": form},
        status=status,
    )


# The postmortem


@require_http_methods(["GET", "POST"])
def postmortem_edit(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    if not request.user.has_perm("ops.edit_postmortem"):
        raise PermissionDenied("You may not write postmortems.")
    postmortem = Postmortem.objects.filter(incident=incident).first()
    if postmortem:
        initial = {name: getattr(postmortem, name) for name in PostmortemForm.base_fields}
    else:
        initial = {
            "summary": incident.summary,
            "impact": incident.customer_impact,
            "timeline": postmortem_draft_timeline(incident=incident),
        }
    form = PostmortemForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                postmortem_save(incident=incident, user=request.user, **form.cleaned_data)
            except ActionRefused as refused:
                form.add_error(None, refused.message)
                status = refused.status
            else:
                messages.success(request, "Postmortem saved.")
                return redirect(f"{incident.get_absolute_url()}#postmortem")
        else:
            status = 400
    return render(
        request,
        "ops/incidents/postmortem_edit.html",
        {"incident": incident, "form": form, "postmortem": postmortem},
        status=status,
    )


@require_POST
def action_add(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    postmortem = get_object_or_404(Postmortem, incident=incident)
    form = ActionItemForm(request.POST)
    status = 200
    if form.is_valid():
        try:
            action_item_add(postmortem=postmortem, user=request.user, **form.cleaned_data)
        except PermissionDenied as denied:
            form.add_error(None, str(denied))
            status = 403
        except ActionRefused as refused:
            form.add_error(None, refused.message)
            status = refused.status
        else:
            form = ActionItemForm()
    else:
        status = 400
    if not wants_fragment(request):
        for error in form.non_field_errors():
            messages.error(request, error)
        if status == 400 and not form.non_field_errors():
            messages.error(request, "The action item needs a text, an owner and a due date.")
        return redirect(f"{incident.get_absolute_url()}#postmortem")
    context = _detail_context(request, incident, action_form=form)
    return render(request, f"{DETAIL_PAGE}#postmortem-actions", context, status=status)


@require_POST
def action_done(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(ActionItem.objects.select_related("postmortem"), pk=pk)
    incident = _get_incident_for_user(request, item.postmortem.incident_id)
    done = request.POST.get("done") == "1"
    error, status = "", 200
    try:
        item = action_item_set_done(item=item, user=request.user, done=done)
    except PermissionDenied as denied:
        error, status = str(denied), 403
    except ActionRefused as refused:
        error, status = refused.message, refused.status
    if not wants_fragment(request):
        if error:
            messages.error(request, error)
        return redirect(f"{incident.get_absolute_url()}#postmortem")
    item = ActionItem.objects.select_related("owner", "done_by").get(pk=item.pk)
    context = _detail_context(request, incident, action=item, action_error=error)
    return render(request, f"{DETAIL_PAGE}#action-row", context, status=status)


# Reports


@require_GET
def incident_print(request: HttpRequest, pk: int) -> HttpResponse:
    """Every field, the timeline and the postmortem on plain pages (A4 or Letter)."""
    incident = _get_incident_for_user(request, pk)
    context = _detail_context(request, incident)
    return render(request, "ops/incidents/incident_print.html", context)


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
