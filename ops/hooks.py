"""What the operations domains give the portal (portal.registry), registered by
OpsConfig.ready(): the Today blocks of incidents, checklists and health; the Prometheus gauges
of the monitored services and KPIs; the incident as an owner of checklist runs; the first-run
setup (default runbooks, demo monitoring of the portal itself, this period's runs)."""

from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils.text import slugify
from prometheus_client.core import GaugeMetricFamily

from ops.models import (
    ChecklistItem,
    ChecklistTemplate,
    Incident,
    MaintenanceTask,
    MaintenanceWindow,
    MonitoredService,
    ServiceKind,
)
from ops.runbooks.files import runbook_files_collect
from ops.runbooks.parser import RunbookError
from ops.selectors.checklists import (
    active_templates,
    runs_current,
    runs_needing_attention,
    runs_visible,
    template_histories,
)
from ops.selectors.health import health_checks_stopped, health_summary, health_tiles, kpi_values
from ops.selectors.incidents import incidents_open
from ops.selectors.maintenance import (
    calendar_task_events,
    calendar_window_events,
    calendar_window_series,
    services_in_maintenance,
    tasks_needing_attention,
    upcoming_occurrences,
)
from ops.selectors.runbooks import runbook_plan_build
from ops.selectors.status import incidents_on_status_page
from ops.services.checklists import checklist_runs_schedule
from ops.services.incident_notifications import notification_channels
from ops.services.incidents import incident_run_frozen, incident_run_item_changed
from ops.services.maintenance import (
    maintenance_defaults_load,
    maintenance_task_run_item_changed,
)
from ops.services.runbooks import runbook_plan_apply
from portal.registry import (
    CalendarSource,
    Registry,
    RunOwner,
    SetupFailed,
    SetupStep,
    TodayBlock,
)
from portal.services.audit import audit_record

DEFAULT_RUNBOOKS = Path(__file__).resolve().parent / "runbooks" / "defaults"
STATE_VALUES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


# Today


def _incidents_block(request: HttpRequest, now: datetime) -> dict | None:
    if not request.user.has_perm("ops.view_incident"):
        return None
    incidents = incidents_open()
    if not incidents:
        return None
    return {"open_incidents": incidents, "now": now, "notify_channels": notification_channels()}


def _once(request: HttpRequest, name: str, read):
    """What two blocks of one page both show (this period's runs, the active templates) is
    read once per request."""
    cache = request.__dict__.setdefault("_ops_today", {})
    if name not in cache:
        cache[name] = read()
    return cache[name]


def _runs_now(request: HttpRequest, now: datetime) -> list:
    return _once(
        request, "runs", lambda: runs_visible(runs=runs_current(now=now), user=request.user)
    )


def _templates(request: HttpRequest) -> list:
    return _once(request, "templates", active_templates)


def _attention_block(request: HttpRequest, now: datetime) -> dict | None:
    if not request.user.has_perm("ops.view_checklistrun"):
        return None
    overdue = [run for run in _runs_now(request, now) if run.is_overdue(now)]
    attention = runs_visible(runs=runs_needing_attention(now=now), user=request.user)
    if not overdue and not attention:
        return None
    return {"overdue_runs": overdue, "attention_runs": attention, "now": now}


def _health_block(request: HttpRequest, now: datetime) -> dict | None:
    """Counts by state and the tiles that are not ok."""
    if not request.user.has_perm("ops.view_health"):
        return None
    tiles = health_tiles(now=now)
    return {
        "health_summary": health_summary(tiles),
        "health_problems": [tile for tile in tiles if tile.state != "ok"],
        "health_count": len(tiles),
        "checks_stopped": health_checks_stopped(tiles=tiles, now=now),
        "now": now,
    }


def _current_block(request: HttpRequest, now: datetime) -> dict | None:
    if not request.user.has_perm("ops.view_checklistrun"):
        return None
    current = [run for run in _runs_now(request, now) if not run.is_overdue(now)]
    return {"current_runs": current, "now": now}


def _start_block(request: HttpRequest, now: datetime) -> dict | None:
    if not request.user.has_perm("ops.start_checklistrun"):
        return None
    return {"startable": _templates(request), "can_start": True}


def _history_block(request: HttpRequest, now: datetime) -> dict | None:
    if not request.user.has_perm("ops.view_checklistrun"):
        return None
    templates = _templates(request)
    return {
        "histories": template_histories(templates=templates, now=now, user=request.user),
        "can_start": request.user.has_perm("ops.start_checklistrun"),
    }


def _maintenance_block(request: HttpRequest, now: datetime) -> dict | None:
    """Overdue and due-this-week tasks, the windows of the coming week (and one going on)."""
    see_tasks = request.user.has_perm("ops.view_maintenancetask")
    see_windows = request.user.has_perm("ops.view_maintenancewindow")
    if not see_tasks and not see_windows:
        return None
    tasks = tasks_needing_attention(now=now) if see_tasks else []
    windows = upcoming_occurrences(now=now - timedelta(hours=12), days=7) if see_windows else []
    windows = [occurrence for occurrence in windows if occurrence.ends_at > now]
    if not tasks and not windows:
        return None
    return {"maintenance_tasks": tasks, "maintenance_windows": windows, "now": now}


def _status_block(request: HttpRequest, now: datetime) -> dict | None:
    """The open incidents on the status page (with their public title) and those that have
    said nothing there yet: customers may notice before the page says anything."""
    if not request.user.has_perm("ops.view_incident"):
        return None
    published, unpublished = incidents_on_status_page()
    if not unpublished and not published:
        return None
    return {
        "published": published,
        "unpublished": unpublished,
        "can_publish": request.user.has_perm("ops.update_incident"),
    }


# /metrics


def _health_metrics():
    """Service states, latencies, staleness, queue lengths and KPI values, from stored results."""
    labels = ["service", "kind"]
    state = GaugeMetricFamily(
        "portal_service_state",
        "Latest state of a monitored service: 0 ok, 1 warning, 2 critical, 3 unknown.",
        labels=labels,
    )
    latency = GaugeMetricFamily(
        "portal_service_latency_ms", "Latency of the latest check.", labels=labels
    )
    stale = GaugeMetricFamily(
        "portal_service_stale", "1 when no result came for three intervals.", labels=labels
    )
    queues = GaugeMetricFamily(
        "portal_queue_length", "Tasks waiting in a Celery queue.", labels=["service", "queue"]
    )
    maintenance = GaugeMetricFamily(
        "portal_service_maintenance",
        "1 while the service is inside a maintenance window (alert rules leave it out).",
        labels=labels,
    )
    in_maintenance = services_in_maintenance()
    for service in MonitoredService.objects.filter(is_active=True):
        values = [service.slug, service.kind]
        state.add_metric(values, STATE_VALUES.get(service.state, 3))
        maintenance.add_metric(values, int(service.pk in in_maintenance))
        stale.add_metric(values, int(service.is_stale()))
        if service.last_latency_ms is not None:
            latency.add_metric(values, service.last_latency_ms)
        for queue, length in (service.last_metrics.get("queues") or {}).items():
            queues.add_metric([service.slug, queue], length)
    kpi = GaugeMetricFamily("portal_kpi_value", "Current KPI value.", labels=["kpi", "metric"])
    kpi_state = GaugeMetricFamily(
        "portal_kpi_state",
        "KPI state: 0 ok, 1 warning, 2 critical, 3 no data.",
        labels=["kpi", "metric"],
    )
    for value in kpi_values():
        values = [value.kpi.name, value.kpi.metric]
        if value.value is not None:
            kpi.add_metric(values, value.value)
        kpi_state.add_metric(values, STATE_VALUES.get(value.state, 3))
    yield from (state, latency, stale, queues, maintenance, kpi, kpi_state)


# Runs owned by incidents


def _may_view_incident(user, incident_id: int) -> bool:
    return user.has_perm("ops.view_incident")


def _describe_incident(run) -> tuple[str, str]:
    incident = Incident.objects.only("pk", "title").get(pk=run.incident_id)
    return f"response checklist of {incident}", incident.get_absolute_url()


# Runs owned by maintenance windows and tasks


def _may_view_window(user, window_id: int) -> bool:
    return user.has_perm("ops.view_maintenancewindow")


def _describe_window(run) -> tuple[str, str]:
    window = MaintenanceWindow.objects.only("pk", "title").get(pk=run.maintenance_window_id)
    return f"checklist of the maintenance window {window}", window.get_absolute_url()


def _may_view_task(user, task_id: int) -> bool:
    return user.has_perm("ops.view_maintenancetask")


def _describe_task(run) -> tuple[str, str]:
    task = MaintenanceTask.objects.only("pk", "name").get(pk=run.maintenance_task_id)
    return f"checklist of the maintenance task {task}", task.get_absolute_url()


# The calendar


def _window_occurrences(*, user, start: datetime, end: datetime) -> list:
    if not user.has_perm("ops.view_maintenancewindow"):
        return []
    return calendar_window_events(start=start, end=end)


def _window_series(*, user, start: datetime, end: datetime) -> list:
    if not user.has_perm("ops.view_maintenancewindow"):
        return []
    return calendar_window_series(start=start, end=end)


def _task_events(*, user, start: datetime, end: datetime) -> list:
    if not user.has_perm("ops.view_maintenancetask"):
        return []
    return calendar_task_events(start=start, end=end)


# First run (setup_portal)


def _load_default_runbooks(*, demo: bool) -> str:
    """Named by file name alone (as they always were); unchanged files are skipped unread."""
    defaults = sorted(str(path) for path in DEFAULT_RUNBOOKS.glob("*.md"))
    try:
        found = runbook_files_collect(paths=defaults, root=str(DEFAULT_RUNBOOKS))
        plans = runbook_plan_build(files=found.files, root=found.root)
    except RunbookError as error:
        raise SetupFailed(f"A default runbook cannot be read: {error}") from error
    with transaction.atomic():
        runbook_plan_apply(plans=plans)
    count = ChecklistTemplate.objects.filter(
        source__name__in=[plan.name for plan in plans], retired_at__isnull=True
    ).count()
    return f"Default runbooks loaded: {count} checklists."


def _monitor_the_portal(*, demo: bool) -> str | None:
    """Demo monitoring that is real: the portal's own web, workers, database and Redis. The
    web check follows HOST and PORT, so a portal started on another port checks itself and not
    whatever answers on the old one."""
    if not demo:
        return None
    web_target = f"http://{settings.PORTAL_DEMO_HOST}/api/health"
    services = [
        ("Portal web", ServiceKind.HTTP, web_target, {"json_field": "status", "json_value": "ok"}),
        ("Celery workers", ServiceKind.CELERY, "", {}),
    ]
    # By the name of the variable that holds each URL, read when the check runs: a password
    # in it never reaches the database or a page.
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        services.append(("Portal database", ServiceKind.POSTGRES, "env:DATABASE_URL", {}))
    if settings.REDIS_URL:
        services.append(("Redis", ServiceKind.REDIS, "env:REDIS_URL", {}))
    with transaction.atomic():
        for name, kind, target, extra in services:
            MonitoredService.objects.get_or_create(
                slug=slugify(name), defaults={"name": name, "kind": kind, "target": target, **extra}
            )
        web = MonitoredService.objects.get(slug="portal-web")
        if web.target != web_target:
            before = {"target": web.target}
            web.target = web_target
            web.next_check_at = None
            web.save(update_fields=["target", "next_check_at"])
            audit_record(
                actor=None,
                action="service.update",
                target=web,
                summary="target follows HOST and PORT",
                before=before,
                after={"target": web_target},
            )
        ChecklistItem.objects.filter(
            text__startswith="Confirm that every component reports healthy",
            evidence_service__isnull=True,
        ).update(evidence_service=web)
    return f"Monitored services of the portal itself: {len(services)}."


def _open_current_runs(*, demo: bool) -> str:
    return f"Runs opened for the current period: {len(checklist_runs_schedule())}."


def _load_maintenance_defaults(*, demo: bool) -> str:
    tasks, windows = maintenance_defaults_load()
    return f"Maintenance defaults from the runbooks: {tasks} tasks, {windows} windows added."


def register(registry: Registry) -> None:
    for step in (
        SetupStep("default-runbooks", _load_default_runbooks, 10),
        SetupStep("demo-monitoring", _monitor_the_portal, 20),
        SetupStep("maintenance-defaults", _load_maintenance_defaults, 25),
        SetupStep("current-runs", _open_current_runs, 30),
    ):
        registry.add_setup_step(step)
    for block in (
        TodayBlock("incidents", "ops/incidents/_today_incidents.html", _incidents_block, 10),
        TodayBlock("attention", "ops/checklists/_today_attention.html", _attention_block, 20),
        TodayBlock("health", "ops/health/_today_health.html", _health_block, 30),
        TodayBlock("current-runs", "ops/checklists/_today_current.html", _current_block, 40),
        TodayBlock(
            "maintenance", "ops/maintenance/_today_maintenance.html", _maintenance_block, 50
        ),
        TodayBlock("status-page", "ops/status/_today_status.html", _status_block, 15),
        TodayBlock("start-run", "ops/checklists/_today_start.html", _start_block, 60, live=False),
        TodayBlock("history", "ops/checklists/_today_history.html", _history_block, 70, live=False),
    ):
        registry.add_today_block(block)
    registry.add_metrics_collector(_health_metrics)
    registry.add_run_owner(
        RunOwner(
            field="incident",
            item_changed=incident_run_item_changed,
            may_view=_may_view_incident,
            describe=_describe_incident,
            frozen=incident_run_frozen,
        )
    )
    registry.add_run_owner(
        RunOwner(
            field="maintenance_window",
            may_view=_may_view_window,
            describe=_describe_window,
        )
    )
    registry.add_run_owner(
        RunOwner(
            field="maintenance_task",
            item_changed=maintenance_task_run_item_changed,
            may_view=_may_view_task,
            describe=_describe_task,
        )
    )
    registry.add_calendar_source(
        CalendarSource(
            "maintenance-windows", "Maintenance windows", _window_occurrences, _window_series
        )
    )
    registry.add_calendar_source(CalendarSource("maintenance-tasks", "Due tasks", _task_events))
