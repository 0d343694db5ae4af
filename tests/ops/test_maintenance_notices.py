"""Maintenance notices with a controlled clock, received by a local SMTP server and a local
webhook receiver on 127.0.0.1: T-72 h, T-24 h, T-1 h, start and end, each exactly once with two
beats; a failing channel is recorded and retried, not lost."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from celery.contrib.testing.worker import start_worker

from ops.models import MonitoredService, OccurrenceStatus, WindowNotice, WindowOccurrence
from ops.services.maintenance import WindowInput, maintenance_scan, maintenance_window_schedule
from ops.services.maintenance_notices import maintenance_notices_send
from ops.tasks import maintenance_scan_task
from portal.celery import app
from tests.fakes import closed_port
from tests.local_servers import SMTPServer, WebhookReceiver, serving

START = datetime(2026, 6, 7, 2, 0, tzinfo=UTC)


@pytest.fixture
def smtp(smtp_server, settings):
    settings.INCIDENT_NOTIFY_EMAILS = ["oncall@example.test", "status@example.test"]
    return smtp_server


@pytest.fixture
def webhook(settings):
    receiver = WebhookReceiver()
    stop = serving(receiver)
    settings.INCIDENT_WEBHOOK_URL = receiver.url
    yield receiver
    stop()


def _window(manager, *, starts_at=START, rrule="", now=None):
    service = MonitoredService.objects.create(
        name="Database", slug="database", kind="tcp", target="127.0.0.1:5432"
    )
    return maintenance_window_schedule(
        user=manager,
        data=WindowInput(
            title="Database upgrade",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            time_zone="Europe/Berlin",
            rrule=rrule,
            services=(service,),
        ),
        details={"rollback_plan": "Restore the snapshot"},
        now=now or starts_at - timedelta(days=10),
    )


def _beat_twice(now):
    """What two beats (or a restart) do at one instant: the scan and the notices, twice."""
    sent = []
    for _ in range(2):
        maintenance_scan(now=now)
        sent += maintenance_notices_send(now=now)
    return sent


@pytest.mark.django_db
def test_each_notice_once_by_email_and_webhook(manager, smtp, webhook):
    _window(manager)
    moments = [
        START - timedelta(hours=80),
        START - timedelta(hours=72),
        START - timedelta(hours=71),
        START - timedelta(hours=24),
        START - timedelta(hours=23),
        START - timedelta(hours=1),
        START - timedelta(minutes=30),
        START + timedelta(minutes=1),
        START + timedelta(hours=1),
        START + timedelta(hours=2),
        START + timedelta(hours=3),
    ]
    kinds = []
    for moment in moments:
        kinds += [notice.kind for notice in _beat_twice(moment)]
    assert kinds == ["before:72", "before:24", "before:1", "start", "end"]
    subjects = [message["message"]["Subject"] for message in smtp.messages]
    assert subjects == [
        "[Planned maintenance] Database upgrade in 72 hours",
        "[Planned maintenance] Database upgrade in 24 hours",
        "[Planned maintenance] Database upgrade in 1 hours",
        "[Planned maintenance] Database upgrade has started",
        "[Planned maintenance] Database upgrade has ended",
    ]
    assert smtp.messages[0]["to"] == ["oncall@example.test", "status@example.test"]
    body = smtp.messages[0]["message"].get_payload()
    assert "04:00 to 06:00 CEST" in body or "Sun 07 Jun 2026 04:00" in body
    assert "Restore the snapshot" in body and "Database" in body
    assert [hook["json"]["maintenance"]["notice"] for hook in webhook.received] == kinds
    notice = WindowNotice.objects.get(kind="before:72")
    assert notice.email_state == "sent" and "oncall@example.test" in notice.emailed_to
    assert notice.webhook_state == "sent" and notice.webhook_status == "200"
    occurrence = WindowOccurrence.objects.get()
    assert occurrence.status == OccurrenceStatus.IN_PROGRESS  # completed by a person


@pytest.mark.django_db
def test_scheduled_late_sends_only_the_nearest_announcement(manager, smtp, webhook):
    now = START - timedelta(hours=20)
    _window(manager, now=START - timedelta(days=10))
    sent = _beat_twice(now)
    assert [notice.kind for notice in sent] == ["before:24"]
    assert set(WindowNotice.objects.values_list("kind", "email_state")) == {
        ("before:24", "sent"),
        ("before:72", "skipped"),
    }
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_a_failing_channel_is_recorded_and_retried(manager, settings, webhook):
    _window(manager)
    settings.INCIDENT_NOTIFY_EMAILS = ["oncall@example.test"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_TIMEOUT = 2
    webhook.answer = 500
    now = START - timedelta(hours=72)
    with closed_port() as port:
        settings.EMAIL_PORT = port
        (notice,) = _beat_twice(now)
    notice.refresh_from_db()
    assert notice.email_state == "failed" and notice.email_error
    assert notice.webhook_state == "failed" and notice.webhook_status == "error: HTTP 500"
    server = SMTPServer()
    stop = serving(server)
    try:
        settings.EMAIL_PORT = server.port
        webhook.answer = 200
        assert maintenance_notices_send(now=now + timedelta(minutes=1)) == []
        maintenance_notices_send(now=now + timedelta(minutes=2))
    finally:
        stop()
    notice.refresh_from_db()
    assert notice.email_state == "sent" and notice.webhook_state == "sent"
    assert len(server.messages) == 1  # sent by the retry, and not again after it
    assert notice.email_attempts == 3  # refused twice (both beats), then sent
    assert len(webhook.received) == 3  # two answered 500, then the retry that got through


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_beats_at_the_same_instant_send_once(manager, smtp, webhook):
    _window(manager)
    now = START - timedelta(hours=72)
    maintenance_scan(now=now)
    barrier = threading.Barrier(2)
    results = []

    def beat():
        barrier.wait(5)
        try:
            results.append(len(maintenance_notices_send(now=now)))
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [0, 1]
    assert len(smtp.messages) == 1 and len(webhook.received) == 1


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_the_beat_task(manager, smtp, webhook):
    """The beat's task, executed twice by a real worker on the configured broker."""
    from django.utils import timezone

    _window(
        manager,
        starts_at=timezone.now() + timedelta(minutes=30),
        now=timezone.now() - timedelta(days=5),
    )
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        first = maintenance_scan_task.delay().get(timeout=30)
        second = maintenance_scan_task.delay().get(timeout=30)
    assert first["notices"] == 1 and second["notices"] == 0
    assert len(smtp.messages) == 1 and len(webhook.received) == 1


@pytest.mark.django_db
def test_a_notice_claimed_by_a_scan_that_died_is_sent_by_the_next(manager, smtp, webhook):
    """A restart between claiming the row and sending it: the next scans send it, once."""
    _window(manager)
    now = START - timedelta(hours=72)
    maintenance_scan(now=now)
    occurrence = WindowOccurrence.objects.get()
    WindowNotice.objects.create(occurrence=occurrence, kind="before:72", created_at=now)
    assert maintenance_notices_send(now=now + timedelta(minutes=1)) == []
    assert smtp.messages == []  # it may still be sending
    maintenance_notices_send(now=now + timedelta(minutes=3))
    maintenance_notices_send(now=now + timedelta(minutes=4))
    assert len(smtp.messages) == 1 and len(webhook.received) == 1
    notice = WindowNotice.objects.get()
    assert notice.email_state == "sent" and notice.webhook_state == "sent"
