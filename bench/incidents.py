"""Server time and query count of the incident list and the manager report, with 10,000
incidents and 200,000 timeline entries.

    python bench/incidents.py            # the configured database (DATABASE_URL or SQLite)

Builds a throw-away test database, first with 1,000 incidents and 20,000 timeline entries (the
reference), then adds up to 10,000 and 200,000, and measures in-process through Django's test
client: the list's first page, the list filtered and searched, its last page, one incident's
page, and the report over the last 12 months (the default) and over the whole two years.
Prints medians, query counts and the ratio of the large size to the reference: the ratio says
how the pages grow with history.
"""

import random
import time
from datetime import timedelta

from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from harness import client_for, throwaway_database, timed, user_in

from ops.models import Incident, Severity, TimelineEntry

SIZES = (1_000, 10_000)
ENTRIES_PER_INCIDENT = 20
DAYS = 730
REPEAT = 20
SERVICES = ["api", "login", "checkout", "payments", "search", "db", "cdn", "email"]


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


def measure(client, now) -> dict[str, tuple[float, int]]:
    incident = Incident.objects.order_by("-started_at").first()
    last_page = (Incident.objects.count() + 24) // 25
    two_years = (now - timedelta(days=DAYS)).date().isoformat()
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
        "report, 12 months": timed(lambda: client.get("/incidents/report/"), repeat=REPEAT),
        "report, 2 years": timed(
            lambda: client.get("/incidents/report/", {"since": two_years}), repeat=REPEAT
        ),
        # The figures computed for every request (the cache emptied first): the first view
        # after an incident changed.
        "report, 12 months, computed": timed(
            lambda: (cache.clear(), client.get("/incidents/report/"))[1], repeat=REPEAT
        ),
        "report, 2 years, computed": timed(
            lambda: (cache.clear(), client.get("/incidents/report/", {"since": two_years}))[1],
            repeat=REPEAT,
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
        f"timeline entries each; median of {REPEAT} requests in-process (no network); data "
        f"built in {built:.0f} s"
    )
    print(f"Largest size: {incidents} incidents, {entries} timeline entries")
    print(f"{'page':26}{f'{small:,}':>12}{f'{large:,}':>12}{'ratio':>8}{'queries':>12}")
    for name in results[small]:
        (small_ms, small_q), (large_ms, large_q) = results[small][name], results[large][name]
        print(
            f"{name:26}{small_ms:>10.1f}ms{large_ms:>10.1f}ms{large_ms / small_ms:>7.2f}x"
            f"{f'{small_q} / {large_q}':>12}"
        )
    print(
        "The list pages and the incident page read a fixed number of rows. The report's figures "
        "are computed by the database on PostgreSQL (percentile_cont), in Python from one row "
        "per incident elsewhere, and cached until an incident changes."
    )
    large_results = results[large]
    for label in ("", ", computed"):
        twelve = large_results[f"report, 12 months{label}"][0]
        two = large_results[f"report, 2 years{label}"][0]
        ratio = two / twelve
        print(
            f"Report at {large:,} incidents{label or ', cached'}: 12 months {twelve:.1f} ms, "
            f"2 years {two:.1f} ms, ratio {ratio:.2f}x: "
            f"{'PASS' if max(twelve, two) < 50 else 'FAIL'} (< 50 ms), "
            f"{'PASS' if ratio < 1.3 else 'FAIL'} (ratio < 1.3)"
        )


if __name__ == "__main__":
    main()
