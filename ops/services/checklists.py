"""Writes for checklists: opening runs (scheduled or on demand) and ticking their items."""

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ops.models import ChecklistRun, ChecklistTemplate, ItemState, Kpi, MonitoredService, RunItem
from ops.models.checklists import Cadence, RunStatus
from ops.selectors.checklists import template_items_ordered
from ops.selectors.health import kpi_values
from portal.caching import topic_changed
from portal.errors import ActionRefused
from portal.formatting import duration
from portal.permissions import require_perm
from portal.polling import version_publish
from portal.registry import registry
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
            due_at=(
                run.created_at + timedelta(minutes=item.due_after_minutes)
                if item.due_after_minutes is not None
                else None
            ),
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
    owner: dict | None = None,
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
        **(owner or {}),
    )
    run.items_total = _copy_items(run, template)
    if run.items_total == 0:
        # Nothing to tick: complete at once rather than leave a run nobody can finish.
        run.status = RunStatus.COMPLETED
        run.completed_at = now
    run.save(update_fields=["items_total", "status", "completed_at"])
    _runs_changed()
    return run


def _runs_changed() -> None:
    """Today's cached history is computed again: now (for this transaction's own reads) and
    after the commit (a request that read the old rows meanwhile may have cached them)."""
    topic_changed("checklists")
    transaction.on_commit(lambda: topic_changed("checklists"))


def open_owned_run(
    *, template: ChecklistTemplate, now: datetime, label: str, owner: dict
) -> ChecklistRun:
    """Open a run that belongs to something (``owner`` names the run's foreign key, e.g.
    ``{"maintenance_window": window}``), opened by the scheduler rather than a person."""
    return _open_run(template=template, now=now, label=label, owner=owner)


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
def checklist_run_start(
    *, template: ChecklistTemplate, user, label: str = "", by_system: bool = False
) -> ChecklistRun:
    """An operator starts a run now, e.g. "pre-deployment v1.2.3". ``by_system`` (with no
    user): the portal starts it itself, e.g. the playbook of an alert that fired."""
    if not (by_system and user is None):
        require_perm(user, "ops.start_checklistrun", "You may not start checklist runs.")
    label = label.strip()
    if not label:
        raise ActionRefused(
            "Give the run a label that says what it is for, e.g. “pre-deployment v1.2.3”."
        )
    if len(label) > MAX_LABEL:
        raise ActionRefused(f"The label is too long ({len(label)} characters; at most 200).")
    if not template.is_active:
        raise ActionRefused(f"“{template.name}” is inactive; an admin can reactivate it.")
    run = _open_run(template=template, now=timezone.now(), label=label, user=user)
    audit_record(actor=user, action="checklist.run.start", target=run, after={"label": label})
    return run


def _refuse_if_frozen(run: ChecklistRun) -> None:
    """An owner may freeze its runs (a closed incident): asked before the run is locked, as
    the owner may lock its own row first."""
    for owner, owner_id in registry.owners_of(run):
        if owner.frozen is not None:
            reason = owner.frozen(owner_id)
            if reason:
                raise ActionRefused(reason, status=409)


def _refuse_if_cancelled(run: ChecklistRun) -> None:
    if run.is_cancelled:
        raise ActionRefused(
            f"This run was cancelled ({run.cancel_reason}): its items can no longer be changed.",
            status=409,
        )


def _locked_run(run_id: int, *, completed_ok: bool = False) -> ChecklistRun:
    """The run, locked for this transaction, once its owners allow a change."""
    _refuse_if_frozen(ChecklistRun.objects.only(*_owner_fields()).get(pk=run_id))
    run = ChecklistRun.objects.select_for_update().get(pk=run_id)
    _refuse_if_cancelled(run)
    if run.is_complete and not completed_ok:
        raise ActionRefused("This run is complete: its items can no longer be changed.", status=409)
    return run


def _owner_fields() -> list[str]:
    return ["pk", *(owner.field for owner in registry.run_owners)]


def undo_grace() -> timedelta:
    return timedelta(minutes=settings.CHECKLIST_UNDO_MINUTES)


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
    if run.is_complete and run.items_done < run.items_total:
        # An undo within the grace period: the run is open again.
        run.status = RunStatus.OPEN
        run.completed_at = None
        run.completed_by = None
        fields += ["status", "completed_at", "completed_by"]
    elif not run.is_complete and run.items_done == run.items_total:
        run.status = RunStatus.COMPLETED
        run.completed_at = now
        run.completed_by = user
        fields += ["status", "completed_at", "completed_by"]
    run.save(update_fields=fields)
    _publish_version(run)
    if "status" in fields:
        # Today's history counts completed and cancelled runs: a tick that leaves the run
        # open changes only the run's own progress (a live block).
        _runs_changed()


def _publish_version(run: ChecklistRun) -> None:
    """The run's row is locked here, so its version is the one this transaction commits."""
    version_publish("run", run.pk, run.version)


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
            summary=f"Completed in {duration(run.duration)}",
        )


def _tell_owners(run: ChecklistRun, item: RunItem, *, user, now: datetime) -> None:
    """A run that belongs to something (an incident's response checklist) tells its owner,
    which records it where it belongs (the incident's timeline)."""
    for owner, _owner_id in registry.owners_of(run):
        if owner.item_changed is not None:
            owner.item_changed(run=run, item=item, user=user, now=now)


def item_evidence(item: RunItem, *, now: datetime) -> dict | None:
    """What the item's linked service or KPI shows now, as stored with a tick."""
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
    run = _locked_run(item.run_id)
    item = RunItem.objects.select_related("done_by").get(pk=item.pk)
    if state == ItemState.DONE:
        _refuse_if_children_open(item)
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
    _tell_owners(run, item, user=user, now=now)
    action = {"done": "tick", "open": "untick", "skipped": "skip"}[state]
    _audit_item_change(run, item, user=user, action=action, before=before)
    item.run = run
    return item


def _refuse_if_children_open(item: RunItem) -> None:
    """Ticking a parent says its sub-items are done: it ticks nothing else, so they must be."""
    still_open = list(
        RunItem.objects.filter(parent_id=item.pk, state=ItemState.OPEN)
        .order_by("position")
        .values_list("text", flat=True)
    )
    if still_open:
        names = ", ".join(f"“{text}”" for text in still_open[:3])
        more = f" and {len(still_open) - 3} more" if len(still_open) > 3 else ""
        raise ActionRefused(
            f"Tick or skip its sub-items first: {names}{more} "
            f"{'is' if len(still_open) == 1 else 'are'} still open.",
            status=409,
        )


@transaction.atomic
def checklist_item_note(*, item: RunItem, user, note: str) -> RunItem:
    """On an open run the note is the item's note (replaced); on a completed run a note is
    appended, signed and dated, after what is there: history is never edited."""
    require_perm(user, "ops.tick_checklistrun", "You may not annotate checklist items.")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ActionRefused(f"The note is too long ({len(note)} characters; at most 2000).")
    run = _locked_run(item.run_id, completed_ok=True)
    item = RunItem.objects.select_related("done_by").get(pk=item.pk)
    before = _item_snapshot(item)
    now = timezone.now()
    if run.is_complete:
        if not note:
            raise ActionRefused("Write the note first.")
        signed = f"{user.get_username()}, {timezone.localtime(now):%Y-%m-%d %H:%M}: {note}"
        item.note = f"{item.note}\n\n{signed}" if item.note else signed
        action = "note.append"
    else:
        item.note = note
        action = "note"
    _settle(run, item, user=user, now=now)
    _audit_item_change(run, item, user=user, action=action, before=before)
    item.run = run
    return item


@transaction.atomic
def checklist_run_undo(*, run: ChecklistRun, user, now: datetime | None = None) -> RunItem:
    """Within CHECKLIST_UNDO_MINUTES of completing a run, whoever completed it may undo the
    last tick or skip: the item is open again, and so is the run."""
    require_perm(user, "ops.tick_checklistrun", "You may not tick checklist items.")
    now = now or timezone.now()
    run = _locked_run(run.pk, completed_ok=True)
    if not run.is_complete:
        raise ActionRefused("The run is still open: untick the item instead.", status=409)
    until = run.undo_until(undo_grace())
    if until is None or now > until:
        raise ActionRefused(
            f"The run was completed more than {settings.CHECKLIST_UNDO_MINUTES} minutes ago: "
            "its last tick can no longer be undone (notes can still be added).",
            status=409,
        )
    item = run.items.select_related("done_by").order_by("-rev", "-position").first()
    if item is None or item.state == ItemState.OPEN:
        raise ActionRefused("There is no tick or skip to undo.", status=409)
    if run.completed_by_id != user.pk or item.done_by_id != user.pk:
        who = run.completed_by.get_username() if run.completed_by else "whoever completed it"
        raise ActionRefused(
            f"Only {who}, who completed the run, can undo its last tick.", status=403
        )
    before = _item_snapshot(item)
    undone = "skip" if item.state == ItemState.SKIPPED else "tick"
    item.state = ItemState.OPEN
    item.skip_reason = ""
    item.evidence = None
    item.done_by = None
    item.done_at = None
    _settle(run, item, user=user, now=now)
    _tell_owners(run, item, user=user, now=now)
    audit_record(
        actor=user,
        action="checklist.run.undo",
        target=run,
        summary=f"Undid the last {undone}: {item.text}"[:500],
        before=before,
        after=_item_snapshot(item),
    )
    item.run = run
    return item


@transaction.atomic
def checklist_run_cancel(
    *,
    run: ChecklistRun,
    user,
    reason: str,
    owner: str | None = None,
    now: datetime | None = None,
) -> ChecklistRun:
    """Close a run that will not be finished, with the reason. Operators cancel on-demand runs,
    managers scheduled ones. A run that belongs to something (an incident's response checklist)
    is cancelled by its owner only: ``owner`` names that owner's field (registered in
    portal.registry), and the owner's service has checked its own permission."""
    reason = (reason or "").strip()
    if owner is None:
        if run.period_start is None:
            require_perm(user, "ops.start_checklistrun", "You may not cancel checklist runs.")
        else:
            require_perm(
                user, "ops.cancel_checklistrun", "Only a manager may cancel a scheduled run."
            )
        for known, _owner_id in registry.owners_of(run):
            text = known.describe(run)[0] if known.describe else "something else"
            raise ActionRefused(
                f"This run is the {text}: it is cancelled with it, not on its own.", status=409
            )
    elif registry.run_owner(owner).owner_id(run) is None:
        raise ActionRefused(f"This run does not belong to a {owner}.")
    if not reason:
        raise ActionRefused("Say why you cancel this run.")
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"The reason is too long ({len(reason)} characters; at most 500).")
    now = now or timezone.now()
    run = ChecklistRun.objects.select_for_update().get(pk=run.pk)
    if not run.is_open:
        raise ActionRefused(f"This run is already {run.get_status_display().lower()}.", status=409)
    before = {"status": run.status}
    run.status = RunStatus.CANCELLED
    run.cancelled_at = now
    run.cancelled_by = user
    run.cancel_reason = reason
    run.version += 1
    run.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason", "version"])
    _publish_version(run)
    _runs_changed()
    audit_record(
        actor=user,
        action="checklist.run.cancel",
        target=run,
        summary=f"{run}: {reason}"[:500],
        before=before,
        after={"status": run.status, "reason": reason, "items_open": run.open_count},
    )
    return run
