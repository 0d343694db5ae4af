"""During a maintenance window the affected services' tiles show "maintenance" and the
availability and error-rate KPIs leave planned maintenance out (both figures shown)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ops.models import MaintenanceWindow, MonitoredService
from ops.selectors.health import health_summary, health_tiles, kpi_values
from ops.services.health import health_result_store
from ops.services.health_checks import Outcome
from ops.services.maintenance import WindowInput, maintenance_window_schedule
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _service(name: str) -> MonitoredService:
    return MonitoredService.objects.create(
        name=name, slug=name.lower(), kind="http", target="http://127.0.0.1:9/"
    )


@pytest.fixture
def in_maintenance(manager):
    now = timezone.now()
    web, api = _service("Web"), _service("API")
    for minutes in range(10):
        at = now - timedelta(hours=2, minutes=minutes)
        health_result_store(service=web, outcome=Outcome("ok", "HTTP 200", 10.0), now=at)
        health_result_store(service=api, outcome=Outcome("ok", "HTTP 200", 10.0), now=at)
    starts = now - timedelta(hours=1)
    maintenance_window_schedule(
        user=manager,
        data=WindowInput(
            title="Web server upgrade",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            time_zone="UTC",
            services=(web,),
        ),
        details={},
        now=starts - timedelta(days=10),
    )
    for minutes in range(5):
        at = now - timedelta(minutes=5 - minutes)
        health_result_store(service=web, outcome=Outcome("critical", "HTTP 503", 5.0), now=at)
    health_result_store(service=api, outcome=Outcome("ok", "HTTP 200", 10.0), now=now)
    return now, web, api


def test_tiles_show_maintenance_not_critical(in_maintenance):
    now, web, _api = in_maintenance
    tiles = {tile.service.slug: tile for tile in health_tiles(now=now)}
    assert tiles["web"].state == "maintenance"
    assert "Web server upgrade" in tiles["web"].detail and "HTTP 503" in tiles["web"].detail
    assert tiles["api"].state == "ok"
    assert health_summary(list(tiles.values()))["critical"] == 0
    web.refresh_from_db()
    assert web.state == "critical"  # the checks still run and are recorded


def test_availability_and_error_rate_exclude_planned_maintenance(in_maintenance):
    now, _web, _api = in_maintenance
    values = {value.kpi.metric: value for value in kpi_values(now=now)}
    availability, errors = values["availability"], values["error_rate"]
    # 21 ok and 5 critical checks, the 5 critical ones inside the window.
    assert availability.with_maintenance == pytest.approx(100 * 21 / 26, abs=0.01)
    assert availability.value == 100.0 and availability.state == "ok"
    assert errors.with_maintenance == pytest.approx(100 * 5 / 26, abs=0.01)
    assert errors.value == 0.0 and errors.state == "ok"
    assert "5 in planned maintenance left out" in availability.source


def test_health_panel_shows_both_figures(in_maintenance, operator):
    html = client_for(operator).get(reverse("ops:health_panel")).content.decode()
    assert 'class="tile state-maintenance" id="tile-web" data-state="maintenance"' in html
    assert 'class="tile state-ok" id="tile-api"' in html
    assert "80.769% with planned maintenance" in html


def test_emergency_windows_are_not_planned(in_maintenance, manager):
    """Emergency maintenance still shows on the tile, but counts against availability."""

    MaintenanceWindow.objects.update(is_emergency=True)
    now, _web, _api = in_maintenance
    values = {value.kpi.metric: value for value in kpi_values(now=now)}
    assert values["availability"].with_maintenance is None
    assert values["availability"].value == pytest.approx(100 * 21 / 26, abs=0.01)
    tiles = {tile.service.slug: tile for tile in health_tiles(now=now)}
    assert tiles["web"].state == "maintenance"
