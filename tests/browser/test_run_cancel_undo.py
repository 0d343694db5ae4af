"""Issue 9, items 6 and 7 in a real browser: an operator starts a run, completes it with a
mistaken last tick and takes it back within the grace period; a stray run is cancelled with a
reason and leaves Today."""

import re

import pytest
from playwright.sync_api import expect

from ops.models import ChecklistRun
from ops.models.checklists import Cadence, RunStatus
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def pre_deployment(make_template):
    return make_template(
        "Pre-deployment", items=["Tests green", "Tag pushed"], cadence=Cadence.ON_DEMAND
    )


def start_run(page, label: str) -> None:
    page.goto("/")
    page.get_by_label("Checklist", exact=True).select_option(label="Pre-deployment")
    page.get_by_label("Label").fill(label)
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_role("heading", name=re.compile("Pre-deployment"))).to_be_visible()


def test_undo_a_mistaken_last_tick_then_cancel_a_stray_run(new_page, pre_deployment, operator):
    page = new_page()
    log_in(page, "olivia", PASSWORD)
    start_run(page, "v1.2.3")
    page.get_by_role("checkbox", name="Tests green").check()
    page.get_by_role("checkbox", name="Tag pushed").check()
    progress = page.locator("#run-progress")
    expect(progress).to_contain_text("Complete")
    expect(page.get_by_role("checkbox", name="Tests green")).to_be_disabled()
    page.screenshot(path="var/test-run-undo.png", full_page=True)

    # The tag was not pushed after all: take the tick back.
    page.get_by_role("button", name="Undo the last tick").click()
    expect(progress).to_contain_text("1 of 2")
    expect(progress).not_to_contain_text("Complete")
    tag = page.get_by_role("checkbox", name="Tag pushed")
    expect(tag).not_to_be_checked()
    expect(tag).to_be_enabled()
    expect(page.get_by_role("button", name="Undo the last tick")).to_have_count(0)
    run = ChecklistRun.objects.get(label="v1.2.3")
    assert run.status == RunStatus.OPEN and run.items_done == 1

    # A stray run started by mistake: cancelled with a reason, it leaves Today.
    start_run(page, "oops")
    page.get_by_text("Cancel this run").click()
    page.get_by_label("Reason to cancel").fill("Started by mistake")
    page.get_by_role("button", name="Cancel run").click()
    expect(progress).to_contain_text("Cancelled by olivia")
    expect(progress).to_contain_text("Started by mistake")
    expect(page.get_by_role("checkbox", name="Tests green")).to_be_disabled()
    assert ChecklistRun.objects.get(label="oops").status == RunStatus.CANCELLED
    page.screenshot(path="var/test-run-cancelled.png", full_page=True)

    page.goto("/")
    current = page.get_by_role("region", name="This period's checklists")
    expect(current.get_by_role("link", name=re.compile("v1.2.3"))).to_be_visible()
    expect(current.get_by_role("link", name=re.compile("oops"))).to_have_count(0)
