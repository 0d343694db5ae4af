"""Writes for health monitoring: running due checks in the background and storing results."""

import logging
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timedelta

from azure.core.pipeline.policies import HeadersPolicy
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from pydo import Client

from ops.models.health import (
    STATE_RANK,
    CheckResult,
    CheckRollup,
    CheckState,
    MonitoredService,
    latency_bucket,
)
from ops.services.health_checks import CRITICAL, UNKNOWN, CheckSpec, Outcome, run_check
from portal.celery import app, broker_can_broadcast
from portal.health import PROCESS_STARTED_AT, workers_seen_recently
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)

RAW_RETENTION = timedelta(days=2)
ROLLUP_RETENTION = timedelta(days=90)
MAX_PARALLEL_CHECKS = 16
# Grace on top of a check's own timeout before it is abandoned as hung.
ABANDON_AFTER = 1.0


def service_spec(service: MonitoredService) -> CheckSpec:
    return CheckSpec(
        kind=service.kind,
        target=service.target,
        timeout=service.timeout_seconds,
        latency_warning_ms=service.latency_warning_ms,
        latency_critical_ms=service.latency_critical_ms,
        expected_status=service.expected_status,
        body_contains=service.body_contains,
        json_field=service.json_field,
        json_value=service.json_value,
        days_warning=service.days_warning,
        days_critical=service.days_critical,
        queue_warning=service.queue_warning,
        queue_critical=service.queue_critical,
    )


def digitalocean_client(*, timeout: float = 10.0):
    """pydo's client for DIGITALOCEAN_TOKEN at DIGITALOCEAN_API_URL. azure-core refuses a bearer
    token over plain http, so a local http endpoint (tests) gets the header set directly."""
    token = settings.DIGITALOCEAN_TOKEN
    if not token:
        raise RuntimeError("DIGITALOCEAN_TOKEN is not set")
    endpoint = settings.DIGITALOCEAN_API_URL
    options = {"endpoint": endpoint, "retry_total": 0, "timeout": timeout}
    if endpoint.startswith("http://"):
        options["authentication_policy"] = HeadersPolicy({"Authorization": f"Bearer {token}"})
    return Client(token=token, **options)


def _claim_due(now: datetime) -> list[MonitoredService]:
    """Services whose check is due, each claimed by moving its next_check_at with a conditional
    update, so two schedulers or workers never check the same service twice."""
    claimed = []
    due = MonitoredService.objects.filter(is_active=True).filter(
        Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)
    )
    for service in due:
        moved = MonitoredService.objects.filter(
            pk=service.pk, next_check_at=service.next_check_at
        ).update(next_check_at=now + timedelta(seconds=service.interval_seconds))
        if moved:
            claimed.append(service)
    return claimed


def health_check_probe(spec: CheckSpec, *, started_at: float | None = None) -> Outcome:
    """Run one check with what it needs from the project (Celery app, DigitalOcean client)."""
    outcome = run_check(
        spec,
        celery_app=app,
        do_client_factory=lambda: digitalocean_client(timeout=spec.timeout),
        count_workers=None if broker_can_broadcast() else workers_seen_recently,
    )
    up_for = time.time() - (PROCESS_STARTED_AT if started_at is None else started_at)
    return celery_outcome_at_start(spec, outcome, up_for=up_for)


def celery_outcome_at_start(spec: CheckSpec, outcome: Outcome, *, up_for: float) -> Outcome:
    """No worker answering in the first HEALTH_STARTUP_GRACE_SECONDS after the checking worker
    started is a start, not an outage: unknown, as /api/health says "starting". Found
    starting `make run`: the first check ran before the worker answered pings, and the public
    status page announced a major outage and marked the day red."""
    starting = up_for < settings.HEALTH_STARTUP_GRACE_SECONDS
    if spec.kind != "celery" or outcome.state != CRITICAL or not starting:
        return outcome
    if outcome.metrics.get("workers") != 0:
        return outcome
    detail = f"starting ({up_for:.0f} s ago): {outcome.detail}"
    return Outcome(UNKNOWN, detail[:300], outcome.latency_ms, outcome.metrics)


def run_checks(services: list[MonitoredService]) -> Iterator[tuple[MonitoredService, Outcome]]:
    """Run the checks at once and yield each outcome as soon as it is in. Each is bounded by
    its timeout: a hung target is given up as critical at its deadline and never holds up the
    others."""
    if not services:
        return
    pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_CHECKS, len(services)))
    started = time.monotonic()
    pending = {
        pool.submit(health_check_probe, service_spec(service)): service for service in services
    }
    try:
        while pending:
            deadline = min(
                started + service.timeout_seconds + ABANDON_AFTER for service in pending.values()
            )
            done, _ = wait(
                pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED
            )
            for future in done:
                yield pending.pop(future), future.result()
            now = time.monotonic()
            for future, service in list(pending.items()):
                if now >= started + service.timeout_seconds + ABANDON_AFTER:
                    del pending[future]
                    yield (
                        service,
                        Outcome(
                            CheckState.CRITICAL,
                            f"timed out after {service.timeout_seconds:g} s (no answer)",
                        ),
                    )
    finally:
        # Abandoned threads are not waited for: their sockets time out on their own.
        pool.shutdown(wait=False, cancel_futures=True)


def _rollup_add(service: MonitoredService, result: CheckResult) -> None:
    hour = result.checked_at.replace(minute=0, second=0, microsecond=0)
    CheckRollup.objects.get_or_create(service=service, hour=hour)
    rollup = CheckRollup.objects.select_for_update().get(service=service, hour=hour)
    rollup.checks += 1
    rollup.up += result.state in {CheckState.OK, CheckState.WARNING}
    rollup.critical += result.state == CheckState.CRITICAL
    if result.latency_ms is not None:
        rollup.latency_sum_ms += result.latency_ms
        rollup.latency_count += 1
        rollup.latency_max_ms = max(rollup.latency_max_ms or 0, result.latency_ms)
        bucket = latency_bucket(result.latency_ms)
        rollup.latency_buckets[bucket] = rollup.latency_buckets.get(bucket, 0) + 1
    if STATE_RANK[result.state] > STATE_RANK[rollup.worst_state]:
        rollup.worst_state = result.state
    rollup.save()


@transaction.atomic
def health_result_store(
    *, service: MonitoredService, outcome: Outcome, now: datetime | None = None
) -> CheckResult:
    """Store one outcome: the raw result, the service's latest state, the hour's roll-up."""
    now = now or timezone.now()
    state = outcome.state if outcome.state in CheckState.values else CheckState.UNKNOWN
    result = CheckResult.objects.create(
        service=service,
        checked_at=now,
        state=state,
        latency_ms=outcome.latency_ms,
        detail=outcome.detail[:500],
        metrics=outcome.metrics,
    )
    changed = {
        "state": state,
        "last_checked_at": now,
        "last_latency_ms": outcome.latency_ms,
        "last_detail": outcome.detail[:500],
        "last_metrics": outcome.metrics,
    }
    previous = MonitoredService.objects.filter(pk=service.pk).values_list("state", flat=True)
    if previous.first() != state:
        changed["state_changed_at"] = now
    MonitoredService.objects.filter(pk=service.pk).update(**changed)
    _rollup_add(service, result)
    return result


def health_checks_run_due(*, now: datetime | None = None) -> list[CheckResult]:
    """Claim the due services, check them in parallel, store what they answered."""
    now = now or timezone.now()
    results = []
    for service, outcome in run_checks(_claim_due(now)):
        try:
            results.append(health_result_store(service=service, outcome=outcome))
        except Exception:
            # One service's failure to store (say, it was deleted meanwhile) must not lose
            # the others' results.
            logger.exception("storing the check result of service %s failed", service.pk)
    return results


@transaction.atomic
def monitored_service_set_active(
    *, service: MonitoredService, active: bool, actor
) -> MonitoredService:
    """Pause (no more checks, no stale tile) or resume a service: what a Manager may do to
    one; adding and editing them is the Admins'. Resuming checks it at the next round."""
    if service.is_active == active:
        return service
    service.is_active = active
    service.next_check_at = None
    service.save(update_fields=["is_active", "next_check_at"])
    audit_record(
        actor=actor,
        action="health.service.resume" if active else "health.service.pause",
        target=service,
        before={"is_active": not active},
        after={"is_active": active},
    )
    return service


def health_results_prune(*, now: datetime | None = None) -> tuple[int, int]:
    """Raw results older than two days and roll-ups older than 90 days go."""
    now = now or timezone.now()
    raw, _ = CheckResult.objects.filter(checked_at__lt=now - RAW_RETENTION).delete()
    hourly, _ = CheckRollup.objects.filter(hour__lt=now - ROLLUP_RETENTION).delete()
    return raw, hourly
