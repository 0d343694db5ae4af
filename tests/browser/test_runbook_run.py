"""A run of an imported runbook in a real browser: items keep their links and code, the box is
still labelled by the item's words, and a sub-bullet of code is a command with a copy button."""

import pytest
from playwright.sync_api import expect

from ops.models import ChecklistTemplate
from ops.runbooks.files import RunbookFile
from ops.selectors.runbooks import runbook_plan_build
from ops.services.checklists import checklist_run_start
from ops.services.runbooks import runbook_plan_apply
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

RUNBOOK = """# Release

## Release day

**Before the release**
- [ ] Tag it in the [admin](https://admin.test/tags_(v2)) and check `git describe`
  - `git push --tags`
- [ ] Publish <!-- paste the link --> the <b>notes</b>
"""


def test_an_imported_item_is_ticked_by_its_words_and_its_link_and_command_work(new_page, operator):
    runbook_plan_apply(
        plans=runbook_plan_build(files=[RunbookFile("release.md", RUNBOOK.encode())])
    )
    run = checklist_run_start(
        template=ChecklistTemplate.objects.get(), user=operator, label="release 1.0"
    )
    page = new_page()
    log_in(page, "olivia", PASSWORD)
    page.goto(run.get_absolute_url())

    expect(page.get_by_role("heading", name="Before the release")).to_be_visible()
    link = page.get_by_role("link", name="admin", exact=True)
    expect(link).to_have_attribute("href", "https://admin.test/tags_(v2)")
    expect(link).to_have_attribute("rel", "noopener")
    row = page.locator("li.run-item", has_text="Tag it in the admin")
    expect(row.locator("label code")).to_have_text("git describe")
    expect(row.locator("pre code")).to_have_text("git push --tags")
    expect(row.get_by_role("button", name="Copy")).to_be_visible()
    # Raw HTML shows as text; the comment is gone.
    expect(page.get_by_role("checkbox", name="Publish the <b>notes</b>")).to_be_visible()

    page.get_by_role("checkbox", name="Tag it in the admin and check git describe").check()
    expect(row).to_contain_text("✓ olivia")
    expect(page.locator("#run-progress")).to_contain_text("1 of 2")
