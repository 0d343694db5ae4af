"""The portal shows what the apps register (portal.registry), and knows nothing else of them."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from portal.registry import Registry, RunOwner, TodayBlock, registry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_a_registered_today_block_shows_for_whom_it_says(operator, outsider, monkeypatch):
    def for_operators(request, now):
        if not request.user.has_perm("ops.view_checklistrun"):
            return None
        return {"message": "Maintenance window tonight"}

    block = TodayBlock("test-block", "includes/messages.html", for_operators, order=1)
    monkeypatch.setattr(registry, "today_blocks", [block, *registry.today_blocks])
    shown = []
    monkeypatch.setattr(
        "portal.views.render_to_string",
        lambda template, context, request=None: shown.append((template, context)) or "",
    )
    client_for(operator).get(reverse("today"))
    assert ("includes/messages.html", {"message": "Maintenance window tonight"}) in shown
    shown.clear()
    client_for(outsider).get(reverse("today"))
    assert all(context != {"message": "Maintenance window tonight"} for _t, context in shown)


def test_the_apps_register_their_parts():
    names = [block.name for block in registry.today_blocks]
    assert names.index("incidents") < names.index("health") < names.index("history")
    assert "image-batches" in names
    assert "image_success" in registry.kpi_sources
    assert [owner.field for owner in registry.run_owners] == [
        "incident",
        "maintenance_window",
        "maintenance_task",
        "dsr",
    ]
    assert [source.name for source in registry.calendar_sources] == [
        "maintenance-windows",
        "maintenance-tasks",
        "on-call",
    ]
    assert len(registry.metrics_collectors) >= 2
    assert [step.name for step in registry.setup_steps][:1] == ["default-runbooks"]


def test_two_parts_of_one_name_are_refused():
    fresh = Registry()
    fresh.add_today_block(TodayBlock("a", "x.html", lambda request, now: None))
    with pytest.raises(ImproperlyConfigured, match="Two Today blocks"):
        fresh.add_today_block(TodayBlock("a", "y.html", lambda request, now: None))
    fresh.add_run_owner(RunOwner(field="incident"))
    with pytest.raises(ImproperlyConfigured, match="Two run owners"):
        fresh.add_run_owner(RunOwner(field="incident"))


def test_a_ticked_item_reaches_its_runs_owner_only(make_incident, make_template, operator):
    """The incident hears of its response checklist's ticks (through its RunOwner); a run of
    no owner reaches nobody."""
    from ops.models import ChecklistRun, TimelineKind
    from ops.services.checklists import checklist_item_set_state, checklist_run_start

    incident = make_incident(operator)
    run = ChecklistRun.objects.get(incident=incident)
    item = run.items.order_by("position").first()
    checklist_item_set_state(item=item, user=operator, state="done")
    ticks = incident.timeline.filter(kind=TimelineKind.CHECKLIST, text__startswith="Ticked")
    assert ticks.count() == 1
    plain = checklist_run_start(template=make_template("Plain"), user=operator, label="x")
    checklist_item_set_state(item=plain.items.first(), user=operator, state="done")
    assert ticks.count() == 1


def test_the_image_pipeline_imports_neither_django_nor_celery():
    code = "import sys, images.pipeline; print(sorted({'django', 'celery'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_today_shows_image_batches_to_image_staff_only(image_staff, operator):
    html = client_for(image_staff).get(reverse("today")).content.decode()
    assert "Image batches" in html and "Upload the first one" in html
    assert "Image batches" not in client_for(operator).get(reverse("today")).content.decode()
