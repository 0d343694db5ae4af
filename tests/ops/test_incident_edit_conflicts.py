"""Issue 9, item 4: no lost updates on incidents. The edit form carries the version it was
opened at and the values it showed; a save touches only what the user changed, and a field
somebody else changed meanwhile is not overwritten unseen."""

import pytest
from django.urls import reverse
from django.utils import timezone

from ops.models import TimelineEntry
from ops.services.incident_rules import EditConflict
from ops.services.incidents import (
    incident_note_add,
    incident_set_status,
    incident_update,
)
from portal.models import AuditEntry
from tests.conftest import client_for
from tests.html_forms import form_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(make_incident, operator):
    return make_incident(operator, title="Login errors", summary="Logins fail")


def edit_url(incident):
    return reverse("ops:incident_edit", args=[incident.pk])


def opened_form(client, incident) -> dict:
    """What the browser holds after opening Edit: every field, hidden ones included."""
    return form_fields(client.get(edit_url(incident)).content.decode())


def test_a_save_does_not_clear_what_a_manager_set_meanwhile(incident, operator, manager):
    """The issue's reproduction: the operator opens Edit, a manager sets Monitoring (stamping
    Mitigated), the operator saves a summary change."""
    client = client_for(operator)
    data = opened_form(client, incident)
    assert data["mitigated_at"] == "" and data["version"] == str(incident.version)
    incident_set_status(incident=incident, user=manager, status="monitoring")
    incident.refresh_from_db()
    mitigated = incident.mitigated_at
    assert mitigated is not None

    data["summary"] = "Logins fail with 502 from the gateway"
    response = client.post(edit_url(incident), data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.summary == "Logins fail with 502 from the gateway"
    assert incident.mitigated_at == mitigated and incident.status == "monitoring"
    last = incident.timeline.order_by("-created_at", "-id").first()
    assert last.text == "Summary edited."
    assert not incident.timeline.filter(text__startswith="Mitigated").exists()


def test_a_conflicting_save_is_refused_with_what_changed_and_the_form_kept(
    incident, operator, second_operator
):
    mine, theirs = client_for(operator), client_for(second_operator)
    data = opened_form(mine, incident)
    other = opened_form(theirs, incident)
    other["summary"] = "Gateway returns 502"
    assert theirs.post(edit_url(incident), other).status_code == 302

    entries, audits = TimelineEntry.objects.count(), AuditEntry.objects.count()
    data["summary"] = "Login service out of memory"
    data["customer_impact"] = "Nobody can log in"
    response = mine.post(edit_url(incident), data)
    html = response.content.decode()
    assert response.status_code == 409
    assert "Somebody changed this incident while you were editing it" in html
    assert "Summary is now “Gateway returns 502”" in html
    # The form keeps what I typed, and changes nothing.
    assert "Login service out of memory" in html and "Nobody can log in" in html
    incident.refresh_from_db()
    assert incident.summary == "Gateway returns 502" and incident.customer_impact == ""
    assert TimelineEntry.objects.count() == entries and AuditEntry.objects.count() == audits

    # Having seen it, saving the kept form again is my deliberate choice.
    again = form_fields(html)
    assert again["version"] == str(incident.version)
    assert again["summary"] == "Login service out of memory"
    assert mine.post(edit_url(incident), again).status_code == 302
    incident.refresh_from_db()
    assert incident.summary == "Login service out of memory"
    assert incident.customer_impact == "Nobody can log in"


def test_other_activity_since_opening_does_not_refuse_a_save(incident, operator, manager):
    """Notes and checklist ticks move the version on; they conflict with no field."""
    client = client_for(operator)
    data = opened_form(client, incident)
    incident_note_add(incident=incident, user=manager, text="Looking at the gateway")
    data["title"] = "Login errors behind the gateway"
    assert client.post(edit_url(incident), data).status_code == 302
    incident.refresh_from_db()
    assert incident.title == "Login errors behind the gateway"


def test_the_service_refuses_a_stale_version_field_by_field(incident, operator, manager):
    opened_version = incident.version
    incident_update(incident=incident, user=manager, summary="Set by the manager")
    with pytest.raises(EditConflict) as conflict:
        incident_update(
            incident=incident,
            user=operator,
            version=opened_version,
            opened={"summary": "Logins fail"},
            summary="Set by the operator",
        )
    assert conflict.value.status == 409
    assert conflict.value.changed == {"summary": "“Set by the manager”"}
    # Same value as the manager's: nothing to lose, no conflict. Without the values it showed,
    # a stale form is refused outright.
    incident_update(
        incident=incident,
        user=operator,
        version=opened_version,
        opened={"summary": "Logins fail"},
        summary="Set by the manager",
    )
    with pytest.raises(EditConflict):
        incident_update(
            incident=incident, user=operator, version=opened_version, title="Another title"
        )


def test_clearing_a_value_says_cleared(incident, operator):
    now = timezone.now()
    incident_set_status(incident=incident, user=operator, status="monitoring", now=now)
    client = client_for(operator)
    data = opened_form(client, incident)
    assert data["mitigated_at"]
    data["mitigated_at"] = ""
    data["summary"] = ""
    assert client.post(edit_url(incident), data).status_code == 302
    incident.refresh_from_db()
    assert incident.mitigated_at is None and incident.summary == ""
    last = incident.timeline.order_by("-created_at", "-id").first()
    assert last.text == "Summary cleared; Mitigated cleared."


def test_edit_form_carries_its_version_and_what_it_showed(incident, operator):
    html = client_for(operator).get(edit_url(incident)).content.decode()
    data = form_fields(html)
    assert data["version"] == str(incident.version)
    assert data["initial-summary"] == "Logins fail" and data["initial-title"] == "Login errors"
    assert 'type="hidden" name="version"' in html
