"""Each kind of check against a real peer on 127.0.0.1: what it reports, and its reasons."""

import os
import socket
import ssl
import time
from unittest import mock
from urllib.parse import urlsplit

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache

from ops.services.health import celery_outcome_at_start, digitalocean_client, health_check_probe
from ops.services.health_checks import CheckSpec, check_http, check_tls, run_check
from portal.celery import app, broker_can_broadcast
from portal.health import WORKER_HEARTBEAT_KEY, workers_seen_recently
from portal.tasks import worker_heartbeat_task
from tests.fakes import closed_port, controlled_server, private_redis, tls_server


@pytest.fixture
def server():
    with controlled_server() as server:
        yield server


def spec(kind: str, target: str, **extra) -> CheckSpec:
    return CheckSpec(kind=kind, target=target, timeout=extra.pop("timeout", 2.0), **extra)


def test_http_ok_error_slow_and_hung(server):
    ok = run_check(spec("http", server.url + "/api/health", json_field="status", json_value="ok"))
    assert ok.state == "ok" and ok.detail == "HTTP 200" and ok.latency_ms < 1000
    server.mode = "error"
    failing = run_check(spec("http", server.url))
    assert failing.state == "critical" and failing.detail == "HTTP 500, expected 200"
    server.mode, server.delay = "slow", 0.3
    slow = run_check(spec("http", server.url, latency_warning_ms=100, latency_critical_ms=1000))
    assert slow.state == "warning" and slow.detail.startswith("slow: ")
    server.mode = "hang"
    hung = run_check(spec("http", server.url, timeout=0.5))
    assert hung.state == "critical" and hung.detail == "timed out after 0.5 s"


def test_http_body_and_json_mismatch(server):
    server.body = {"status": "degraded", "db": {"ok": False}}
    # Fixed wording: what the target answered is never repeated (see test_health_secrets).
    outcome = run_check(spec("http", server.url, body_contains="healthy"))
    assert outcome.state == "critical" and outcome.detail == "body did not match"
    outcome = run_check(spec("http", server.url, json_field="status", json_value="ok"))
    assert outcome.state == "critical" and outcome.detail == "field did not match"
    outcome = run_check(spec("http", server.url, json_field="db.ok", json_value="False"))
    assert outcome.state == "ok"
    assert run_check(spec("http", server.url, json_field="missing")).detail == (
        "field did not match"
    )


def test_refused_and_dns_failures_are_critical_with_the_reason():
    with closed_port() as closed:
        http = run_check(spec("http", f"http://127.0.0.1:{closed}/"))
        tcp = run_check(spec("tcp", f"127.0.0.1:{closed}"))
    assert http.detail == "connection refused" and tcp.detail == "connection refused"
    # No name is looked up for real: the resolver is made to fail as it does for a bad name.
    failure = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with mock.patch("socket.getaddrinfo", side_effect=failure):
        outcome = run_check(spec("tcp", "no-such-host.invalid:443"))
    assert outcome.state == "critical"
    assert outcome.detail == "DNS lookup failed: Name or service not known"


def test_tcp_open_port(server):
    outcome = run_check(spec("tcp", f"127.0.0.1:{server.server_port}"))
    assert outcome.state == "ok" and outcome.detail == f"port {server.server_port} open"


@pytest.mark.parametrize(("days", "state"), [(90, "ok"), (14, "warning"), (3, "critical")])
def test_tls_days_to_expiry(days, state):
    with tls_server(days=days) as (port, cert):
        context = ssl.create_default_context(cafile=str(cert))
        outcome = check_tls(spec("tls", f"127.0.0.1:{port}"), context=context)
    assert outcome.state == state and outcome.metrics["days_left"] == pytest.approx(days, abs=1)


def test_tls_untrusted_certificate_is_critical():
    with tls_server(days=90) as (port, _cert):
        outcome = run_check(spec("tls", f"127.0.0.1:{port}"))
    assert outcome.state == "critical"
    assert outcome.detail.startswith("TLS certificate not trusted")


def test_https_url_on_a_plain_http_server_is_a_tls_error(server):
    outcome = check_http(spec("http", server.url.replace("http:", "https:")))
    assert outcome.state == "critical" and outcome.detail.startswith("TLS error")


@pytest.mark.postgres
def test_postgres_select_one_and_bad_credentials():
    """Against the PostgreSQL server the suite runs on (DATABASE_URL)."""
    server = urlsplit(os.environ["DATABASE_URL"])
    outcome = run_check(spec("postgres", server._replace(path="/postgres").geturl()))
    assert outcome.state == "ok" and outcome.detail == "SELECT 1 answered"
    with closed_port() as closed:
        refused = f"postgresql://postgres@127.0.0.1:{closed}/postgres"
        outcome = run_check(spec("postgres", refused))
    assert outcome.state == "critical" and "refused" in outcome.detail.lower()
    stranger = server._replace(netloc=f"nobody-here@{server.hostname}:{server.port or 5432}")
    outcome = run_check(spec("postgres", stranger._replace(path="/nope").geturl()))
    assert outcome.state == "critical" and "nobody-here" in outcome.detail


def test_redis_ping_memory_and_hit_rate_then_stopped():
    import redis

    with private_redis() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.get("k")
        client.get("k")
        client.get("missing")
        outcome = run_check(spec("redis", server.url))
        assert outcome.state == "ok" and outcome.metrics["hit_rate"] == pytest.approx(66.67)
        assert "PONG" in outcome.detail and outcome.metrics["used_memory"] > 0
        server.stop()
        outcome = run_check(spec("redis", server.url))
    assert outcome.state == "critical" and "refused" in outcome.detail.lower()


@pytest.mark.django_db(transaction=True)
def test_celery_workers_and_queue_lengths():
    """Workers are pinged on Redis; on the file-system broker, which cannot broadcast safely,
    they are counted by the portal's heartbeat task, which a worker must take from the queue."""
    cache.delete(WORKER_HEARTBEAT_KEY)
    queue = app.conf.task_default_queue
    # No worker: counted as none (a ping on Redis could reach another test process's worker).
    outcome = run_check(spec("celery", queue), celery_app=app, count_workers=lambda: 0)
    assert outcome.state == "critical" and outcome.detail.startswith("no worker answered")
    if app.conf.broker_url.startswith("filesystem"):
        assert health_check_probe(spec("celery", queue)).state == "critical"
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        worker_heartbeat_task.delay()  # ignores its result: wait for what it writes
        deadline = time.monotonic() + 30
        while not workers_seen_recently() and time.monotonic() < deadline:
            time.sleep(0.1)
        # A worker takes tasks a moment before it hears broadcasts (its mailbox subscribes in
        # its event loop): on a busy machine the probe's one ping could go out in between.
        while broker_can_broadcast() and not app.control.ping(timeout=0.5):
            assert time.monotonic() < deadline, "the worker never answered a ping"
        outcome = health_check_probe(spec("celery", queue, timeout=2.0))
    assert outcome.state == "ok" and outcome.metrics["workers"] >= 1
    assert outcome.metrics["queues"] == {queue: 0}


def test_no_worker_right_after_a_start_is_unknown_not_an_outage(settings):
    """Found starting `make run`: the first Celery check ran before the new worker answered
    pings, and the public status page announced a major outage. In the start's grace period
    no worker is "unknown (starting)"; after it, and for a broker that fails, critical."""
    settings.HEALTH_STARTUP_GRACE_SECONDS = 120
    celery = spec("celery", app.conf.task_default_queue)
    none = run_check(celery, celery_app=app, count_workers=lambda: 0)
    starting = celery_outcome_at_start(celery, none, up_for=5)
    assert starting.state == "unknown" and starting.detail.startswith(
        "starting (5 s ago): no worker"
    )
    assert celery_outcome_at_start(celery, none, up_for=121).state == "critical"
    broker_down = run_check(celery, celery_app=app, count_workers=lambda: 0)
    broker_down.metrics = {}  # what a refused broker gives: no count of workers at all
    assert celery_outcome_at_start(celery, broker_down, up_for=5).state == "critical"
    assert celery_outcome_at_start(spec("tcp", "x"), none, up_for=5).state == "critical"
    if app.conf.broker_url.startswith("filesystem"):  # the probe applies it (no broadcast here)
        cache.delete(WORKER_HEARTBEAT_KEY)
        assert health_check_probe(celery, started_at=time.time()).state == "unknown"
        assert health_check_probe(celery, started_at=time.time() - 300).state == "critical"


@pytest.fixture
def digitalocean(server, settings):
    settings.DIGITALOCEAN_TOKEN = server.token
    settings.DIGITALOCEAN_API_URL = server.url
    return server


def do_check(app_id: str):
    return run_check(spec("do_app", app_id), do_client_factory=digitalocean_client)


def test_digitalocean_app_phases_through_pydo(digitalocean):
    digitalocean.apps["a1"] = {"id": "a1", "active_deployment": {"id": "d1", "phase": "ACTIVE"}}
    assert do_check("a1").state == "ok"
    digitalocean.apps["a1"]["in_progress_deployment"] = {"id": "d2", "phase": "BUILDING"}
    outcome = do_check("a1")
    assert outcome.state == "warning" and outcome.detail == (
        "active deployment ACTIVE, deploying (BUILDING)"
    )
    digitalocean.apps["a1"]["in_progress_deployment"]["phase"] = "ERROR"
    assert do_check("a1").state == "critical"
    outcome = do_check("missing")
    assert outcome.state == "critical" and outcome.detail == "app missing not found"


def test_digitalocean_refused_token_and_no_token(digitalocean, settings):
    digitalocean.token = "another"
    outcome = do_check("a1")
    assert outcome.state == "critical" and outcome.detail == "the DigitalOcean token was refused"
    settings.DIGITALOCEAN_TOKEN = ""
    outcome = do_check("a1")
    assert outcome.state == "unknown" and "DIGITALOCEAN_TOKEN is not set" in outcome.detail


def test_a_check_that_raises_becomes_unknown():
    with mock.patch("ops.services.health_checks.check_tcp", side_effect=ZeroDivisionError("x")):
        outcome = run_check(spec("tcp", "127.0.0.1:1"))
    assert outcome.state == "unknown" and outcome.detail == "check failed: ZeroDivisionError: x"
    assert run_check(spec("ftp", "x")).state == "unknown"


def test_celery_check_with_the_broker_stopped_is_critical_not_unknown():
    """The ping is what fails first when the broker is down: that is critical, with why."""
    from celery import Celery

    with private_redis() as broker:
        stopped = Celery("stopped-broker", broker=broker.url)
        stopped.conf.broker_connection_retry = False
        stopped.conf.broker_transport_options = {"max_retries": 0}
        broker.stop()
        outcome = run_check(spec("celery", "some-queue", timeout=1.0), celery_app=stopped)
    assert outcome.state == "critical"
    assert outcome.detail.startswith("broker: ")
