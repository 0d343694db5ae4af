"""One calendar of every domain's events (maintenance windows and due tasks now; later GDPR
deadlines and deploys), read from the portal's registry only: a month and a week view with
htmx navigation, and an iCal feed at a per-user secret URL."""

import calendar as month_calendar
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from icalendar import Calendar, Event, vRecur

from ops.models import CalendarFeedToken, MonitoredService
from ops.services.maintenance import calendar_feed_create, calendar_feed_revoke, calendar_feed_user
from portal.htmx import attempt, wants_fragment
from portal.registry import CalendarEvent, registry

PAGE = "ops/calendar/calendar.html"
# What the feed covers: a little of the past (so a subscriber sees what just happened) and a
# year ahead; recurring windows are sent as series, so their later occurrences come with them.
FEED_PAST = timedelta(days=90)
FEED_AHEAD = timedelta(days=366)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return timezone.localdate()


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _event_day(event: CalendarEvent) -> date:
    if isinstance(event.start, datetime):
        return timezone.localtime(event.start).date()
    return event.start


def _event_last_day(event: CalendarEvent) -> date:
    """The last day an event covers: an all-day event's end is exclusive, and an event ending
    at midnight ends the day before."""
    first = _event_day(event)
    if isinstance(event.end, datetime):
        end = timezone.localtime(event.end)
        last = end.date() - timedelta(days=1) if end.time() == time.min else end.date()
    else:
        last = event.end - timedelta(days=1)
    return max(first, last)


def _by_day(events: list[CalendarEvent], first: date, last: date) -> dict[date, list[dict]]:
    """Each event on every day of [first, last] it covers (a week's on-call shift, a weekend's
    maintenance), not only on the day it starts: later days say it continues and, on its last
    day, until when."""
    days: dict[date, list[dict]] = defaultdict(list)
    for event in events:
        starts, ends = _event_day(event), _event_last_day(event)
        day = max(starts, first)
        while day <= min(ends, last):
            # said on the last day, unless the event ends at midnight (the end of the day)
            ends_today = day == ends and day != starts and not event.all_day
            midnight = ends_today and timezone.localtime(event.end).time() == time.min
            until = event.end if ends_today and not midnight else None
            days[day].append({"event": event, "continued": day != starts, "until": until})
            day += timedelta(days=1)
    return days


def _filtered(events: list[CalendarEvent], team: str, service: str) -> list[CalendarEvent]:
    return [
        event
        for event in events
        if (not team or event.team == team) and (not service or service in event.services)
    ]


@require_GET
def calendar_view(request: HttpRequest) -> HttpResponse:
    mode = "week" if request.GET.get("view") == "week" else "month"
    anchor = _day(request.GET.get("date", ""))
    if mode == "week":
        first = anchor - timedelta(days=anchor.weekday())
        weeks = [[first + timedelta(days=offset) for offset in range(7)]]
        previous, following = first - timedelta(days=7), first + timedelta(days=7)
        title = f"Week of {first:%-d %B %Y}"
    else:
        weeks = month_calendar.Calendar(firstweekday=0).monthdatescalendar(
            anchor.year, anchor.month
        )
        previous = (anchor.replace(day=1) - timedelta(days=1)).replace(day=1)
        following = (anchor.replace(day=28) + timedelta(days=4)).replace(day=1)
        title = f"{anchor:%B %Y}"
    start, end = _local_midnight(weeks[0][0]), _local_midnight(weeks[-1][-1] + timedelta(days=1))
    team = request.GET.get("team", "").strip()
    service = request.GET.get("service", "").strip()
    events = registry.calendar_events(user=request.user, start=start, end=end)
    teams = sorted({event.team for event in events if event.team})
    events = _filtered(events, team, service)
    by_day = _by_day(events, weeks[0][0], weeks[-1][-1])
    context = {
        "mode": mode,
        "title": title,
        "weeks": [[(day, by_day.get(day, [])) for day in week] for week in weeks],
        "month": anchor.month,
        "today": timezone.localdate(),
        "anchor": anchor,
        "previous": previous,
        "following": following,
        "team": team,
        "service": service,
        "teams": teams,
        "services": MonitoredService.objects.filter(is_active=True).order_by("name"),
        "sources": registry.calendar_sources,
        "event_count": len(events),
    }
    if wants_fragment(request):
        return render(request, f"{PAGE}#calendar-grid", context)
    return render(request, PAGE, context)


@require_http_methods(["GET", "POST"])
def feed_settings(request: HttpRequest) -> HttpResponse:
    """Make (shown once) or revoke one's secret feed URL."""
    url, refusal = None, None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            calendar_feed_revoke(user=request.user)
        else:
            made, refusal = attempt(lambda: calendar_feed_create(user=request.user))
            if made is not None:
                url = request.build_absolute_uri(reverse("ops:calendar_feed", args=[made[1]]))
    live = CalendarFeedToken.objects.filter(user=request.user, revoked_at__isnull=True).first()
    return render(
        request,
        "ops/calendar/feed_settings.html",
        {"feed_url": url, "live": live, "refusal": refusal},
        status=refusal.status if refusal else 200,
    )


def _ical_event(event: CalendarEvent, stamp: datetime) -> Event:
    entry = Event()
    entry.add("uid", event.uid)
    entry.add("dtstamp", stamp)
    entry.add("summary", event.title)
    if event.description:
        entry.add("description", event.description)
    if event.url:
        entry.add("url", event.url)
    entry.add("categories", [event.kind])
    if event.status == "cancelled":
        entry.add("status", "CANCELLED")
    if event.all_day:
        entry.add("dtstart", event.start)
        entry.add("dtend", event.end)
    else:
        entry.add("dtstart", event.start)
        entry.add("dtend", event.end)
    if event.rrule:
        entry.add("rrule", vRecur.from_ical(event.rrule))
        if event.exdates:
            entry.add("exdate", list(event.exdates))
    return entry


def feed_calendar(*, user, now: datetime) -> bytes:
    """The user's feed as RFC 5545 text."""
    ical = Calendar()
    ical.add("prodid", f"-//{settings.PORTAL_NAME}//calendar//EN")
    ical.add("version", "2.0")
    ical.add("x-wr-calname", settings.PORTAL_NAME)
    for event in registry.calendar_events(
        user=user, start=now - FEED_PAST, end=now + FEED_AHEAD, feed=True
    ):
        ical.add_component(_ical_event(event, now))
    ical.add_missing_timezones()
    return ical.to_ical()


@login_not_required
@require_GET
def feed(request: HttpRequest, token: str) -> HttpResponse:
    """The secret URL is the credential: calendar apps cannot log in."""
    user = calendar_feed_user(token)
    if user is None:
        raise Http404("No such calendar feed.")
    response = HttpResponse(
        feed_calendar(user=user, now=timezone.now()), content_type="text/calendar; charset=utf-8"
    )
    response["Cache-Control"] = "private, max-age=300"
    return response
