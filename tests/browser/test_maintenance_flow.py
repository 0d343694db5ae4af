"""Maintenance in a real browser: a manager schedules a recurring window with the picker and
its preview, finds it on the calendar; its pre-maintenance run opens before it starts and an
operator ticks it."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from ops.models import MaintenanceWindow, MonitoredService, WindowOccurrence
from ops.services.maintenance import maintenance_scan
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _next_sunday(days_ahead: int) -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=days_ahead)
    day += timedelta(days=(6 - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)


def test_manager_schedules_and_operator_ticks_the_pre_maintenance_run(
    new_page, make_template, operator, manager
):
    make_template(
        "Pre-maintenance checklist",
        items=["Backups verified", "Team notified"],
        cadence="on-demand",
    )
    make_template("Post-maintenance checklist", items=["Smoke tests pass"], cadence="on-demand")
    MonitoredService.objects.create(
        name="Database", slug="database", kind="tcp", target="127.0.0.1:5432"
    )
    start = _next_sunday(4)

    page = new_page()
    log_in(page, "maria", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Maintenance").click()
    page.get_by_role("link", name="Windows", exact=True).click()
    page.get_by_role("link", name="Schedule maintenance").click()
    page.get_by_label("Title").fill("Database upgrade")
    page.get_by_label("Starts").fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends").fill((start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Time zone").fill("UTC")
    page.get_by_label("Recurring").check()
    page.get_by_label("Repeats").select_option(label="Every N weeks on weekdays")
    page.get_by_role("group", name="Schedule").get_by_label("Sunday").check()
    preview = page.get_by_role("status")
    expect(preview).to_contain_text("Weekly on Sunday")
    expect(preview.get_by_role("listitem")).to_have_count(5)
    page.get_by_label("Database").check()
    page.get_by_label("Rollback plan").fill("Restore last night's snapshot")
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("heading", name="Database upgrade")).to_be_visible()
    window = MaintenanceWindow.objects.get()
    assert window.rrule == "FREQ=WEEKLY;BYDAY=SU" and window.created_by == manager

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    if start.month != datetime.now(UTC).month:
        page.get_by_role("link", name="Next month").click()
    expect(page.get_by_role("heading", name=start.strftime("%B %Y"))).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Database upgrade")).first).to_be_visible()

    # The scheduler, an hour before the start: the pre-maintenance run opens.
    maintenance_scan(now=start - timedelta(minutes=59))
    occurrence = WindowOccurrence.objects.get(window=window, starts_at=start)
    assert occurrence.pre_run is not None

    ops = new_page()
    log_in(ops, "olivia", PASSWORD)
    ops.goto(window.get_absolute_url())
    ops.get_by_role("link", name="Pre-maintenance checklist").click()
    ops.get_by_role("checkbox", name="Backups verified").check()
    expect(ops.locator("li.run-item", has_text="Backups verified")).to_contain_text("✓ olivia")
    occurrence.pre_run.refresh_from_db()
    assert occurrence.pre_run.items_done == 1
    assert occurrence.pre_run.maintenance_window_id == window.pk
    page.screenshot(path="var/test-maintenance-calendar.png", full_page=True)
