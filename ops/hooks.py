"""What the operations domains give the portal (portal.registry), registered by
OpsConfig.ready(): the Today blocks of incidents, checklists and health; the Prometheus gauges
of the monitored services and KPIs; the incident as an owner of checklist runs; the first-run
setup (default runbooks, demo monitoring of the portal itself, this period's runs)."""

from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from prometheus_client.core import GaugeMetricFamily

from ops.models import (
    Alert,
    AlertSend,
    AlertStatus,
    BackupTarget,
    ChecklistItem,
    ChecklistTemplate,
    DataSubjectRequest,
    Deploy,
    Environment,
    Incident,
    Kpi,
    KpiMetric,
    MaintenanceTask,
    MaintenanceWindow,
    MonitoredService,
    ServiceKind,
)
from ops.models.releases import LIVE_DEPLOY
from ops.runbooks.files import runbook_files_collect
from ops.runbooks.parser import RunbookError
from ops.selectors.alerts import alerts_open_with_holders, oncall_now, oncall_shifts
from ops.selectors.checklists import (
    active_templates,
    runs_current,
    runs_needing_attention,
    runs_visible,
    template_histories,
)
from ops.selectors.gdpr import requests_needing_attention
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
from ops.selectors.releases import (
    backup_age_hours,
    backup_targets_overview,
    deploys_live,
    restore_test_age_days,
)
from ops.selectors.runbooks import runbook_plan_build
from ops.selectors.status import incidents_on_status_page
from ops.services.alerts import SilenceWindow, alert_defaults_load, silence_source_add
from ops.services.checklists import checklist_runs_schedule
from ops.services.gdpr import may_see_subject
from ops.services.gdpr_breach import breach_offsets_default
from ops.services.gdpr_jobs import PortalData, gdpr_portal_data_add
from ops.services.incident_notifications import notification_channels
from ops.services.incidents import incident_run_frozen, incident_run_item_changed
from ops.services.maintenance import (
    maintenance_defaults_load,
    maintenance_task_run_item_changed,
)
from ops.services.releases import digitalocean_is_simulated
from ops.services.runbooks import runbook_plan_apply
from ops.services.status import status_demo_components
from ops.services.status_subscribers import (
    SUBJECT_COLUMNS,
    subscribers_count,
    subscribers_erase,
    subscribers_of,
)
from portal.caching import cached_part
from portal.registry import (
    CalendarEvent,
    CalendarSource,
    KpiSource,
    NavLink,
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


def _alerts_block(request: HttpRequest, now: datetime) -> dict | None:
    """What is firing or acknowledged and who holds it; who is on call now."""
    if not request.user.has_perm("ops.view_alert"):
        return None
    return {"alerts_held": alerts_open_with_holders(now=now), "on_call": oncall_now(at=now)}


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


HISTORY_SECONDS = 300


def _history_block(request: HttpRequest, now: datetime) -> dict | None:
    if not request.user.has_perm("ops.view_checklistrun"):
        return None
    templates = _templates(request)
    # The year of runs behind it changes with a tick, a new run or a cancel (each bumps the
    # "checklists" topic); the 30-day window moves with the clock: a few minutes at most.
    # What a user sees of it depends on their permissions only (runs of incidents or windows
    # they may not see are left out), so people of one role share it.
    user = request.user
    permissions = "*" if user.is_superuser else sorted(user.get_all_permissions())
    scope = f"{permissions}:{[t.pk for t in templates]}:{now.timestamp() // HISTORY_SECONDS}"
    # The table is cached as HTML: rendering its strips cost more than computing them.
    table = cached_part(
        "checklists",
        "today-history-table",
        scope,
        lambda: render_to_string(
            "ops/checklists/_history_table.html",
            {"histories": template_histories(templates=templates, now=now, user=request.user)},
        ),
        seconds=HISTORY_SECONDS,
    )
    return {"history_table": mark_safe(table)}  # noqa: S308 (rendered and escaped by Django)


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


def _releases_block(request: HttpRequest, now: datetime) -> dict | None:
    """Deploys under way, and backups that are missing or failed."""
    context = {"now": now, "simulated": digitalocean_is_simulated()}
    if request.user.has_perm("ops.view_deploy"):
        context["live_deploys"] = deploys_live()
    if request.user.has_perm("ops.view_backup"):
        context["backup_problems"] = [
            state for state in backup_targets_overview(now=now) if state.problem
        ]
    if not context.get("live_deploys") and not context.get("backup_problems"):
        return None
    return context


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


def _alert_metrics():
    """Open alerts by severity and status, and sends by status."""
    alerts = GaugeMetricFamily(
        "portal_alerts", "Alerts not resolved.", labels=["severity", "status"]
    )
    counts = (
        Alert.objects.exclude(status=AlertStatus.RESOLVED)
        .values_list("severity", "status")
        .annotate(n=Count("id"))
    )
    for severity, status, count in counts:
        alerts.add_metric([severity, status], count)
    sends = GaugeMetricFamily("portal_alert_sends", "Alert messages by status.", labels=["status"])
    for status, count in AlertSend.objects.values_list("status").annotate(n=Count("id")):
        sends.add_metric([status], count)
    yield from (alerts, sends)


def _release_metrics():
    """Live deploys per environment, and the age of each target's newest good backup."""
    live = GaugeMetricFamily(
        "portal_deploy_live",
        "1 while a deploy of the environment is under way.",
        labels=["environment"],
    )
    counts = dict.fromkeys(Environment.objects.values_list("slug", flat=True), 0)
    for slug in Deploy.objects.filter(status__in=LIVE_DEPLOY).values_list(
        "environment__slug", flat=True
    ):
        counts[slug] = 1
    for slug, value in counts.items():
        live.add_metric([slug], value)
    age = GaugeMetricFamily(
        "portal_backup_age_seconds", "Age of the newest successful backup.", labels=["target"]
    )
    verified = GaugeMetricFamily(
        "portal_backup_verified_age_seconds",
        "Age of the newest verified backup.",
        labels=["target"],
    )
    now = timezone.now()
    for state in backup_targets_overview(now=now):
        slug = state.target.slug
        good = state.target.backups.filter(status="succeeded", pruned_at__isnull=True).first()
        if good and good.finished_at:
            age.add_metric([slug], (now - good.finished_at).total_seconds())
        if state.latest_verified:
            verified.add_metric([slug], (now - state.latest_verified.verified_at).total_seconds())
    yield from (live, age, verified)


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


# Data-subject requests


def _gdpr_block(request: HttpRequest, now: datetime) -> dict | None:
    """Requests overdue or due within seven days: references and deadlines, no identifiers."""
    if not request.user.has_perm("ops.view_datasubjectrequest"):
        return None
    requests = requests_needing_attention(now=now)
    if not requests:
        return None
    return {"gdpr_requests": requests, "now": now}


def _may_view_dsr(user, dsr_id: int) -> bool:
    """A request's checklist may carry notes about the subject: DPOs and admins only."""
    return may_see_subject(user)


def _describe_dsr(run) -> tuple[str, str]:
    dsr = DataSubjectRequest.objects.only("pk", "kind").get(pk=run.dsr_id)
    return f"checklist of {dsr.reference}", dsr.get_absolute_url()


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


SELF_CHECKS = ("portal-web", "celery-workers")
SELF_CHECK_DELAY_SECONDS = 30


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
        # Found restarting `make run`: overdue since the portal stopped, the self-checks ran
        # while web and worker were still booting, measured the boot (a 4 s answer, no worker
        # yet) and put a major outage on the public status page. They start once it is up.
        MonitoredService.objects.filter(slug__in=SELF_CHECKS).update(
            next_check_at=timezone.now() + timedelta(seconds=SELF_CHECK_DELAY_SECONDS)
        )
        ChecklistItem.objects.filter(
            text__startswith="Confirm that every component reports healthy",
            evidence_service__isnull=True,
        ).update(evidence_service=web)
    return f"Monitored services of the portal itself: {len(services)}."


def _status_demo(*, demo: bool) -> str | None:
    """The demo's status page shows components made of the portal's own services."""
    if not demo:
        return None
    made = status_demo_components()
    return f"Status page components from the demo's services: {made}." if made else None


def _breach_timeline(*, demo: bool) -> str | None:
    count = breach_offsets_default()
    return f"Data breach response steps given their due times: {count}." if count else None


def _load_alert_defaults(*, demo: bool) -> str:
    return alert_defaults_load(today=timezone.localdate())


def _open_current_runs(*, demo: bool) -> str:
    return f"Runs opened for the current period: {len(checklist_runs_schedule())}."


def _load_maintenance_defaults(*, demo: bool) -> str:
    tasks, windows = maintenance_defaults_load()
    return f"Maintenance defaults from the runbooks: {tasks} tasks, {windows} windows added."


# Alerts are silenced for a service while a planned maintenance window on it is live


def _maintenance_silences(service_ids: set[int], now: datetime) -> list[SilenceWindow]:
    """Asked only when an alert fires, so the windows are read then, not every tick."""
    return [
        SilenceWindow(
            key=f"maintenance:{occurrence.window.pk}:{occurrence.starts_at:%Y%m%dT%H%M}",
            service_id=service_id,
            starts_at=occurrence.starts_at,
            ends_at=occurrence.ends_at,
            reason=f"Maintenance window: {occurrence.window.title}",
        )
        for service_id, occurrence in services_in_maintenance(now=now).items()
        if service_id in service_ids and not occurrence.window.is_emergency
    ]


def _simulated_environments(*, demo: bool) -> str | None:
    """With the simulated DigitalOcean (manage.py do_simulator), staging and production
    environments on its two apps, and a backup target for the portal's own database."""
    if not demo:
        return None
    made = []
    if digitalocean_is_simulated():
        base = settings.DIGITALOCEAN_API_URL.rstrip("/")
        for order, (name, app_id) in enumerate(
            (("Staging", "staging-app"), ("Production", "production-app"))
        ):
            _environment, created = Environment.objects.get_or_create(
                slug=slugify(name),
                defaults={
                    "name": name,
                    "app_id": app_id,
                    "health_urls": f"{base}/_sim/apps/{app_id}/health",
                    "promotion_order": order,
                    "requires_manager": name == "Production",
                    "validate_seconds": 20,
                },
            )
            if created:
                made.append(name)
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        _target, created = BackupTarget.objects.get_or_create(
            slug="portal-database",
            defaults={"name": "Portal database", "url_variable": "DATABASE_URL"},
        )
        if created:
            made.append("backups of the portal database")
    return f"Deploys and backups: {', '.join(made)}." if made else None


BACKUP_KPIS = (
    # name, metric, target, warning, critical (hours), and the checklist items it is evidence
    # for: the ones about verification or restores, or else any about backups.
    ("Backup age", KpiMetric.BACKUP_AGE, 24, 26, 48),
    ("Verified backup age", KpiMetric.BACKUP_VERIFIED_AGE, 168, 192, 336),
    # Days: quarterly, a week's grace, then critical a month late.
    ("Restore test age (days)", KpiMetric.RESTORE_TEST_AGE, 91, 98, 120),
)


def _backup_evidence(*, demo: bool) -> str | None:
    """KPIs of backup age and verified-backup age, linked as evidence to the checklist items
    that ask about backups ("backup completed", "backup verified")."""
    kpis = {}
    for name, metric, target, warning, critical in BACKUP_KPIS:
        kpis[metric], _created = Kpi.objects.get_or_create(
            metric=metric,
            defaults={
                "name": name,
                "target": target,
                "warning": warning,
                "critical": critical,
                "window_hours": 24,
            },
        )
    items = ChecklistItem.objects.filter(
        Q(text__icontains="backup") | Q(text__icontains="restor"), evidence_kpi__isnull=True
    )
    linked = 0
    for item in items.filter(evidence_service__isnull=True):
        text = item.text.lower()
        if "restor" in text:
            metric = KpiMetric.RESTORE_TEST_AGE
        elif "verif" in text:
            metric = KpiMetric.BACKUP_VERIFIED_AGE
        else:
            metric = KpiMetric.BACKUP_AGE
        item.evidence_kpi = kpis[metric]
        item.save(update_fields=["evidence_kpi"])
        linked += 1
    return f"Backup evidence linked to {linked} checklist items." if linked else None


def _oncall_events(*, user, start: datetime, end: datetime) -> list[CalendarEvent]:
    """Who is on call, shift by shift, on the calendar and in its feed."""
    if not user.has_perm("ops.view_oncallschedule"):
        return []
    return [
        CalendarEvent(
            uid=f"oncall-{schedule.pk}-{shift.starts_at:%Y%m%dT%H%M}"
            + ("-override" if shift.override else ""),
            title=f"On call ({schedule.name}): {shift.user.get_username()}"
            + (" (override)" if shift.override else ""),
            start=shift.starts_at,
            end=shift.ends_at,
            kind="oncall",
            url=reverse("ops:oncall"),
        )
        for schedule, shift in oncall_shifts(start=start, end=end)
    ]


MAINTENANCE_PERMS = ("ops.view_maintenancetask", "ops.view_maintenancewindow")
NAV_LINKS = (
    NavLink(
        "Checklists",
        "ops:template_list",
        ("ops.view_checklisttemplate",),
        ("ops:template_",),
        10,
    ),
    NavLink(
        "Health",
        "ops:health_panel",
        ("ops.view_health",),
        ("ops:health_panel", "ops:service_detail"),
        20,
    ),
    NavLink("Incidents", "ops:incident_list", ("ops.view_incident",), ("ops:incident_",), 30),
    NavLink(
        "Maintenance", "ops:maintenance_task_list", MAINTENANCE_PERMS, ("ops:maintenance_",), 40
    ),
    NavLink("Calendar", "ops:calendar", MAINTENANCE_PERMS, ("ops:calendar",), 50),
    NavLink("GDPR", "ops:gdpr_list", ("ops.view_datasubjectrequest",), ("ops:gdpr_",), 60),
    NavLink("Alerts", "ops:alert_list", ("ops.view_alert",), ("ops:alert_", "ops:oncall"), 70),
    NavLink(
        "Deploys",
        "ops:environment_list",
        ("ops.view_deploy",),
        ("ops:environment_", "ops:deploy_", "ops:rollback_"),
        80,
    ),
    NavLink("Backups", "ops:backup_list", ("ops.view_backup",), ("ops:backup_",), 90),
)


# The status page's subscribers are personal data of the portal's own: exported, erased and
# scanned by a data-subject request with the portal's users.
STATUS_SUBSCRIBERS = PortalData(
    name="status_subscribers",
    columns=SUBJECT_COLUMNS,
    rows=lambda dsr: subscribers_of(email=dsr.subject_email),
    erase=lambda dsr: subscribers_erase(email=dsr.subject_email),
    count=lambda dsr: subscribers_count(email=dsr.subject_email),
)


def register(registry: Registry) -> None:
    silence_source_add(_maintenance_silences)
    for link in NAV_LINKS:
        registry.add_nav_link(link)
    gdpr_portal_data_add(STATUS_SUBSCRIBERS)
    for step in (
        SetupStep("default-runbooks", _load_default_runbooks, 10),
        SetupStep("demo-monitoring", _monitor_the_portal, 20),
        SetupStep("status-demo", _status_demo, 22),
        SetupStep("maintenance-defaults", _load_maintenance_defaults, 25),
        SetupStep("breach-timeline", _breach_timeline, 15),
        SetupStep("alert-defaults", _load_alert_defaults, 27),
        SetupStep("current-runs", _open_current_runs, 30),
        SetupStep("releases", _simulated_environments, 40),
        SetupStep("backup-evidence", _backup_evidence, 50),
    ):
        registry.add_setup_step(step)
    for block in (
        TodayBlock("alerts", "ops/alerts/_today_alerts.html", _alerts_block, 5),
        TodayBlock("incidents", "ops/incidents/_today_incidents.html", _incidents_block, 10),
        TodayBlock("gdpr-requests", "ops/gdpr/_today_requests.html", _gdpr_block, 15),
        TodayBlock("attention", "ops/checklists/_today_attention.html", _attention_block, 20),
        TodayBlock("health", "ops/health/_today_health.html", _health_block, 30),
        TodayBlock("releases", "ops/releases/_today_releases.html", _releases_block, 35),
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
    registry.add_metrics_collector(_alert_metrics)
    registry.add_metrics_collector(_release_metrics)
    for metric, verified in ((KpiMetric.BACKUP_AGE, False), (KpiMetric.BACKUP_VERIFIED_AGE, True)):
        registry.add_kpi_source(
            KpiSource(
                metric=metric,
                value=lambda since, verified=verified: backup_age_hours(
                    verified=verified, now=timezone.now()
                ),
            )
        )
    registry.add_kpi_source(
        KpiSource(
            metric=KpiMetric.RESTORE_TEST_AGE,
            value=lambda since: restore_test_age_days(now=timezone.now()),
        )
    )
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
    registry.add_calendar_source(CalendarSource("on-call", "On call", _oncall_events))
    registry.add_run_owner(RunOwner(field="dsr", may_view=_may_view_dsr, describe=_describe_dsr))
