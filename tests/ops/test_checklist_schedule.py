"""When runs open: periods per cadence, once per period, whatever the schedulers do."""

import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from ops.models import Cadence, ChecklistRun, ItemState
from ops.services.checklists import checklist_item_set_state, checklist_runs_schedule
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_template(make_template_at_nine):
    return make_template_at_nine


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("cadence", "extra", "moment", "start", "end"),
    [
        (Cadence.DAILY, {}, "2026-11-23T10:00", "2026-11-23T09:00", "2026-11-24T09:00"),
        # Before today's 09:00 we are still in yesterday's period.
        (Cadence.DAILY, {}, "2026-11-23T08:59", "2026-11-22T09:00", "2026-11-23T09:00"),
        # 2026-11-23 is a Monday; weekly on Wednesday.
        (
            Cadence.WEEKLY,
            {"due_weekday": 2},
            "2026-11-23T10:00",
            "2026-11-18T09:00",
            "2026-11-25T09:00",
        ),
        (
            Cadence.WEEKLY,
            {"due_weekday": 0},
            "2026-11-23T10:00",
            "2026-11-23T09:00",
            "2026-11-30T09:00",
        ),
        (
            Cadence.MONTHLY,
            {"due_day": 1},
            "2026-11-23T10:00",
            "2026-11-01T09:00",
            "2026-12-01T09:00",
        ),
        (
            Cadence.MONTHLY,
            {"due_day": 28},
            "2026-01-05T10:00",
            "2025-12-28T09:00",
            "2026-01-28T09:00",
        ),
        (
            Cadence.QUARTERLY,
            {"due_day": 1},
            "2026-11-23T10:00",
            "2026-10-01T09:00",
            "2027-01-01T09:00",
        ),
        (
            Cadence.QUARTERLY,
            {"due_day": 1},
            "2026-01-01T08:00",
            "2025-10-01T09:00",
            "2026-01-01T09:00",
        ),
    ],
)
def test_period_at(make_template, cadence, extra, moment, start, end):
    template = make_template(cadence=cadence, **extra)
    assert template.period_at(at(moment)) == (at(start), at(end))


def test_period_follows_the_configured_time_zone_across_dst(make_template, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    template = make_template(due_time=time(9, 0))
    # 29 March 2026: clocks go forward; 09:00 in Berlin is 07:00 UTC after the change.
    start, end = template.period_at(at("2026-03-29T12:00"))
    berlin = ZoneInfo("Europe/Berlin")
    assert start == datetime(2026, 3, 29, 9, 0, tzinfo=berlin)
    assert start.astimezone(UTC) == at("2026-03-29T07:00")
    assert end - start == timedelta(hours=24)


def test_scheduler_opens_each_period_once(make_template):
    morning = make_template("Morning check", items=["A", ("B", ["B1", "B2"])])
    weekly = make_template("Weekly review", cadence=Cadence.WEEKLY, due_weekday=0)
    make_template("Pre-deployment", cadence=Cadence.ON_DEMAND)

    opened = checklist_runs_schedule(now=at("2026-11-23T09:00:30"))
    assert {run.template for run in opened} == {morning, weekly}
    run = ChecklistRun.objects.get(template=morning)
    assert [item.text for item in run.items.order_by("position")] == ["A", "B", "B1", "B2"]
    assert run.items_total == 4 and run.due_at == at("2026-11-23T12:00")
    b1 = run.items.get(text="B1")
    assert b1.parent.text == "B" and b1.depth == 1

    # Beat restarts, a second beat runs: nothing new within the same period.
    assert checklist_runs_schedule(now=at("2026-11-23T09:01")) == []
    morning.refresh_from_db()
    morning.save()  # an edit resets next_run_at; the period is still covered
    assert checklist_runs_schedule(now=at("2026-11-23T15:00")) == []
    assert ChecklistRun.objects.filter(template=morning).count() == 1

    # Next day: a new run; the weekly one waits for next Monday.
    opened = checklist_runs_schedule(now=at("2026-11-24T09:00"))
    assert [run.template for run in opened] == [morning]
    assert AuditEntry.objects.filter(action="checklist.run.open", actor=None).count() == 3


def test_scheduler_skips_inactive_templates_and_before_the_due_time(make_template):
    make_template("Old check", is_active=False)
    evening = make_template("Evening check", due_time=time(18, 0))
    # At 17:59 we are in yesterday's evening period, already past its deadline (21:00).
    assert checklist_runs_schedule(now=at("2026-11-23T17:59")) == []
    (run,) = checklist_runs_schedule(now=at("2026-11-23T18:00"))
    assert run.template == evening and run.period_start == at("2026-11-23T18:00")
    assert ChecklistRun.objects.count() == 1


def test_editing_the_template_does_not_rewrite_runs(make_template, operator):
    template = make_template(items=["Check disk space"])
    (run,) = checklist_runs_schedule(now=at("2026-11-23T09:00"))
    item = template.items.get()
    item.text = "Check disk and inode usage"
    item.save()
    template.items.create(text="A new item", position=5)
    run.refresh_from_db()
    assert [i.text for i in run.items.all()] == ["Check disk space"]
    assert run.items_total == 1


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_open_one_run(make_template):
    """Two beats firing together: the unique constraint lets exactly one insert win."""
    for number in range(5):
        make_template(f"Check {number}")
    barrier = threading.Barrier(2)
    errors = []

    def schedule():
        try:
            barrier.wait()
            checklist_runs_schedule(now=at("2026-11-23T09:30"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=schedule) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ChecklistRun.objects.count() == 5
    assert ChecklistRun.objects.values("template").distinct().count() == 5


def test_overdue_and_left_incomplete(make_template, operator):
    template = make_template(items=["Only item"])
    (run,) = checklist_runs_schedule(now=at("2026-11-23T09:00"))
    assert not run.is_overdue(at("2026-11-23T11:59"))
    assert run.is_overdue(at("2026-11-23T12:01"))
    assert run.is_left_incomplete(at("2026-11-24T09:00"))
    checklist_item_set_state(item=run.items.get(), user=operator, state=ItemState.DONE)
    run.refresh_from_db()
    assert run.is_complete and not run.is_overdue(at("2026-11-23T13:00"))
    assert template.runs.count() == 1


def test_a_new_template_does_not_start_with_an_overdue_run(make_template):
    """A fresh install at 16:00: today's 09:00 check (due by 12:00) is not opened as already
    overdue; tomorrow's is. Once a template has history, a late scheduler still opens the run."""
    morning = make_template("Morning check")
    assert checklist_runs_schedule(now=at("2026-11-23T16:00")) == []
    (run,) = checklist_runs_schedule(now=at("2026-11-24T09:00"))
    assert run.template == morning
    # Beat was down all morning the next day: the run still opens, flagged overdue.
    (late,) = checklist_runs_schedule(now=at("2026-11-25T13:00"))
    assert late.period_start == at("2026-11-25T09:00") and late.is_overdue(at("2026-11-25T13:00"))
