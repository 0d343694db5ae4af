"""Server time and query count of the incident list and the manager report, with 10,000
incidents and 200,000 timeline entries.

    python bench/incidents.py            # the configured database (DATABASE_URL or SQLite)

Builds a throw-away test database, first with 1,000 incidents and 20,000 timeline entries (the
reference), then adds up to 10,000 and 200,000, and measures in-process through Django's test
client: the list's first page, the list filtered and searched, its last page, one incident's
page, and the report over the last 12 months (the default) and over the whole two years.
Prints medians, query counts and the ratio of the large size to the reference: the ratio says
how the pages grow with history.

Each request is timed twice: wall time, and server CPU time (this process, where the view and
SQLite run, plus the PostgreSQL backend serving its connection, read from
/proc/<pid>/schedstat when the server runs on this machine). On a machine shared with other
work the wall time includes waiting for a core; the CPU time is what the request costs.
Issue 17's target for the report computed afresh (an incident changed before each request, so
its figures are not in the cache): under 50 ms at 10,000 incidents over 12 months and over
2 years, and 2 years / 12 months under 1.3; printed as met or not met for both measures.
"""

import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from harness import client_for, throwaway_database, user_in

from ops.models import Incident, Severity, TimelineEntry

SIZES = (1_000, 10_000)
ENTRIES_PER_INCIDENT = 20
DAYS = 730
REPEAT = 20
REPORT_REPEAT = 40  # the report's requests, 12 months and 2 years taking turns
SERVICES = ["api", "login", "checkout", "payments", "search", "db", "cdn", "email"]
TARGET_MS, TARGET_RATIO = 50, 1.3


def backend_cpu() -> float | None:
    """Seconds of CPU used so far by the PostgreSQL backend serving this connection, or None
    (SQLite runs in this process; a server on another machine cannot be read)."""
    if connection.vendor != "postgresql":
        return None
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def timed_together(
    calls: dict[str, Callable], *, repeat: int, before: Callable = lambda: None, warmup: int = 3
) -> dict[str, tuple[float, float, int]]:
    """Median wall and server CPU milliseconds of each call (a test-client request) and its
    query count, after a few untimed rounds. The calls take turns, so a change in the machine's
    load weighs on all of them alike and their ratios hold; ``before`` runs untimed ahead of
    each call."""
    for _ in range(warmup):
        for call in calls.values():
            before()
            call()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    queries: dict[str, int] = {}
    for _ in range(repeat):
        for name, call in calls.items():
            before()
            backend = backend_cpu()
            with CaptureQueriesContext(connection) as captured:
                cpu, started = time.process_time(), time.perf_counter()
                response = call()
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            after = backend_cpu()
            if backend is not None and after is not None and after >= backend:
                cpu += after - backend
            assert response.status_code == 200, response.status_code
            samples[name].append((wall, cpu))
            queries[name] = len(captured)
    return {
        name: (
            statistics.median(wall for wall, _ in taken) * 1000,
            statistics.median(cpu for _, cpu in taken) * 1000,
            queries[name],
        )
        for name, taken in samples.items()
    }


def timed(call: Callable, *, repeat: int) -> tuple[float, float, int]:
    return timed_together({"call": call}, repeat=repeat)["call"]


def add_incidents(count: int, users: list, now, rng: random.Random) -> None:
    severities = list(Severity.objects.order_by("rank"))
    incidents = []
    for number in range(count):
        severity = severities[rng.choices(range(4), weights=[1, 3, 6, 10])[0]]
        detected = now - timedelta(days=rng.uniform(0.5, DAYS))
        started = detected - timedelta(minutes=rng.uniform(0, 30))
        acknowledged = detected + severity.response_time * rng.uniform(0.1, 1.5)
        resolved = acknowledged + timedelta(minutes=rng.uniform(10, 600))
        commander = users[number % len(users)]
        incidents.append(
            Incident(
                title=f"{rng.choice(SERVICES)} errors #{number}",
                severity=severity,
                status="closed",
                commander=commander,
                affected_services=", ".join(rng.sample(SERVICES, 2)),
                started_at=started,
                detected_at=detected,
                acknowledged_at=acknowledged,
                acknowledged_by=commander,
                mitigated_at=resolved - timedelta(minutes=5),
                resolved_at=resolved,
                closed_at=resolved + timedelta(days=1),
                summary="Error rate above threshold; rolled back.",
                response_due_at=detected + severity.response_time,
                escalation_due_at=detected + severity.escalation_time,
                opened_by=commander,
                created_at=detected,
                updated_at=resolved,
            )
        )
    Incident.objects.bulk_create(incidents, batch_size=1000)
    created = Incident.objects.filter(timeline__isnull=True).values_list("pk", "detected_at")
    entries = []
    for pk, detected in created.iterator():
        for step in range(ENTRIES_PER_INCIDENT):
            entries.append(
                TimelineEntry(
                    incident_id=pk,
                    kind="note",
                    text=f"Step {step}: checked dashboards, error rate falling",
                    author=users[step % len(users)],
                    author_name=users[step % len(users)].username,
                    created_at=detected + timedelta(minutes=3 * step),
                )
            )
        if len(entries) >= 20_000:
            TimelineEntry.objects.bulk_create(entries, batch_size=5000)
            entries = []
    TimelineEntry.objects.bulk_create(entries, batch_size=5000)


def measure(client, now) -> dict[str, tuple[float, float, int]]:
    incident = Incident.objects.order_by("-started_at").first()
    last_page = (Incident.objects.count() + 24) // 25
    twenty_four = {"since": (now - timedelta(days=DAYS)).date().isoformat()}

    def change() -> None:
        """What every write to an incident does to the report's cache key: bump a version."""
        Incident.objects.filter(pk=incident.pk).update(version=F("version") + 1)

    return {
        "list, first page": timed(lambda: client.get("/incidents/"), repeat=REPEAT),
        "list, filtered + search": timed(
            lambda: client.get("/incidents/", {"severity": "P2", "q": "login", "service": "api"}),
            repeat=REPEAT,
        ),
        "list, last page": timed(
            lambda: client.get("/incidents/", {"page": last_page}), repeat=REPEAT
        ),
        "incident page": timed(lambda: client.get(incident.get_absolute_url()), repeat=REPEAT),
        **timed_together(
            {
                "report, 12 months": lambda: client.get("/incidents/report/"),
                "report, 2 years": lambda: client.get("/incidents/report/", twenty_four),
            },
            repeat=REPORT_REPEAT,
        ),
        # The figures computed for every request: an incident changes (untimed) before each
        # one, so the request is the first view after a change. (Emptying the whole cache
        # instead would also evict the session and make the request read it again.)
        **timed_together(
            {
                "report, 12 months, computed": lambda: client.get("/incidents/report/"),
                "report, 2 years, computed": lambda: client.get("/incidents/report/", twenty_four),
            },
            before=change,
            repeat=REPORT_REPEAT,
        ),
    }


def main() -> None:
    with throwaway_database():
        now = timezone.now()
        rng = random.Random(4)
        manager = user_in("bench-manager", "Manager")
        users = [manager] + [user_in(f"bench-operator-{n}", "Operator") for n in range(5)]
        client = client_for(manager)
        results, built = {}, 0.0
        for size in SIZES:
            started = time.perf_counter()
            add_incidents(size - Incident.objects.count(), users, now, rng)
            built += time.perf_counter() - started
            results[size] = measure(client, now)
        incidents, entries = Incident.objects.count(), TimelineEntry.objects.count()

    small, large = SIZES
    print(
        f"Database: {connection.vendor}; incidents over {DAYS} days, {ENTRIES_PER_INCIDENT} "
        f"timeline entries each; median of {REPEAT} requests in-process (no network; the "
        f"report's {REPORT_REPEAT}, 12 months and 2 years taking turns); data built in "
        f"{built:.0f} s"
    )
    print(f"Largest size: {incidents} incidents, {entries} timeline entries")
    print(
        f"{'page':28}{'wall ' + f'{small:,}':>12}{f'{large:,}':>10}{'ratio':>8}"
        f"{'CPU ' + f'{small:,}':>12}{f'{large:,}':>10}{'ratio':>8}{'queries':>10}"
    )
    for name in results[small]:
        (small_ms, small_cpu, small_q) = results[small][name]
        (large_ms, large_cpu, large_q) = results[large][name]
        print(
            f"{name:28}{small_ms:>10.1f}ms{large_ms:>8.1f}ms{large_ms / small_ms:>7.2f}x"
            f"{small_cpu:>10.1f}ms{large_cpu:>8.1f}ms{large_cpu / small_cpu:>7.2f}x"
            f"{f'{small_q} / {large_q}':>10}"
        )
    print(
        "CPU: this process plus, on PostgreSQL, its backend. The list pages and the incident "
        "page read a fixed number of rows. The report's figures are computed by the database "
        "on PostgreSQL (percentile_cont, one ROLLUP query), in Python from one row per "
        "incident elsewhere, and cached until an incident changes."
    )
    print(
        f"Target (issue 17): the report computed afresh at {large:,} incidents under "
        f"{TARGET_MS} ms over 12 months and over 2 years, 2 years / 12 months under "
        f"{TARGET_RATIO}."
    )
    for label in ("", ", computed"):
        twelve, two = (
            results[large][f"report, 12 months{label}"],
            results[large][f"report, 2 years{label}"],
        )
        for measure_name, column in (("wall", 0), ("CPU", 1)):
            ratio = two[column] / twelve[column]
            met = max(twelve[column], two[column]) < TARGET_MS and ratio < TARGET_RATIO
            print(
                f"  report{label or ', cached'}, {measure_name}: 12 months "
                f"{twelve[column]:.1f} ms, 2 years {two[column]:.1f} ms, ratio {ratio:.2f}: "
                f"{'met' if met else 'not met'}"
            )


if __name__ == "__main__":
    main()
