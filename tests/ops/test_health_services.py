"""Checks in the background: claiming, parallel runs with hung targets, storage, roll-ups,
staleness and pruning."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from ops.models import CheckResult, CheckRollup, MonitoredService
from ops.selectors.health import health_tiles, kpi_values
from ops.services.health import (
    _claim_due,
    health_checks_run_due,
    health_result_store,
    health_results_prune,
)
from ops.services.health_checks import Outcome
from tests.fakes import controlled_server

pytestmark = pytest.mark.django_db


def make_service(name: str, target: str, kind: str = "http", **extra) -> MonitoredService:
    service = MonitoredService(
        name=name, slug=name.lower().replace(" ", "-"), kind=kind, target=target, **extra
    )
    service.full_clean()
    service.save()
    return service


def test_a_hung_target_does_not_delay_the_other_checks():
    with controlled_server() as hung, controlled_server() as healthy:
        hung.mode = "hang"
        slow_one = make_service("Hung API", hung.url, timeout_seconds=1.5)
        fast = [make_service(f"Fast {n}", healthy.url) for n in range(3)]
        results = health_checks_run_due()
    by_service = {result.service_id: result for result in results}
    assert len(results) == 4
    assert by_service[slow_one.pk].state == "critical"
    assert by_service[slow_one.pk].detail.startswith("timed out after 1.5 s")
    for service in fast:
        result = by_service[service.pk]
        assert result.state == "ok"
        # Stored as soon as it answered, not after the hung one gave up.
        assert (result.checked_at - by_service[slow_one.pk].checked_at).total_seconds() < -1


def test_each_service_is_claimed_once_per_interval():
    with controlled_server() as server:
        service = make_service("API", server.url, interval_seconds=30)
        assert [r.service for r in health_checks_run_due()] == [service]
        assert health_checks_run_due() == []  # not due again for 30 s
        service.refresh_from_db()
        later = service.next_check_at + timedelta(seconds=1)
        assert _claim_due(later) == [service] and _claim_due(later) == []


def test_state_changes_are_stamped_and_rolled_up_hourly():
    service = make_service("API", "http://127.0.0.1:9/")
    now = timezone.now().replace(minute=10)
    for offset, outcome in enumerate(
        [
            Outcome("ok", "HTTP 200", 12.0),
            Outcome("ok", "HTTP 200", 30.0),
            Outcome("critical", "connection refused", None),
        ]
    ):
        health_result_store(service=service, outcome=outcome, now=now + timedelta(seconds=offset))
    service.refresh_from_db()
    assert service.state == "critical" and service.state_changed_at == now + timedelta(seconds=2)
    rollup = CheckRollup.objects.get(service=service)
    assert (rollup.checks, rollup.up, rollup.critical) == (3, 2, 1)
    assert rollup.latency_max_ms == 30.0 and rollup.worst_state == "critical"
    assert rollup.latency_buckets == {"25": 1, "50": 1}


def test_stale_results_never_show_green():
    service = make_service("API", "http://127.0.0.1:9/", interval_seconds=30)
    long_ago = timezone.now() - timedelta(seconds=95)
    health_result_store(service=service, outcome=Outcome("ok", "HTTP 200", 5.0), now=long_ago)
    (tile,) = health_tiles()
    since = timezone.localtime(long_ago).strftime("%H:%M")  # with a date before midnight
    assert tile.state == "stale" and f"no result since {since}" in tile.detail
    health_result_store(service=service, outcome=Outcome("ok", "HTTP 200", 5.0))
    (tile,) = health_tiles()
    assert tile.state == "ok"


def test_prune_keeps_rollups_and_uptime():
    service = make_service("API", "http://127.0.0.1:9/")
    now = timezone.now()
    for days in (0, 3, 10):
        health_result_store(
            service=service, outcome=Outcome("ok", "ok", 10.0), now=now - timedelta(days=days)
        )
    health_result_store(
        service=service,
        outcome=Outcome("critical", "down", None),
        now=now - timedelta(days=3, minutes=1),
    )
    assert health_results_prune(now=now)[0] == 3
    assert CheckResult.objects.count() == 1 and CheckRollup.objects.count() == 3
    (tile,) = health_tiles(now=now)
    assert tile.uptime == {"24h": 100.0, "7d": 66.67, "30d": 75.0}


def test_one_failing_store_does_not_lose_the_others():
    with controlled_server() as server:
        first = make_service("First", server.url)
        make_service("Second", server.url)
        real_store = health_result_store

        def flaky(*, service, outcome):
            if service.pk == first.pk:
                raise RuntimeError("disk full")
            return real_store(service=service, outcome=outcome)

        with mock.patch("ops.services.health.health_result_store", side_effect=flaky):
            results = health_checks_run_due()
    assert [result.service.name for result in results] == ["Second"]


def test_kpis_from_stored_results():
    web = make_service("Web", "http://127.0.0.1:9/")
    for latency in [10.0] * 18 + [400.0, 3000.0]:
        health_result_store(service=web, outcome=Outcome("ok", "ok", latency))
    health_result_store(service=web, outcome=Outcome("critical", "HTTP 500", 5.0))
    values = {value.kpi.metric: value for value in kpi_values()}
    assert values["availability"].value == pytest.approx(100 * 20 / 21, abs=0.01)
    assert values["availability"].state == "critical"  # below 99 %
    assert values["error_rate"].value == pytest.approx(100 / 21, abs=0.01)
    assert values["error_rate"].state == "warning"  # between 1 % and 5 %
    assert values["latency_p95"].value == 500 and values["latency_p95"].label == "≤ 500 ms"
    assert values["cache_hit_rate"].value is None and values["cache_hit_rate"].label == "no data"
    assert values["disk"].value is not None and values["disk"].source == "the portal's data volume"
