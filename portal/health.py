"""The portal's own health, as `/api/health` reports it: database, cache, broker, workers and
scheduler. Nothing here names a monitored service or a host.

Workers and beat prove they are alive by heartbeats in the cache: beat's scheduler stamps one
on every tick (portal.celery), and beat sends ``portal.worker_heartbeat`` every 10 s, which
stamps the worker's when a worker takes it from the queue.

A process that holds work (an image claimed by a worker) proves it is alive by a heartbeat of its
own: ``process_heartbeat_start`` runs a thread that stamps the process's identity every few
seconds, and whoever would take the work over asks ``processes_alive`` first."""

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from portal.celery import app

logger = logging.getLogger(__name__)
WORKER_HEARTBEAT_KEY = "portal:heartbeat:worker"
BEAT_HEARTBEAT_KEY = "portal:heartbeat:beat"
# Stamped by the task that runs the due health checks (beat sends it every 10 s): three missed
# runs mean the checks have stopped, long before any tile turns stale (three of its intervals).
CHECKS_HEARTBEAT_KEY = "portal:heartbeat:checks"
CHECKS_STALE_SECONDS = 30
# Beat ticks every few seconds and sends the worker heartbeat every 10 s: a minute without
# either means it is down.
HEARTBEAT_FRESH_SECONDS = 60
# When this process (the web server's worker) started: /api/health says "starting" for a
# grace period after it, while workers and beat come up.
PROCESS_STARTED_AT = time.time()


# A process holding work stamps its heartbeat this often; one not stamped for
# PROCESS_HEARTBEAT_STALE_SECONDS is dead (killed, out of memory, its machine gone).
PROCESS_HEARTBEAT_SECONDS = 5
PROCESS_HEARTBEAT_STALE_SECONDS = 20
_PROCESS_HEARTBEAT_PREFIX = "portal:heartbeat:process:"
_process_beats: dict[int, threading.Thread] = {}
_process_beats_lock = threading.Lock()


def process_identity() -> str:
    """Who this process is, as a claim records it and its heartbeat is keyed: host and pid."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def _process_key(identity: str) -> str:
    return _PROCESS_HEARTBEAT_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:32]


def _process_stamp(identity: str) -> None:
    cache.set(_process_key(identity), time.time(), timeout=PROCESS_HEARTBEAT_STALE_SECONDS)


def _process_beat(identity: str) -> None:
    wake = threading.Event()
    while True:
        try:
            _process_stamp(identity)
        except Exception:  # the cache is down: the heartbeat resumes when it is back
            logger.warning("Could not stamp the heartbeat of %s", identity, exc_info=True)
        wake.wait(PROCESS_HEARTBEAT_SECONDS)


def process_heartbeat_start() -> str:
    """Make sure this process stamps its heartbeat (a daemon thread, one per process, started
    again in a forked child) and return the identity it stamps under: record it with the
    work this process takes, so that others can tell whether it still holds it."""
    identity = process_identity()
    pid = os.getpid()
    with _process_beats_lock:
        thread = _process_beats.get(pid)
        if thread is None or not thread.is_alive():
            try:
                _process_stamp(identity)  # covered from the first moment, not after a beat
            except Exception:
                logger.warning("Could not stamp the heartbeat of %s", identity, exc_info=True)
            thread = threading.Thread(
                target=_process_beat, args=(identity,), name="process-heartbeat", daemon=True
            )
            thread.start()
            _process_beats[pid] = thread
    return identity


def processes_alive(identities: Iterable[str]) -> dict[str, bool] | None:
    """Whether each process stamped its heartbeat within PROCESS_HEARTBEAT_STALE_SECONDS; None
    when the cache cannot be read, as then nobody can be called dead."""
    identities = list(dict.fromkeys(identities))
    try:
        found = cache.get_many([_process_key(identity) for identity in identities])
    except Exception:
        logger.warning("Could not read process heartbeats", exc_info=True)
        return None
    now = time.time()
    alive = {}
    for identity in identities:
        stamp = found.get(_process_key(identity))
        alive[identity] = (
            stamp is not None and now - float(stamp) <= PROCESS_HEARTBEAT_STALE_SECONDS
        )
    return alive


def checks_heartbeat(*, now: datetime | None = None) -> None:
    cache.set(CHECKS_HEARTBEAT_KEY, (now or timezone.now()).timestamp(), timeout=None)


@dataclass(frozen=True)
class ChecksStopped:
    """Checks are not running: since when (the dispatcher's last run, or else the last result
    stored; None when neither is known) and why, in the words of /api/health's parts."""

    since: datetime | None
    reasons: tuple[str, ...]


_STOPPED_REASONS = {
    "cache": "cache unreachable",
    "broker": "broker unreachable",
    "workers": "workers unreachable",
    "scheduler": "scheduler (beat) not running",
}


def checks_stopped(
    *, now: datetime | None = None, last_result_at: datetime | None = None
) -> ChecksStopped | None:
    """None while the check dispatcher ran within CHECKS_STALE_SECONDS. Otherwise since when it
    has not and why: the parts of the portal's health that fail (the same probes as
    /api/health, without the database, which answers this very page)."""
    now = now or timezone.now()
    try:
        cached = cache.get_many([CHECKS_HEARTBEAT_KEY, WORKER_HEARTBEAT_KEY, BEAT_HEARTBEAT_KEY])
    except Exception:
        cached = {"error": True}
    stamp = cached.get(CHECKS_HEARTBEAT_KEY)
    if stamp is not None and now.timestamp() - float(stamp) <= CHECKS_STALE_SECONDS:
        return None
    since = datetime.fromtimestamp(float(stamp), tz=UTC) if stamp is not None else last_result_at
    parts = {
        "cache": {"status": "fail"} if "error" in cached else {"status": "ok"},
        "broker": _timed(_broker),
        "workers": _heartbeat(WORKER_HEARTBEAT_KEY, now, cached),
        "scheduler": _heartbeat(BEAT_HEARTBEAT_KEY, now, cached),
    }
    reasons = tuple(
        reason for part, reason in _STOPPED_REASONS.items() if parts[part]["status"] != "ok"
    )
    if not reasons:
        reasons = ("the check task is not being run (workers busy, or it fails: see their log)",)
    return ChecksStopped(since=since, reasons=reasons)


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


def portal_health(*, now: datetime | None = None, started_at: float | None = None) -> dict:
    """Each part's state and the overall one: "ok", "fail", or "starting" for the first
    HEALTH_STARTUP_GRACE_SECONDS after this process started, while the database, cache and
    broker answer but the workers or beat have not been seen yet (a restart is not an
    outage for the monitors; anything else failing is)."""
    now = now or timezone.now()
    started_at = PROCESS_STARTED_AT if started_at is None else started_at
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
    status = "ok" if all(part["status"] == "ok" for part in components.values()) else "fail"
    up_for = now.timestamp() - started_at
    if status == "fail" and up_for < settings.HEALTH_STARTUP_GRACE_SECONDS:
        services = ("database", "cache", "broker")
        if all(components[name]["status"] == "ok" for name in services):
            status = "starting"
            for name in ("workers", "scheduler"):
                if components[name]["status"] == "fail":
                    components[name]["status"] = "starting"
    report = {"status": status, "checked_at": now.isoformat(), "components": components}
    if status == "starting":
        report["starting_for_seconds"] = round(up_for, 1)
    return report
