"""Reads for checklist pages. Every function runs a fixed number of queries, whatever the
number of templates, runs or items."""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from ops.models import ChecklistItem, ChecklistRun, ChecklistTemplate, Kpi, RunItem
from ops.models.checklists import RunStatus
from ops.selectors.health import kpi_values
from portal.registry import registry

HISTORY_DAYS = 30
ATTENTION_DAYS = 14
STRIP_LENGTH = 14


def _runs() -> QuerySet[ChecklistRun]:
    return ChecklistRun.objects.select_related("template", "completed_by", "created_by")


def runs_current(*, now: datetime) -> list[ChecklistRun]:
    """Runs of the period we are in, plus on-demand runs still open or started today."""
    local_midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    in_period = Q(period_start__lte=now, period_end__gt=now)
    on_demand = Q(period_start__isnull=True) & (
        Q(status=RunStatus.OPEN) | Q(created_at__gte=local_midnight)
    )
    return list(
        _runs()
        .filter(in_period | on_demand)
        .exclude(status=RunStatus.CANCELLED)
        .order_by("due_at", "created_at", "id")
    )


def run_visible(*, run: ChecklistRun, user) -> bool:
    """A run that belongs to something (an incident) is visible only to who may see that."""
    return all(
        owner.may_view is None or owner.may_view(user, owner_id)
        for owner, owner_id in registry.owners_of(run)
    )


def runs_visible(*, runs: list[ChecklistRun], user) -> list[ChecklistRun]:
    return [run for run in runs if run_visible(run=run, user=user)]


def runs_visible_queryset(*, runs: QuerySet[ChecklistRun], user) -> QuerySet[ChecklistRun]:
    """The same rule for a paginated list: one query for all registered owners (the owners
    the runs belong to), then one exclusion per owner with runs the user may not see."""
    owners = [owner for owner in registry.run_owners if owner.may_view is not None]
    if not owners:
        return runs
    fields = [f"{owner.field}_id" for owner in owners]
    owned = Q()
    for owner in owners:
        owned |= Q(**{f"{owner.field}__isnull": False})
    rows = runs.filter(owned).order_by().values_list(*fields).distinct()
    ids: dict[str, set[int]] = {name: set() for name in fields}
    for row in rows:
        for name, owner_id in zip(fields, row, strict=True):
            if owner_id is not None:
                ids[name].add(owner_id)
    for owner, name in zip(owners, fields, strict=True):
        hidden = [owner_id for owner_id in ids[name] if not owner.may_view(user, owner_id)]
        if hidden:
            runs = runs.exclude(**{f"{name}__in": hidden})
    return runs


def runs_needing_attention(*, now: datetime) -> list[ChecklistRun]:
    """Runs of past periods left incomplete (yesterday's evening check), newest first."""
    return list(
        _runs()
        .filter(
            status=RunStatus.OPEN,
            period_end__lte=now,
            period_end__gt=now - timedelta(days=ATTENTION_DAYS),
        )
        .order_by("-period_start", "id")
    )


@dataclass
class TemplateHistory:
    template: ChecklistTemplate
    finished: int = 0
    completed: int = 0
    durations: list[timedelta] = field(default_factory=list)
    completers: Counter = field(default_factory=Counter)
    strip: list[dict] = field(default_factory=list)

    @property
    def completion_rate(self) -> int | None:
        return round(100 * self.completed / self.finished) if self.finished else None

    @property
    def median_duration(self) -> timedelta | None:
        return statistics.median(self.durations) if self.durations else None

    @property
    def who(self) -> list[str]:
        return [name for name, _count in self.completers.most_common(3)]


def template_histories(
    *, templates: list[ChecklistTemplate], now: datetime, days: int = HISTORY_DAYS, user=None
) -> list[TemplateHistory]:
    """For each template, its last ``days`` days: completion rate of runs that had to be done
    (complete, or past their period), median time from first tick to completion, who completed
    them, and a strip of the latest runs."""
    histories = {template.pk: TemplateHistory(template=template) for template in templates}
    owners = [owner for owner in registry.run_owners if owner.may_view is not None]
    owner_fields = [f"{owner.field}_id" for owner in owners]
    rows = (
        ChecklistRun.objects.filter(template__in=templates, created_at__gte=now - timedelta(days))
        .order_by("-created_at", "-id")
        .values_list(
            "pk",
            "template_id",
            "status",
            "created_at",
            "started_at",
            "completed_at",
            "period_end",
            "completed_by__username",
            *owner_fields,
        )
    )
    seen: dict[tuple[str, int], bool] = {}
    for pk, template_id, status, created, started, completed, period_end, who, *owned in rows:
        if user is not None and not _may_view_owners(user, owners, owned, seen):
            continue  # a run of something the user may not see is not in their strip either
        history = histories[template_id]
        done = status == RunStatus.COMPLETED
        cancelled = status == RunStatus.CANCELLED
        past = period_end is not None and period_end <= now
        if cancelled:
            if len(history.strip) < STRIP_LENGTH:
                history.strip.append({"pk": pk, "state": "cancelled", "created_at": created})
            continue
        if done or past:
            history.finished += 1
        if done:
            history.completed += 1
            history.durations.append(completed - (started or created))
            if who:
                history.completers[who] += 1
        if len(history.strip) < STRIP_LENGTH:
            state = "done" if done else ("missed" if past else "open")
            history.strip.append({"pk": pk, "state": state, "created_at": created})
    for history in histories.values():
        history.strip.reverse()
    return list(histories.values())


def _may_view_owners(user, owners, owner_ids, seen: dict) -> bool:
    for owner, owner_id in zip(owners, owner_ids, strict=True):
        if owner_id is None:
            continue
        key = (owner.field, owner_id)
        if key not in seen:
            seen[key] = owner.may_view(user, owner_id)
        if not seen[key]:
            return False
    return True


def active_templates() -> list[ChecklistTemplate]:
    return list(ChecklistTemplate.objects.filter(is_active=True).order_by("cadence", "name"))


def _run_items(run: ChecklistRun) -> QuerySet[RunItem]:
    return run.items.select_related("done_by", "evidence_service").order_by("position")


def run_items(*, run: ChecklistRun) -> list[RunItem]:
    return list(_run_items(run))


def run_items_changed_since(*, run: ChecklistRun, version: int) -> list[RunItem]:
    return list(_run_items(run).filter(rev__gt=version))


def run_kpi_evidence(*, run: ChecklistRun, now: datetime) -> dict:
    """The live value of every KPI an item of the run is linked to, by KPI id: one query when
    none is, and one per linked KPI otherwise (never per item)."""
    kpis = list(Kpi.objects.filter(pk__in=run.items.values("evidence_kpi")).distinct())
    return {value.kpi.pk: value for value in kpi_values(now=now, kpis=kpis)} if kpis else {}


def template_items_ordered(*, template: ChecklistTemplate) -> list[tuple[ChecklistItem, int]]:
    """The template's items depth-first: unsectioned first, then section by section."""
    items = list(template.items.select_related("section").order_by("position", "id"))
    children: dict[int | None, list[ChecklistItem]] = defaultdict(list)
    for item in items:
        children[item.parent_id].append(item)
    roots = sorted(
        children[None],
        key=lambda item: (
            (item.section.position, item.section_id) if item.section else (-1, 0),
            item.position,
            item.id,
        ),
    )
    ordered: list[tuple[ChecklistItem, int]] = []

    def visit(item: ChecklistItem, depth: int) -> None:
        ordered.append((item, depth))
        for child in children[item.id]:
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return ordered
