"""Checklist pages: today, templates, runs, and the htmx endpoints that tick items."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from ops.models import ChecklistRun, ChecklistTemplate, ItemState, RunItem
from ops.selectors.checklists import (
    run_items,
    run_items_changed_since,
    run_kpi_evidence,
    template_histories,
    template_items_ordered,
)
from ops.services.checklists import (
    checklist_item_note,
    checklist_item_set_state,
    checklist_run_start,
)
from portal.htmx import attempt, back_to, render_fragments, wants_fragment
from portal.registry import registry

RUN_PAGE = "ops/checklists/run_detail.html"
RUNS_PER_PAGE = 25

view_runs = permission_required("ops.view_checklistrun", raise_exception=True)


@require_GET
@permission_required("ops.view_checklisttemplate", raise_exception=True)
def template_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    templates = ChecklistTemplate.objects.order_by("-is_active", "cadence", "name")
    query = request.GET.get("q", "").strip()
    if query:
        templates = templates.filter(
            Q(name__icontains=query) | Q(context__icontains=query) | Q(source_file__icontains=query)
        )
    templates = list(templates)
    return render(
        request,
        "ops/checklists/template_list.html",
        {
            "histories": template_histories(templates=templates, now=now),
            "query": query,
            "can_start": request.user.has_perm("ops.start_checklistrun"),
        },
    )


@require_GET
@permission_required("ops.view_checklisttemplate", raise_exception=True)
def template_detail(request: HttpRequest, slug: str) -> HttpResponse:
    template = get_object_or_404(ChecklistTemplate, slug=slug)
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
    run, refusal = attempt(
        lambda: checklist_run_start(
            template=template, user=request.user, label=request.POST.get("label", "")
        )
    )
    if refusal is not None:
        return back_to(request, template, refusal)
    return back_to(request, run, None, done=f"Started “{run}”.")


def _get_run_for_user(request: HttpRequest, pk: int) -> ChecklistRun:
    if not request.user.has_perm("ops.view_checklistrun"):
        raise PermissionDenied("You may not see checklist runs.")
    return get_object_or_404(
        ChecklistRun.objects.select_related("template", "completed_by", "created_by", "incident"),
        pk=pk,
    )


def _run_owners(run: ChecklistRun) -> list[tuple[str, str]]:
    """Where the run belongs (a maintenance window, a task), as (text, url) from the registry;
    the incident has its own crumb."""
    return [
        owner.describe(run)
        for owner, _owner_id in registry.owners_of(run)
        if owner.describe is not None and owner.field != "incident"
    ]


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
    return render(
        request,
        RUN_PAGE,
        _run_context(request, run, items=run_items(run=run), run_owners=_run_owners(run)),
    )


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
    changed, refusal = attempt(lambda: action(item))
    if refusal is not None:
        run.refresh_from_db()
        return _item_response(request, run, item, error=refusal.message, status=refusal.status)
    return _item_response(request, changed.run, changed)


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
