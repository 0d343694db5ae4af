"""A data-subject request in a real browser, as the DPO: receipt, identity check, export by a
real worker, download, review, delivery, completion and the certificate."""

import re

import pytest
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import expect

from ops.models import DataSubjectRequest
from portal import roles
from portal.celery import app
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dpo_takes_an_access_request_from_receipt_to_certificate(new_page, make_user):
    make_user("dora", roles.DPO, email="dora@example.com")
    page = new_page()
    log_in(page, "dora", PASSWORD)
    page.get_by_role("link", name="GDPR").click()
    page.get_by_role("link", name="Log a request").click()
    page.get_by_label("Type").select_option("access")
    page.get_by_label("Subject's e-mail").fill("anna@example.org")
    page.get_by_label("Assignee").select_option(label="dora")
    page.get_by_role("button", name="Log the request").click()

    expect(page.get_by_role("heading", name=re.compile(r"DSR-\d+ · Access"))).to_be_visible()
    dsr = DataSubjectRequest.objects.get()
    deadline = page.get_by_role("region", name="Deadline")
    expect(deadline).to_contain_text("Received")
    expect(deadline).to_contain_text("days left")
    # Nothing leaves before the identity is verified.
    page.get_by_role("button", name="Export the subject's data").click()
    expect(page.get_by_role("alert")).to_contain_text("identity is not verified")

    page.get_by_role("button", name="Ask the requester to confirm their identity").click()
    expect(deadline).to_contain_text("Identity pending")
    page.get_by_label("Verification method").fill("Confirmation link to the account's address")
    page.get_by_label("Evidence note").fill("Link clicked from anna@example.org")
    page.get_by_role("button", name="Record identity as verified").click()
    expect(deadline).to_contain_text("Verified")

    jobs = page.get_by_role("region", name="Exports and erasures")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        page.get_by_role("button", name="Export the subject's data").click()
        expect(jobs.get_by_role("link", name="Download the export")).to_be_visible(timeout=60_000)
    with page.expect_download() as download:
        jobs.get_by_role("link", name="Download the export").click()
    assert download.value.suggested_filename == f"{dsr.reference}-export.zip"

    page.get_by_role("button", name="Mark the export reviewed for third-party data").click()
    page.get_by_label("Delivery note").fill("Sent through the secure portal")
    page.get_by_role("button", name="Record delivery to the subject").click()
    page.get_by_role("button", name="Complete the request").click()
    expect(deadline).to_contain_text("Completed")

    page.get_by_role("link", name="Completion certificate").click()
    certificate = page.locator("article")
    expect(certificate).to_contain_text("anna@example.org")
    expect(certificate).to_contain_text("Confirmation link to the account's address")
    expect(certificate).to_contain_text("Delivered")
    expect(certificate).to_contain_text("Completed")
