"""Issue 9, items 5-8: runs that can be cancelled (by whom, with a reason, audited), closed by
their owner, frozen when their incident is closed, undone within a grace period, annotated
after completion, and parents that are not ticked over open sub-items."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from ops.models import ChecklistRun, Incident, ItemState, RunItem, TimelineEntry
from ops.models.checklists import Cadence, RunStatus
from ops.selectors.checklists import runs_current
from ops.services.checklists import (
    checklist_item_note,
    checklist_item_set_state,
    checklist_run_cancel,
    checklist_run_start,
    checklist_run_undo,
    checklist_runs_schedule,
)
from ops.services.incidents import (
    incident_close,
    incident_reopen,
    incident_resolve,
    incident_update,
)
from portal.errors import ActionRefused
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_demand(make_template, operator) -> ChecklistRun:
    template = make_template(
        "Pre-deployment", items=["Tests green", "Tag pushed"], cadence=Cadence.ON_DEMAND
    )
    return checklist_run_start(template=template, user=operator, label="v1.2.3")


@pytest.fixture
def scheduled(make_template) -> ChecklistRun:
    make_template("Morning check", items=["Services healthy", "Logs clean"])
    (run,) = checklist_runs_schedule()
    return run


def ordered(run) -> list[RunItem]:
    return list(run.items.order_by("position"))


def tick_all(run, user) -> None:
    for item in reversed(ordered(run)):  # sub-items before their parent
        checklist_item_set_state(item=item, user=user, state=ItemState.DONE)


def snapshot(run) -> tuple:
    run.refresh_from_db()
    states = tuple(run.items.order_by("position").values_list("state", "note"))
    return run.status, run.version, states, AuditEntry.objects.count()


# Item 6: cancelling runs


def test_empty_label_is_refused_for_an_on_demand_run(make_template, operator):
    template = make_template("Pre-deployment", cadence=Cadence.ON_DEMAND)
    for label in ["", "   "]:
        with pytest.raises(ActionRefused, match="Give the run a label"):
            checklist_run_start(template=template, user=operator, label=label)
    assert not ChecklistRun.objects.exists()


def test_operator_cancels_an_on_demand_run_with_a_reason(on_demand, operator, image_staff):
    with pytest.raises(PermissionDenied):
        checklist_run_cancel(run=on_demand, user=image_staff, reason="test run")
    for reason, message in [("", "Say why"), ("  ", "Say why"), ("x" * 501, "too long")]:
        with pytest.raises(ActionRefused, match=message):
            checklist_run_cancel(run=on_demand, user=operator, reason=reason)
    assert ChecklistRun.objects.get(pk=on_demand.pk).status == RunStatus.OPEN

    run = checklist_run_cancel(run=on_demand, user=operator, reason="Started by mistake")
    assert run.status == RunStatus.CANCELLED and run.cancelled_by == operator
    assert run.cancel_reason == "Started by mistake" and run.cancelled_at is not None
    entry = AuditEntry.objects.get(action="checklist.run.cancel")
    assert entry.actor == operator and "Started by mistake" in entry.summary
    assert entry.after["items_open"] == 2
    with pytest.raises(ActionRefused, match="already cancelled") as again:
        checklist_run_cancel(run=run, user=operator, reason="twice")
    assert again.value.status == 409
    # A cancelled run changes no more.
    with pytest.raises(ActionRefused, match="was cancelled") as refused:
        checklist_item_set_state(item=ordered(run)[0], user=operator, state=ItemState.DONE)
    assert refused.value.status == 409


def test_only_managers_cancel_scheduled_runs(scheduled, operator, manager):
    with pytest.raises(PermissionDenied, match="Only a manager"):
        checklist_run_cancel(run=scheduled, user=operator, reason="Holiday")
    run = checklist_run_cancel(run=scheduled, user=manager, reason="Public holiday")
    assert run.status == RunStatus.CANCELLED


def test_cancelled_runs_leave_today(on_demand, scheduled, manager, operator):
    now = timezone.now()
    assert {run.pk for run in runs_current(now=now)} == {on_demand.pk, scheduled.pk}
    checklist_run_cancel(run=on_demand, user=operator, reason="Test run")
    checklist_run_cancel(run=scheduled, user=manager, reason="Public holiday")
    assert runs_current(now=now) == []


def test_a_response_run_is_cancelled_by_its_incident_only(make_incident, operator, manager):
    incident = make_incident(operator, severity="P3")
    run = incident.checklist_runs.get()
    with pytest.raises(ActionRefused, match="response checklist of INC-") as refused:
        checklist_run_cancel(run=run, user=manager, reason="Not needed")
    assert refused.value.status == 409

    checklist_item_set_state(item=ordered(run)[0], user=operator, state=ItemState.DONE)
    incident_resolve(incident=incident, user=operator)
    incident = incident_close(incident=incident, user=manager)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.cancelled_by == manager
    assert run.cancel_reason == f"{incident.reference} was closed."
    closed = incident.timeline.order_by("-created_at", "-id").first()
    assert closed.text == "Closed by maria. Response checklist cancelled with 7 of 8 items open."
    assert AuditEntry.objects.filter(action="checklist.run.cancel", actor=manager).count() == 1
    assert run not in runs_current(now=timezone.now())


# Item 5: a closed incident is frozen


def test_a_closed_incidents_checklist_is_frozen(make_incident, operator, manager):
    incident = make_incident(operator, severity="P3")
    run = incident.checklist_runs.get()
    first, second, *_ = ordered(run)
    checklist_item_set_state(item=first, user=operator, state=ItemState.DONE)
    incident_resolve(incident=incident, user=operator)
    incident_close(incident=incident, user=manager)
    incident.refresh_from_db()
    version, entries = incident.version, TimelineEntry.objects.count()
    before = snapshot(run)

    for change in [
        lambda: checklist_item_set_state(item=second, user=operator, state=ItemState.DONE),
        lambda: checklist_item_set_state(item=first, user=operator, state=ItemState.OPEN),
        lambda: checklist_item_note(item=first, user=operator, note="after the fact"),
    ]:
        with pytest.raises(ActionRefused, match=f"{incident.reference} is closed") as refused:
            change()
        assert refused.value.status == 409
    assert snapshot(run) == before
    incident.refresh_from_db()
    assert incident.version == version and TimelineEntry.objects.count() == entries


def test_a_run_left_open_on_a_closed_incident_is_frozen_too(make_incident, operator, manager):
    """Incidents closed before runs could be cancelled kept an open response run."""
    incident = make_incident(operator, severity="P3")
    run = incident.checklist_runs.get()
    Incident.objects.filter(pk=incident.pk).update(status="closed", closed_at=timezone.now())
    entries = TimelineEntry.objects.count()
    with pytest.raises(ActionRefused, match="is closed: its response checklist is frozen"):
        checklist_item_set_state(item=ordered(run)[0], user=operator, state=ItemState.DONE)
    assert TimelineEntry.objects.count() == entries
    assert not run.items.exclude(state=ItemState.OPEN).exists()


def test_a_manager_reopens_a_closed_incident_to_correct_it(make_incident, operator, manager):
    incident = make_incident(operator, severity="P3")
    incident_resolve(incident=incident, user=operator)
    incident_close(incident=incident, user=manager)
    with pytest.raises(ActionRefused, match="closed"):
        incident_update(incident=incident, user=operator, summary="late fix")
    with pytest.raises(PermissionDenied):
        incident_reopen(incident=incident, user=operator, reason="typo")
    with pytest.raises(ActionRefused, match="Say why"):
        incident_reopen(incident=incident, user=manager, reason=" ")
    incident = incident_reopen(incident=incident, user=manager, reason="Wrong root cause")
    assert incident.status == "resolved" and incident.closed_at is None
    last = incident.timeline.order_by("-created_at", "-id").first()
    assert last.text == "Reopened by maria to correct it: Wrong root cause"
    assert AuditEntry.objects.get(action="incident.reopen").summary == "Wrong root cause"
    incident_update(incident=incident, user=operator, summary="Corrected")
    with pytest.raises(ActionRefused, match="not closed") as refused:
        incident_reopen(incident=incident, user=manager, reason="again")
    assert refused.value.status == 409


# Item 7: undo within a grace period, notes after completion


def test_the_last_actor_undoes_the_last_tick_within_the_grace_period(
    on_demand, operator, second_operator
):
    first, last = ordered(on_demand)
    checklist_item_set_state(item=first, user=second_operator, state=ItemState.DONE)
    checklist_item_set_state(item=last, user=operator, state=ItemState.SKIPPED, reason="No tag")
    on_demand.refresh_from_db()
    assert on_demand.is_complete
    with pytest.raises(ActionRefused, match="Only olivia, who completed the run") as refused:
        checklist_run_undo(run=on_demand, user=second_operator)
    assert refused.value.status == 403

    item = checklist_run_undo(run=on_demand, user=operator)
    assert item.pk == last.pk and item.state == ItemState.OPEN and item.skip_reason == ""
    run = ChecklistRun.objects.get(pk=on_demand.pk)
    assert run.status == RunStatus.OPEN and run.completed_at is None and run.items_done == 1
    entry = AuditEntry.objects.get(action="checklist.run.undo")
    assert entry.actor == operator and entry.summary == "Undid the last skip: Tag pushed"
    assert entry.before["state"] == "skipped" and entry.after["state"] == "open"
    with pytest.raises(ActionRefused, match="still open"):
        checklist_run_undo(run=run, user=operator)


def test_undo_after_the_grace_period_is_refused(on_demand, operator, settings):
    settings.CHECKLIST_UNDO_MINUTES = 3
    tick_all(on_demand, operator)
    on_demand.refresh_from_db()
    before = snapshot(on_demand)
    later = on_demand.completed_at + timedelta(minutes=3, seconds=1)
    with pytest.raises(ActionRefused, match="more than 3 minutes ago") as refused:
        checklist_run_undo(run=on_demand, user=operator, now=later)
    assert refused.value.status == 409
    assert snapshot(on_demand) == before
    checklist_run_undo(run=on_demand, user=operator, now=later - timedelta(seconds=2))


def test_undo_on_a_response_checklist_goes_on_the_timeline(make_incident, operator):
    incident = make_incident(operator, severity="P3")
    run = incident.checklist_runs.get()
    tick_all(run, operator)
    item = checklist_run_undo(run=run, user=operator)
    last = incident.timeline.order_by("-created_at", "-id").first()
    assert last.text == f"Unticked: {item.text}"


def test_notes_are_appended_on_a_completed_run(on_demand, operator, second_operator):
    first, _last = ordered(on_demand)
    checklist_item_note(item=first, user=operator, note="Ran on staging first")
    tick_all(on_demand, operator)
    checklist_item_note(item=first, user=second_operator, note="Flaky test seen later")
    checklist_item_note(item=first, user=operator, note="Fixed in v1.2.4")
    first.refresh_from_db()
    lines = first.note.split("\n\n")
    assert lines[0] == "Ran on staging first"
    assert lines[1].startswith("oscar, ") and lines[1].endswith(": Flaky test seen later")
    assert lines[2].startswith("olivia, ") and lines[2].endswith(": Fixed in v1.2.4")
    on_demand.refresh_from_db()
    assert on_demand.is_complete and first.state == ItemState.DONE
    appended = AuditEntry.objects.filter(action="checklist.item.note.append")
    assert (
        appended.count() == 2
        and appended.order_by("id").first().before["note"] == "Ran on staging first"
    )


# Item 8: a parent is not ticked over open sub-items


def test_a_parent_is_not_ticked_while_sub_items_are_open(make_template, operator):
    template = make_template(
        "Release",
        items=[("Review logs", ["No 5xx bursts", "No auth failures"])],
        cadence=Cadence.ON_DEMAND,
    )
    run = checklist_run_start(template=template, user=operator, label="v2")
    parent, first, second = ordered(run)
    before = snapshot(run)
    with pytest.raises(ActionRefused) as refused:
        checklist_item_set_state(item=parent, user=operator, state=ItemState.DONE)
    assert refused.value.status == 409
    assert refused.value.message == (
        "Tick or skip its sub-items first: “No 5xx bursts”, “No auth failures” are still open."
    )
    assert snapshot(run) == before
    checklist_item_set_state(item=first, user=operator, state=ItemState.DONE)
    checklist_item_set_state(item=second, user=operator, state=ItemState.SKIPPED, reason="n/a")
    checklist_item_set_state(item=parent, user=operator, state=ItemState.DONE)
    run.refresh_from_db()
    assert run.is_complete


def test_the_migration_cancels_runs_left_open_on_closed_incidents(make_incident, operator):
    closed, still_open = make_incident(operator, title="Old"), make_incident(operator)
    Incident.objects.filter(pk=closed.pk).update(status="closed", closed_at=timezone.now())
    migration = importlib.import_module("ops.migrations.0007_run_cancel")
    migration.cancel_runs_of_closed_incidents(apps, None)
    run = closed.checklist_runs.get()
    assert (
        run.status == RunStatus.CANCELLED and run.cancel_reason == f"{closed.reference} was closed."
    )
    assert still_open.checklist_runs.get().status == RunStatus.OPEN
