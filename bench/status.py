"""The public status page with 30 components and 90 days of history: server time cold (no
server cache) and cached, and requests per second served with the cache warm.

    python bench/status.py [--seconds 3]

In a throw-away test database: 30 components in 3 groups, each made of 2 monitored services
(60 services) with 90 days of hourly roll-ups (129,600 rows), 20 published incidents over the
90 days (3 updates each) and 2 public maintenance windows ahead. Reference measured in the
same run: the same page with 3 components and 1 day of history (cold), and a trivial view
(the /favicon.ico redirect) through the same middleware, in requests per second.
"""

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from harness import throwaway_database, user_in

from ops.models import (
    CheckRollup,
    ComponentGroup,
    MaintenanceWindow,
    MonitoredService,
    StatusComponent,
)
from ops.services.incidents import incident_open
from ops.services.status import public_update_post
from ops.services.status_cache import VERSION_KEY

COMPONENTS = 30
SERVICES_EACH = 2
DAYS = 90
REPEAT = 20
PAGE = "/status/"
JSON = "/status/api/v2/summary.json"


def build(components: int, days: int, now: datetime) -> int:
    StatusComponent.objects.all().delete()
    ComponentGroup.objects.all().delete()
    CheckRollup.objects.all().delete()
    MonitoredService.objects.all().delete()
    groups = [ComponentGroup.objects.create(name=f"Group {n}", position=n) for n in range(3)]
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    rollups = []
    for n in range(components):
        component = StatusComponent.objects.create(
            name=f"Component {n:02}",
            slug=f"component-{n:02}",
            group=groups[n % 3],
            position=n,
            description=f"What customers do with component {n}.",
        )
        services = [
            MonitoredService.objects.create(
                name=f"Service {n:02}-{k}",
                slug=f"service-{n:02}-{k}",
                kind="tcp",
                target="127.0.0.1:9",
                state="ok",
            )
            for k in range(SERVICES_EACH)
        ]
        component.services.set(services)
        for service in services:
            for hour in range(days * 24):
                down = (hour * 7 + n) % 997 == 0
                rollups.append(
                    CheckRollup(
                        service=service,
                        hour=hour0 - timedelta(hours=hour),
                        checks=120,
                        up=100 if down else 120,
                        critical=20 if down else 0,
                        worst_state="critical" if down else "ok",
                    )
                )
    CheckRollup.objects.bulk_create(rollups, batch_size=2000)
    return len(rollups)


def publish(now: datetime, user, count: int) -> None:
    services = list(MonitoredService.objects.order_by("pk"))
    for n in range(count):
        started = now - timedelta(days=DAYS * (n + 1) / (count + 1))
        incident = incident_open(
            user=user,
            title=f"Internal title {n}",
            severity=("P1", "P2", "P3")[n % 3],
            services=[services[(n * 5) % len(services)].slug],
            started_at=started,
            detected_at=started,
        )
        for step, status in enumerate(("investigating", "identified", "resolved")):
            public_update_post(
                incident=incident,
                user=user,
                status=status,
                message=f"Update {step} of incident {n}: what customers read.",
                title=f"Public title {n}" if step == 0 else "",
                now=started + timedelta(minutes=30 * (step + 1)),
            )
    for n in range(2):
        window = MaintenanceWindow.objects.create(
            title=f"Upgrade {n}",
            starts_at=now + timedelta(days=n + 1),
            duration=timedelta(hours=1),
            is_public=True,
            announcement="Checkout may be slow.",
        )
        window.services.set(services[n : n + 2])


def timed(client: Client, path: str, *, repeat: int = REPEAT) -> tuple[float, int]:
    client.get(path)
    samples, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path)
            samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        queries = len(captured)
    return statistics.median(samples) * 1000, queries


def per_second(client: Client, path: str, status: int, seconds: float) -> float:
    client.get(path)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        response = client.get(path)
        assert response.status_code == status, (path, response.status_code)
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput figure")
    options = parser.parse_args()
    client = Client()
    with throwaway_database():
        # This run's pages only: a version of its own in the cache.
        cache.set(VERSION_KEY, f"bench-{time.time_ns()}", None)
        now = datetime.now(UTC)
        user = user_in("bench", "Manager")
        settings.STATUS_CACHE_SECONDS = 0
        build(3, 1, now)
        small = timed(client, PAGE)
        started = time.perf_counter()
        rows = build(COMPONENTS, DAYS, now)
        publish(now, user, 20)
        built = time.perf_counter() - started
        cold = timed(client, PAGE)
        cold_json = timed(client, JSON)
        settings.STATUS_CACHE_SECONDS = 30
        cached = timed(client, PAGE)
        cached_json = timed(client, JSON)
        page_rps = per_second(client, PAGE, 200, options.seconds)
        trivial_rps = per_second(client, "/favicon.ico", 301, options.seconds)
        size = len(client.get(PAGE).content)
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"Database: {connection.vendor}; cache: {backend}; {COMPONENTS} components of "
        f"{SERVICES_EACH} services, {DAYS} days ({rows} hourly roll-ups, 20 incidents; built "
        f"in {built:.0f} s); page {size / 1024:.0f} KiB; median of {REPEAT} requests, in-process"
    )
    print(f"{'':34}{'time':>10}{'queries':>9}{'vs small':>10}")
    print(f"{'page, 3 components x 1 day, cold':34}{small[0]:>8.1f}ms{small[1]:>9}{'1.00x':>10}")
    for label, (ms, queries) in (
        ("page, cold (no server cache)", cold),
        ("page, cached", cached),
        ("summary.json, cold", cold_json),
        ("summary.json, cached", cached_json),
    ):
        print(f"{label:34}{ms:>8.1f}ms{queries:>9}{ms / small[0]:>9.2f}x")
    print(f"cached / cold: {cached[0] / cold[0]:.3f}x ({cold[0] / cached[0]:.0f} times faster)")
    print(
        f"requests per second, one process, cache warm: page {page_rps:.0f}, "
        f"trivial view (/favicon.ico redirect) {trivial_rps:.0f}: "
        f"{page_rps / trivial_rps:.2f}x the trivial view"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
