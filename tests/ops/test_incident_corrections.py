"""Issue 11's incident rules: the edit form offers what can be saved, a back-dated resolution
takes the mitigation with it, a corrected acknowledgement keeps what the clocks said, a new
incident has no default severity, errors sit beside their fields, the printable report names
the monitored services."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from ops.models import Incident, MonitoredService, TimelineKind
from ops.selectors.incidents import incident_report
from ops.services.incident_notifications import incident_notifications_send
from ops.services.incidents import incident_acknowledge, incident_resolve, incident_update
from portal.errors import ActionRefused
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_a_back_dated_resolution_moves_the_mitigation_back_with_it(make_incident, operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    incident = incident_resolve(incident=incident, user=operator, now=T0 + timedelta(hours=2))
    assert incident.mitigated_at == incident.resolved_at == T0 + timedelta(hours=2)
    incident = incident_update(
        incident=incident,
        user=operator,
        resolved_at=T0 + timedelta(minutes=50),
        now=T0 + timedelta(hours=3),
    )
    incident.refresh_from_db()
    assert incident.resolved_at == incident.mitigated_at == T0 + timedelta(minutes=50)
    # An earlier mitigation stays where it was; one set explicitly after it is refused.
    incident = incident_update(
        incident=incident, user=operator, mitigated_at=T0 + timedelta(minutes=20)
    )
    incident_update(incident=incident, user=operator, resolved_at=T0 + timedelta(minutes=40))
    incident.refresh_from_db()
    assert incident.mitigated_at == T0 + timedelta(minutes=20)
    with pytest.raises(ActionRefused, match="Resolved cannot be before mitigated") as refused:
        incident_update(
            incident=incident,
            user=operator,
            mitigated_at=T0 + timedelta(minutes=45),
            resolved_at=T0 + timedelta(minutes=30),
        )
    assert refused.value.field == "resolved_at"


def test_a_corrected_acknowledgement_keeps_what_the_clocks_said(
    make_incident, operator, manager, settings
):
    settings.INCIDENT_NOTIFY_EMAILS, settings.INCIDENT_WEBHOOK_URL = [], ""
    incident = make_incident(operator, severity="P1", detected_at=T0, now=T0)
    assert len(incident_notifications_send(now=T0 + timedelta(minutes=31))) == 1
    late = T0 + timedelta(minutes=40)
    incident = incident_acknowledge(incident=incident, user=operator, now=late)
    assert incident.acknowledged_in_time is False

    incident_update(
        incident=incident,
        user=manager,
        acknowledged_at=T0 + timedelta(minutes=10),
        now=T0 + timedelta(hours=1),
    )
    incident = Incident.objects.get(pk=incident.pk)
    assert incident.acknowledged_in_time is True  # the report uses the corrected time
    assert incident.acknowledged_recorded_at == late
    assert incident.acknowledged_in_time_as_recorded is False
    entries = list(incident.timeline.values_list("kind", "text"))
    assert any(kind == TimelineKind.NOTIFICATION for kind, _text in entries)  # it stays
    assert any(
        text == "Acknowledgement time corrected to 2026-03-02 10:10 (recorded 2026-03-02 10:40)."
        for _kind, text in entries
    )
    # A second correction keeps the first record.
    incident_update(incident=incident, user=manager, acknowledged_at=T0 + timedelta(minutes=5))
    incident.refresh_from_db()
    assert incident.acknowledged_recorded_at == late

    report = incident_report(since=date(2026, 3, 1), until=date(2026, 3, 31), now=T0)
    p1 = next(row for row in report.stats if row.severity.code == "P1")
    assert (p1.in_time, p1.timed, p1.corrected) == (1, 1, 1)
    client = client_for(manager)
    html = client.get(reverse("ops:incident_report") + "?since=2026-03-01&until=2026-03-31")
    assert "(1 of 1; 1 corrected)" in html.content.decode()
    page = client.get(incident.get_absolute_url()).content.decode()
    assert "Acknowledged in time" in page and "Corrected</span> first recorded" in page
    assert "(late as recorded)" in page
    printed = client.get(reverse("ops:incident_print", args=[incident.pk])).content.decode()
    assert "corrected, first recorded 2026-03-02 10:40" in printed


def test_an_acknowledgement_entered_by_hand_records_when(make_incident, operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    incident_update(
        incident=incident,
        user=operator,
        acknowledged_at=T0 + timedelta(minutes=5),
        now=T0 + timedelta(hours=1),
    )
    incident.refresh_from_db()
    assert incident.acknowledged_recorded_at == T0 + timedelta(hours=1)


def test_new_incident_form_has_no_default_severity(operator, severities, response_checklist):
    client = client_for(operator)
    html = client.get(reverse("ops:incident_new")).content.decode()
    assert '<option value="" selected>Choose a severity</option>' in html
    response = client.post(reverse("ops:incident_new"), {"title": "Checkout slow"})
    html = response.content.decode()
    assert response.status_code == 400 and not Incident.objects.exists()
    assert html.count("Choose a severity.") == 1
    group = html[html.index('<label for="id_severity"') :]
    group = group[: group.index("<label", 10)]
    assert "Choose a severity." in group and "autofocus" in group


def test_edit_form_offers_resolved_only_once_resolved(make_incident, operator):
    incident = make_incident(operator, detected_at=T0, now=T0)
    client = client_for(operator)
    edit = reverse("ops:incident_edit", args=[incident.pk])
    assert 'name="resolved_at"' not in client.get(edit).content.decode()
    incident_resolve(incident=incident, user=operator, now=T0 + timedelta(hours=1))
    html = client.get(edit).content.decode()
    assert 'name="resolved_at"' in html and "An earlier Mitigated moves back with it." in html


def test_printable_report_names_the_monitored_services(make_incident, operator):
    MonitoredService.objects.create(name="Portal web", slug="portal-web", kind="http")
    incident = make_incident(
        operator, affected_services="checkout, payments", services=["portal-web"]
    )
    html = client_for(operator).get(reverse("ops:incident_print", args=[incident.pk]))
    assert "Portal web; checkout, payments" in html.content.decode()


def test_the_response_checklist_is_ticked_on_the_incident_page(make_incident, operator):
    incident = make_incident(operator)
    run = incident.checklist_runs.get()
    item = run.items.order_by("position").first()
    client = client_for(operator)
    html = client.get(incident.get_absolute_url()).content.decode()
    box = f'id="tick-{item.pk}"'
    assert box in html and f'<label for="tick-{item.pk}">{item.text}</label>' in html
    assert f'hx-post="{reverse("ops:item_tick", args=[run.pk, item.pk])}"' in html
    assert 'id="run-progress"' in html  # the tick's answer updates it out of band
    response = client.post(
        reverse("ops:item_tick", args=[run.pk, item.pk]), {"done": "1"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "✓ olivia" in response.content.decode()
    html = client.get(incident.get_absolute_url()).content.decode()
    assert f"<strong>1 of {run.items.count()}</strong> done" in html
    assert "Checklist" in html or item.text in html
