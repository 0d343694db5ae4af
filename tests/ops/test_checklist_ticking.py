"""Ticking, unticking, skipping and annotating items: the rules, the audit trail, refusals."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import PermissionDenied

from ops.models import ChecklistRun, ItemState, RunItem
from ops.models.checklists import Cadence
from ops.services.checklists import (
    checklist_item_note,
    checklist_item_set_state,
    checklist_run_start,
    checklist_runs_schedule,
)
from portal.errors import ActionRefused
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_template(make_template_at_nine):
    return make_template_at_nine


@pytest.fixture
def run(make_template) -> ChecklistRun:
    make_template(items=["Services healthy", "Logs clean", "Backups done"])
    (run,) = checklist_runs_schedule(now=datetime(2026, 11, 23, 9, 5, tzinfo=UTC))
    return run


def items(run):
    return list(run.items.order_by("position"))


def test_tick_records_who_and_when_and_completes_the_run(run, operator, second_operator):
    first, second, third = items(run)
    checklist_item_set_state(item=first, user=operator, state=ItemState.DONE)
    first.refresh_from_db()
    run.refresh_from_db()
    assert first.done_by == operator and first.done_at is not None
    assert run.items_done == 1 and run.started_at == first.done_at and not run.is_complete

    checklist_item_set_state(
        item=second,
        user=second_operator,
        state=ItemState.SKIPPED,
        reason="Log shipping is down, tracked in INC-12",
    )
    checklist_item_set_state(item=third, user=second_operator, state=ItemState.DONE)
    run.refresh_from_db()
    assert run.is_complete
    assert run.completed_by == second_operator
    assert run.duration == run.completed_at - run.started_at
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name"))
    assert actions[-4:] == [
        ("checklist.item.tick", "olivia"),
        ("checklist.item.skip", "oscar"),
        ("checklist.item.tick", "oscar"),
        ("checklist.run.complete", "oscar"),
    ]
    tick = AuditEntry.objects.filter(action="checklist.item.tick").first()
    assert tick.before["state"] == "open" and tick.after["state"] == "done"


def test_untick_clears_who(run, operator):
    first = items(run)[0]
    checklist_item_set_state(item=first, user=operator, state=ItemState.DONE)
    checklist_item_set_state(item=first, user=operator, state=ItemState.OPEN)
    first.refresh_from_db()
    run.refresh_from_db()
    assert first.state == "open" and first.done_by is None and run.items_done == 0


def test_completed_run_refuses_changes_and_writes_nothing(run, operator):
    for item in items(run):
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    count = AuditEntry.objects.count()
    first = items(run)[0]
    with pytest.raises(ActionRefused) as refused:
        checklist_item_set_state(item=first, user=operator, state=ItemState.OPEN)
    assert refused.value.status == 409
    with pytest.raises(ActionRefused, match="Write the note first"):
        checklist_item_note(item=first, user=operator, note="  ")
    first.refresh_from_db()
    assert first.state == "done" and first.note == ""
    assert AuditEntry.objects.count() == count


@pytest.mark.parametrize("persona", ["image_staff", "outsider"])
def test_roles_that_may_not_tick_are_refused(run, persona, request):
    user = request.getfixturevalue(persona)
    first = items(run)[0]
    with pytest.raises(PermissionDenied):
        checklist_item_set_state(item=first, user=user, state=ItemState.DONE)
    first.refresh_from_db()
    assert first.state == "open"
    assert not AuditEntry.objects.filter(action__startswith="checklist.item").exists()


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "Say why you skip this item."),
        ("   ", "Say why you skip this item."),
        ("x" * 501, "The reason is too long (501 characters; at most 500)."),
    ],
)
def test_skip_needs_a_reason(run, operator, reason, message):
    first = items(run)[0]
    with pytest.raises(ActionRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        checklist_item_set_state(item=first, user=operator, state=ItemState.SKIPPED, reason=reason)
    first.refresh_from_db()
    assert first.state == "open"


def test_unknown_state_and_long_note_refused(run, operator):
    first = items(run)[0]
    with pytest.raises(ActionRefused):
        checklist_item_set_state(item=first, user=operator, state="half-done")
    with pytest.raises(ActionRefused):
        checklist_item_note(item=first, user=operator, note="n" * 2001)
    first.refresh_from_db()
    assert first.state == "open" and first.note == ""


def test_note_is_kept_and_versioned(run, operator):
    first = items(run)[0]
    version = run.version
    checklist_item_note(item=first, user=operator, note="  Disk at 71%, watch it  ")
    first.refresh_from_db()
    run.refresh_from_db()
    assert first.note == "Disk at 71%, watch it"
    assert run.version == version + 1 and first.rev == run.version


def test_on_demand_run_with_label(make_template, operator, image_staff):
    template = make_template("Pre-deployment", cadence=Cadence.ON_DEMAND, items=["Tests green"])
    run = checklist_run_start(template=template, user=operator, label=" pre-deployment v1.2.3 ")
    assert run.label == "pre-deployment v1.2.3" and run.created_by == operator
    assert run.period_start is None and RunItem.objects.filter(run=run).count() == 1
    with pytest.raises(PermissionDenied):
        checklist_run_start(template=template, user=image_staff, label="x")
    with pytest.raises(ActionRefused, match="too long"):
        checklist_run_start(template=template, user=operator, label="v" * 201)
    template.is_active = False
    template.save()
    with pytest.raises(ActionRefused, match="inactive"):
        checklist_run_start(template=template, user=operator, label="v1.2.4")
    assert ChecklistRun.objects.count() == 1
