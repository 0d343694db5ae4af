"""Checklist pages: today, templates, runs, and the htmx endpoints that tick items."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from ops.models import ChecklistRun, ChecklistTemplate, ItemState, RunItem
from ops.selectors.checklists import (
    run_items,
    run_items_changed_since,
    run_kpi_evidence,
    run_visible,
    runs_visible_queryset,
    template_histories,
    template_items_ordered,
    templates_listed,
)
from ops.services.checklists import (
    checklist_item_note,
    checklist_item_set_state,
    checklist_run_cancel,
    checklist_run_start,
    checklist_run_undo,
    undo_grace,
)
from portal.htmx import attempt, back_to, render_fragments, wants_fragment
from portal.polling import poll_grant, poll_since, poll_unchanged
from portal.registry import registry

RUN_PAGE = "ops/checklists/run_detail.html"
RUNS_PER_PAGE = 25

view_runs = permission_required("ops.view_checklistrun", raise_exception=True)


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
            "histories": template_histories(templates=live, now=now, user=request.user),
            "retired": retired,
            "query": query,
            "can_start": request.user.has_perm("ops.start_checklistrun"),
        },
    )


@require_GET
@permission_required("ops.view_checklisttemplate", raise_exception=True)
def template_detail(request: HttpRequest, slug: str) -> HttpResponse:
    template = get_object_or_404(ChecklistTemplate.objects.select_related("source"), slug=slug)
    runs = runs_visible_queryset(
        runs=template.runs.select_related("completed_by", "created_by").order_by(
            "-created_at", "-id"
        ),
        user=request.user,
    )
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    history = template_histories(templates=[template], now=timezone.now(), user=request.user)[0]
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
    run = get_object_or_404(
        ChecklistRun.objects.select_related(
            "template", "completed_by", "created_by", "cancelled_by"
        ),
        pk=pk,
    )
    if not run_visible(run=run, user=request.user):
        # Not even its owner's name: a run of something you may not see does not exist for you.
        raise Http404("No such checklist run.")
    return run


def _owner_of(run: ChecklistRun) -> tuple[str, str] | None:
    for owner, _owner_id in registry.owners_of(run):
        if owner.describe is not None:
            return owner.describe(run)
    return None


def _may_cancel(user, run: ChecklistRun) -> bool:
    if not run.is_open or registry.owners_of(run):
        return False
    perm = "ops.start_checklistrun" if run.period_start is None else "ops.cancel_checklistrun"
    return user.has_perm(perm)


def _is_final(run: ChecklistRun, now) -> bool:
    """Nothing will change any more: cancelled, or complete past the undo grace period."""
    until = run.undo_until(undo_grace())
    return run.is_cancelled or (until is not None and now > until)


def _run_context(request: HttpRequest, run: ChecklistRun, **extra) -> dict:
    now = timezone.now()
    until = run.undo_until(undo_grace())
    return {
        "run": run,
        "now": now,
        "owner": _owner_of(run),
        "kpi_evidence": run_kpi_evidence(run=run, now=now),
        "can_tick": request.user.has_perm("ops.tick_checklistrun"),
        "can_cancel": _may_cancel(request.user, run),
        "can_undo": until is not None
        and now <= until
        and run.completed_by_id == request.user.pk
        and request.user.has_perm("ops.tick_checklistrun"),
        "undo_until": until,
        "is_final": _is_final(run, now),
        "poll_seconds": settings.CHECKLIST_POLL_SECONDS,
        **extra,
    }


def _grant_polls(request: HttpRequest, run: ChecklistRun, context: dict) -> None:
    """Let this user's polls of an open run be answered from the cache while nothing
    changes. A completed run's polls are answered in full during its undo grace (a few
    minutes), so the one after the grace ends stops them."""
    if run.is_open:
        poll_grant(request, "run", run.pk, run.version)


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run_for_user(request, pk)
    context = _run_context(request, run, items=run_items(run=run))
    _grant_polls(request, run, context)
    return render(request, RUN_PAGE, context)


@require_GET
def run_poll(request: HttpRequest, pk: int) -> HttpResponse:
    """What changed since the version the page shows: 204 when nothing did (from the cache
    when it knows, see portal.polling); otherwise the changed rows and the progress out of
    band, and a poller that asks from the new version."""
    since = poll_since(request)
    if since is None:
        return HttpResponse("since must be a whole number", status=400)
    if poll_unchanged(request, "run", pk, since):
        return HttpResponse(status=204)
    run = _get_run_for_user(request, pk)
    context = _run_context(request, run, oob=True)
    _grant_polls(request, run, context)
    if since >= run.version and not context["is_final"]:
        return HttpResponse(status=204)
    parts = [
        (f"{RUN_PAGE}#run-poller", context),
        (f"{RUN_PAGE}#run-progress", context),
        (f"{RUN_PAGE}#run-actions", context),
    ]
    # Once the run is complete or cancelled every row changes: its box locks.
    changed = (
        run_items(run=run) if not run.is_open else run_items_changed_since(run=run, version=since)
    )
    parts += [(f"{RUN_PAGE}#run-item", {**context, "item": item}) for item in changed]
    response = render_fragments(request, parts)
    if context["is_final"]:
        response.status_code = HttpResponseStopPolling.status_code
    return response


def _item_response(
    request: HttpRequest,
    run: ChecklistRun,
    item: RunItem,
    *,
    error: str = "",
    status: int = 200,
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
    parts += [(f"{RUN_PAGE}#run-progress", oob), (f"{RUN_PAGE}#run-actions", oob)]
    if not error and run.is_complete:
        # The run just closed: every row changes its controls.
        parts += [
            (f"{RUN_PAGE}#run-item", {**oob, "item": other})
            for other in run_items(run=run)
            if other.pk != item.pk
        ]
    elif not error:
        parent = _parent_to_offer(item)
        if parent is not None:
            parts.append((f"{RUN_PAGE}#run-item", {**oob, "item": parent, "offer": True}))
    return render_fragments(request, parts, status=status)


def _parent_to_offer(item: RunItem) -> RunItem | None:
    """Ticking the last open sub-item offers its parent, still open, to be ticked."""
    if item.parent_id is None or item.state == ItemState.OPEN:
        return None
    parent = RunItem.objects.select_related("done_by", "evidence_service").get(pk=item.parent_id)
    if parent.state != ItemState.OPEN or parent.children.filter(state=ItemState.OPEN).exists():
        return None
    return parent


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


@require_POST
def run_undo(request: HttpRequest, pk: int) -> HttpResponse:
    """The last actor takes back the tick or skip that completed the run (grace period)."""
    run = _get_run_for_user(request, pk)
    item, refusal = attempt(lambda: checklist_run_undo(run=run, user=request.user))
    if not wants_fragment(request):
        return back_to(request, run, refusal, done=f"Undone: {item.text}" if item else "")
    run = _get_run_for_user(request, pk)
    if refusal is not None:
        return render_fragments(
            request,
            [(f"{RUN_PAGE}#run-actions", _run_context(request, run, action_error=refusal.message))],
            status=refusal.status,
        )
    context = _run_context(request, run)
    oob = {**context, "oob": True}
    parts = [(f"{RUN_PAGE}#run-actions", context), (f"{RUN_PAGE}#run-progress", oob)]
    parts += [(f"{RUN_PAGE}#run-item", {**oob, "item": item}) for item in run_items(run=run)]
    parts.append((f"{RUN_PAGE}#run-poller", oob))
    return render_fragments(request, parts)


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run_for_user(request, pk)
    reason = request.POST.get("reason", "")
    _, refusal = attempt(lambda: checklist_run_cancel(run=run, user=request.user, reason=reason))
    if not wants_fragment(request):
        return back_to(request, run, refusal, done=f"Cancelled “{run}”.")
    run = _get_run_for_user(request, pk)
    context = _run_context(
        request,
        run,
        action_error=refusal.message if refusal else "",
        reason=reason if refusal else "",
    )
    oob = {**context, "oob": True}
    parts = [(f"{RUN_PAGE}#run-actions", context)]
    if refusal is None:
        parts += [(f"{RUN_PAGE}#run-progress", oob), (f"{RUN_PAGE}#run-poller", oob)]
        parts += [(f"{RUN_PAGE}#run-item", {**oob, "item": item}) for item in run_items(run=run)]
    return render_fragments(request, parts, status=refusal.status if refusal else 200)
