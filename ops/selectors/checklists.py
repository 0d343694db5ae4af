"""Reads for checklist pages. Every function runs a fixed number of queries, whatever the
number of templates, runs or items."""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from ops.models import ChecklistItem, ChecklistRun, ChecklistTemplate, RunItem
from ops.models.checklists import RunStatus

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
    return list(_runs().filter(in_period | on_demand).order_by("due_at", "created_at", "id"))


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
    *, templates: list[ChecklistTemplate], now: datetime, days: int = HISTORY_DAYS
) -> list[TemplateHistory]:
    """For each template, its last ``days`` days: completion rate of runs that had to be done
    (complete, or past their period), median time from first tick to completion, who completed
    them, and a strip of the latest runs."""
    histories = {template.pk: TemplateHistory(template=template) for template in templates}
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
        )
    )
    for pk, template_id, status, created, started, completed, period_end, who in rows:
        history = histories[template_id]
        done = status == RunStatus.COMPLETED
        past = period_end is not None and period_end <= now
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


def templates_listed(*, query: str = "") -> tuple[list[ChecklistTemplate], list[ChecklistTemplate]]:
    """The checklists page: live templates (active first), and apart from them the retired
    ones, most recently retired first. ``query`` searches names, context and source names."""
    templates = ChecklistTemplate.objects.select_related("source")
    if query:
        templates = templates.filter(
            Q(name__icontains=query)
            | Q(context__icontains=query)
            | Q(source__name__icontains=query)
        )
    live = list(templates.filter(retired_at__isnull=True).order_by("-is_active", "cadence", "name"))
    retired = list(templates.filter(retired_at__isnull=False).order_by("-retired_at", "name"))
    return live, retired


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
    from ops.models import Kpi
    from ops.selectors.health import kpi_values

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
