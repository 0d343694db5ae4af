"""What people see of imported runbooks: item Markdown rendered safely on runs, templates, the
admin and the timeline; retired templates apart; the admin's page of runbook sources."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ops.models import ChecklistTemplate, RunbookSource
from ops.models.checklists import Cadence
from ops.runbooks.files import RunbookFile
from ops.selectors.runbooks import runbook_plan_build
from ops.services.checklists import checklist_item_set_state, checklist_run_start
from ops.services.runbooks import runbook_plan_apply
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

TEXT = (
    "via the [admin](https://admin.test/x_(y)) run `ls -l` *now* "
    "<script>alert(1)</script> [bad](javascript:alert(1))"
)
HELP = "Look at **both** graphs.\n\n| metric | limit |\n|---|---|\n| disk | 80 % |"


def import_runbook(name: str, markdown: str) -> None:
    runbook_plan_apply(plans=runbook_plan_build(files=[RunbookFile(name, markdown.encode())]))


def assert_rendered_safely(html: str) -> None:
    assert '<a href="https://admin.test/x_(y)" rel="noopener">admin</a>' in html
    assert "<code>ls -l</code>" in html and "<em>now</em>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert 'href="javascript:' not in html


@pytest.fixture
def template(make_template):
    return make_template(
        "Release checks",
        items=[{"text": TEXT, "help_text": HELP}],
        cadence=Cadence.ON_DEMAND,
    )


def test_item_markdown_is_rendered_safely_on_the_run_page(template, operator):
    run = checklist_run_start(template=template, user=operator, label="release 1.0")
    html = client_for(operator).get(run.get_absolute_url()).content.decode()
    assert_rendered_safely(html)
    assert "<strong>both</strong>" in html and "<td>disk</td>" in html


def test_item_markdown_is_rendered_safely_on_the_template_page(template, operator):
    html = client_for(operator).get(template.get_absolute_url()).content.decode()
    assert_rendered_safely(html)
    assert "<strong>both</strong>" in html and "<th>metric</th>" in html


def test_item_markdown_is_rendered_safely_in_the_admin(template):
    admin = User.objects.create_superuser("boss", password="a-long-enough-password")
    html = client_for(admin).get(reverse("admin:ops_checklistitem_changelist")).content.decode()
    assert_rendered_safely(html)


def test_timeline_and_audit_get_the_words_not_the_markup(template, operator, make_incident):
    incident = make_incident(operator)
    run = checklist_run_start(template=template, user=operator, label="release 1.0")
    run.incident = incident
    run.save()
    item = run.items.get()
    checklist_item_set_state(item=item, user=operator, state="done")
    entry = incident.timeline.order_by("-pk").first()
    assert entry.text.startswith(
        "Ticked: via the admin (https://admin.test/x_(y)) run ls -l now <script>"
    )


def test_retired_templates_are_shown_apart(operator):
    import_runbook("ops.md", "## Daily checks\n- [ ] Disk\n## Release gate\n- [ ] Tests green\n")
    import_runbook("ops.md", "## Daily checks\n- [ ] Disk\n")
    client = client_for(operator)
    html = client.get(reverse("ops:template_list")).content.decode()
    live, _, retired = html.partition("Retired checklists")
    assert "Daily checks" in live and "Release gate" not in live
    assert "Release gate" in retired and "ops.md" in retired
    gate = ChecklistTemplate.objects.get(name="Release gate")
    page = client.get(gate.get_absolute_url()).content.decode()
    assert '<span class="badge">Retired</span>' in page and "ops.md no longer defines it" in page
    assert "Release gate" not in client.get(reverse("today")).content.decode()


def test_a_retired_template_cannot_be_reactivated_in_the_admin():
    import_runbook("ops.md", "## Daily checks\n- [ ] Disk\n## Release gate\n- [ ] Tests green\n")
    import_runbook("ops.md", "## Daily checks\n- [ ] Disk\n")
    gate = ChecklistTemplate.objects.get(name="Release gate")
    admin = User.objects.create_superuser("boss", password="a-long-enough-password")
    url = reverse("admin:ops_checklisttemplate_change", args=[gate.pk])
    form = client_for(admin).get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name in form.fields
    }
    data.update(
        {
            "is_active": "on",
            "due_time": "09:00",
            "sections-TOTAL_FORMS": "0",
            "sections-INITIAL_FORMS": "0",
            "items-TOTAL_FORMS": "0",
            "items-INITIAL_FORMS": "0",
        }
    )
    response = client_for(admin).post(url, data)
    assert response.status_code == 200
    assert "Retired: ops.md no longer defines it." in response.content.decode()
    gate.refresh_from_db()
    assert not gate.is_active


def test_the_admin_shows_each_source_its_last_plan_and_templates(django_assert_max_num_queries):
    admin = User.objects.create_superuser("boss", password="a-long-enough-password")
    client = client_for(admin)
    for number in range(3):
        import_runbook(f"team{number}/ops.md", "## Daily\n- [ ] Disk\n## Weekly\n- [ ] Costs\n")
    import_runbook("team0/ops.md", "## Daily\n- [ ] Disk space\n")
    with django_assert_max_num_queries(10):
        listing = client.get(reverse("admin:ops_runbooksource_changelist"))
    html = listing.content.decode()
    assert all(f"team{number}/ops.md" in html for number in range(3))
    source = RunbookSource.objects.get(name="team0/ops.md")
    page = client.get(reverse("admin:ops_runbooksource_change", args=[source.pk])).content
    page = page.decode()
    assert "team0/ops.md: changed" in page and "- retire  Weekly [weekly]" in page
    assert "Daily" in page and "Weekly" in page and source.sha256[:12] in page
    # History: not added, changed or deleted by hand.
    assert client.get(reverse("admin:ops_runbooksource_add")).status_code == 403
    response = client.post(reverse("admin:ops_runbooksource_delete", args=[source.pk]))
    assert response.status_code == 403 and RunbookSource.objects.filter(pk=source.pk).exists()
