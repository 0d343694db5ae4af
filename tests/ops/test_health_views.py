"""Health pages, /api/health, /api/health/services, /metrics, admin validation and checklist
evidence."""

import json
import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

import portal.health
from ops.models import ChecklistItem, ItemState, Kpi, MonitoredService
from ops.services.checklists import checklist_item_set_state, checklist_runs_schedule
from ops.services.health import health_result_store
from ops.services.health_checks import Outcome
from portal.errors import ActionRefused
from portal.health import (
    BEAT_HEARTBEAT_KEY,
    CHECKS_HEARTBEAT_KEY,
    WORKER_HEARTBEAT_KEY,
    portal_health,
)
from portal.services.tokens import api_token_create
from tests.conftest import client_for
from tests.fakes import private_redis

pytestmark = pytest.mark.django_db


def make_services(count: int, results_each: int = 3) -> list[MonitoredService]:
    services = []
    now = timezone.now()
    for number in range(count):
        service = MonitoredService.objects.create(
            name=f"Service {number:02}",
            slug=f"service-{number:02}",
            kind="http",
            target=f"http://127.0.0.1:9/{number}",
        )
        for step in range(results_each):
            state = "critical" if number % 3 == 0 and step == results_each - 1 else "ok"
            health_result_store(
                service=service,
                outcome=Outcome(state, "HTTP 200", 10.0 + step),
                now=now - timedelta(seconds=10 * (results_each - step)),
            )
        services.append(service)
    return services


@pytest.mark.parametrize(("count", "results"), [(3, 2), (20, 30)])
def test_panel_query_count_does_not_grow(
    operator, count, results, django_assert_max_num_queries, htmx
):
    make_services(count, results)
    client = client_for(operator)
    with django_assert_max_num_queries(8):
        html = client.get(reverse("ops:health_panel"), **htmx).content.decode()
    assert html.lstrip().startswith('<div id="health-tiles"') and "<nav" not in html
    assert html.count('class="tile state-') == count
    assert 'hx-trigger="every 10s"' in html and "<polyline" in html
    # The moment of the last check, which the page counts as an age (static/portal/app.js).
    moment = r'checked <time datetime="[^"]+"[^>]* data-clock-suffix=" ago">at \d\d:\d\d:\d\d<'
    assert re.search(moment, html)
    with django_assert_max_num_queries(30):
        page = client.get(reverse("ops:health_panel")).content.decode()
    assert "Availability" in page and 'aria-live="assertive"' in page
    # Flat: a fixed number per Today block (maintenance +3, GDPR +1, alerts +2, deploys and
    # backups +2, status page +1), whatever the history.
    with django_assert_max_num_queries(20):
        assert client.get(reverse("today")).status_code == 200


def test_panel_and_service_page_permissions(operator, outsider):
    (service,) = make_services(1)
    assert client_for(outsider).get(reverse("ops:health_panel")).status_code == 403
    client = client_for(operator)
    for range_key in ["1h", "24h", "7d", "30d", "nonsense"]:
        response = client.get(service.get_absolute_url(), {"range": range_key})
        assert response.status_code == 200
    html = client.get(service.get_absolute_url(), {"range": "1h"}).content.decode()
    assert "Latency and state, last 1h" in html and "<polyline" in html
    assert "warning from 1000 ms, critical from 2000 ms" in html


def test_service_page_hides_passwords(operator):
    service = MonitoredService.objects.create(
        name="DB", slug="db", kind="postgres", target="postgres://app:s3cret@10.0.0.5:5432/app"
    )
    html = client_for(operator).get(service.get_absolute_url()).content.decode()
    assert "s3cret" not in html and "app:***@10.0.0.5" in html


def test_api_health_is_public_and_reports_each_part(client):
    now = timezone.now().timestamp()
    cache.set(WORKER_HEARTBEAT_KEY, now)
    cache.set(BEAT_HEARTBEAT_KEY, now)
    response = client.get("/api/health")
    report = response.json()
    assert response.status_code == 200 and report["status"] == "ok"
    assert set(report["components"]) == {"database", "cache", "broker", "workers", "scheduler"}
    cache.set(BEAT_HEARTBEAT_KEY, now - 300)
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["components"]["scheduler"]["status"] == "fail"


def test_api_health_says_starting_while_workers_come_up(client, settings, monkeypatch):
    """Just after a (re)start the workers and beat have not been seen: 200 "starting" for the
    grace period, so monitors do not page on a restart; 503 after it, or at once when the
    database, cache or broker fail."""
    # The process "restarts" now: a long parallel run may reach this test after the grace
    # period of the test process's real start.
    monkeypatch.setattr(portal.health, "PROCESS_STARTED_AT", time.time())
    cache.delete_many([WORKER_HEARTBEAT_KEY, BEAT_HEARTBEAT_KEY])
    # The test process may have started minutes ago (a long suite): it has "just started".
    monkeypatch.setattr("portal.health.PROCESS_STARTED_AT", timezone.now().timestamp())
    settings.HEALTH_STARTUP_GRACE_SECONDS = 120
    response = client.get("/api/health")
    report = response.json()
    assert response.status_code == 200 and report["status"] == "starting"
    assert report["components"]["workers"] == {"status": "starting", "error": "never seen"}
    assert report["components"]["database"]["status"] == "ok"
    later = timezone.now() + timedelta(seconds=121)
    assert portal_health(now=later)["status"] == "fail"
    cache.set(WORKER_HEARTBEAT_KEY, timezone.now().timestamp())
    cache.set(BEAT_HEARTBEAT_KEY, timezone.now().timestamp())
    assert client.get("/api/health").json()["status"] == "ok"


def test_api_health_turns_503_when_redis_stops(client, settings):
    """The portal's cache and broker on a Redis of the test's own, which is then stopped."""
    from portal.celery import app

    with private_redis() as redis_server:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_server.url,
            }
        }
        broker = app.conf.broker_url
        app.conf.broker_url = redis_server.url
        try:
            now = timezone.now().timestamp()
            cache.set(WORKER_HEARTBEAT_KEY, now)
            cache.set(BEAT_HEARTBEAT_KEY, now)
            assert client.get("/api/health").status_code == 200
            redis_server.stop()
            response = client.get("/api/health")
        finally:
            app.conf.broker_url = broker
    report = response.json()
    assert response.status_code == 503 and report["status"] == "fail"
    assert report["components"]["cache"]["status"] == "fail"
    assert report["components"]["broker"]["status"] == "fail"
    assert report["components"]["database"]["status"] == "ok"
    assert "127.0.0.1" not in response.content.decode()


def test_api_health_services_needs_login_or_token(operator, outsider):
    make_services(2)
    anonymous = Client()
    assert anonymous.get("/api/health/services").status_code == 401
    _token, raw = api_token_create(user=operator, name="monitor")
    response = anonymous.get("/api/health/services", HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = response.json()
    assert response.status_code == 200 and len(body["services"]) == 2
    assert {"name", "state", "latency_ms", "stale", "uptime_percent"} <= set(body["services"][0])
    _token, outsider_raw = api_token_create(user=outsider, name="x")
    response = anonymous.get("/api/health/services", HTTP_AUTHORIZATION=f"Bearer {outsider_raw}")
    assert response.status_code == 403
    assert client_for(operator).get("/api/health/services").status_code == 200


def test_metrics_needs_its_token_and_parses(settings, client):
    make_services(2)
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    client.get("/api/health")  # at least one counted request
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    states = {s.labels["service"]: s.value for s in families["portal_service_state"].samples}
    assert states == {"service-00": 2.0, "service-01": 0.0}
    assert "portal_http_requests" in families and "portal_kpi_value" in families
    assert any(s.labels["metric"] == "availability" for s in families["portal_kpi_value"].samples)
    assert families["portal_images_settled_last_hour"].samples[0].value == 0


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"kind": "http", "target": "not a url"},
            "target",
            "Enter a full http:// or https:// URL.",
        ),
        ({"kind": "http", "target": "ftp://x/"}, "target", "Enter a full http:// or https:// URL."),
        ({"kind": "tcp", "target": "db.internal:70000"}, "target", "out of range (1-65535)"),
        ({"kind": "tls", "target": "example.com"}, "target", "Give host:port"),
        (
            {"kind": "http", "target": "http://x/", "latency_warning_ms": "3000"},
            "latency_warning_ms",
            "must be below the critical one",
        ),
        (
            {"kind": "http", "target": "http://x/", "interval_seconds": "-5"},
            "interval_seconds",
            "greater than or equal to",
        ),
        ({"kind": "tls", "target": "x:443", "days_warning": "3"}, "days_warning", "Warn earlier"),
        ({"kind": "redis", "target": "http://x"}, "target", "redis://"),
    ],
)
def test_admin_refuses_bad_services(data, field, message, django_user_model):
    admin = django_user_model.objects.create_superuser("root2", password="a-long-password-1")
    base = {
        "name": "Bad",
        "slug": "bad",
        "is_active": "on",
        "interval_seconds": "30",
        "timeout_seconds": "5",
        "latency_warning_ms": "1000",
        "latency_critical_ms": "2000",
        "expected_status": "200",
        "days_warning": "21",
        "days_critical": "7",
        "queue_warning": "50",
        "queue_critical": "100",
    }
    response = client_for(admin).post(reverse("admin:ops_monitoredservice_add"), base | data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not MonitoredService.objects.exists()


def test_admin_refuses_kpi_warning_beyond_critical(django_user_model):
    admin = django_user_model.objects.create_superuser("root3", password="a-long-password-1")
    kpi = Kpi.objects.get(metric="queue_size")
    url = reverse("admin:ops_kpi_change", args=[kpi.pk])
    data = {
        "name": kpi.name,
        "metric": "queue_size",
        "target": "10",
        "warning": "150",
        "critical": "100",
        "window_hours": "1",
        "position": "0",
    }
    response = client_for(admin).post(url, data)
    assert (
        response.status_code == 200 and "target ≤ warning ≤ critical" in response.content.decode()
    )
    kpi.refresh_from_db()
    assert kpi.warning == 50


def test_evidence_beside_the_box_and_stored_with_the_tick(make_template, operator, htmx):
    (redis_service,) = make_services(1, results_each=1)  # its last result is critical
    template = make_template(items=["Redis answers", "Queue below 50"])
    ChecklistItem.objects.filter(template=template, text="Redis answers").update(
        evidence_service=redis_service
    )
    ChecklistItem.objects.filter(template=template, text="Queue below 50").update(
        evidence_kpi=Kpi.objects.get(metric="availability")
    )
    (run,) = checklist_runs_schedule()
    client = client_for(operator)
    html = client.get(run.get_absolute_url()).content.decode()
    assert "Service 00" in html and "critical" in html and "Availability:" in html

    item = run.items.get(text="Redis answers")
    url = reverse("ops:item_tick", args=[run.pk, item.pk])
    response = client.post(url, {"done": "1"}, **htmx)
    assert response.status_code == 409
    assert "Service 00 is critical" in response.content.decode()
    assert "Tick anyway" in response.content.decode()
    item.refresh_from_db()
    assert item.state == "open"
    response = client.post(url, {"done": "1", "note": "Known: failover in progress"}, **htmx)
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.state == "done" and item.note == "Known: failover in progress"
    assert item.evidence["state"] == "critical" and item.evidence["name"] == "Service 00"
    assert "evidence: Service 00 critical" in response.content.decode()


def test_ok_evidence_needs_no_note(make_template, operator):
    service = MonitoredService.objects.create(
        name="Web", slug="web", kind="http", target="http://127.0.0.1:9/"
    )
    health_result_store(service=service, outcome=Outcome("ok", "HTTP 200", 3.0))
    template = make_template(items=["Web answers"])
    template.items.update(evidence_service=service)
    (run,) = checklist_runs_schedule()
    item = checklist_item_set_state(item=run.items.get(), user=operator, state=ItemState.DONE)
    assert item.evidence["state"] == "ok" and item.evidence["latency_ms"] == 3.0
    with pytest.raises(ActionRefused):
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE, note="n" * 2001)
    assert json.dumps(item.evidence)


def _stopped_notice(html: str) -> str:
    match = re.search(r'<p class="notice checks-stopped" role="status">(.*?)</p>', html)
    return match.group(1) if match else ""


def test_panel_and_today_say_at_once_that_checks_stopped(operator, htmx):
    """The check dispatcher last ran five minutes ago and no worker has taken a task since:
    the tiles' last results are not three intervals old yet, but the pages say at once that
    checks are not running, since when and why (what /api/health knows)."""
    from ops.tasks import health_checks_run_due_task

    make_services(2)
    client = client_for(operator)
    health_checks_run_due_task.apply()  # the dispatcher ran: its heartbeat is fresh
    cache.set(WORKER_HEARTBEAT_KEY, timezone.now().timestamp())
    cache.set(BEAT_HEARTBEAT_KEY, timezone.now().timestamp())
    assert not _stopped_notice(client.get(reverse("ops:health_panel"), **htmx).content.decode())
    assert not _stopped_notice(client.get(reverse("today")).content.decode())

    last_run = timezone.now() - timedelta(minutes=5)
    cache.set(CHECKS_HEARTBEAT_KEY, last_run.timestamp())
    cache.set(WORKER_HEARTBEAT_KEY, last_run.timestamp())
    since = timezone.localtime(last_run).strftime("%H:%M")
    expected = f"Checks are not running since {since}: workers unreachable."
    for url, headers in ((reverse("ops:health_panel"), htmx), (reverse("today"), {})):
        notice = _stopped_notice(client.get(url, **headers).content.decode())
        assert notice.startswith(expected), (url, notice)


def test_checks_stopped_when_redis_stops_says_why(operator, settings, htmx):
    """Redis (cache and broker) really stopped: the dispatcher's heartbeat cannot be read, so
    the time comes from the last result stored, and the reasons from the probes."""
    from portal.celery import app

    (service,) = make_services(1)
    service.refresh_from_db()
    last_result = timezone.localtime(service.last_checked_at).strftime("%H:%M")
    client = client_for(operator)
    with private_redis() as redis_server:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_server.url,
            }
        }
        broker = app.conf.broker_url
        app.conf.broker_url = redis_server.url
        try:
            redis_server.stop()
            response = client.get(reverse("ops:health_panel"), **htmx)
        finally:
            app.conf.broker_url = broker
    assert response.status_code == 200
    notice = _stopped_notice(response.content.decode())
    assert notice.startswith(
        f"Checks are not running since {last_result}: cache unreachable, broker unreachable, "
        "workers unreachable, scheduler (beat) not running."
    ), notice
