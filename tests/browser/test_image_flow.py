"""Image staff drop three photos (one broken) on the upload page and watch the batch finish in a
real browser, with a real Celery worker processing the images."""

import base64
import contextlib
import importlib
import re
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.apps import apps as django_apps
from playwright.sync_api import expect

from images.models import Batch, Preset
from portal.celery import app
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.images import samples

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

DROP_FILES = """(files) => {
  const transfer = new DataTransfer();
  for (const [name, data, type] of files) {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type }));
  }
  return transfer;
}"""


@pytest.fixture
def preset(transactional_db):
    """The default preset (a transactional test's flush removes the migration's row)."""
    module = importlib.import_module("images.migrations.0002_default_preset")
    module.create_default_preset(django_apps, None)
    return Preset.objects.get(is_default=True)


def _file(name: str, data: bytes, content_type: str) -> list[str]:
    return [name, base64.b64encode(data).decode(), content_type]


def test_upload_three_files_and_watch_the_batch_finish(new_page, image_staff, preset):
    with app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(app.conf.task_default_queue)
    page = new_page()
    blocked = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)  # fmt: skip
    log_in(page, "ines", PASSWORD)
    page.get_by_role("link", name="Images").click()
    page.get_by_role("link", name="Upload a batch").click()
    expect(page.get_by_role("heading", name="Upload a batch")).to_be_visible()

    # Nothing chosen: the form says so, in place.
    page.get_by_label("Batch name").fill("Portfolio")
    page.get_by_role("button", name="Upload and optimize").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose at least one image.")
    expect(page.get_by_label("Batch name")).to_have_value("Portfolio")

    # Drop three files on the box, one of them a truncated JPEG.
    transfer = page.evaluate_handle(
        DROP_FILES,
        [
            _file("harbour.jpg", samples.jpeg(320, 240, seed=1), "image/jpeg"),
            _file("broken.jpg", samples.truncated_jpeg(), "image/jpeg"),
            _file("logo.png", samples.png(200, 150), "image/png"),
        ],
    )
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": transfer})
    expect(page.locator("[data-files-chosen]")).to_contain_text("3 files,")
    expect(page.get_by_label("Preset")).to_have_value(str(preset.pk))
    page.screenshot(path="var/test-image-upload.png", full_page=True)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        page.get_by_role("button", name="Upload and optimize").click()
        # Generous limits: the machine (2 cores) may be busy with the rest of the suite.
        page.wait_for_url(re.compile(r"/images/batches/\d+/$"), timeout=30_000)
        expect(page.get_by_role("heading", name="Portfolio")).to_be_visible()
        summary = page.locator("#batch-summary")
        expect(summary).to_contain_text("3 of 3", timeout=60_000)
        expect(summary).to_contain_text("Finished with errors")
        expect(summary).to_contain_text("2 done")
        expect(summary).to_contain_text("1 failed")

    rows = page.get_by_role("table", name="Images of Portfolio")
    expect(rows.get_by_role("row", name=re.compile("harbour.jpg"))).to_contain_text("Done")
    expect(rows.get_by_role("row", name=re.compile("logo.png"))).to_contain_text("Done")
    broken = rows.get_by_role("row", name=re.compile("broken.jpg"))
    expect(broken).to_contain_text("Failed")
    expect(broken).to_contain_text("The image data is truncated or corrupt")
    totals = page.locator(".totals")
    expect(totals).to_contain_text(re.compile(r"Saved\s*\d+(\.\d)?%"))
    expect(totals).to_contain_text(re.compile(r"Images/s\s*\d"))
    # A corrupt file would fail again: no retry is offered for it.
    expect(page.get_by_role("button", name=re.compile("Retry"))).to_have_count(0)
    page.screenshot(path="var/test-image-batch.png", full_page=True)

    # The compare view shows the original and the best variant side by side.
    page.get_by_role("link", name="harbour.jpg").click()
    expect(page.get_by_role("img", name="Original of harbour.jpg")).to_be_visible()
    expect(
        page.get_by_role("img", name=re.compile("variant of harbour.jpg at 2048 px"))
    ).to_be_visible()
    # Both pictures load (from the login-checked file views), whenever the busy machine lets them.
    # (Polled from here: wait_for_function compiles its predicate in the page, which the
    # Content-Security-Policy forbids.)
    loaded = "Array.from(document.images).every((img) => img.complete)"
    deadline = time.monotonic() + 20
    while not page.evaluate(loaded) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert page.evaluate("Array.from(document.images).every((img) => img.naturalWidth > 0)")
    page.screenshot(path="var/test-image-compare.png", full_page=True)
    # The before/after slider cuts the variant at its position; 1:1 shows actual pixels.
    split = page.get_by_label(re.compile("Before / after"))
    expect(split).to_be_visible()
    split.fill("20")
    cut = page.locator("[data-before-after]").evaluate("f => f.style.getPropertyValue('--split')")
    assert cut == "20%"
    page.get_by_role("link", name="Actual size (1:1)").click()
    expect(page.get_by_role("link", name="Fit to the page")).to_be_visible()
    expect(page.get_by_label(re.compile("Before / after"))).to_have_count(0)
    batch = Batch.objects.get()
    assert batch.is_finished and batch.images.filter(status="done").count() == 2
    assert blocked == []
