"""The portal's own health, as `/api/health` reports it: database, cache, broker, workers and
scheduler. Nothing here names a monitored service or a host.

Workers and beat prove they are alive by heartbeats in the cache: beat's scheduler stamps one
on every tick (portal.celery), and beat sends ``portal.worker_heartbeat`` every 10 s, which
stamps the worker's when a worker takes it from the queue."""

import time
from datetime import datetime

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from portal.celery import app

WORKER_HEARTBEAT_KEY = "portal:heartbeat:worker"
BEAT_HEARTBEAT_KEY = "portal:heartbeat:beat"
# Beat ticks every few seconds and sends the worker heartbeat every 10 s: a minute without
# either means it is down.
HEARTBEAT_FRESH_SECONDS = 60


def worker_heartbeat(*, now: datetime | None = None) -> None:
    cache.set(WORKER_HEARTBEAT_KEY, (now or timezone.now()).timestamp(), timeout=None)


def beat_heartbeat(*, now: datetime | None = None) -> None:
    cache.set(BEAT_HEARTBEAT_KEY, (now or timezone.now()).timestamp(), timeout=None)


def workers_seen_recently() -> int:
    """1 when a worker took the heartbeat task within a minute, else 0: how workers are
    counted where the broker cannot broadcast a ping (the development file-system broker)."""
    stamp = cache.get(WORKER_HEARTBEAT_KEY)
    return int(stamp is not None and time.time() - float(stamp) <= HEARTBEAT_FRESH_SECONDS)


def _timed(probe) -> dict:
    started = time.perf_counter()
    try:
        probe()
    except Exception as error:
        return {"status": "fail", "error": type(error).__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _cache() -> None:
    key = "portal:health:probe"
    cache.set(key, "1", timeout=30)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return what was stored")


def _broker() -> None:
    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=2)


def _heartbeat(key: str, now: datetime, cached: dict) -> dict:
    if "error" in cached:
        return {"status": "fail", "error": "cache unavailable"}
    stamp = cached.get(key)
    if stamp is None:
        return {"status": "fail", "error": "never seen"}
    age = round(now.timestamp() - float(stamp), 1)
    status = "ok" if age <= HEARTBEAT_FRESH_SECONDS else "fail"
    return {"status": status, "last_seen_seconds_ago": age}


def portal_health(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    components = {
        "database": _timed(_database),
        "cache": _timed(_cache),
        "broker": _timed(_broker),
    }
    try:
        cached = cache.get_many([WORKER_HEARTBEAT_KEY, BEAT_HEARTBEAT_KEY])
    except Exception:
        cached = {"error": True}
    components["workers"] = _heartbeat(WORKER_HEARTBEAT_KEY, now, cached)
    components["scheduler"] = _heartbeat(BEAT_HEARTBEAT_KEY, now, cached)
    healthy = all(part["status"] == "ok" for part in components.values())
    return {
        "status": "ok" if healthy else "fail",
        "checked_at": now.isoformat(),
        "components": components,
    }
