"""Clocks and overdue notifications with a controlled clock, received by a local SMTP server
and a local webhook receiver on 127.0.0.1; each step once, never twice."""

from datetime import UTC, datetime, timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.urls import reverse

from ops.models import IncidentNotification, TimelineEntry
from ops.services.incident_notifications import incident_notifications_send
from ops.services.incidents import incident_acknowledge, incident_resolve, incident_update
from ops.tasks import incident_notifications_send_task
from portal.celery import app
from tests.conftest import client_for
from tests.local_servers import SMTPServer, WebhookReceiver, serving

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def smtp(smtp_server, settings):
    settings.INCIDENT_NOTIFY_EMAILS = ["oncall@example.test", "cto@example.test"]
    return smtp_server


@pytest.fixture
def webhook(settings):
    receiver = WebhookReceiver()
    stop = serving(receiver)
    settings.INCIDENT_WEBHOOK_URL = receiver.url
    yield receiver
    stop()


@pytest.mark.django_db
def test_clocks_with_a_controlled_clock(make_incident, operator):
    incident = make_incident(operator, severity="P1", detected_at=T0, now=T0)
    assert not incident.is_response_overdue(T0 + timedelta(minutes=30))
    assert incident.is_response_overdue(T0 + timedelta(minutes=30, seconds=1))
    assert not incident.is_escalation_due(T0 + timedelta(minutes=59))
    assert incident.is_escalation_due(T0 + timedelta(hours=1))
    incident = incident_acknowledge(
        incident=incident, user=operator, now=T0 + timedelta(minutes=31)
    )
    assert not incident.is_response_overdue(T0 + timedelta(hours=2))
    assert not incident.is_escalation_due(T0 + timedelta(hours=2))


@pytest.mark.django_db
def test_each_step_notified_once_by_email_and_webhook(make_incident, operator, smtp, webhook):
    incident = make_incident(
        operator, severity="P1", detected_at=T0, now=T0, affected_services="login"
    )
    assert incident_notifications_send(now=T0 + timedelta(minutes=29)) == []
    # Past the response time: one notification.
    (first,) = incident_notifications_send(now=T0 + timedelta(minutes=31))
    assert first.step == "response"
    assert first.emailed_to == "oncall@example.test, cto@example.test"
    assert first.webhook_status == "200" and first.email_error == ""
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["to"] == ["oncall@example.test", "cto@example.test"]
    assert mail["message"]["Subject"] == (
        f"[P1] {incident.reference} unacknowledged: response time passed"
    )
    assert "Affected services: login" in mail["message"].get_payload()
    (hook,) = webhook.received
    assert hook["path"] == "/hooks/incidents"
    assert hook["headers"]["Content-Type"] == "application/json"
    assert hook["json"]["incident"]["reference"] == incident.reference
    assert hook["json"]["incident"]["step"] == "response"
    assert hook["json"]["text"].startswith(f"[P1] {incident.reference}")

    # Again in the same state: nothing twice.
    assert incident_notifications_send(now=T0 + timedelta(minutes=40)) == []
    # Past the escalation time: the second step, once.
    (second,) = incident_notifications_send(now=T0 + timedelta(hours=1, minutes=1))
    assert second.step == "escalation"
    assert incident_notifications_send(now=T0 + timedelta(hours=5)) == []
    assert len(smtp.messages) == 2 and len(webhook.received) == 2
    assert list(incident.timeline.filter(kind="notification").values_list("text", flat=True)) == [
        "Response time passed unacknowledged: "
        "e-mailed oncall@example.test, cto@example.test; webhook answered 200.",
        "Escalation time passed unacknowledged: "
        "e-mailed oncall@example.test, cto@example.test; webhook answered 200.",
    ]


@pytest.mark.django_db
def test_p0_escalates_at_once_and_both_steps_go_in_one_scan(make_incident, operator, smtp):
    make_incident(operator, severity="P0", detected_at=T0, now=T0)
    sent = incident_notifications_send(now=T0 + timedelta(minutes=16))
    assert sorted(n.step for n in sent) == ["escalation", "response"]
    assert len(smtp.messages) == 2


@pytest.mark.django_db
def test_acknowledged_resolved_and_moved_incidents_are_not_notified(make_incident, operator, smtp):
    acked = make_incident(operator, title="Acked", detected_at=T0, now=T0)
    incident_acknowledge(incident=acked, user=operator, now=T0 + timedelta(minutes=5))
    resolved = make_incident(operator, title="Resolved", detected_at=T0, now=T0)
    incident_resolve(incident=resolved, user=operator, now=T0 + timedelta(minutes=10))
    # Lowered to P3 before its P1 clock ran out: now due only after 24 h.
    lowered = make_incident(operator, title="Lowered", detected_at=T0, now=T0)
    incident_update(incident=lowered, user=operator, severity="P3", now=T0 + timedelta(minutes=10))
    assert incident_notifications_send(now=T0 + timedelta(hours=2)) == []
    assert smtp.messages == []
    (late,) = incident_notifications_send(now=T0 + timedelta(hours=24, minutes=1))
    assert late.incident == lowered


@pytest.mark.django_db
def test_a_failing_webhook_does_not_stop_the_email(make_incident, operator, smtp, settings):
    failing = WebhookReceiver(answer=500)
    stop = serving(failing)
    try:
        settings.INCIDENT_WEBHOOK_URL = failing.url
        make_incident(operator, detected_at=T0, now=T0)
        (sent,) = incident_notifications_send(now=T0 + timedelta(minutes=31))
    finally:
        stop()
    assert sent.webhook_status == "error: HTTP 500"
    assert len(smtp.messages) == 1 and sent.emailed_to


@pytest.mark.django_db
def test_unreachable_webhook_and_mail_server_are_recorded_not_raised(
    make_incident, operator, settings
):
    closed = SMTPServer()  # bound, then closed: nothing listens on that port any more
    port = closed.port
    closed.server_close()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    settings.INCIDENT_NOTIFY_EMAILS = ["oncall@example.test"]
    settings.INCIDENT_WEBHOOK_URL = f"http://127.0.0.1:{port}/nothing"
    make_incident(operator, detected_at=T0, now=T0)
    (sent,) = incident_notifications_send(now=T0 + timedelta(minutes=31))
    assert sent.email_error and sent.webhook_status.startswith("error:")
    (text,) = TimelineEntry.objects.filter(kind="notification").values_list("text", flat=True)
    assert text.startswith(
        "Response time passed unacknowledged: nobody was notified; e-mail failed"
    )
    assert "webhook failed (error:" in text
    # Claimed: a later scan does not retry it (once, never twice).
    assert incident_notifications_send(now=T0 + timedelta(minutes=35)) == []
    assert IncidentNotification.objects.count() == 1


@pytest.mark.django_db
def test_a_step_claimed_elsewhere_is_skipped(make_incident, operator, smtp):
    """Two schedulers: the one whose insert loses the unique constraint sends nothing."""
    incident = make_incident(operator, detected_at=T0, now=T0)
    IncidentNotification.objects.create(incident=incident, step="response")
    assert incident_notifications_send(now=T0 + timedelta(minutes=31)) == []
    assert smtp.messages == [] and not TimelineEntry.objects.filter(kind="notification").exists()


@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_task_once_per_step(make_incident, operator, smtp, webhook):
    """The beat's task, executed by a real worker on the configured broker."""
    make_incident(operator, severity="P0", detected_at=datetime.now(UTC) - timedelta(minutes=20))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        first = incident_notifications_send_task.delay().get(timeout=30)
        second = incident_notifications_send_task.delay().get(timeout=30)
    assert len(first) == 2 and second == []
    assert len(smtp.messages) == 2 and len(webhook.received) == 2


@pytest.mark.django_db
def test_with_no_channel_the_timeline_says_nobody_was_notified(make_incident, operator, settings):
    """Issue 9, item 18: "notified" only when somebody was."""
    settings.INCIDENT_NOTIFY_EMAILS, settings.INCIDENT_WEBHOOK_URL = [], ""
    incident = make_incident(operator, detected_at=T0, now=T0)
    (sent,) = incident_notifications_send(now=T0 + timedelta(minutes=31))
    assert sent.emailed_to == "" and sent.webhook_status == ""
    assert list(incident.timeline.filter(kind="notification").values_list("text", flat=True)) == [
        "Response time passed unacknowledged: no channel configured: nobody was notified."
    ]


@pytest.mark.django_db
def test_the_incident_page_and_today_say_no_channel_is_configured(
    make_incident, operator, settings
):
    settings.INCIDENT_NOTIFY_EMAILS, settings.INCIDENT_WEBHOOK_URL = [], ""
    incident = make_incident(operator)
    client = client_for(operator)
    warning = "No notification channel is configured"
    assert warning in client.get(incident.get_absolute_url()).content.decode()
    assert warning in client.get(reverse("today")).content.decode()
    settings.INCIDENT_NOTIFY_EMAILS = ["oncall@example.test"]
    assert warning not in client.get(incident.get_absolute_url()).content.decode()
    assert warning not in client.get(reverse("today")).content.decode()
