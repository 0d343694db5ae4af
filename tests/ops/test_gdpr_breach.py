"""A personal-data incident runs the breach checklist with its steps due from detection, and
records the authority (art. 33) and subject (art. 34) notifications."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ops.models import BreachRecord, ChecklistItem, ChecklistRun
from ops.models.checklists import Cadence
from ops.services.checklists import checklist_run_start
from ops.services.gdpr_breach import breach_offsets_default, breach_record_update
from ops.services.incidents import incident_open, incident_update
from portal.errors import ActionRefused
from tests.conftest import client_for

BREACH_ITEMS = [
    "Contain the breach: isolate affected systems",
    "Preserve evidence: logs",
    "Tell the security lead and legal counsel immediately",
    "Establish which data and which people are affected",
    "Notify the supervisory authority within 72 hours",
    "Inform affected users when the risk to them is high",
    "Write the report and the follow-up actions",
]


@pytest.fixture
def breach_checklist(make_template, severities):
    template = make_template("Data breach response", items=BREACH_ITEMS, cadence=Cadence.ON_DEMAND)
    assert breach_offsets_default() == 7
    assert breach_offsets_default() == 0  # kept once set
    return template


def test_breach_checklist_due_from_detection(operator, breach_checklist):
    now = timezone.now()
    detected = now - timedelta(minutes=20)
    incident = incident_open(
        user=operator,
        title="Leaked export",
        severity="P0",
        detected_at=detected,
        personal_data=True,
        now=now,
    )
    run = ChecklistRun.objects.get(incident=incident, template=breach_checklist)
    items = list(run.items.all())

    def due(words):
        return next(item.due_at - detected for item in items if item.text.startswith(words))

    assert due("Contain") == timedelta(0)
    assert due("Establish") == timedelta(minutes=15)
    assert due("Notify") == timedelta(hours=24)
    assert due("Write") == timedelta(hours=48)
    page = client_for(operator).get(run.get_absolute_url()).content.decode()
    assert "overdue by" in page and "due in" in page
    assert BreachRecord.objects.filter(incident=incident).exists()


def test_marking_personal_data_later_opens_it_once(operator, breach_checklist):
    incident = incident_open(user=operator, title="Odd logins", severity="P1")
    assert not ChecklistRun.objects.filter(template=breach_checklist).exists()
    incident_update(incident=incident, user=operator, personal_data=True)
    assert ChecklistRun.objects.filter(template=breach_checklist, incident=incident).count() == 1


def test_art33_and_art34_records_with_their_bad_inputs(manager, operator, breach_checklist):
    now = timezone.now()
    incident = incident_open(
        user=manager,
        title="Leak",
        severity="P0",
        personal_data=True,
        detected_at=now - timedelta(hours=80),
        started_at=now - timedelta(hours=81),
        now=now,
    )
    cases = [
        ({"authority_notified_at": now + timedelta(hours=1)}, "cannot be in the future"),
        ({"authority_notified_at": now - timedelta(hours=90)}, "before the incident started"),
        ({"authority_notified_at": now - timedelta(hours=2)}, "authority's reference"),
        (
            {"authority_notified_at": None, "subjects_decision": "notified"},
            "when the data subjects",
        ),
        ({"authority_notified_at": None, "subjects_decision": "not-required"}, "not required"),
        ({"authority_notified_at": None, "subjects_decision": "maybe"}, "Unknown decision"),
    ]
    for values, words in cases:
        with pytest.raises(ActionRefused, match=words):
            breach_record_update(incident=incident, user=manager, **values)
    record = BreachRecord.objects.get(incident=incident)
    assert record.authority_notified_at is None and record.subjects_decision == "undecided"
    with pytest.raises(Exception, match="may not record"):
        breach_record_update(incident=incident, user=operator, authority_notified_at=None)
    record = breach_record_update(
        incident=incident,
        user=manager,
        authority_notified_at=now - timedelta(hours=1),
        authority_reference="DPA-2026-118",
        subjects_decision="notified",
        subjects_notified_at=now - timedelta(minutes=30),
    )
    assert record.authority_in_time is False  # 79 h after detection
    assert "past the 72-hour deadline" in incident.timeline.last().text
    page = client_for(manager).get(reverse("ops:gdpr_breach", args=[incident.pk])).content.decode()
    assert "DPA-2026-118" in page and "past the 72-hour deadline" in page


def test_items_without_minutes_have_no_due_time(operator, make_template):
    template = make_template("Pre-deploy", items=["One"], cadence=Cadence.ON_DEMAND)
    ChecklistItem.objects.filter(template=template).update(due_after_minutes=5)
    run = checklist_run_start(template=template, user=operator, label="v1")
    item = run.items.get()
    assert item.due_at == run.created_at + timedelta(minutes=5)
    assert not item.is_overdue(run.created_at) and item.is_overdue(
        item.due_at + timedelta(seconds=1)
    )
