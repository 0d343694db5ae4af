"""Checklist pages: today, templates, runs, and the htmx endpoints that tick items."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from ops.models import ChecklistRun, ChecklistTemplate, ItemState, RunItem
from ops.selectors.checklists import (
    active_templates,
    run_items,
    run_items_changed_since,
    run_kpi_evidence,
    runs_current,
    runs_needing_attention,
    template_histories,
    template_items_ordered,
    templates_listed,
)
from ops.selectors.health import health_summary, health_tiles
from ops.selectors.incidents import incidents_open
from ops.services.checklists import (
    checklist_item_note,
    checklist_item_set_state,
    checklist_run_start,
)
from portal.errors import ActionRefused
from portal.htmx import render_fragments, wants_fragment

RUN_PAGE = "ops/checklists/run_detail.html"
TODAY_PAGE = "ops/checklists/today.html"
RUNS_PER_PAGE = 25

view_runs = permission_required("ops.view_checklistrun", raise_exception=True)


def _today_context(request: HttpRequest) -> dict:
    now = timezone.now()
    current = runs_current(now=now)
    templates = active_templates()
    return {
        "now": now,
        "current_runs": [run for run in current if not run.is_overdue(now)],
        "overdue_runs": [run for run in current if run.is_overdue(now)],
        "attention_runs": runs_needing_attention(now=now),
        "histories": template_histories(templates=templates, now=now),
        "startable": templates,
        "can_start": request.user.has_perm("ops.start_checklistrun"),
        "open_incidents": incidents_open() if request.user.has_perm("ops.view_incident") else [],
        **_health_block(request, now),
    }


def _health_block(request: HttpRequest, now) -> dict:
    """The home page's health summary: counts by state and the tiles that are not ok."""
    if not request.user.has_perm("ops.view_health"):
        return {}
    tiles = health_tiles(now=now)
    return {
        "health_summary": health_summary(tiles),
        "health_problems": [tile for tile in tiles if tile.state != "ok"],
        "health_count": len(tiles),
    }


@require_GET
@view_runs
def today(request: HttpRequest) -> HttpResponse:
    context = _today_context(request)
    if wants_fragment(request):
        return render(request, f"{TODAY_PAGE}#today-runs", context)
    return render(request, TODAY_PAGE, context)


@require_GET
@permission_required("ops.view_checklisttemplate", raise_exception=True)
def template_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    query = request.GET.get("q", "").strip()
    live, retired = templates_listed(query=query)
    return render(
        request,
        "ops/checklists/template_list.html",
        {
            "histories": template_histories(templates=live, now=now),
            "retired": retired,
            "query": query,
            "can_start": request.user.has_perm("ops.start_checklistrun"),
        },
    )


@require_GET
@permission_required("ops.view_checklisttemplate", raise_exception=True)
def template_detail(request: HttpRequest, slug: str) -> HttpResponse:
    template = get_object_or_404(ChecklistTemplate.objects.select_related("source"), slug=slug)
    runs = template.runs.select_related("completed_by", "created_by").order_by("-created_at", "-id")
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    history = template_histories(templates=[template], now=timezone.now())[0]
    return render(
        request,
        "ops/checklists/template_detail.html",
        {
            "template": template,
            "items": template_items_ordered(template=template),
            "page": page,
            "history": history,
            "can_start": request.user.has_perm("ops.start_checklistrun"),
        },
    )


@require_POST
def run_start(request: HttpRequest) -> HttpResponse:
    template = get_object_or_404(ChecklistTemplate, slug=request.POST.get("template", ""))
    try:
        run = checklist_run_start(
            template=template, user=request.user, label=request.POST.get("label", "")
        )
    except ActionRefused as refused:
        messages.error(request, refused.message)
        return redirect(template)
    messages.success(request, f"Started “{run}”.")
    if wants_fragment(request):
        return HttpResponseClientRedirect(run.get_absolute_url())
    return redirect(run)


def _get_run_for_user(request: HttpRequest, pk: int) -> ChecklistRun:
    if not request.user.has_perm("ops.view_checklistrun"):
        raise PermissionDenied("You may not see checklist runs.")
    return get_object_or_404(
        ChecklistRun.objects.select_related("template", "completed_by", "created_by", "incident"),
        pk=pk,
    )


def _run_context(request: HttpRequest, run: ChecklistRun, **extra) -> dict:
    now = timezone.now()
    return {
        "run": run,
        "now": now,
        "kpi_evidence": run_kpi_evidence(run=run, now=now),
        "can_tick": request.user.has_perm("ops.tick_checklistrun"),
        "poll_seconds": settings.CHECKLIST_POLL_SECONDS,
        **extra,
    }


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run_for_user(request, pk)
    return render(request, RUN_PAGE, _run_context(request, run, items=run_items(run=run)))


@require_GET
def run_poll(request: HttpRequest, pk: int) -> HttpResponse:
    """What changed since the version the page shows: 204 when nothing did; otherwise the
    changed rows and the progress out of band, and a poller that asks from the new version."""
    run = _get_run_for_user(request, pk)
    try:
        since = max(0, int(request.GET.get("since", "0")))
    except ValueError:
        return HttpResponse("since must be a whole number", status=400)
    if since >= run.version and not run.is_complete:
        return HttpResponse(status=204)
    context = _run_context(request, run, oob=True)
    parts = [(f"{RUN_PAGE}#run-poller", context), (f"{RUN_PAGE}#run-progress", context)]
    # Once the run is complete every row changes: its box locks.
    changed = (
        run_items(run=run) if run.is_complete else run_items_changed_since(run=run, version=since)
    )
    parts += [(f"{RUN_PAGE}#run-item", {**context, "item": item}) for item in changed]
    response = render_fragments(request, parts)
    if run.is_complete:
        response.status_code = HttpResponseStopPolling.status_code
    return response


def _item_response(
    request: HttpRequest, run: ChecklistRun, item: RunItem, *, error: str = "", status: int = 200
) -> HttpResponse:
    if not wants_fragment(request):
        if error:
            messages.error(request, error)
        response = redirect(run)
        response.status_code = 303 if status < 400 else status
        return response if status < 400 else HttpResponse(error, status=status)
    context = _run_context(request, run)
    parts = [(f"{RUN_PAGE}#run-item", {**context, "item": item, "error": error})]
    oob = {**context, "oob": True}
    parts.append((f"{RUN_PAGE}#run-progress", oob))
    if run.is_complete and not error:
        # The run just closed: every row loses its controls.
        parts += [
            (f"{RUN_PAGE}#run-item", {**oob, "item": other})
            for other in run_items(run=run)
            if other.pk != item.pk
        ]
    return render_fragments(request, parts, status=status)


def _item_action(request: HttpRequest, pk: int, item_pk: int, action) -> HttpResponse:
    run = _get_run_for_user(request, pk)
    item = get_object_or_404(RunItem.objects.select_related("done_by"), pk=item_pk, run=run)
    try:
        item = action(item)
    except PermissionDenied as denied:
        return _item_response(request, run, item, error=str(denied), status=403)
    except ActionRefused as refused:
        run.refresh_from_db()
        return _item_response(request, run, item, error=refused.message, status=refused.status)
    return _item_response(request, item.run, item)


@require_POST
def item_tick(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """The checkbox: checked sends done=1 (tick), unchecked sends nothing (untick)."""
    state = ItemState.DONE if request.POST.get("done") else ItemState.OPEN
    note = request.POST.get("note", "")
    return _item_action(
        request,
        pk,
        item_pk,
        lambda item: checklist_item_set_state(item=item, user=request.user, state=state, note=note),
    )


@require_POST
def item_skip(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    reason = request.POST.get("reason", "")
    return _item_action(
        request,
        pk,
        item_pk,
        lambda item: checklist_item_set_state(
            item=item, user=request.user, state=ItemState.SKIPPED, reason=reason
        ),
    )


@require_POST
def item_note(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    note = request.POST.get("note", "")
    return _item_action(
        request,
        pk,
        item_pk,
        lambda item: checklist_item_note(item=item, user=request.user, note=note),
    )
