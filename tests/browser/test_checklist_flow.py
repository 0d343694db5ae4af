"""An operator's shift in a real browser: log in, open the morning check, tick, reload; a
colleague's browser sees the ticks arrive."""

import re

import pytest
from playwright.sync_api import expect

from ops.models import RunItem
from ops.services.checklists import checklist_runs_schedule
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def morning_run(make_template):
    make_template(
        "Morning check",
        items=[
            {"text": "Health endpoint answers", "command": "curl -s $PORTAL_URL/api/health"},
            "No critical errors in logs",
            "Backups completed",
        ],
    )
    (run,) = checklist_runs_schedule()
    return run


def test_operator_ticks_and_a_colleague_sees_it(new_page, morning_run, operator, second_operator):
    colleague = new_page()
    log_in(colleague, "oscar", PASSWORD)
    colleague.goto(morning_run.get_absolute_url())
    expect(colleague.get_by_role("checkbox", name="Health endpoint answers")).not_to_be_checked()

    page = new_page()
    log_in(page, "olivia", PASSWORD)
    page.get_by_role("link", name="Morning check").first.click()
    expect(page.get_by_role("heading", name="Morning check")).to_be_visible()

    page.get_by_role("checkbox", name="Health endpoint answers").check()
    row = page.locator("li.run-item", has_text="Health endpoint answers")
    expect(row).to_contain_text("✓ olivia")
    # Keyboard: focus the second box and press Space.
    page.get_by_role("checkbox", name="Backups completed").focus()
    page.keyboard.press("Space")
    expect(page.locator("li.run-item", has_text="Backups completed")).to_contain_text("✓ olivia")
    expect(page.locator("#run-progress")).to_contain_text("2 of 3")

    page.reload()
    expect(page.get_by_role("checkbox", name="Health endpoint answers")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Backups completed")).to_be_checked()
    expect(page.get_by_role("checkbox", name="No critical errors in logs")).not_to_be_checked()
    expect(page.locator("li.run-item", has_text="Backups completed")).to_contain_text("olivia")

    # The colleague's page, untouched, shows both ticks within a few seconds.
    expect(colleague.get_by_role("checkbox", name="Health endpoint answers")).to_be_checked(
        timeout=8_000
    )
    expect(colleague.get_by_role("checkbox", name="Backups completed")).to_be_checked()
    expect(colleague.locator("#run-progress")).to_contain_text("2 of 3")
    assert RunItem.objects.filter(run=morning_run, state="done", done_by=operator).count() == 2

    # The colleague finishes the run; both pages show it complete and lock the boxes.
    colleague.get_by_role("checkbox", name="No critical errors in logs").check()
    expect(colleague.locator("#run-progress")).to_contain_text(re.compile(r"Complete\s+by oscar"))
    expect(page.locator("#run-progress")).to_contain_text("Complete", timeout=8_000)
    expect(page.get_by_role("checkbox", name="Backups completed")).to_be_disabled()


def test_skip_with_reason_and_the_error_without_one(new_page, morning_run, operator):
    page = new_page(viewport={"width": 390, "height": 844})  # a phone
    log_in(page, "olivia", PASSWORD)
    page.goto(morning_run.get_absolute_url())
    row = page.locator("li.run-item", has_text="Backups completed")
    row.get_by_text("Note or skip").click()
    row.get_by_label("Reason to skip").fill("Backup window moved to 11:00")
    row.get_by_role("button", name="Skip item").click()
    expect(page.locator("li.run-item", has_text="Backups completed")).to_contain_text(
        "Skipped by olivia"
    )
    expect(page.locator("#run-progress")).to_contain_text("1 of 3")
    page.screenshot(path="var/test-run-phone.png", full_page=True)
