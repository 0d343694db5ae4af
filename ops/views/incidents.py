"""Incident pages: the list, opening one, its live page and the htmx actions on it, editing,
the postmortem and its action items, the printable page (the manager report and the CSV are
in incident_reports)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from ops.forms.incidents import (
    ActionItemForm,
    IncidentEditForm,
    IncidentOpenForm,
    PostmortemForm,
    StatusForm,
    incident_filters_from,
)
from ops.forms.status import OverrideForm
from ops.models import ActionItem, Incident, IncidentStatus, Postmortem
from ops.selectors.alerts import incident_alerts, incident_vendor_contacts
from ops.selectors.checklists import run_items, run_kpi_evidence
from ops.selectors.incidents import (
    incident_responders,
    incident_timeline,
    incidents_filtered,
    severities_all,
)
from ops.selectors.status import incident_status_card
from ops.services.incident_notifications import notification_channels
from ops.services.incident_rules import EditConflict
from ops.services.incidents import (
    incident_acknowledge,
    incident_close,
    incident_note_add,
    incident_open,
    incident_reopen,
    incident_set_status,
    incident_update,
)
from ops.services.postmortems import (
    action_item_add,
    action_item_set_done,
    postmortem_draft_timeline,
    postmortem_save,
)
from portal.errors import ActionRefused
from portal.htmx import attempt, back_to, render_fragments, wants_fragment
from portal.polling import FOREVER, poll_grant, poll_since, poll_unchanged

LIST_PAGE = "ops/incidents/incident_list.html"
DETAIL_PAGE = "ops/incidents/incident_detail.html"
PER_PAGE = 25
REPORT_MONTHS = 12

view_incidents = permission_required("ops.view_incident", raise_exception=True)
view_report = permission_required("ops.view_incident_report", raise_exception=True)


# The list and its filters


def _querystring(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_GET
@view_incidents
def incident_list(request: HttpRequest) -> HttpResponse:
    filters, errors = incident_filters_from(request.GET)
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
        "notify_channels": notification_channels(),
        "vendor_contacts": incident_vendor_contacts(incident=incident),
        "alerts": incident_alerts(incident=incident),
        **extra,
    }


def _grant_polls(request: HttpRequest, incident: Incident) -> None:
    """Let this user's polls be answered "no change" from the cache until the clocks change
    state (a deadline passes) or the incident changes; the clocks count in the browser
    meanwhile. Personal data's "N left" is written by the server: a minute at most."""
    if incident.is_closed:
        return
    now = timezone.now()
    deadlines = []
    if incident.is_open and incident.acknowledged_at is None:
        deadlines += [incident.response_due_at, incident.escalation_due_at]
    fresh_until = min([d.timestamp() for d in deadlines if d > now], default=FOREVER)
    if incident.personal_data:
        fresh_until = min(fresh_until, now.timestamp() + 60)
    poll_grant(request, "incident", incident.pk, incident.version, fresh_until=fresh_until)


@require_GET
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    _grant_polls(request, incident)
    context = _detail_context(request, incident)
    # The status page card (not polled): its components, overrides and the override form.
    card = incident_status_card(incident=incident)
    can_override = request.user.has_perm("ops.publish_statuscomponent") and incident.is_open
    context.update(
        status_card=card,
        can_override=can_override,
        override_form=OverrideForm(components=card.components, auto_id="override_%s")
        if can_override
        else None,
    )
    return render(request, DETAIL_PAGE, context)


@require_GET
def incident_poll(request: HttpRequest, pk: int) -> HttpResponse:
    """204 when nothing changed since the version the page shows and no clock changed state
    (from the cache when it knows, see portal.polling); the clocks when only they did; the
    summary, checklist and timeline when the incident changed; 286 (stop polling) once it
    is closed."""
    since = poll_since(request)
    if since is None:
        return HttpResponse("since must be a whole number", status=400)
    if poll_unchanged(request, "incident", pk, since):
        return HttpResponse(status=204)
    incident = _get_incident_for_user(request, pk)
    _grant_polls(request, incident)
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
    _, refusal = attempt(lambda: action(incident))
    incident = _get_incident_for_user(request, pk)
    if refusal is not None:
        return _after_action(request, incident, error=refusal.message, status=refusal.status)
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
def incident_reopen_view(request: HttpRequest, pk: int) -> HttpResponse:
    reason = request.POST.get("reason", "")
    return _incident_action(
        request,
        pk,
        lambda incident: incident_reopen(incident=incident, user=request.user, reason=reason),
    )


@require_POST
def incident_note(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident_for_user(request, pk)
    text = request.POST.get("text", "")
    corrects = request.POST.get("corrects", "").strip()
    _, refusal = attempt(
        lambda: incident_note_add(
            incident=incident,
            user=request.user,
            text=text,
            corrects=int(corrects) if corrects.isdigit() else None,
        )
    )
    if not wants_fragment(request):
        return back_to(request, incident, refusal)
    error, status = (refusal.message, refusal.status) if refusal else ("", 200)
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
    form = IncidentEditForm.for_incident(incident, request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            changes = form.changes()
            try:
                incident_update(
                    incident=incident,
                    user=request.user,
                    version=form.cleaned_data["version"],
                    opened=form.opened(),
                    **changes,
                )
            except EditConflict as conflict:
                # Keep what the user typed, now checked against the incident as it is.
                form = IncidentEditForm.rebased(request.POST, _get_incident_for_user(request, pk))
                form.is_valid()
                form.add_error(None, conflict.message)
                status = conflict.status
            except ActionRefused as refused:
                form.add_refusal(refused)
            else:
                messages.success(request, "Saved." if changes else "Nothing changed.")
                return redirect(incident)
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
        _, refusal = attempt(
            lambda: action_item_add(postmortem=postmortem, user=request.user, **form.cleaned_data)
        )
        if refusal is not None:
            form.add_error(None, refusal.message)
            status = refusal.status
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
    _, refusal = attempt(lambda: action_item_set_done(item=item, user=request.user, done=done))
    if not wants_fragment(request):
        return back_to(request, f"{incident.get_absolute_url()}#postmortem", refusal)
    error, status = (refusal.message, refusal.status) if refusal else ("", 200)
    item = ActionItem.objects.select_related("owner", "done_by").get(pk=item.pk)
    context = _detail_context(request, incident, action=item, action_error=error)
    return render(request, f"{DETAIL_PAGE}#action-row", context, status=status)


# The printable page


@require_GET
def incident_print(request: HttpRequest, pk: int) -> HttpResponse:
    """Every field, the timeline and the postmortem on plain pages (A4 or Letter)."""
    incident = _get_incident_for_user(request, pk)
    context = _detail_context(request, incident)
    return render(request, "ops/incidents/incident_print.html", context)
