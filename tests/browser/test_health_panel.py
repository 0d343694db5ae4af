"""A tile turns critical within one refresh after its target starts failing, and says so; the
age of its last check counts up between refreshes and after them."""

import re

import pytest
from playwright.sync_api import expect

from ops.models import MonitoredService
from ops.services.health import health_checks_run_due
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.fakes import controlled_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_tile_turns_critical_within_one_refresh(new_page, operator, settings):
    settings.HEALTH_POLL_SECONDS = 2
    with controlled_server() as target:
        service = MonitoredService.objects.create(
            name="Public API",
            slug="public-api",
            kind="http",
            target=target.url + "/health",
            interval_seconds=5,
            timeout_seconds=1,
        )
        health_checks_run_due()
        page = new_page()
        log_in(page, "olivia", PASSWORD)
        page.goto("/health/")
        tile = page.locator("#tile-public-api")
        expect(tile).to_have_attribute("data-state", "ok")
        expect(tile).to_contain_text("HTTP 200")
        # The server sends the moment; the page shows it as an age that counts up.
        age = tile.locator(".tile-figures time")
        expect(age).to_have_text(re.compile(r"^\d+ s ago$"))
        first = int(age.inner_text().split()[0])
        expect(age).not_to_have_text(f"{first} s ago", timeout=3_000)

        target.mode = "error"
        service.refresh_from_db()
        MonitoredService.objects.filter(pk=service.pk).update(next_check_at=None)
        health_checks_run_due()  # what the worker does at its next scan

        expect(tile).to_have_attribute("data-state", "critical", timeout=4_000)
        expect(tile).to_contain_text("HTTP 500, expected 200")
        expect(tile).to_have_class("tile state-critical changed")
        expect(page.locator("#health-announcer")).to_have_text("Public API is now critical.")
        expect(age).to_have_text(re.compile(r"^\d+ s ago$"))  # the swapped tile counts too
        page.screenshot(path="var/test-health.png", full_page=True)
