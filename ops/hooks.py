"""What the operations domains give the portal (portal.registry), registered by
OpsConfig.ready(): the Today blocks of incidents, checklists and health; the Prometheus gauges
of the monitored services and KPIs; the incident as an owner of checklist runs; the first-run
setup (default runbooks, demo monitoring of the portal itself, this period's runs)."""

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify
from prometheus_client.core import GaugeMetricFamily

from ops.management.commands.import_runbook import read_runbooks
from ops.models import (
    BackupTarget,
    ChecklistItem,
    Deploy,
    Environment,
    Incident,
    Kpi,
    KpiMetric,
    MonitoredService,
    ServiceKind,
)
from ops.models.releases import LIVE_DEPLOY
from ops.selectors.checklists import (
    active_templates,
    runs_current,
    runs_needing_attention,
    runs_visible,
    template_histories,
)
from ops.selectors.health import health_checks_stopped, health_summary, health_tiles, kpi_values
from ops.selectors.incidents import incidents_open
from ops.selectors.releases import backup_age_hours, backup_targets_overview, deploys_live
from ops.services.checklists import checklist_runs_schedule
from ops.services.incident_notifications import notification_channels
from ops.services.incidents import incident_run_frozen, incident_run_item_changed
from ops.services.releases import digitalocean_is_simulated
from ops.services.runbooks import runbook_import
from portal.registry import KpiSource, Registry, RunOwner, SetupStep, TodayBlock
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
    for service in MonitoredService.objects.filter(is_active=True):
        values = [service.slug, service.kind]
        state.add_metric(values, STATE_VALUES.get(service.state, 3))
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
    yield from (state, latency, stale, queues, kpi, kpi_state)


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


# First run (setup_portal)


def _load_default_runbooks(*, demo: bool) -> str:
    runbooks = read_runbooks(sorted(str(path) for path in DEFAULT_RUNBOOKS.glob("*.md")))
    with transaction.atomic():
        for source, checklists in runbooks:
            runbook_import(source_file=source, checklists=checklists)
    count = sum(len(checklists) for _source, checklists in runbooks)
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
    items = ChecklistItem.objects.filter(text__icontains="backup", evidence_kpi__isnull=True)
    linked = 0
    for item in items.filter(evidence_service__isnull=True):
        text = item.text.lower()
        verified = "verif" in text or "restore" in text
        item.evidence_kpi = kpis[
            KpiMetric.BACKUP_VERIFIED_AGE if verified else KpiMetric.BACKUP_AGE
        ]
        item.save(update_fields=["evidence_kpi"])
        linked += 1
    return f"Backup evidence linked to {linked} checklist items." if linked else None


def register(registry: Registry) -> None:
    for step in (
        SetupStep("default-runbooks", _load_default_runbooks, 10),
        SetupStep("demo-monitoring", _monitor_the_portal, 20),
        SetupStep("current-runs", _open_current_runs, 30),
        SetupStep("releases", _simulated_environments, 40),
        SetupStep("backup-evidence", _backup_evidence, 50),
    ):
        registry.add_setup_step(step)
    for block in (
        TodayBlock("incidents", "ops/incidents/_today_incidents.html", _incidents_block, 10),
        TodayBlock("attention", "ops/checklists/_today_attention.html", _attention_block, 20),
        TodayBlock("health", "ops/health/_today_health.html", _health_block, 30),
        TodayBlock("releases", "ops/releases/_today_releases.html", _releases_block, 35),
        TodayBlock("current-runs", "ops/checklists/_today_current.html", _current_block, 40),
        TodayBlock("start-run", "ops/checklists/_today_start.html", _start_block, 60, live=False),
        TodayBlock("history", "ops/checklists/_today_history.html", _history_block, 70, live=False),
    ):
        registry.add_today_block(block)
    registry.add_metrics_collector(_health_metrics)
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
    registry.add_run_owner(
        RunOwner(
            field="incident",
            item_changed=incident_run_item_changed,
            may_view=_may_view_incident,
            describe=_describe_incident,
            frozen=incident_run_frozen,
        )
    )
