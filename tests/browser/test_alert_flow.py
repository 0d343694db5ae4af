"""An alert in a real browser: a service starts failing, the rule fires, an incident opens
with its playbook, the on-call person acknowledges from the link in the message they got."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.sync_api import expect

from ops.models import (
    Alert,
    AlertRule,
    CheckResult,
    EscalationPolicy,
    EscalationStep,
    MonitoredService,
    NotificationChannel,
    OnCallSchedule,
    RotationMember,
)
from ops.services.alerts import alert_sends_deliver, alerts_evaluate
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.local_servers import WebhookReceiver, serving

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_failing_service_fires_opens_an_incident_and_the_on_call_acknowledges_from_the_link(
    new_page, live_server, settings, severities, response_checklist, make_template, operator
):
    settings.PORTAL_BASE_URL = live_server.url
    receiver = WebhookReceiver()
    stop = serving(receiver)
    try:
        api = MonitoredService.objects.create(
            name="Checkout API", slug="checkout-api", kind="http", target="http://127.0.0.1:9/"
        )
        playbook = make_template(
            "High error rates",
            items=["Look at the error patterns", "Roll back"],
            cadence="on_demand",
        )
        schedule = OnCallSchedule.objects.create(name="Primary", starts_on=date(2026, 1, 5))
        RotationMember.objects.create(schedule=schedule, user=operator)
        NotificationChannel.objects.create(
            name="Olivia's hook",
            owner=operator,
            url_secret=f"json://127.0.0.1:{receiver.server_address[1]}/olivia",
        )
        policy = EscalationPolicy.objects.create(name="Runbook escalation timeline")
        EscalationStep.objects.create(policy=policy, after_minutes=0, schedule=schedule)
        AlertRule.objects.create(
            name="Error rate over 5 % for 5 minutes",
            source="error_rate",
            service=api,
            threshold=5,
            window_minutes=5,
            for_minutes=5,
            severity="critical",
            playbook=playbook,
            policy=policy,
            action="Investigate, roll back",
        )
        # The service starts failing; the beat evaluates every 30 s for six minutes.
        start = datetime.now(UTC) - timedelta(minutes=6)
        CheckResult.objects.bulk_create(
            CheckResult(
                service=api,
                checked_at=start + timedelta(seconds=30 * n),
                state="critical",
                latency_ms=30,
                detail="HTTP 502",
            )
            for n in range(12)
        )
        for n in range(13):
            alerts_evaluate(now=start + timedelta(seconds=30 * n))
        alert_sends_deliver()
        alert = Alert.objects.get()
        assert alert.incident is not None
        (message,) = receiver.received
        link = re.search(r"Acknowledge: (\S+)", message["json"]["message"])[1]
        assert link.startswith(live_server.url)

        # The on-call person, not signed in, opens the link from the message.
        phone = new_page()
        phone.goto(link)
        expect(phone.get_by_text("Error rate over 5 % for 5 minutes")).to_be_visible()
        phone.get_by_role("button", name="Acknowledge").click()
        expect(phone.get_by_role("status")).to_contain_text("Acknowledged")
        phone.goto(link)
        expect(phone.get_by_role("alert")).to_contain_text("already used")

        # The portal shows who holds it, and the incident with its playbook.
        page = new_page()
        log_in(page, "olivia", PASSWORD)
        expect(page.get_by_role("region", name="Alerts")).to_contain_text("held by olivia")
        page.get_by_role("link", name="Alerts", exact=True).first.click()
        acknowledged = page.get_by_role("region", name=re.compile("Acknowledged"))
        expect(acknowledged).to_contain_text("Error rate over 5 %")
        acknowledged.get_by_role("link", name=re.compile(alert.incident.reference)).click()
        expect(page.get_by_role("heading", name=re.compile("Alert: Error rate"))).to_be_visible()
        expect(page.locator("#incident-timeline")).to_contain_text(
            "Playbook started: High error rates"
        )
        expect(page.locator("#incident-timeline")).to_contain_text("acknowledged by olivia")
    finally:
        stop()
