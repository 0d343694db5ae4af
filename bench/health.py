"""Server time and query count of the health panel partial with 50 services and 30 days of
results.

    python bench/health.py

In a throw-away test database: 50 HTTP services checked every 30 s, first with one hour of
results (the reference), then with 30 days (raw results for the last two days, as pruning
keeps them, and hourly roll-ups for all 30). Prints medians of the htmx partial the page polls
every 10 s, and the ratio 30 days / 1 hour.
"""

import random
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from harness import client_for, throwaway_database, timed, user_in

from ops.models import CheckResult, CheckRollup, MonitoredService
from ops.models.health import latency_bucket

SERVICES = 50
INTERVAL = 30
REPEAT = 20


def fill(services, now, *, raw_hours: int, rollup_hours: int) -> int:
    rng = random.Random(7)
    CheckResult.objects.all().delete()
    CheckRollup.objects.all().delete()
    per_hour = 3600 // INTERVAL
    for service in services:
        results, rollups = [], []
        for hour in range(rollup_hours):
            start = (now - timedelta(hours=hour)).replace(minute=0, second=0, microsecond=0)
            latencies = [rng.lognormvariate(3, 0.5) for _ in range(per_hour)]
            down = rng.random() < 0.01
            buckets: dict[str, int] = {}
            for latency in latencies:
                bucket = latency_bucket(latency)
                buckets[bucket] = buckets.get(bucket, 0) + 1
            rollups.append(
                CheckRollup(
                    service=service,
                    hour=start,
                    checks=per_hour,
                    up=per_hour - (5 if down else 0),
                    critical=5 if down else 0,
                    latency_sum_ms=sum(latencies),
                    latency_count=per_hour,
                    latency_max_ms=max(latencies),
                    latency_buckets=buckets,
                    worst_state="critical" if down else "ok",
                )
            )
            if hour < raw_hours:
                results += [
                    CheckResult(
                        service=service,
                        checked_at=now - timedelta(hours=hour, seconds=INTERVAL * step),
                        state="ok",
                        latency_ms=latency,
                        detail="HTTP 200",
                    )
                    for step, latency in enumerate(latencies)
                ]
        CheckRollup.objects.bulk_create(rollups, batch_size=1000)
        CheckResult.objects.bulk_create(results, batch_size=2000)
    return CheckResult.objects.count()


def build_services(now) -> list[MonitoredService]:
    return [
        MonitoredService.objects.create(
            name=f"Service {n:02}",
            slug=f"service-{n:02}",
            kind="http",
            target=f"http://127.0.0.1:9/{n}",
            state="ok",
            last_checked_at=now,
            last_latency_ms=20.0,
            last_detail="HTTP 200",
        )
        for n in range(SERVICES)
    ]


def measure(client) -> tuple[float, int]:
    return timed(lambda: client.get("/health/", HTTP_HX_REQUEST="true"), repeat=REPEAT)


def main() -> None:
    with throwaway_database():
        now = timezone.now()
        client = client_for(user_in("bench", "Operator"))
        services = build_services(now)
        fill(services, now, raw_hours=1, rollup_hours=1)
        reference = measure(client)
        started = time.perf_counter()
        raw = fill(services, now, raw_hours=48, rollup_hours=24 * 30)
        built = time.perf_counter() - started
        month = measure(client)
        rollups = CheckRollup.objects.count()
    print(
        f"Database: {connection.vendor}; {SERVICES} services checked every {INTERVAL} s; "
        f"median of {REPEAT} requests of the panel partial, in-process"
    )
    print(
        f"30 days = {raw} raw results (last 48 h) + {rollups} hourly roll-ups "
        f"(built in {built:.0f} s)"
    )
    print(f"{'':20}{'1 hour':>10}{'30 days':>10}{'ratio':>8}")
    print(
        f"{'server time':20}{reference[0]:>8.1f}ms{month[0]:>8.1f}ms"
        f"{month[0] / reference[0]:>7.2f}x"
    )
    print(f"{'queries':20}{reference[1]:>10}{month[1]:>10}")


if __name__ == "__main__":
    main()
