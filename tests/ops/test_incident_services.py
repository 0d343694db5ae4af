"""Incident services: opening, the timeline, acknowledging, status changes, closing with a
postmortem, notes, action items, and the bad inputs each refuses without saving anything."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied

from ops.models import (
    ChecklistRun,
    Incident,
    ItemState,
    Postmortem,
    Severity,
    TimelineEntry,
)
from ops.services.checklists import checklist_item_note, checklist_item_set_state
from ops.services.incidents import (
    incident_acknowledge,
    incident_close,
    incident_note_add,
    incident_open,
    incident_resolve,
    incident_set_status,
    incident_update,
)
from ops.services.postmortems import action_item_add, action_item_set_done, postmortem_save
from portal.errors import ActionRefused
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def kinds(incident):
    return list(incident.timeline.values_list("kind", flat=True))


def nothing_saved(counts):
    assert (
        Incident.objects.count(),
        TimelineEntry.objects.count(),
        AuditEntry.objects.count(),
    ) == counts


def counts():
    return Incident.objects.count(), TimelineEntry.objects.count(), AuditEntry.objects.count()


def test_default_severities_are_the_runbooks_p0_to_p3(severities):
    assert list(Severity.objects.values_list("code", flat=True)) == ["P0", "P1", "P2", "P3"]
    p0, p1, p2, p3 = (severities[code] for code in ["P0", "P1", "P2", "P3"])
    assert (p0.response_time, p0.escalation_time) == (timedelta(minutes=15), timedelta(0))
    assert (p1.response_time, p1.escalation_time) == (timedelta(minutes=30), timedelta(hours=1))
    assert (p2.response_time, p2.escalation_time) == (timedelta(hours=2), timedelta(hours=4))
    assert (p3.response_time, p3.escalation_time) == (timedelta(hours=24), timedelta(hours=48))
    assert p0.postmortem_required and p1.postmortem_required and not p2.postmortem_required


def test_open_starts_the_response_checklist_and_the_timeline(make_incident, operator):
    incident = make_incident(
        operator,
        severity="p1",  # codes match whatever the case
        detected_at=T0,
        started_at=T0 - timedelta(minutes=10),
        commander=operator,
        now=T0 + timedelta(minutes=1),
    )
    assert incident.severity.code == "P1" and incident.status == "investigating"
    assert incident.response_due_at == T0 + timedelta(minutes=30)
    assert incident.escalation_due_at == T0 + timedelta(hours=1)
    run = ChecklistRun.objects.get(incident=incident)
    assert run.label == incident.reference and run.items_total == 8
    assert kinds(incident) == ["opened", "commander", "checklist"]
    assert AuditEntry.objects.filter(action="incident.open", object_id=str(incident.pk)).exists()


def test_open_uses_the_severitys_own_template(make_incident, make_template, operator, severities):
    own = make_template("P0 war room", items=["Page the CTO"], cadence="on-demand")
    Severity.objects.filter(code="P0").update(response_template=own)
    incident = make_incident(operator, severity="P0")
    assert incident.checklist_runs.get().template == own


def test_open_without_any_response_template(severities, operator):
    incident = incident_open(user=operator, title="No checklist here", severity="P3")
    assert not incident.checklist_runs.exists() and kinds(incident) == ["opened"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"severity": "P9"}, "There is no severity “P9”; choose one of P0, P1, P2, P3."),
        ({"severity": ""}, "Choose a severity."),
        ({"title": "  "}, "Give the incident a title."),
        ({"title": "x" * 201}, "Title is too long (201 characters; at most 200)."),
        (
            {"detected_at": T0, "started_at": T0 + timedelta(minutes=1)},
            "Detected cannot be before started.",
        ),
        ({"started_at": T0, "detected_at": T0 + timedelta(days=1)}, "Detected is in the future."),
        (
            {"started_at": T0, "detected_at": datetime(2026, 3, 2, 9, 0)},
            "Detected needs a time zone.",
        ),
        (
            {"chat_url": "javascript:alert(1)"},
            "Chat channel: “javascript:alert(1)” is not an http(s) link.",
        ),
        (
            {"ticket_urls": "https://t.example/1\nnot a link"},
            "Tickets: “not a link” is not an http(s) link.",
        ),
        ({"commander": "ghost"}, "There is no active user “ghost” to be the commander."),
    ],
)
def test_open_refuses_bad_input_and_saves_nothing(make_incident, operator, bad, message):
    """Bad inputs: unknown or empty severity, empty or too long title, detected before started,
    a time in the future, a naive time, a javascript: link, a ticket that is not a link, a
    commander who does not exist."""
    before = counts()
    run_count = ChecklistRun.objects.count()
    kwargs = {"title": "Login errors", "severity": "P1", "now": T0 + timedelta(minutes=5), **bad}
    with pytest.raises(ActionRefused) as refused:
        incident_open(user=operator, **kwargs)
    assert refused.value.message == message and refused.value.status == 400
    nothing_saved(before)
    assert ChecklistRun.objects.count() == run_count


def test_commander_must_be_able_to_update_incidents(make_incident, operator, image_staff):
    with pytest.raises(ActionRefused, match="ines may not update incidents"):
        make_incident(operator, commander="ines")


def test_inactive_severity_refused_for_new_incidents(make_incident, operator):
    Severity.objects.filter(code="P3").update(is_active=False)
    with pytest.raises(ActionRefused, match="P3 is no longer offered"):
        make_incident(operator, severity="P3")


@pytest.mark.parametrize("persona", ["image_staff", "outsider"])
def test_only_operators_and_up_open_incidents(make_incident, persona, request):
    user = request.getfixturevalue(persona)
    before = counts()
    with pytest.raises(PermissionDenied):
        make_incident(user)
    nothing_saved(before)


def test_acknowledge_stamps_and_refuses_twice(make_incident, operator, second_operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    incident = incident_acknowledge(
        incident=incident, user=second_operator, now=T0 + timedelta(minutes=45)
    )
    assert incident.acknowledged_by == second_operator
    assert incident.time_to_acknowledge == timedelta(minutes=45)
    assert incident.acknowledged_in_time is False
    entry = incident.timeline.get(kind="acknowledged")
    assert entry.text == "Acknowledged by oscar, 45 min after detection (past the response time)."
    with pytest.raises(ActionRefused, match="Already acknowledged by oscar") as refused:
        incident_acknowledge(incident=incident, user=operator, now=T0 + timedelta(hours=1))
    assert refused.value.status == 409


def test_acknowledged_before_detected_is_refused(make_incident, operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    before = counts()
    with pytest.raises(ActionRefused, match="Acknowledged cannot be before detected"):
        incident_acknowledge(incident=incident, user=operator, at=T0 - timedelta(minutes=1), now=T0)
    with pytest.raises(ActionRefused, match="Acknowledged cannot be before detected"):
        incident_update(
            incident=incident, user=operator, acknowledged_at=T0 - timedelta(minutes=1), now=T0
        )
    nothing_saved(before)
    incident.refresh_from_db()
    assert incident.acknowledged_at is None


def test_resolving_an_unacknowledged_incident_stamps_the_acknowledgement(make_incident, operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    resolved_at = T0 + timedelta(hours=2)
    incident = incident_resolve(incident=incident, user=operator, now=resolved_at)
    assert incident.status == "resolved" and incident.resolved_at == resolved_at
    assert incident.acknowledged_at == resolved_at and incident.acknowledged_by == operator
    assert incident.mitigated_at == resolved_at
    texts = list(incident.timeline.values_list("text", flat=True))
    assert "Acknowledged on resolution: nobody had acknowledged it before." in texts
    assert "Status changed from Investigating to Resolved." in texts


def test_status_changes_stamp_times_and_reopen_clears_resolution(make_incident, operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    incident = incident_set_status(
        incident=incident, user=operator, status="identified", now=T0 + timedelta(minutes=5)
    )
    assert incident.mitigated_at is None
    incident = incident_set_status(
        incident=incident, user=operator, status="monitoring", now=T0 + timedelta(minutes=9)
    )
    assert incident.mitigated_at == T0 + timedelta(minutes=9)
    incident = incident_resolve(incident=incident, user=operator, now=T0 + timedelta(minutes=30))
    incident = incident_set_status(
        incident=incident, user=operator, status="investigating", now=T0 + timedelta(minutes=40)
    )
    assert incident.resolved_at is None and incident.mitigated_at == T0 + timedelta(minutes=9)
    assert kinds(incident).count("status") == 4


def test_bad_statuses(make_incident, operator):
    """Bad inputs: an unknown status, the status it already has."""
    incident = make_incident(operator)
    before = counts()
    with pytest.raises(ActionRefused, match="Unknown status “done”"):
        incident_set_status(incident=incident, user=operator, status="done")
    with pytest.raises(ActionRefused, match="already investigating") as refused:
        incident_set_status(incident=incident, user=operator, status="investigating")
    assert refused.value.status == 409
    nothing_saved(before)


def test_update_records_each_change_on_the_timeline(make_incident, operator, second_operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    version_before = incident.version
    incident = incident_update(
        incident=incident,
        user=operator,
        severity="P0",
        commander="oscar",
        summary="Logins fail with 502",
        personal_data=True,
        started_at=T0 - timedelta(minutes=20),
        now=T0 + timedelta(minutes=3),
    )
    assert incident.severity.code == "P0" and incident.commander == second_operator
    assert incident.response_due_at == T0 + timedelta(minutes=15)
    assert incident.escalation_due_at == T0
    entries = dict(incident.timeline.values_list("kind", "text"))
    assert entries["severity"] == "Severity changed from P1 to P0."
    assert entries["commander"] == "Commander: oscar."
    assert entries["edit"] == "Summary edited; personal data involved; Started 2026-03-02 09:40."
    # Every entry moved the version the open pages poll, in the database as on the instance.
    assert incident.version == version_before + 3
    assert Incident.objects.get(pk=incident.pk).version == incident.version
    # No change: nothing written.
    before = counts()
    incident_update(incident=incident, user=operator, summary="Logins fail with 502")
    nothing_saved(before)


def test_update_refuses_resolved_before_started_and_saves_nothing(make_incident, operator):
    """Bad inputs: resolved before started, a resolution time on an open incident, an unknown
    severity, an unknown field; each leaves the incident as it was."""
    incident = make_incident(operator, detected_at=T0, now=T0)
    incident = incident_resolve(incident=incident, user=operator, now=T0 + timedelta(hours=1))
    before = counts()
    with pytest.raises(ActionRefused, match="Resolved cannot be before started"):
        incident_update(
            incident=incident,
            user=operator,
            resolved_at=T0 - timedelta(hours=1),
            summary="changed",
            now=T0 + timedelta(hours=2),
        )
    with pytest.raises(ActionRefused, match="There is no severity “SEV-9”"):
        incident_update(incident=incident, user=operator, severity="SEV-9", summary="changed")
    with pytest.raises(ActionRefused, match="Unknown fields: status_code"):
        incident_update(incident=incident, user=operator, status_code="x")
    nothing_saved(before)
    incident.refresh_from_db()
    assert incident.summary == "" and incident.resolved_at == T0 + timedelta(hours=1)
    other = make_incident(operator, title="Other", detected_at=T0, now=T0)
    with pytest.raises(ActionRefused, match="Set the status to resolved"):
        incident_update(
            incident=other,
            user=operator,
            resolved_at=T0 + timedelta(minutes=5),
            now=T0 + timedelta(hours=1),
        )


def test_close_requires_a_complete_postmortem_where_the_severity_says(
    make_incident, operator, manager
):
    incident = make_incident(operator, severity="P1", detected_at=T0, now=T0)
    with pytest.raises(ActionRefused, match="Resolve the incident before closing it"):
        incident_close(incident=incident, user=manager)
    incident = incident_resolve(incident=incident, user=operator, now=T0 + timedelta(hours=1))
    with pytest.raises(PermissionDenied):
        incident_close(incident=incident, user=operator)
    with pytest.raises(ActionRefused) as refused:
        incident_close(incident=incident, user=manager)
    assert refused.value.message == (
        "P1 incidents need a postmortem before they close; none has been written."
    )
    assert refused.value.status == 409
    postmortem_save(incident=incident, user=manager, summary="Bad deploy")
    with pytest.raises(ActionRefused, match="it lacks: impact, root cause"):
        incident_close(incident=incident, user=manager)
    incident.refresh_from_db()
    assert incident.status == "resolved"
    postmortem_save(
        incident=incident, user=manager, impact="Logins failed for 1 h", root_cause="Config typo"
    )
    incident = incident_close(incident=incident, user=manager, now=T0 + timedelta(days=1))
    assert incident.status == "closed" and incident.closed_by == manager
    with pytest.raises(ActionRefused, match="closed") as refused:
        incident_note_add(incident=incident, user=operator, text="late")
    assert refused.value.status == 409


def test_close_without_required_postmortem_for_p2(make_incident, operator, manager):
    incident = make_incident(operator, severity="P2")
    incident = incident_resolve(incident=incident, user=operator)
    assert incident_close(incident=incident, user=manager).status == "closed"


def test_postmortem_prefills_the_timeline_and_only_managers_write_it(
    make_incident, operator, manager
):
    incident = make_incident(operator, detected_at=T0, now=T0)
    incident_note_add(
        incident=incident, user=operator, text="Rolled back v1.4", now=T0 + timedelta(minutes=7)
    )
    with pytest.raises(ActionRefused, match="once the incident is resolved") as refused:
        postmortem_save(incident=incident, user=manager, summary="Too early")
    assert refused.value.status == 409
    incident = incident_resolve(incident=incident, user=operator, now=T0 + timedelta(minutes=30))
    with pytest.raises(PermissionDenied):
        postmortem_save(incident=incident, user=operator, summary="Not mine to write")
    postmortem = postmortem_save(incident=incident, user=manager, summary="Bad deploy")
    assert "2026-03-02 10:07 olivia: Rolled back v1.4" in postmortem.timeline
    assert postmortem.timeline.splitlines()[0].startswith("2026-03-02 10:00 olivia: Opened as P1")
    assert not Postmortem.objects.exclude(pk=postmortem.pk).exists()


def test_action_items_tracked_until_done(make_incident, operator, second_operator, manager):
    """Bad inputs: no text, no owner, an unknown owner, no due date."""
    incident = incident_resolve(incident=make_incident(operator), user=operator)
    postmortem = postmortem_save(incident=incident, user=manager, summary="s")
    for text, owner, due, message in [
        ("", operator, date(2026, 4, 1), "Say what has to be done."),
        ("Add a config check", None, date(2026, 4, 1), "Every action item needs an owner."),
        ("Add a config check", "ghost", date(2026, 4, 1), "The owner must be an active user."),
        ("Add a config check", operator, None, "Every action item needs a due date."),
    ]:
        with pytest.raises(ActionRefused, match=message):
            action_item_add(
                postmortem=postmortem, user=manager, text=text, owner=owner, due_date=due
            )
    item = action_item_add(
        postmortem=postmortem,
        user=manager,
        text="Add a config check",
        owner="olivia",
        due_date=date(2026, 4, 1),
    )
    assert postmortem.actions.count() == 1
    with pytest.raises(PermissionDenied):
        action_item_set_done(item=item, user=second_operator, done=True)
    item = action_item_set_done(item=item, user=operator, done=True)
    assert item.is_done and item.done_by == operator
    with pytest.raises(ActionRefused, match="Already done"):
        action_item_set_done(item=item, user=manager, done=True)
    assert not action_item_set_done(item=item, user=manager, done=False).is_done


def test_notes_and_corrections_are_new_entries(make_incident, operator, make_user):
    """Bad inputs: an empty note, a note too long, a correction of another incident's entry."""
    incident = make_incident(operator)
    other = make_incident(operator, title="Other")
    note = incident_note_add(incident=incident, user=operator, text="Error rate 40%")
    correction = incident_note_add(
        incident=incident, user=operator, text="Error rate 4%", corrects=note.pk
    )
    assert correction.corrects == note
    note.refresh_from_db()
    assert note.text == "Error rate 40%"
    before = counts()
    for kwargs, message in [
        ({"text": "  "}, "Write the note first."),
        ({"text": "x" * 5001}, "The note is too long"),
        ({"text": "fix", "corrects": other.timeline.first().pk}, "not on this incident's timeline"),
    ]:
        with pytest.raises(ActionRefused, match=message):
            incident_note_add(incident=incident, user=operator, **kwargs)
    nothing_saved(before)


def test_timeline_entries_cannot_be_edited_or_deleted(make_incident, operator):
    incident = make_incident(operator)
    entry = incident.timeline.first()
    entry.text = "rewritten"
    with pytest.raises(TypeError, match="append-only"):
        entry.save()
    with pytest.raises(TypeError, match="append-only"):
        entry.delete()
    with pytest.raises(TypeError, match="append-only"):
        TimelineEntry.objects.filter(pk=entry.pk).update(text="rewritten")
    with pytest.raises(TypeError, match="append-only"):
        TimelineEntry.objects.filter(pk=entry.pk).delete()


def test_response_checklist_ticks_appear_on_the_timeline(make_incident, operator, second_operator):
    incident = make_incident(operator)
    run = incident.checklist_runs.get()
    first = run.items.get(text="Acknowledge the alert")
    checklist_item_set_state(item=first, user=second_operator, state=ItemState.DONE)
    checklist_item_set_state(item=first, user=second_operator, state=ItemState.OPEN)
    status_item = run.items.get(text="Update the status page")
    checklist_item_set_state(
        item=status_item, user=operator, state=ItemState.SKIPPED, reason="No status page yet"
    )
    checklist_item_note(item=first, user=operator, note="notes stay on the run")
    ticks = list(incident.timeline.filter(kind="checklist").values_list("author_name", "text"))
    assert ticks[1:] == [
        ("oscar", "Ticked: Acknowledge the alert"),
        ("oscar", "Unticked: Acknowledge the alert"),
        ("olivia", "Skipped: Update the status page (reason: No status page yet)"),
    ]
    for item in run.items.filter(state="open"):
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    assert incident.timeline.last().text.endswith("Response checklist complete.")


def test_ticks_on_ordinary_runs_touch_no_incident(make_template, operator):
    from ops.services.checklists import checklist_runs_schedule

    make_template()
    (run,) = checklist_runs_schedule()
    checklist_item_set_state(item=run.items.first(), user=operator, state=ItemState.DONE)
    assert not TimelineEntry.objects.exists()


def test_personal_data_deadline_is_72_hours_from_detection(make_incident, operator):
    incident = make_incident(operator, detected_at=T0, now=T0, personal_data=True)
    assert incident.personal_data_deadline == T0 + timedelta(hours=72)
    assert incident.personal_data_state(T0 + timedelta(hours=47)) == "ok"
    assert incident.personal_data_state(T0 + timedelta(hours=49)) == "near"
    assert incident.personal_data_state(T0 + timedelta(hours=72, seconds=1)) == "passed"
    plain = make_incident(operator, title="No personal data")
    assert plain.personal_data_deadline is None and plain.personal_data_state() == ""


def test_incident_links_monitored_services_and_their_page_lists_it(operator, manager, severities):
    from django.urls import reverse

    from ops.models import MonitoredService
    from ops.services.incidents import incident_open, incident_update
    from portal.errors import ActionRefused
    from tests.conftest import client_for

    api = MonitoredService.objects.create(
        name="Public API", slug="public-api", kind="http", target="http://127.0.0.1:9/"
    )
    db = MonitoredService.objects.create(
        name="Database", slug="database", kind="tcp", target="127.0.0.1:5432"
    )
    with pytest.raises(ActionRefused, match="No monitored service “nope”"):
        incident_open(user=operator, title="Down", severity="P1", services=["nope"])
    assert not api.incidents.exists()
    incident = incident_open(
        user=operator, title="API errors", severity="P1", services=["public-api"]
    )
    assert list(incident.services.all()) == [api]
    assert incident.timeline.filter(text="Affected monitored services: Public API.").exists()
    incident_update(incident=incident, user=operator, services=["public-api", "database"])
    assert set(incident.services.all()) == {api, db}
    html = client_for(operator).get(reverse("ops:service_detail", args=["database"])).content
    assert b"API errors" in html
    listing = client_for(manager).get(reverse("ops:incident_list"), {"service": "Database"})
    assert b"API errors" in listing.content
