"""Writes for checklists: opening runs (scheduled or on demand) and ticking their items."""

from collections import defaultdict
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ops.models import ChecklistRun, ChecklistTemplate, ItemState, RunItem
from ops.models.checklists import Cadence, RunStatus
from ops.selectors.checklists import template_items_ordered
from ops.services import incidents as incident_services
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record

MAX_NOTE = 2000
MAX_REASON = 500
MAX_LABEL = 200


def _copy_items(run: ChecklistRun, template: ChecklistTemplate) -> int:
    ordered = template_items_ordered(template=template)
    copies: dict[int, RunItem] = {}
    by_depth: dict[int, list[RunItem]] = defaultdict(list)
    for position, (item, depth) in enumerate(ordered):
        copy = RunItem(
            run=run,
            template_item=item,
            position=position,
            depth=depth,
            section=item.section.title if item.section else "",
            text=item.text,
            command=item.command,
            help_text=item.help_text,
            evidence_service_id=item.evidence_service_id,
            evidence_kpi_id=item.evidence_kpi_id,
        )
        copies[item.id] = copy
        by_depth[depth].append(copy)
    # Parents need their primary keys before their children are inserted: one insert a level.
    for depth in sorted(by_depth):
        for copy in by_depth[depth]:
            parent_id = copy.template_item.parent_id
            if parent_id is not None:
                copy.parent = copies[parent_id]
        RunItem.objects.bulk_create(by_depth[depth])
    return len(ordered)


def _open_run(
    *,
    template: ChecklistTemplate,
    now: datetime,
    period: tuple[datetime, datetime] | None = None,
    label: str = "",
    user=None,
) -> ChecklistRun:
    deadline = template.deadline_after_open
    opened_at = period[0] if period else now
    run = ChecklistRun.objects.create(
        template=template,
        title=template.name,
        label=label,
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
        due_at=opened_at + deadline if deadline else None,
        created_at=now,
        created_by=user,
    )
    run.items_total = _copy_items(run, template)
    if run.items_total == 0:
        # Nothing to tick: complete at once rather than leave a run nobody can finish.
        run.status = RunStatus.COMPLETED
        run.completed_at = now
    run.save(update_fields=["items_total", "status", "completed_at"])
    return run


def checklist_runs_schedule(*, now: datetime | None = None) -> list[ChecklistRun]:
    """Open the run of every scheduled template whose period has started and has no run yet.

    Safe to call from several schedulers at once: the unique constraint on (template,
    period_start) lets only one insert win; the others skip that template."""
    now = now or timezone.now()
    opened: list[ChecklistRun] = []
    due = (
        ChecklistTemplate.objects.filter(is_active=True)
        .exclude(cadence=Cadence.ON_DEMAND)
        .filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
    )
    for template in due:
        start, end = template.period_at(now)
        # A template edited mid-period (a later due time) must not open a second run for a
        # span another run already covers.
        covered = template.runs.filter(period_start__lt=end, period_end__gt=start).exists()
        # A template that never ran (a fresh install, a new checklist) starts with the first
        # period it can still be done in, not with one already overdue before it existed.
        deadline = template.deadline_after_open
        late_start = deadline is not None and start + deadline < now and not template.runs.exists()
        if not covered and not late_start:
            try:
                with transaction.atomic():
                    run = _open_run(template=template, now=now, period=(start, end))
                    audit_record(
                        actor=None,
                        action="checklist.run.open",
                        target=run,
                        summary=f"Scheduled run for the period starting {start:%Y-%m-%d %H:%M}",
                    )
                opened.append(run)
            except IntegrityError:
                pass  # another scheduler opened this period's run first
        ChecklistTemplate.objects.filter(pk=template.pk).update(next_run_at=end)
    return opened


@transaction.atomic
def checklist_run_start(*, template: ChecklistTemplate, user, label: str = "") -> ChecklistRun:
    """An operator starts a run now, e.g. "pre-deployment v1.2.3"."""
    require_perm(user, "ops.start_checklistrun", "You may not start checklist runs.")
    label = label.strip()
    if len(label) > MAX_LABEL:
        raise ActionRefused(f"The label is too long ({len(label)} characters; at most 200).")
    if not template.is_active:
        raise ActionRefused(f"“{template.name}” is inactive; an admin can reactivate it.")
    run = _open_run(template=template, now=timezone.now(), label=label, user=user)
    audit_record(actor=user, action="checklist.run.start", target=run, after={"label": label})
    return run


def _locked_run_for(item: RunItem) -> ChecklistRun:
    run = ChecklistRun.objects.select_for_update().get(pk=item.run_id)
    if run.is_complete:
        raise ActionRefused("This run is complete: its items can no longer be changed.", status=409)
    return run


def _item_snapshot(item: RunItem) -> dict:
    return {
        "state": item.state,
        "note": item.note,
        "skip_reason": item.skip_reason,
        "done_by": item.done_by.get_username() if item.done_by else None,
    }


def _settle(run: ChecklistRun, item: RunItem, *, user, now: datetime) -> None:
    """Save the item as the run's next version and complete the run if nothing is left."""
    run.version += 1
    item.rev = run.version
    item.save()
    run.items_done = run.items.exclude(state=ItemState.OPEN).count()
    if run.started_at is None and item.state != ItemState.OPEN:
        run.started_at = now
    fields = ["version", "items_done", "started_at"]
    if run.items_done == run.items_total:
        run.status = RunStatus.COMPLETED
        run.completed_at = now
        run.completed_by = user
        fields += ["status", "completed_at", "completed_by"]
    run.save(update_fields=fields)


def _audit_item_change(run: ChecklistRun, item: RunItem, *, user, action: str, before: dict):
    audit_record(
        actor=user,
        action=f"checklist.item.{action}",
        target=item,
        summary=f"{run}: {item.text_plain}"[:500],
        before=before,
        after=_item_snapshot(item),
    )
    if run.is_complete:
        audit_record(
            actor=user,
            action="checklist.run.complete",
            target=run,
            summary=f"Completed in {run.duration}",
        )


def item_evidence(item: RunItem, *, now: datetime) -> dict | None:
    """What the item's linked service or KPI shows now, as stored with a tick."""
    from ops.models import Kpi, MonitoredService
    from ops.selectors.health import kpi_values

    if item.evidence_service_id:
        service = MonitoredService.objects.filter(pk=item.evidence_service_id).first()
        if service is None:
            return None
        return {
            "source": "service",
            "name": service.name,
            "state": service.shown_state(now),
            "latency_ms": service.last_latency_ms,
            "detail": service.last_detail,
            "checked_at": service.last_checked_at.isoformat() if service.last_checked_at else None,
        }
    if item.evidence_kpi_id:
        kpi = Kpi.objects.filter(pk=item.evidence_kpi_id).first()
        if kpi is None:
            return None
        (value,) = kpi_values(now=now, kpis=[kpi])
        return {
            "source": "kpi",
            "name": kpi.name,
            "state": value.state,
            "value": value.value,
            "detail": value.label,
        }
    return None


@transaction.atomic
def checklist_item_set_state(
    *, item: RunItem, user, state: str, reason: str = "", note: str = ""
) -> RunItem:
    """Tick (done), untick (open) or skip an item; skipping needs a reason. Ticking an item
    whose live evidence is critical needs a note that says why it is ticked anyway."""
    require_perm(user, "ops.tick_checklistrun", "You may not tick checklist items.")
    if state not in ItemState.values:
        raise ActionRefused(f"Unknown item state {state!r}.")
    reason = reason.strip()
    if state == ItemState.SKIPPED:
        if not reason:
            raise ActionRefused("Say why you skip this item.")
        if len(reason) > MAX_REASON:
            raise ActionRefused(f"The reason is too long ({len(reason)} characters; at most 500).")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ActionRefused(f"The note is too long ({len(note)} characters; at most 2000).")
    run = _locked_run_for(item)
    item = RunItem.objects.select_related("done_by").get(pk=item.pk)
    before = _item_snapshot(item)
    now = timezone.now()
    evidence = item_evidence(item, now=now) if state == ItemState.DONE else None
    if evidence and evidence["state"] == "critical" and not note:
        raise ActionRefused(
            f"{evidence['name']} is critical ({evidence['detail'] or 'no detail'}). "
            "Add a note to tick this anyway.",
            status=409,
        )
    if note:
        item.note = note
    item.evidence = evidence
    item.state = state
    item.skip_reason = reason if state == ItemState.SKIPPED else ""
    item.done_by = user if state != ItemState.OPEN else None
    item.done_at = now if state != ItemState.OPEN else None
    _settle(run, item, user=user, now=now)
    if run.incident_id:
        # An incident's response checklist: the tick goes on the incident's timeline too.
        incident_services.incident_timeline_add_checklist_tick(
            run=run, item=item, user=user, now=now
        )
    action = {"done": "tick", "open": "untick", "skipped": "skip"}[state]
    _audit_item_change(run, item, user=user, action=action, before=before)
    item.run = run
    return item


@transaction.atomic
def checklist_item_note(*, item: RunItem, user, note: str) -> RunItem:
    require_perm(user, "ops.tick_checklistrun", "You may not annotate checklist items.")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ActionRefused(f"The note is too long ({len(note)} characters; at most 2000).")
    run = _locked_run_for(item)
    item = RunItem.objects.select_related("done_by").get(pk=item.pk)
    before = _item_snapshot(item)
    item.note = note
    _settle(run, item, user=user, now=timezone.now())
    _audit_item_change(run, item, user=user, action="note", before=before)
    item.run = run
    return item
