"""The calendar (month and week, htmx navigation, filters) and the iCal feed at a secret URL:
parsed by `icalendar`, expanded by `recurring-ical-events`, it matches the portal's own
occurrences for a year, a cancelled occurrence being an EXDATE."""

import re
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import recurring_ical_events
from django.urls import reverse
from django.utils import timezone

from ops.models import CalendarFeedToken, MaintenanceTask, MaintenanceWindow, MonitoredService
from ops.selectors.maintenance import window_occurrences
from ops.services.maintenance import (
    WindowInput,
    maintenance_occurrence_cancel,
    maintenance_task_save,
    maintenance_window_schedule,
)
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _schedule(manager, title, *, starts_at, rrule="", zone="UTC", services=(), team="", hours=2):
    return maintenance_window_schedule(
        user=manager,
        data=WindowInput(
            title=title,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=hours),
            time_zone=zone,
            rrule=rrule,
            services=tuple(services),
        ),
        details={"team": team},
        overlap_reason="test",
        now=starts_at - timedelta(days=10),
    )


@pytest.fixture
def month(manager):
    """November 2026: a weekly Berlin window across the DST change, a monthly first-Monday
    one, a one-off, and a task due."""
    db = MonitoredService.objects.create(
        name="Database", slug="database", kind="tcp", target="127.0.0.1:5432"
    )
    weekly = _schedule(
        manager,
        "Weekly database work",
        starts_at=datetime(2026, 10, 18, 0, 0, tzinfo=UTC),
        rrule="FREQ=WEEKLY;BYDAY=SU",
        zone="Europe/Berlin",
        services=[db],
        team="DevOps",
    )
    monthly = _schedule(
        manager,
        "Security updates",
        starts_at=datetime(2026, 10, 5, 1, 0, tzinfo=UTC),
        rrule="FREQ=MONTHLY;BYDAY=1MO",
        team="Security",
    )
    once = _schedule(
        manager, "Storage migration", starts_at=datetime(2026, 11, 12, 22, 0, tzinfo=UTC)
    )
    task = maintenance_task_save(
        user=manager,
        fields={
            "name": "Backup tests",
            "rrule": "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=20",
            "first_due_at": datetime(2026, 8, 20, 9, 0, tzinfo=UTC),
            "time_zone": "UTC",
            "team": "DevOps",
        },
        now=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return weekly, monthly, once, task


def test_month_view_with_filters_and_htmx_navigation(month, operator, htmx):
    weekly = month[0]
    maintenance_occurrence_cancel(
        window=weekly,
        starts_at=datetime(2026, 11, 15, 1, 0, tzinfo=UTC),
        user=MaintenanceWindow.objects.get(pk=weekly.pk).created_by,
        reason="Team offsite",
    )
    client = client_for(operator)
    url = reverse("ops:calendar")
    html = client.get(url, {"date": "2026-11-01"}).content.decode()
    assert "November 2026" in html
    # Sundays 1, 8, 15 (cancelled), 22, 29 November and 6 December (the grid's last week).
    assert html.count("Weekly database work") == 6
    assert html.count('<span class="badge">cancelled</span>') == 1
    assert "Security updates" in html and "Storage migration" in html
    assert "Due: Backup tests" in html
    devops = client.get(url, {"date": "2026-11-01", "team": "DevOps"}, **htmx).content.decode()
    assert devops.lstrip().startswith('<section id="calendar"')
    assert "Weekly database work" in devops and "Security updates" not in devops
    assert "Due: Backup tests" in devops
    by_service = client.get(url, {"date": "2026-11-01", "service": "database"}).content.decode()
    assert "Weekly database work" in by_service and "Storage migration" not in by_service
    week = client.get(url, {"date": "2026-11-02", "view": "week"}, **htmx).content.decode()
    assert "Week of 2 November 2026" in week and "Security updates" in week
    assert "Weekly database work" in week  # Sunday 8 November
    following = re.search(r'hx-get="\?view=month&amp;date=(\d{4}-\d{2}-\d{2})', html)
    assert following is not None


def test_outsider_sees_no_events(month, outsider):
    html = client_for(outsider).get(reverse("ops:calendar"), {"date": "2026-11-01"}).content
    assert b"Weekly database work" not in html and b"Backup tests" not in html


def _feed_url(client) -> str:
    response = client.post(reverse("ops:calendar_feed_settings"), {"action": "create"})
    match = re.search(r'<code id="feed-url">([^<]+)</code>', response.content.decode())
    assert match, "the URL is shown once"
    return match.group(1)


def test_feed_matches_the_portals_occurrences_for_a_year(month, manager, operator, client):
    weekly = month[0]
    cancelled = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    maintenance_occurrence_cancel(
        window=weekly, starts_at=cancelled, user=manager, reason="Holiday"
    )
    url = _feed_url(client_for(operator))
    assert "cal_" in url
    settings_page = client_for(operator).get(reverse("ops:calendar_feed_settings")).content
    assert url.encode() not in settings_page  # shown once only
    response = client.get(url)  # no login: the secret URL is the credential
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 10, 1, tzinfo=UTC)
    expanded = recurring_ical_events.of(calendar).between(start, end)
    theirs = sorted(
        (str(event["SUMMARY"]), event.decoded("DTSTART").astimezone(UTC))
        for event in expanded
        if "maintenance" in [str(c) for c in event.get("CATEGORIES").cats]
    )
    ours = sorted(
        (occurrence.window.title, occurrence.starts_at.astimezone(UTC))
        for occurrence in window_occurrences(start=start, end=end)
        if not occurrence.is_cancelled
    )
    assert theirs == ours
    assert len(ours) > 60
    assert ("Weekly database work", cancelled) not in theirs
    # Berlin wall clock kept across DST: 02:00 CEST = 00:00 UTC, then 02:00 CET = 01:00 UTC.
    assert ("Weekly database work", datetime(2026, 10, 18, 0, 0, tzinfo=UTC)) in theirs
    assert ("Weekly database work", datetime(2026, 11, 1, 1, 0, tzinfo=UTC)) in theirs
    tasks = [event for event in expanded if str(event["SUMMARY"]) == "Due: Backup tests"]
    assert [event.decoded("DTSTART").isoformat() for event in tasks] == ["2026-11-20"]


def test_a_revoked_feed_stops_working(month, operator, client):
    owner = client_for(operator)
    url = _feed_url(owner)
    assert client.get(url).status_code == 200
    newer = _feed_url(owner)
    assert client.get(url).status_code == 404  # a new address revokes the old one
    owner.post(reverse("ops:calendar_feed_settings"), {"action": "revoke"})
    assert client.get(newer).status_code == 404
    assert client.get("/calendar/cal_guess.ics").status_code == 404
    assert CalendarFeedToken.objects.filter(revoked_at__isnull=True).count() == 0


def test_calendar_and_feed_queries_stay_flat(manager, operator, django_assert_max_num_queries):
    now = timezone.now().replace(microsecond=0)
    service = MonitoredService.objects.create(
        name="Web", slug="web", kind="tcp", target="127.0.0.1:80"
    )
    windows = [
        MaintenanceWindow(
            title=f"Window {index}",
            starts_at=now + timedelta(hours=index * 7),
            duration=timedelta(hours=1),
            time_zone="UTC",
            rrule="FREQ=WEEKLY" if index % 5 == 0 else "",
            team=f"T{index % 4}",
        )
        for index in range(500)
    ]
    MaintenanceWindow.objects.bulk_create(windows)
    service.maintenance_windows.set(MaintenanceWindow.objects.all()[:50])
    MaintenanceTask.objects.bulk_create(
        MaintenanceTask(
            name=f"Task {index}",
            rrule="FREQ=MONTHLY",
            first_due_at=now,
            next_due_at=now + timedelta(days=index % 30),
            time_zone="UTC",
        )
        for index in range(200)
    )
    client = client_for(operator)
    # +1 each, flat: the on-call source's schedules (issue 15).
    with django_assert_max_num_queries(13):
        assert client.get(reverse("ops:calendar")).status_code == 200
    url = _feed_url(client)
    with django_assert_max_num_queries(11):
        response = client.get(url)
    assert response.content.count(b"BEGIN:VEVENT") == 700


def test_an_event_over_several_days_is_on_each_of_them(manager, operator):
    """Found trying the calendar as an operator: a week's on-call shift showed on its first
    day only, so nobody could read who was on call on a Thursday. A weekend window and an
    event already under way when the grid begins are on every day they cover."""
    _schedule(
        manager,
        "Weekend migration",
        starts_at=datetime(2026, 11, 6, 22, 0, tzinfo=UTC),  # Friday 22:00 → Sunday 06:00
        hours=32,
    )
    _schedule(  # Saturday 31 October 12:00 → Monday 2 November 14:00
        manager, "Long running work", starts_at=datetime(2026, 10, 31, 12, 0, tzinfo=UTC), hours=50
    )
    html = (
        client_for(operator)
        .get(reverse("ops:calendar"), {"date": "2026-11-02", "view": "week"})
        .content.decode()
    )
    days = re.findall(
        r'<span class="day-number">(\d+)</span>\s*<ul class="day-events">(.*?)</ul>', html, re.S
    )
    covered = {
        day: ("Weekend migration" in events, "continued: " in events) for day, events in days
    }
    assert covered["6"] == (True, False)  # starts Friday, at 22:00
    assert covered["7"] == (True, True)
    assert covered["8"] == (True, True)
    assert not any(covered[day][0] for day in ("2", "3", "4", "5"))  # the migration
    sunday = dict(days)["8"]
    assert re.search(
        r"Weekend migration <span class=\"until\">until <time[^>]*>06:00</time>", sunday
    )
    # Under way when the week's grid begins on Monday 2 November.
    monday = dict(days)["2"]
    assert re.search(
        r'continued: </span>Long running work <span class="until">until <time[^>]*>14:00', monday
    )
    assert "Long running work" not in dict(days)["3"]
