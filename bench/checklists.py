"""Server time of the home page and of one tick, with 20 templates and a year of daily runs.

    python bench/checklists.py            # the configured database (DATABASE_URL or SQLite)

Builds a throw-away test database, measures the home page (GET /) and one tick (htmx POST)
in-process through Django's test client, first with one day of history (the reference), then
with a year, and prints medians, query counts and the ratio year / reference. The ratio is the
figure that matters: it says whether the pages slow down as history grows.
"""

import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from harness import client_for, throwaway_database, timed, user_in

from ops.models import ChecklistItem, ChecklistRun, ChecklistTemplate, RunItem
from ops.services.checklists import checklist_runs_schedule

TEMPLATES = 20
ITEMS = 6
DAYS = 365
HISTORIES = (1, 30, DAYS)
REPEAT = 30


def build_templates(now) -> list[ChecklistTemplate]:
    due = (timezone.localtime(now) - timedelta(minutes=5)).time().replace(second=0, microsecond=0)
    templates = []
    for number in range(TEMPLATES):
        template = ChecklistTemplate.objects.create(
            name=f"Check {number:02}", slug=f"check-{number:02}", cadence="daily", due_time=due
        )
        ChecklistItem.objects.bulk_create(
            ChecklistItem(template=template, position=p, text=f"Item {p}") for p in range(ITEMS)
        )
        templates.append(template)
    return templates


def add_history(templates, user, now, days: int) -> None:
    """``days`` of completed daily runs per template, every item ticked."""
    for template in templates:
        current_start, _end = template.period_at(now)
        runs = []
        for day in range(days, 0, -1):
            start = current_start - timedelta(days=day)
            runs.append(
                ChecklistRun(
                    template=template,
                    title=template.name,
                    status="completed",
                    period_start=start,
                    period_end=start + timedelta(days=1),
                    due_at=start + timedelta(hours=3),
                    created_at=start,
                    started_at=start + timedelta(minutes=3),
                    completed_at=start + timedelta(minutes=3 + day % 20),
                    completed_by=user,
                    items_total=ITEMS,
                    items_done=ITEMS,
                )
            )
        ChecklistRun.objects.bulk_create(runs, batch_size=500)
        runs = ChecklistRun.objects.filter(template=template, status="completed")
        RunItem.objects.bulk_create(
            (
                RunItem(
                    run=run,
                    position=p,
                    text=f"Item {p}",
                    state="done",
                    done_by=user,
                    done_at=run.completed_at,
                )
                for run in runs
                for p in range(ITEMS)
            ),
            batch_size=2000,
        )


def measure(client, run: ChecklistRun) -> dict:
    item = run.items.first()
    url = f"/runs/{run.pk}/items/{item.pk}/tick/"
    state = {"done": False}

    def tick():
        state["done"] = not state["done"]
        return client.post(url, {"done": "1"} if state["done"] else {}, HTTP_HX_REQUEST="true")

    home_ms, home_q = timed(lambda: client.get("/"), repeat=REPEAT)
    tick_ms, tick_q = timed(tick, repeat=REPEAT)
    return {"home_ms": home_ms, "home_q": home_q, "tick_ms": tick_ms, "tick_q": tick_q}


def main() -> None:
    with throwaway_database():
        now = timezone.now()
        user = user_in("bench-operator", "Operator")
        client = client_for(user)
        templates = build_templates(now)
        results = {}
        started = time.perf_counter()
        for days in HISTORIES:
            ChecklistRun.objects.filter(status="completed").delete()
            add_history(templates, user, now, days=days)
            if not results:
                (run, *_) = checklist_runs_schedule(now=now)
            results[days] = measure(client, run)
        built = time.perf_counter() - started
        runs = ChecklistRun.objects.count()
        items = RunItem.objects.count()

    print(
        f"Database: {connection.vendor}; {TEMPLATES} daily templates x {ITEMS} items; median of "
        f"{REPEAT} requests in-process (no network); run in {built:.0f} s"
    )
    print(f"Largest history: {DAYS} days = {runs} runs, {items} run items")
    header = "".join(f"{f'{days} d':>10}" for days in HISTORIES)
    print(f"{'history':24}{header}{'365 d / 30 d':>14}")
    for label, key, queries in [
        ("home page GET /", "home_ms", "home_q"),
        ("one tick (htmx POST)", "tick_ms", "tick_q"),
    ]:
        times = "".join(f"{results[days][key]:>8.1f}ms" for days in HISTORIES)
        ratio = results[DAYS][key] / results[30][key]
        print(f"{label:24}{times}{ratio:>13.2f}x")
        counts = "".join(f"{results[days][queries]:>10}" for days in HISTORIES)
        print(f"{'  queries':24}{counts}")
    print(
        "The home page summarises the last 30 days, so its time levels off once a template has "
        "30 days of runs: the 365 d / 30 d ratio is the growth with history."
    )


if __name__ == "__main__":
    main()
