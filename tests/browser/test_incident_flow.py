"""An incident in a real browser: open it, acknowledge, tick a response item, add a note,
resolve, and find it on the manager's report."""

import re

import pytest
from playwright.sync_api import expect

from ops.models import Incident
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_operator_handles_an_incident_and_the_manager_sees_it(
    new_page, severities, response_checklist, operator, manager
):
    page = new_page()
    log_in(page, "olivia", PASSWORD)
    page.get_by_role("link", name="Incidents").click()
    page.get_by_role("link", name="Open an incident").click()
    page.get_by_label("Title").fill("Checkout returns 502")
    page.get_by_label("Severity").select_option("P1")
    page.get_by_label("Affected services").fill("checkout")
    page.get_by_role("button", name="Open the incident").click()

    expect(page.get_by_role("heading", name=re.compile("Checkout returns 502"))).to_be_visible()
    incident = Incident.objects.get()
    clocks = page.get_by_role("region", name="Clocks")
    expect(clocks).to_contain_text("left to acknowledge")

    page.get_by_role("button", name="Acknowledge").click()
    expect(clocks).to_contain_text("Acknowledged in time")
    timeline = page.locator("#incident-timeline")
    expect(timeline).to_contain_text("Acknowledged by olivia")

    # Tick a response item on the response checklist, then come back.
    page.get_by_role("link", name="Open the response checklist").click()
    page.get_by_role("checkbox", name="Open an incident channel").check()
    expect(page.locator("li.run-item", has_text="Open an incident channel")).to_contain_text(
        "✓ olivia"
    )
    page.get_by_role("link", name=re.compile(f"{incident.reference} Checkout")).click()
    expect(timeline).to_contain_text("Ticked: Open an incident channel")
    expect(page.get_by_role("region", name="Response checklist")).to_contain_text("1 of 8 done")

    page.get_by_label("Add a note").fill("Rolled back checkout to v2.3.1")
    page.get_by_role("button", name="Add note").click()
    expect(timeline).to_contain_text("Rolled back checkout to v2.3.1")
    expect(page.get_by_label("Add a note")).to_have_value("")

    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#incident-summary")).to_contain_text("Resolved")
    expect(timeline).to_contain_text("Status changed from Investigating to Resolved.")
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.acknowledged_by == operator

    boss = new_page()
    log_in(boss, "maria", PASSWORD)
    boss.goto("/incidents/report/")
    stats = boss.get_by_role("row", name=re.compile(r"^P1"))
    expect(stats.first).to_contain_text("100%")
    expect(boss.get_by_role("img", name="Incidents per month by severity")).to_be_visible()
    boss.screenshot(path="var/test-incident-report.png", full_page=True)
    page.screenshot(path="var/test-incident-page.png", full_page=True)
