"""The public status page in a real browser: a manager publishes an update from the incident
page and an anonymous visitor reads it, with the upcoming maintenance; a day's bar shows its
uptime and incidents on keyboard focus and on hover; axe-core finds no serious or critical
problem in light and dark."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from ops.models import (
    CheckRollup,
    ComponentGroup,
    MaintenanceWindow,
    MonitoredService,
    StatusComponent,
)
from ops.services.status import public_update_post
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = "/static/vendor/axe-core/axe-4.14.1.min.js"


@pytest.fixture
def seeded(make_incident, operator, manager):
    payments = MonitoredService.objects.create(
        name="Payments", slug="payments", kind="tcp", target="127.0.0.1:9", state="ok"
    )
    component = StatusComponent.objects.create(
        name="Checkout",
        slug="checkout",
        group=ComponentGroup.objects.create(name="Shop"),
        description="Paying for an order.",
    )
    component.services.set([payments])
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    CheckRollup.objects.create(service=payments, hour=yesterday, checks=100, up=95)
    CheckRollup.objects.create(service=payments, hour=today, checks=10, up=10)
    window = MaintenanceWindow.objects.create(
        title="Payment provider upgrade",
        starts_at=today + timedelta(days=3, hours=2),
        duration=timedelta(hours=1),
        is_public=True,
        announcement="Card payments may be slow for a few minutes.",
    )
    window.services.set([payments])
    incident = make_incident(
        operator, title="INTERNAL db-primary-7 lag", severity="P2", services=["payments"]
    )
    return {"incident": incident, "today": today, "yesterday": yesterday}


def test_manager_publishes_and_the_anonymous_page_shows_it(new_page, seeded):
    page = new_page()
    log_in(page, "maria", PASSWORD)
    page.goto(seeded["incident"].get_absolute_url())
    page.get_by_role("link", name="Update the status page").first.click()
    page.get_by_role("button", name="Publish update").click()
    expect(page.get_by_role("alert")).to_contain_text("Please correct")
    expect(page.get_by_text("Write the message customers will read.")).to_be_visible()
    page.get_by_label("Public title").fill("Payments failing for some cards")
    page.get_by_label("Status").select_option(label="Identified")
    page.get_by_label("Message").fill("A payment provider is failing; we are switching.")
    page.get_by_role("button", name="Publish update").click()
    expect(page.get_by_text("Published on the status page.")).to_be_visible()

    visitor = new_page()
    visitor.goto("/status/")
    current = visitor.get_by_role("region", name="Current incidents")
    expect(current.get_by_role("heading", name="Payments failing for some cards")).to_be_visible()
    expect(current).to_contain_text("Identified")
    expect(current).to_contain_text("A payment provider is failing; we are switching.")
    expect(visitor.get_by_role("region", name="Scheduled maintenance")).to_contain_text(
        "Card payments may be slow"
    )
    expect(visitor.get_by_text("Degraded performance").first).to_be_visible()
    assert "db-primary-7" not in visitor.content()

    # Keyboard: Tab reaches the component's bars (one stop, today's); arrows move by day.
    bars = visitor.get_by_role("list", name="Checkout: uptime by day, last 90 days")
    for _ in range(30):
        visitor.keyboard.press("Tab")
        if visitor.evaluate("document.activeElement.classList.contains('bar')"):
            break
    today_bar = bars.get_by_role("listitem").last
    expect(today_bar).to_be_focused()
    tip = today_bar.locator(".tip")
    expect(tip).to_have_css("clip", "auto")  # shown, not clipped to 1 px
    expect(tip).to_contain_text(seeded["today"].strftime("%-d %b %Y"))
    expect(tip).to_contain_text("Payments failing for some cards")
    visitor.keyboard.press("ArrowLeft")
    yesterday_bar = bars.get_by_role("listitem").nth(88)
    expect(yesterday_bar).to_be_focused()
    expect(yesterday_bar.locator(".tip")).to_have_css("clip", "auto")
    expect(yesterday_bar.locator(".tip")).to_contain_text(
        seeded["yesterday"].strftime("%-d %b %Y") + ": 95.00% uptime, outage."
    )
    expect(tip).to_have_css("clip", "rect(0px, 0px, 0px, 0px)")  # visually hidden again
    # Hover shows a day too.
    bars.get_by_role("listitem").nth(40).hover()
    expect(bars.get_by_role("listitem").nth(40).locator(".tip")).to_have_css("clip", "auto")
    expect(bars.get_by_role("listitem").nth(40).locator(".tip")).to_contain_text("no data")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_problem(new_page, seeded, operator, scheme):
    public_update_post(
        incident=seeded["incident"],
        user=operator,
        title="Payments failing",
        status="investigating",
        message="Looking into it.",
    )
    page = new_page()
    page.emulate_media(color_scheme=scheme)
    problems = []
    for path in ("/status/", "/status/history/", "/status/subscribe/"):
        page.goto(path)
        page.add_script_tag(url=AXE)
        result = page.evaluate(
            """() => axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
                resultTypes: ["violations"],
            })"""
        )
        for violation in result["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:3]
                problems.append(f"{path}: {violation['id']} ({violation['help']}) at {targets}")
    assert problems == []


def test_a_visitor_subscribes_to_one_component_by_label(new_page, seeded, settings):
    # The rate limit's counts live in the cache, which outlives a run: not this test's subject.
    settings.STATUS_SUBSCRIBE_PER_CLIENT = settings.STATUS_SUBSCRIBE_PER_ADDRESS = 10_000
    email = f"anna-{uuid.uuid4().hex[:8]}@example.org"
    page = new_page()
    page.goto("/status/")
    form = page.get_by_role("region", name="Get updates by e-mail")
    form.get_by_label("E-mail address").fill("not an address")
    form.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("is not an e-mail address")
    expect(page.get_by_label("E-mail address")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_text("Only some components").click()
    page.get_by_role("group", name="Components to hear about").get_by_label("Checkout").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(email)
    expect(page.get_by_role("status")).to_contain_text("Checkout")
