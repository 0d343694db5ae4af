"""One beat tick of alert evaluation: 500 rules over a day of results of 50 services.

    python bench/alerts.py            # the configured database (DATABASE_URL or SQLite)

In a throw-away test database: 50 HTTP services checked every 30 s for 24 hours (144,000
results), 500 rules (error rate and P95 per service and over all services, service state,
failed sign-ins, KPIs), first with one hour of results (the reference), then with the day.
Prints the median time and the query count of `alerts_evaluate` (the task's body), and the
ratio day / hour: the figure that says whether a tick slows down as results accumulate.
"""

import random
import statistics
import time
from datetime import timedelta

from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from harness import throwaway_database

from ops.models import AlertRule, CheckResult, Kpi, MonitoredService
from ops.services.alerts import alerts_evaluate

SERVICES = 50
RULES = 500
INTERVAL = 30
REPEAT = 7


def fill(services, now, hours: int) -> int:
    rng = random.Random(15)
    CheckResult.objects.all().delete()
    per_service = hours * 3600 // INTERVAL
    for service in services:
        CheckResult.objects.bulk_create(
            (
                CheckResult(
                    service=service,
                    checked_at=now - timedelta(seconds=INTERVAL * step),
                    state="critical" if rng.random() < 0.02 else "ok",
                    latency_ms=rng.lognormvariate(4, 0.6),
                )
                for step in range(per_service)
            ),
            batch_size=5000,
        )
    return CheckResult.objects.count()


def make_rules(services) -> None:
    kpis = list(Kpi.objects.all())
    kinds = [
        ("error_rate", 5, "critical"),
        ("error_rate", 1, "warning"),
        ("latency_p95", 5000, "critical"),
        ("latency_p95", 2000, "warning"),
        ("service_down", 0.5, "critical"),
    ]
    rules = []
    for number in range(RULES):
        source, threshold, severity = kinds[number % len(kinds)]
        service = services[number % SERVICES] if number % 10 else None
        values = {"source": source, "threshold": threshold, "severity": severity}
        if number % 50 == 7:
            values = {"source": "login_failures", "threshold": 10, "severity": "critical"}
            service = None
        elif number % 50 == 9 and kpis:
            kpi = kpis[number % len(kpis)]
            values = {"source": "kpi", "kpi": kpi, "threshold": 0, "severity": "warning"}
            service = None
        rules.append(
            AlertRule(
                name=f"Rule {number:03}",
                service=service,
                window_minutes=5 + number % 10,
                for_minutes=5,
                **values,
            )
        )
    AlertRule.objects.bulk_create(rules)


def measure(now) -> tuple[float, int, dict]:
    times, queries, outcome = [], 0, {}
    alerts_evaluate(now=now - timedelta(seconds=30))  # the tick before: rules' values known
    for step in range(REPEAT):
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            outcome = alerts_evaluate(now=now + timedelta(seconds=step))
            times.append((time.perf_counter() - started) * 1000)
        queries = len(captured)
    return statistics.median(times), queries, outcome


def main() -> None:
    with throwaway_database():
        now = timezone.now()
        services = [
            MonitoredService.objects.create(
                name=f"Service {n:02}",
                slug=f"service-{n:02}",
                kind="http",
                target=f"http://127.0.0.1:9/{n}",
                state="ok",
            )
            for n in range(SERVICES)
        ]
        make_rules(services)
        fill(services, now, hours=1)
        reference = measure(now)
        started = time.perf_counter()
        results = fill(services, now, hours=24)
        built = time.perf_counter() - started
        day = measure(now)
    print(
        f"Database: {connection.vendor}; {RULES} rules, {SERVICES} services checked every "
        f"{INTERVAL} s; median of {REPEAT} ticks of alerts_evaluate, in-process"
    )
    print(f"a day = {results} results (built in {built:.0f} s); last tick: {day[2]}")
    print(f"{'':20}{'1 hour':>10}{'1 day':>10}{'ratio':>8}")
    print(f"{'tick time':20}{reference[0]:>8.1f}ms{day[0]:>8.1f}ms{day[0] / reference[0]:>7.2f}x")
    print(f"{'queries':20}{reference[1]:>10}{day[1]:>10}")


if __name__ == "__main__":
    main()
