"""The main pages on a phone (390 x 844): nothing wider than the screen, every checkbox and
button big enough to hit (24 x 24 px), the navigation behind a Menu button; and axe-core
(vendored under static/) finds no serious or critical accessibility problem on them."""

import re

import pytest
from playwright.sync_api import expect

from ops.models import MonitoredService
from ops.services.checklists import checklist_runs_schedule
from ops.services.health import health_checks_run_due
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.fakes import controlled_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
AXE = "/static/vendor/axe-core/axe-4.14.1.min.js"
MIN_TARGET = 24


@pytest.fixture
def portal(make_template, make_incident, operator, manager):
    """A run, an incident with its response checklist and a monitored service with a result
    and a KPI row, as a new user finds them after `make run`."""
    with controlled_server() as target:
        make_template(
            "Morning check",
            items=["Check the dashboards", "Read the overnight alerts", "Confirm the backups"],
        )
        (run,) = [run for run in checklist_runs_schedule() if run.template.name == "Morning check"]
        incident = make_incident(
            operator, title="Checkout errors", affected_services="checkout, payments"
        )
        MonitoredService.objects.create(
            name="Public API with a long name",
            slug="public-api",
            kind="http",
            target=target.url + "/health?with=a-rather-long-query-string-that-must-wrap",
        )
        health_checks_run_due()
        yield {"run": run, "incident": incident}


def _pages(portal) -> dict[str, str]:
    return {
        "Today": "/",
        "a run": portal["run"].get_absolute_url(),
        "Health": "/health/",
        "a service": "/health/public-api/",
        "an incident": portal["incident"].get_absolute_url(),
        "Incidents": "/incidents/",
        "the report": "/incidents/report/",
        "the audit log": "/audit/",
    }


def _too_small(page) -> list[str]:
    """Visible checkboxes and buttons whose box is under 24 x 24 px, by their name."""
    found = []
    for role in ("checkbox", "button"):
        for control in page.get_by_role(role).all():
            if not control.is_visible():
                continue
            box = control.bounding_box()
            if box and (box["width"] < MIN_TARGET or box["height"] < MIN_TARGET):
                label = control.get_attribute("aria-label") or control.inner_text() or role
                found.append(f"{role} “{label.strip()}” {box['width']:.0f}x{box['height']:.0f}")
    return found


def test_main_pages_fit_a_phone_and_their_controls_can_be_hit(new_page, portal, manager):
    page = new_page(viewport=PHONE)
    log_in(page, "maria", PASSWORD)
    for name, path in _pages(portal).items():
        page.goto(path)
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"{name} is {widths[0]} px wide on a {widths[1]} px screen"
        assert _too_small(page) == [], f"{name} has controls under 24 x 24 px"
        page.screenshot(path=f"var/test-phone-{name.replace(' ', '-')}.png", full_page=True)


def test_the_navigation_folds_behind_a_menu_button(new_page, portal, manager):
    page = new_page(viewport=PHONE)
    log_in(page, "maria", PASSWORD)
    health = page.get_by_role("navigation", name="Main").get_by_role("link", name="Health")
    expect(health).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    health.click()
    expect(page.get_by_role("heading", name="Health", exact=True)).to_be_visible()
    # On a laptop the links are there without a button.
    wide = new_page(viewport={"width": 1280, "height": 900})
    log_in(wide, "maria", PASSWORD)
    expect(wide.get_by_role("button", name="Menu")).to_be_hidden()
    nav = wide.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Health")).to_be_visible()
    # Found trying the portal as a manager on a 1280 px laptop: the links wrapped onto a
    # second row. They fit on one now, the account's links behind the user's name.
    boxes = [link.bounding_box() for link in nav.get_by_role("link").all()]
    tops = [box["y"] for box in boxes]
    assert max(tops) - min(tops) < min(box["height"] for box in boxes), (
        f"the navigation wraps at 1280 px: links start at {sorted(set(tops))}"
    )
    account = nav.locator("summary", has_text="maria")
    account.focus()
    wide.keyboard.press("Enter")
    expect(nav.get_by_role("link", name="Audit log")).to_be_visible()
    wide.keyboard.press("Escape")
    expect(nav.get_by_role("link", name="Audit log")).to_be_hidden()
    account.click()
    nav.get_by_role("link", name="Audit log").click()
    expect(wide.get_by_role("heading", name="Audit log")).to_be_visible()


def test_the_response_checklist_is_ticked_on_a_phone(new_page, portal, operator):
    page = new_page(viewport=PHONE)
    log_in(page, "olivia", PASSWORD)
    page.goto(portal["incident"].get_absolute_url())
    checklist = page.get_by_role("region", name="Response checklist")
    checklist.get_by_role("checkbox", name="Open an incident channel").check()
    expect(checklist).to_contain_text("✓ olivia")
    expect(checklist).to_contain_text("1 of 8 done")
    expect(page.locator("#incident-timeline")).to_contain_text(
        "Ticked: Open an incident channel", timeout=10_000
    )


@pytest.mark.parametrize(
    "viewport", [PHONE, {"width": 1280, "height": 900}], ids=["phone", "laptop"]
)
def test_axe_finds_no_serious_or_critical_problem(new_page, portal, manager, viewport):
    page = new_page(viewport=viewport)
    log_in(page, "maria", PASSWORD)
    problems = []
    for name, path in _pages(portal).items():
        page.goto(path)
        page.add_script_tag(url=AXE)  # same origin: the page's CSP allows it
        result = page.evaluate(
            """() => axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
                resultTypes: ["violations"],
            })"""
        )
        for violation in result["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:3]
                problems.append(f"{name}: {violation['id']} ({violation['help']}) at {targets}")
    assert problems == []


def test_the_report_charts_label_their_axes_and_points(new_page, portal, manager):
    page = new_page()
    log_in(page, "maria", PASSWORD)
    page.goto("/incidents/report/")
    chart = page.get_by_role("img", name="Incidents per month by severity")
    expect(chart).to_be_visible()
    labels = [label.text_content() for label in chart.locator("text.axis[text-anchor=end]").all()]
    assert labels == ["0", "1"]
    # Nothing drawn outside the chart: every label starts inside its box.
    for box in [label.bounding_box() for label in chart.locator("text.axis").all()]:
        assert box is None or box["x"] >= chart.bounding_box()["x"]
    page.get_by_text(re.compile("Median time to acknowledge per month as a table")).click()
    expect(page.get_by_role("table").filter(has_text="Severity").last).to_be_visible()
