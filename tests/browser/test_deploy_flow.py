"""An operator deploys to staging and follows it live to ACTIVE: the job runs in a real Celery
worker against the simulated DigitalOcean, the page updates itself and stops asking at the end."""

import contextlib
import re

import pytest
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import expect

from ops.digitalocean_simulator import SIM_TOKEN
from ops.models import Deploy, Environment
from portal.celery import app
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.fakes import simulator_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def simulator(settings, monkeypatch):
    server = simulator_in_thread(step_seconds=0.6)
    server.add_app("staging-app", "staging")
    settings.DIGITALOCEAN_API_URL = server.url
    settings.DEPLOY_POLL_SECONDS = 0.1
    settings.DEPLOY_PAGE_POLL_SECONDS = 1
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", SIM_TOKEN)
    yield server
    server.stop()


def test_a_staging_deploy_followed_live_to_active(new_page, operator, simulator):
    Environment.objects.create(
        name="Staging",
        slug="staging",
        app_id="staging-app",
        health_urls=f"{simulator.url}/_sim/apps/staging-app/health",
        validate_seconds=1,
    )
    with app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(app.conf.task_default_queue)
    page = new_page()
    log_in(page, "olivia", PASSWORD)
    page.get_by_role("link", name="Deploys").first.click()
    page.get_by_role("link", name="Staging").click()
    expect(page.get_by_role("note")).to_contain_text("Simulated DigitalOcean")
    page.get_by_label("Version").fill("v2.4.0")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        page.get_by_role("button", name="Deploy to Staging").click()
        page.wait_for_url(re.compile(r"/deploys/\d+/$"), timeout=30_000)
        status = page.get_by_role("status").first
        expect(page.get_by_role("list", name="Steps")).to_contain_text("build", timeout=30_000)
        expect(status).to_contain_text("Succeeded", timeout=60_000)
    expect(status).to_contain_text("ACTIVE")
    steps = page.get_by_role("list", name="Steps")
    expect(steps).to_contain_text("finalize: SUCCESS")
    expect(page.get_by_label("Log")).to_contain_text("Healthy through the validation period")
    # Polling stopped: the live section no longer asks for updates.
    expect(page.locator("#deploy-live")).not_to_have_attribute("hx-trigger", re.compile("."))
    deploy = Deploy.objects.get()
    assert deploy.created_by.username == "olivia" and deploy.status == "succeeded"
