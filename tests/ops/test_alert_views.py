"""The alerts page, acknowledging (page and one-click link), the Today block, and the forms'
errors beside their fields for the bad inputs the issue lists (nothing saved)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ops.models import (
    Alert,
    AlertRule,
    AlertSend,
    EscalationPolicy,
    MonitoredService,
    NotificationChannel,
    OnCallSchedule,
    RotationMember,
    VendorContact,
)
from ops.selectors.alerts import alerts_open_with_holders, oncall_now
from ops.services.alerts import alert_ack_token, alert_defaults_load
from tests.conftest import client_for


@pytest.fixture
def api(db):
    return MonitoredService.objects.create(
        name="API", slug="api", kind="http", target="http://127.0.0.1:9/"
    )


@pytest.fixture
def firing(api):
    rule = AlertRule.objects.create(
        name="Error rate over 5 %",
        source="error_rate",
        service=api,
        threshold=5,
        severity="critical",
        for_minutes=5,
    )
    now = timezone.now()
    return Alert.objects.create(
        rule=rule,
        service=api,
        severity="critical",
        fired_value=40.0,
        last_value=40.0,
        pending_since=now - timedelta(minutes=5),
        fired_at=now,
    )


@pytest.mark.django_db
def test_alerts_page_lists_what_fires_and_acknowledges_by_htmx(
    firing, operator, django_assert_max_num_queries
):
    client = client_for(operator)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("ops:alert_list"))
    assert page.status_code == 200
    assert "Firing (1)" in page.text and "Error rate over 5 %" in page.text
    response = client.post(reverse("ops:alert_ack", args=[firing.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="alert-' in response.text
    firing.refresh_from_db()
    assert firing.status == "acknowledged" and firing.acknowledged_by == operator
    again = client.post(reverse("ops:alert_ack", args=[firing.pk]), HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "already acknowledged" in again.text
    assert client.get(reverse("ops:alert_ack", args=[firing.pk])).status_code == 405


@pytest.mark.django_db
def test_image_staff_may_not_see_or_acknowledge(firing, image_staff):
    client = client_for(image_staff)
    assert client.get(reverse("ops:alert_list")).status_code == 403
    assert client.post(reverse("ops:alert_ack", args=[firing.pk])).status_code == 403


@pytest.mark.django_db
def test_one_click_link_needs_no_login_and_works_once(firing, make_user):
    person = make_user("pat")
    channel = NotificationChannel.objects.create(
        name="pat", owner=person, url_secret="json://127.0.0.1:9"
    )
    send = AlertSend.objects.create(
        alert=firing,
        channel=channel,
        recipient=person,
        title="t",
        body="b",
        next_attempt_at=timezone.now(),
        created_at=timezone.now(),
    )
    url = reverse("ops:alert_ack_link", args=[alert_ack_token(send=send)])
    anonymous = Client(enforce_csrf_checks=False)
    shown = anonymous.get(url)
    assert shown.status_code == 200 and "Acknowledge" in shown.text
    firing.refresh_from_db()
    assert firing.status == "firing"  # opening the link acknowledges nothing
    done = anonymous.post(url)
    assert done.status_code == 200 and "Acknowledged" in done.text
    firing.refresh_from_db()
    assert firing.status == "acknowledged" and firing.acknowledged_by == person
    reused = anonymous.post(url)
    assert reused.status_code == 409 and "already used" in reused.text


@pytest.mark.django_db
def test_today_shows_what_fires_and_who_holds_it(firing, operator):
    alert_defaults_load(today=timezone.localdate())
    page = client_for(operator).get(reverse("today"))
    assert "Error rate over 5 %" in page.text
    assert "held by nobody yet" in page.text
    assert "On call:" in page.text and "Primary" in page.text


@pytest.mark.django_db
def test_rule_form_bad_input_errors_beside_the_field(manager, api):
    client = client_for(manager)
    response = client.post(
        reverse("ops:alert_rule_new"),
        {
            "name": "x",
            "source": "error_rate",
            "comparison": "above",
            "threshold": "150",
            "window_minutes": "5",
            "for_minutes": "1441",
            "severity": "critical",
        },
    )
    assert response.status_code == 400
    assert "Out of range: this value is between 0 and 100%." in response.text
    assert "At most 24 hours" in response.text
    assert not AlertRule.objects.exists()
    ok = client.post(
        reverse("ops:alert_rule_new"),
        {
            "name": "x",
            "source": "error_rate",
            "comparison": "above",
            "threshold": "5",
            "window_minutes": "5",
            "for_minutes": "5",
            "severity": "critical",
        },
    )
    assert ok.status_code == 303 and AlertRule.objects.count() == 1


@pytest.mark.django_db
def test_channel_form_refuses_what_apprise_cannot_read_and_never_shows_the_url(
    manager, monkeypatch
):
    client = client_for(manager)
    bad = client.post(reverse("ops:alert_channel_new"), {"name": "x", "url_secret": "nonsense://x"})
    assert bad.status_code == 400 and "Apprise cannot read this URL" in bad.text
    assert "nonsense://x" not in bad.text
    unset = client.post(
        reverse("ops:alert_channel_new"), {"name": "x", "url_env": "NO_SUCH_VAR_15"}
    )
    assert unset.status_code == 400 and "$NO_SUCH_VAR_15 is not set" in unset.text
    assert not NotificationChannel.objects.exists()
    monkeypatch.setenv("ALERTS_TEST_URL", "json://127.0.0.1:9/hook")
    ok = client.post(
        reverse("ops:alert_channel_new"), {"name": "Chat", "url_env": "ALERTS_TEST_URL"}
    )
    assert ok.status_code == 303
    secret = client.post(
        reverse("ops:alert_channel_new"),
        {"name": "Hidden", "url_secret": "json://127.0.0.1:9/token-abc"},
    )
    assert secret.status_code == 303
    page = client.get(reverse("ops:alert_list"))
    assert "$ALERTS_TEST_URL" in page.text and "token-abc" not in page.text


@pytest.mark.django_db
def test_rotation_with_nobody_and_policy_step_after_its_repeat_are_refused(manager):
    client = client_for(manager)
    nobody = client.post(
        reverse("ops:oncall_schedule_new"),
        {
            "name": "Primary",
            "time_zone": "Europe/Berlin",
            "handoff": "weekly",
            "handoff_time": "09:00",
            "handoff_weekday": "0",
            "starts_on": "2026-03-16",
            "people": " , ",
        },
    )
    assert nobody.status_code == 400 and "A rotation needs at least one person." in nobody.text
    zone = client.post(
        reverse("ops:oncall_schedule_new"),
        {
            "name": "Primary",
            "time_zone": "Mars/Olympus",
            "handoff": "weekly",
            "handoff_time": "09:00",
            "handoff_weekday": "0",
            "starts_on": "2026-03-16",
            "people": "maria",
        },
    )
    assert zone.status_code == 400 and "Unknown time zone" in zone.text
    assert not OnCallSchedule.objects.exists()
    ok = client.post(
        reverse("ops:oncall_schedule_new"),
        {
            "name": "Primary",
            "time_zone": "Europe/Berlin",
            "handoff": "weekly",
            "handoff_time": "09:00",
            "handoff_weekday": "0",
            "starts_on": "2026-03-16",
            "people": "maria",
        },
    )
    assert ok.status_code == 303
    late = client.post(
        reverse("ops:oncall_policy_new"),
        {
            "name": "P",
            "repeat_every_minutes": "30",
            "repeat_times": "1",
            "steps": "0 schedule:Primary\n45 user:maria",
        },
    )
    assert late.status_code == 400
    assert "after 45 min comes at or after the repeat at 30 min" in late.text
    assert not EscalationPolicy.objects.exists()
    ok = client.post(
        reverse("ops:oncall_policy_new"),
        {
            "name": "P",
            "repeat_every_minutes": "30",
            "repeat_times": "1",
            "steps": "0 schedule:Primary\n5 user:maria",
        },
    )
    assert ok.status_code == 303
    page = client.get(reverse("ops:oncall"))
    assert "On call now: <strong>maria</strong>" in page.text


@pytest.mark.django_db
def test_a_warning_is_promoted_by_a_person_and_the_incident_shows_alert_and_vendors(
    api, operator, severities, response_checklist
):
    rule = AlertRule.objects.create(
        name="P95 over 2 s",
        source="latency_p95",
        service=api,
        threshold=2000,
        severity="warning",
        action="Scale up",
    )
    now = timezone.now()
    alert = Alert.objects.create(
        rule=rule,
        service=api,
        severity="warning",
        fired_value=2500.0,
        last_value=2500.0,
        pending_since=now,
        fired_at=now,
    )
    vendor = VendorContact.objects.create(
        area="Hosting", vendor="Netlify Support", contact="support@netlify.com", plan="Pro plan"
    )
    vendor.services.add(api)
    client = client_for(operator)
    response = client.post(reverse("ops:alert_promote", args=[alert.pk]))
    alert.refresh_from_db()
    assert response.status_code == 302 and alert.incident is not None
    assert response["Location"] == alert.incident.get_absolute_url()
    page = client.get(alert.incident.get_absolute_url())
    assert "Netlify Support" in page.text and "support@netlify.com" in page.text
    assert "P95 over 2 s" in page.text and "Action: Scale up" in page.text
    again = client.post(reverse("ops:alert_promote", args=[alert.pk]), follow=True)
    assert "already has an incident" in again.text


@pytest.mark.django_db
def test_each_user_may_add_their_own_channel_but_only_managers_shared_ones(operator):
    client = client_for(operator)
    own = client.post(
        reverse("ops:alert_channel_new") + "?mine=1",
        {"name": "My phone", "url_secret": "json://127.0.0.1:9/me", "mine": "1"},
    )
    assert own.status_code == 303
    assert NotificationChannel.objects.get().owner == operator
    shared = client.post(
        reverse("ops:alert_channel_new"), {"name": "Team", "url_secret": "json://127.0.0.1:9/t"}
    )
    assert shared.status_code == 403
    assert NotificationChannel.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 6])
def test_today_alerts_block_reads_a_fixed_number_of_queries(
    count, api, operator, make_user, django_assert_num_queries
):
    """Open alerts with their holders and every schedule's on-call: the same queries for one
    or six of each."""
    now = timezone.now()
    for number in range(count):
        person = make_user(f"p{number}")
        schedule = OnCallSchedule.objects.create(name=f"S{number}", starts_on=now.date())
        RotationMember.objects.create(schedule=schedule, user=person)
        rule = AlertRule.objects.create(
            name=f"R{number}", source="service_down", threshold=0.5, severity="warning"
        )
        alert = Alert.objects.create(
            rule=rule, severity="warning", pending_since=now, fired_at=now, fired_value=1
        )
        AlertSend.objects.create(
            alert=alert,
            recipient=person,
            title="t",
            body="b",
            next_attempt_at=now,
            created_at=now,
        )
    with django_assert_num_queries(5):
        held = alerts_open_with_holders(now=now)
        on_call = oncall_now(at=now)
    assert len(held) == count and all(holder.startswith("p") for _alert, holder in held)
    assert [person.get_username() for _schedule, person in on_call] == [
        f"p{n}" for n in range(count)
    ]
