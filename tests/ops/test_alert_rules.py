"""Alert rules over stored results with a controlled clock: ``for:`` durations, hysteresis,
escalation walking its steps, sends received by local servers, one-click links, rotations
across DST, and a critical alert opening an incident with its playbook."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.exceptions import ValidationError

from ops.models import (
    Alert,
    AlertRule,
    AlertSend,
    AlertStatus,
    ChecklistRun,
    CheckResult,
    EscalationPolicy,
    EscalationStep,
    MaintenanceWindow,
    MonitoredService,
    NotificationChannel,
    OnCallOverride,
    OnCallSchedule,
    RotationMember,
    Silence,
)
from ops.selectors.alerts import oncall_user
from ops.services.alerts import (
    SILENCE_SOURCES,
    SilenceWindow,
    alert_ack_by_link,
    alert_ack_token,
    alert_acknowledge,
    alert_sends_deliver,
    alerts_evaluate,
    silence_create,
)
from ops.services.incidents import incident_acknowledge
from ops.tasks import alert_sends_deliver_task, alerts_evaluate_task
from portal.celery import app
from portal.errors import ActionRefused
from portal.registry import registry
from portal.services.audit import audit_record
from tests.local_servers import SMTPServer, WebhookReceiver, serving

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
EVERY = timedelta(seconds=30)


@pytest.fixture
def api(db):
    return MonitoredService.objects.create(
        name="API", slug="api", kind="http", target="http://127.0.0.1:9/"
    )


def record(service, start: datetime, end: datetime, state: str, latency: float = 50.0):
    """Results every 30 s from ``start`` (inclusive) to ``end`` (exclusive)."""
    at, rows = start, []
    while at < end:
        rows.append(CheckResult(service=service, checked_at=at, state=state, latency_ms=latency))
        at += EVERY
    CheckResult.objects.bulk_create(rows)
    service.state = state
    service.save(update_fields=["state"])


def tick(start: datetime, end: datetime) -> list[dict]:
    """The beat: one evaluation every 30 s."""
    at, outcomes = start, []
    while at <= end:
        outcomes.append(alerts_evaluate(now=at))
        at += EVERY
    return outcomes


def error_rule(service, **extra) -> AlertRule:
    values = {
        "name": "Error rate over 5 %",
        "source": "error_rate",
        "service": service,
        "threshold": 5,
        "window_minutes": 1,
        "for_minutes": 5,
        "severity": "warning",
        "action": "Investigate/roll back",
    }
    values.update(extra)
    return AlertRule.objects.create(**values)


@pytest.mark.django_db
def test_a_breach_shorter_than_its_duration_fires_nothing_longer_fires_once(api):
    rule = error_rule(api)
    record(api, T0 - timedelta(minutes=5), T0, "ok")
    # Failing for four minutes, then fine again.
    record(api, T0, T0 + timedelta(minutes=4), "critical")
    record(api, T0 + timedelta(minutes=4), T0 + timedelta(minutes=10), "ok")
    tick(T0, T0 + timedelta(minutes=10))
    assert not Alert.objects.exists()

    # Failing for seven minutes: one alert, once the five minutes have held.
    start = T0 + timedelta(minutes=10)
    record(api, start, start + timedelta(minutes=7), "critical")
    tick(start, start + timedelta(minutes=4, seconds=30))
    assert not Alert.objects.exists()
    tick(start + timedelta(minutes=5), start + timedelta(minutes=7))
    (alert,) = Alert.objects.all()
    assert alert.status == AlertStatus.FIRING
    assert alert.fired_value == 100.0
    assert alert.evidence["condition"] == rule.condition_text
    assert alert.evidence["recent_results"][0]["state"] == "critical"


@pytest.mark.django_db
def test_flapping_makes_one_alert_which_resolves_after_the_value_stays_clear(api):
    error_rule(api, for_minutes=3)
    record(api, T0, T0 + timedelta(minutes=4), "critical")
    tick(T0, T0 + timedelta(minutes=4))
    assert Alert.objects.count() == 1
    # Two minutes fine, two failing, for forty minutes: still the same one alert.
    at = T0 + timedelta(minutes=4)
    for _ in range(10):
        record(api, at, at + timedelta(minutes=2), "ok")
        record(api, at + timedelta(minutes=2), at + timedelta(minutes=4), "critical")
        tick(at + EVERY, at + timedelta(minutes=4))
        at += timedelta(minutes=4)
    assert Alert.objects.count() == 1
    assert Alert.objects.get().status == AlertStatus.FIRING
    # Fine for long enough: resolved by itself.
    record(api, at, at + timedelta(minutes=6), "ok")
    tick(at + EVERY, at + timedelta(minutes=6))
    (alert,) = Alert.objects.all()
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_at is not None


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    stop = serving(receiver)
    yield receiver
    stop()


@pytest.fixture
def smtp(settings):
    server = SMTPServer()
    stop = serving(server)
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    yield server
    stop()


def json_channel(receiver, name: str) -> NotificationChannel:
    port = receiver.server_address[1]
    return NotificationChannel.objects.create(
        name=name, url_secret=f"json://127.0.0.1:{port}/{name}"
    )


@pytest.mark.django_db
def test_escalation_walks_its_steps_at_their_minutes_and_stops_on_acknowledgement(
    api, webhook, operator
):
    policy = EscalationPolicy.objects.create(name="Runbook timeline", repeat_every_minutes=90)
    for minutes, name in ((0, "oncall"), (5, "lead"), (15, "manager"), (30, "cto")):
        EscalationStep.objects.create(
            policy=policy, after_minutes=minutes, label=name, channel=json_channel(webhook, name)
        )
    error_rule(api, for_minutes=0, policy=policy)
    record(api, T0, T0 + timedelta(minutes=20), "critical")

    def paths_at(minutes: float) -> list[str]:
        alerts_evaluate(now=T0 + timedelta(minutes=minutes))
        alert_sends_deliver(now=T0 + timedelta(minutes=minutes))
        return [hit["path"] for hit in webhook.received]

    assert paths_at(0) == ["/oncall"]
    assert paths_at(4.5) == ["/oncall"]
    assert paths_at(5) == ["/oncall", "/lead"]
    assert paths_at(14.5) == ["/oncall", "/lead"]
    assert paths_at(15) == ["/oncall", "/lead", "/manager"]
    body = webhook.received[0]["json"]
    assert body["title"] == "[WARNING] Error rate over 5 %"
    assert "Acknowledge: http" in body["message"]
    alert = Alert.objects.get()
    alert_acknowledge(alert=alert, user=operator, now=T0 + timedelta(minutes=16))
    assert paths_at(31) == ["/oncall", "/lead", "/manager"]
    assert paths_at(120) == ["/oncall", "/lead", "/manager"]
    assert AlertSend.objects.filter(status="sent").count() == 3


@pytest.mark.django_db
def test_a_failing_channel_is_recorded_and_retried_and_never_blocks_another(
    api, webhook, smtp, make_user
):
    person = make_user("pat", email="pat@example.test")
    broken = NotificationChannel.objects.create(name="broken", url_secret="json://127.0.0.1:9/")
    policy = EscalationPolicy.objects.create(name="P")
    EscalationStep.objects.create(policy=policy, after_minutes=0, channel=broken)
    EscalationStep.objects.create(policy=policy, after_minutes=0, position=1, user=person)
    EscalationStep.objects.create(
        policy=policy, after_minutes=0, position=2, channel=json_channel(webhook, "ok")
    )
    error_rule(api, for_minutes=0, policy=policy)
    record(api, T0, T0 + timedelta(minutes=1), "critical")
    alerts_evaluate(now=T0)
    # The three steps are due at once: each tick walks one, in order.
    alerts_evaluate(now=T0 + EVERY)
    alerts_evaluate(now=T0 + 2 * EVERY)
    counts = alert_sends_deliver(now=T0 + timedelta(minutes=2))
    assert counts == {"sent": 2, "retry": 1, "failed": 0}
    failed = AlertSend.objects.get(channel=broken)
    assert failed.status == "queued" and failed.attempts == 1
    assert "connection" in failed.error.lower()
    assert failed.next_attempt_at == T0 + timedelta(minutes=3)
    (mail,) = smtp.messages
    assert mail["to"] == ["pat@example.test"]
    assert "Error rate over 5 %" in mail["message"]["Subject"]
    assert len(webhook.received) == 1
    # Retried with backoff (1, 2, 4, 8, 16 minutes), then left failed: no exception.
    at = T0 + timedelta(minutes=2)
    for _ in range(6):
        at = max(at, AlertSend.objects.get(pk=failed.pk).next_attempt_at)
        alert_sends_deliver(now=at)
    failed.refresh_from_db()
    assert failed.status == "failed" and failed.attempts == 6


@pytest.mark.django_db
def test_one_click_link_acknowledges_once_and_is_refused_after_reuse_or_expiry(
    api, webhook, make_user, settings
):
    person = make_user("pat")
    channel = json_channel(webhook, "pat")
    channel.owner = person
    channel.save()
    policy = EscalationPolicy.objects.create(name="P")
    EscalationStep.objects.create(policy=policy, after_minutes=0, user=person)
    error_rule(api, for_minutes=0, policy=policy)
    record(api, T0, T0 + timedelta(minutes=1), "critical")
    alerts_evaluate(now=T0)
    send = AlertSend.objects.get()
    assert send.channel == channel and send.recipient == person
    token = alert_ack_token(send=send)
    alert = alert_ack_by_link(token=token, now=T0 + timedelta(minutes=1))
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == person
    with pytest.raises(ActionRefused, match="already used"):
        alert_ack_by_link(token=token)
    with pytest.raises(ActionRefused, match="not valid"):
        alert_ack_by_link(token=token[:-2] + "xx")
    settings.ALERT_ACK_LINK_MAX_AGE = -1
    with pytest.raises(ActionRefused, match="expired"):
        alert_ack_by_link(token=token)


@pytest.mark.django_db
def test_weekly_handoff_stays_at_local_nine_across_the_dst_change(make_user):
    ann, bob = make_user("ann"), make_user("bob")
    schedule = OnCallSchedule.objects.create(
        name="Primary",
        time_zone="Europe/Berlin",
        handoff="weekly",
        handoff_weekday=0,
        handoff_time=time(9, 0),
        starts_on=date(2026, 3, 16),
    )
    RotationMember.objects.create(schedule=schedule, user=ann, position=0)
    RotationMember.objects.create(schedule=schedule, user=bob, position=1)
    # Monday 23 March 09:00 CET is 08:00 UTC; Monday 30 March 09:00 CEST is 07:00 UTC
    # (clocks went forward on Sunday 29 March).
    assert oncall_user(schedule=schedule, at=datetime(2026, 3, 23, 7, 59, tzinfo=UTC)) == ann
    assert oncall_user(schedule=schedule, at=datetime(2026, 3, 23, 8, 0, tzinfo=UTC)) == bob
    assert oncall_user(schedule=schedule, at=datetime(2026, 3, 30, 6, 59, tzinfo=UTC)) == bob
    assert oncall_user(schedule=schedule, at=datetime(2026, 3, 30, 7, 0, tzinfo=UTC)) == ann
    # An override for a date range wins.
    OnCallOverride.objects.create(
        schedule=schedule,
        user=bob,
        starts_at=datetime(2026, 3, 31, tzinfo=UTC),
        ends_at=datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert oncall_user(schedule=schedule, at=datetime(2026, 3, 31, 12, tzinfo=UTC)) == bob


@pytest.mark.django_db
def test_a_critical_alert_opens_an_incident_with_the_evidence_and_its_playbook(
    api, severities, response_checklist, make_template
):
    playbook = make_template(
        "High error rates", items=["Check the logs", "Roll back"], cadence="on_demand"
    )
    error_rule(api, for_minutes=0, severity="critical", playbook=playbook)
    record(api, T0, T0 + timedelta(minutes=1), "critical")
    alerts_evaluate(now=T0)
    alert = Alert.objects.get()
    incident = alert.incident
    assert incident.title == "Alert: Error rate over 5 %"
    assert incident.severity.code == "P1"
    assert list(incident.services.all()) == [api]
    assert "Recent results:" in incident.summary
    assert ChecklistRun.objects.filter(incident=incident, template=playbook).exists()
    # A second critical rule on the same service joins the open incident.
    error_rule(api, name="Also critical", for_minutes=0, severity="critical", threshold=1)
    alerts_evaluate(now=T0 + EVERY)
    assert {a.incident_id for a in Alert.objects.all()} == {incident.pk}


@pytest.mark.django_db
def test_a_silenced_service_alerts_without_notifying(api, webhook):
    policy = EscalationPolicy.objects.create(name="P")
    EscalationStep.objects.create(
        policy=policy, after_minutes=0, channel=json_channel(webhook, "x")
    )
    error_rule(api, for_minutes=0, policy=policy)
    Silence.objects.create(
        service=api,
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=1),
        reason="maintenance",
    )
    record(api, T0, T0 + timedelta(minutes=1), "critical")
    alerts_evaluate(now=T0)
    alert_sends_deliver(now=T0)
    assert Alert.objects.get().silenced is not None
    assert webhook.received == []


@pytest.mark.django_db
def test_a_maintenance_window_silences_its_service_through_the_silence_hook(api, webhook):
    policy = EscalationPolicy.objects.create(name="P")
    EscalationStep.objects.create(
        policy=policy, after_minutes=0, channel=json_channel(webhook, "x")
    )
    error_rule(api, for_minutes=0, policy=policy)

    def maintenance(service_ids, now):
        return [
            SilenceWindow(
                key="maintenance:7",
                service_id=api.pk,
                starts_at=T0 - timedelta(minutes=10),
                ends_at=T0 + timedelta(hours=1),
                reason="Maintenance: database upgrade",
            )
        ]

    SILENCE_SOURCES.append(maintenance)
    try:
        record(api, T0, T0 + timedelta(minutes=1), "critical")
        alerts_evaluate(now=T0)
        alert_sends_deliver(now=T0)
    finally:
        SILENCE_SOURCES.remove(maintenance)
    alert = Alert.objects.get()
    assert alert.silenced.reason == "Maintenance: database upgrade"
    assert alert.silenced.key == "maintenance:7"
    assert webhook.received == [] and alert.incident is None


@pytest.mark.django_db
def test_a_live_maintenance_window_silences_alerts_on_its_services(api, webhook):
    """The maintenance feature's silence source, registered by ops.hooks: a window in
    progress on the service silences its alert; an emergency window does not."""
    policy = EscalationPolicy.objects.create(name="P")
    EscalationStep.objects.create(
        policy=policy, after_minutes=0, channel=json_channel(webhook, "x")
    )
    error_rule(api, for_minutes=0, policy=policy)
    window = MaintenanceWindow.objects.create(
        title="Database upgrade",
        starts_at=T0 - timedelta(minutes=10),
        duration=timedelta(hours=2),
        notice_period=timedelta(0),
    )
    window.services.add(api)
    record(api, T0, T0 + timedelta(minutes=1), "critical")
    alerts_evaluate(now=T0)
    alert_sends_deliver(now=T0)
    alert = Alert.objects.get()
    assert alert.silenced.reason == "Maintenance window: Database upgrade"
    assert webhook.received == [] and alert.incident is None


@pytest.mark.django_db
def test_rule_bad_input(api):
    with pytest.raises(ValidationError) as error:
        AlertRule(
            name="x", source="error_rate", threshold=150, for_minutes=1441, severity="warning"
        ).full_clean()
    assert "between 0 and 100%" in error.value.message_dict["threshold"][0]
    assert "At most 24 hours" in error.value.message_dict["for_minutes"][0]


@pytest.mark.django_db(transaction=True)
def test_the_worker_evaluates_and_delivers_and_a_broken_channel_raises_nothing(api, webhook):
    """The beat's two tasks, executed by a real worker on the configured broker."""
    policy = EscalationPolicy.objects.create(name="P")
    broken = NotificationChannel.objects.create(name="broken", url_secret="json://127.0.0.1:9/")
    EscalationStep.objects.create(policy=policy, after_minutes=0, channel=broken)
    EscalationStep.objects.create(
        policy=policy, after_minutes=0, position=1, channel=json_channel(webhook, "ok")
    )
    error_rule(api, for_minutes=0, policy=policy)
    now = datetime.now(UTC)
    record(api, now - timedelta(seconds=50), now, "critical")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        first = alerts_evaluate_task.delay().get(timeout=30)
        second = alerts_evaluate_task.delay().get(timeout=30)
        sent = alert_sends_deliver_task.delay().get(timeout=30)
        again = alert_sends_deliver_task.delay().get(timeout=30)
    assert first["fired"] == 1 and second["fired"] == 0, (first, second)
    assert first["escalated"] + second["escalated"] == 2
    assert sent == {"sent": 1, "retry": 1, "failed": 0}
    assert again == {"sent": 0, "retry": 0, "failed": 0}
    assert [hit["path"] for hit in webhook.received] == ["/ok"]
    assert AlertSend.objects.get(channel=broken).error


@pytest.mark.django_db
def test_a_policy_repeats_its_rounds_then_stops(api, webhook):
    policy = EscalationPolicy.objects.create(name="Twice", repeat_every_minutes=30, repeat_times=1)
    EscalationStep.objects.create(
        policy=policy, after_minutes=0, channel=json_channel(webhook, "oncall")
    )
    EscalationStep.objects.create(
        policy=policy, after_minutes=10, position=1, channel=json_channel(webhook, "lead")
    )
    error_rule(api, for_minutes=0, policy=policy)
    record(api, T0, T0 + timedelta(minutes=121), "critical")
    for minutes in (0, 10, 29, 30, 40, 60, 90, 120):
        alerts_evaluate(now=T0 + timedelta(minutes=minutes))
    alert_sends_deliver(now=T0 + timedelta(hours=3))
    assert sorted(hit["path"] for hit in webhook.received) == [
        "/lead",
        "/lead",
        "/oncall",
        "/oncall",
    ]
    assert list(
        AlertSend.objects.order_by("created_at", "id").values_list("created_at", flat=True)
    ) == [T0 + timedelta(minutes=m) for m in (0, 10, 30, 40)]


@pytest.mark.django_db
def test_failed_sign_ins_from_the_audit_log_fire_the_sign_in_rule(db):
    rule = AlertRule.objects.create(
        name="Failed sign-ins over 10 in 5 minutes",
        source="login_failures",
        threshold=10,
        window_minutes=5,
        for_minutes=0,
        severity="warning",
    )
    for _ in range(10):
        audit_record(actor=None, action="auth.login.failed", summary="bob")
    alerts_evaluate()
    assert not Alert.objects.exists()
    audit_record(actor=None, action="auth.login.failed", summary="bob")
    alerts_evaluate()
    alert = Alert.objects.get(rule=rule)
    assert alert.fired_value == 11.0


@pytest.mark.django_db
def test_a_silence_added_while_firing_stops_the_escalation(api, webhook, operator):
    policy = EscalationPolicy.objects.create(name="P")
    EscalationStep.objects.create(
        policy=policy, after_minutes=0, channel=json_channel(webhook, "first")
    )
    EscalationStep.objects.create(
        policy=policy, after_minutes=5, position=1, channel=json_channel(webhook, "second")
    )
    error_rule(api, for_minutes=0, policy=policy)
    record(api, T0, T0 + timedelta(minutes=10), "critical")
    alerts_evaluate(now=T0)
    silence_create(
        user=operator,
        silence=Silence(
            service=api,
            starts_at=T0,
            ends_at=T0 + timedelta(hours=2),
            reason="Deploying the fix",
        ),
    )
    alerts_evaluate(now=T0 + timedelta(minutes=6))
    alert_sends_deliver(now=T0 + timedelta(minutes=6))
    assert [hit["path"] for hit in webhook.received] == ["/first"]
    assert Alert.objects.get().silenced.reason == "Deploying the fix"


@pytest.mark.django_db
def test_a_p0_incident_escalates_on_the_same_machinery_until_acknowledged(
    make_incident, severities, operator, webhook
):
    policy = EscalationPolicy.objects.create(name="P0 timeline", repeat_every_minutes=90)
    for minutes, name in ((0, "oncall"), (5, "lead"), (15, "manager")):
        EscalationStep.objects.create(
            policy=policy, after_minutes=minutes, channel=json_channel(webhook, name)
        )
    severities["P0"].escalation_policy = policy
    severities["P0"].save()
    incident = make_incident(operator, title="Site down", severity="P0", detected_at=T0, now=T0)
    make_incident(operator, title="Minor", severity="P3", detected_at=T0, now=T0)

    def paths_at(minutes: float) -> list[str]:
        alerts_evaluate(now=T0 + timedelta(minutes=minutes))
        alert_sends_deliver(now=T0 + timedelta(minutes=minutes))
        return [hit["path"] for hit in webhook.received]

    assert paths_at(0) == ["/oncall"]
    assert webhook.received[0]["json"]["title"] == f"[CRITICAL] {incident.reference} Site down"
    assert paths_at(5) == ["/oncall", "/lead"]
    # Acknowledged on the incident's page: the escalation stops.
    incident_acknowledge(incident=incident, user=operator, now=T0 + timedelta(minutes=6))
    assert paths_at(15) == ["/oncall", "/lead"]
    (alert,) = Alert.objects.all()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.incident == incident


@pytest.mark.django_db
def test_acknowledging_an_incident_escalation_from_its_link_acknowledges_the_incident(
    make_incident, severities, operator
):
    policy = EscalationPolicy.objects.create(name="P0 timeline")
    EscalationStep.objects.create(policy=policy, after_minutes=0, user=operator)
    severities["P0"].escalation_policy = policy
    severities["P0"].save()
    incident = make_incident(operator, title="Site down", severity="P0", detected_at=T0, now=T0)
    alerts_evaluate(now=T0)
    alerts_evaluate(now=T0 + EVERY)
    send = AlertSend.objects.get()
    alert_ack_by_link(token=alert_ack_token(send=send), now=T0 + timedelta(minutes=2))
    incident.refresh_from_db()
    assert incident.acknowledged_by == operator


@pytest.mark.django_db
def test_on_call_shifts_are_on_the_calendar_and_in_its_feed(make_user, manager):
    """Each hand-off of a rotation, and an override, as events of the calendar's sources."""
    ann, bob = make_user("ann"), make_user("bob")
    schedule = OnCallSchedule.objects.create(
        name="Primary",
        time_zone="Europe/Berlin",
        handoff="weekly",
        handoff_weekday=0,
        handoff_time=time(9, 0),
        starts_on=date(2026, 3, 16),
    )
    RotationMember.objects.create(schedule=schedule, user=ann, position=0)
    RotationMember.objects.create(schedule=schedule, user=bob, position=1)
    start, end = datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC)
    events = [
        event
        for event in registry.calendar_events(user=manager, start=start, end=end, feed=True)
        if event.kind == "oncall"
    ]
    assert [(event.title, event.start) for event in events] == [
        ("On call (Primary): ann", datetime(2026, 3, 16, 8, 0, tzinfo=UTC)),
        ("On call (Primary): bob", datetime(2026, 3, 23, 8, 0, tzinfo=UTC)),
        ("On call (Primary): ann", datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),  # after DST
    ]
    outsider = make_user("nobody-here")
    assert not [
        event
        for event in registry.calendar_events(user=outsider, start=start, end=end)
        if event.kind == "oncall"
    ]
