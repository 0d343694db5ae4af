"""What the portal shows of the apps above it, filled by each app in its AppConfig.ready().

The portal imports nothing from its apps: an app registers here its Today blocks, its
Prometheus collectors, the KPI values it can compute, the owners a checklist run can belong
to, its first-run setup, the events it puts on the calendar and the iCal feed, and its links
in the main navigation; the portal's pages, `/metrics`, `setup_portal` and the checklist
services read them. A new domain (maintenance windows, GDPR requests, deploys, backups) plugs
in the same way.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest


@dataclass(frozen=True)
class TodayBlock:
    """A part of the Today page. ``context(request, now)`` returns the template's context, or
    None when the block has nothing for this user; ``live`` blocks are refreshed by polling
    (a block with a form is not, so that nothing typed is lost)."""

    name: str
    template: str
    context: Callable[[HttpRequest, datetime], dict | None]
    order: int = 100
    live: bool = True


@dataclass(frozen=True)
class KpiSource:
    """A KPI value an app computes: ``value(since)`` returns (value or None, where it came
    from) over the window starting at ``since``."""

    metric: str
    value: Callable[[datetime], tuple[float | None, str]]


@dataclass(frozen=True)
class RunOwner:
    """Something a checklist run can belong to (an incident's response checklist, later a
    maintenance window's or a request's). ``field`` is the run's foreign key to it.

    ``item_changed(run=, item=, user=, now=)`` is called inside the transaction of a tick,
    untick, skip or undo; ``may_view(user, owner_id)`` says whether a user may see runs of
    that owner (a run of an owner you may not see is not shown to you at all);
    ``describe(run)`` gives (text, url) to show where the run is listed; ``frozen(owner_id)``
    is called before any change to one of its runs, before the run is locked (so it may lock
    the owner's row: owner first, then run), and returns why the run may not change now (the
    incident is closed) or None.

    A run that has an owner is cancelled by its owner only (``checklist_run_cancel(owner=)``,
    e.g. when the incident closes), never directly by a user."""

    field: str
    item_changed: Callable[..., Any] | None = None
    may_view: Callable[[Any, int], bool] | None = None
    describe: Callable[[Any], tuple[str, str]] | None = None
    frozen: Callable[[int], str | None] | None = None

    def owner_id(self, run) -> int | None:
        return getattr(run, f"{self.field}_id", None)


class SetupFailed(Exception):
    """A setup step cannot do its part; the message says why (setup_portal shows it)."""


@dataclass(frozen=True)
class SetupStep:
    """Part of `manage.py setup_portal` (run by `make run`, idempotent): ``run(demo=)`` does
    it and returns a line to print, or None."""

    name: str
    run: Callable[..., str | None]
    order: int = 100


@dataclass(frozen=True)
class CalendarEvent:
    """One event on the calendar: an occurrence (``start``/``end`` aware datetimes) or an
    all-day item (dates). In a feed, ``rrule`` and ``exdates`` make it a series; on the
    calendar page every occurrence is its own event. ``kind`` and ``status`` colour it;
    ``team`` and ``services`` (slugs) are what the page filters on."""

    uid: str
    title: str
    start: datetime | date
    end: datetime | date
    kind: str
    status: str = ""
    url: str = ""
    description: str = ""
    team: str = ""
    services: tuple[str, ...] = ()
    tzid: str = ""
    rrule: str = ""
    exdates: tuple[datetime, ...] = ()

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


@dataclass(frozen=True)
class CalendarSource:
    """Events an app puts on the calendar and the iCal feed (maintenance windows and due
    tasks; later GDPR deadlines, deploys). ``occurrences(user=, start=, end=)`` returns every
    event in [start, end) one by one; ``series(user=, start=, end=)`` returns them for a feed,
    a recurring one once with its rule and exceptions. Either returns [] for a user who may
    not see them; each is expected to make a fixed number of queries."""

    name: str
    label: str
    occurrences: Callable[..., list[CalendarEvent]]
    series: Callable[..., list[CalendarEvent]] | None = None


@dataclass(frozen=True)
class NavLink:
    """A link of the main navigation, shown to a signed-in user holding any of ``perms``
    (everyone signed in when there are none). The page is current when its URL name
    (``app:name``) starts with one of ``current`` (the link's own URL name by default)."""

    label: str
    url_name: str
    perms: tuple[str, ...] = ()
    current: tuple[str, ...] = ()
    order: int = 100

    def shown_to(self, user) -> bool:
        return not self.perms or any(user.has_perm(perm) for perm in self.perms)

    def is_current(self, view_name: str) -> bool:
        return any(view_name.startswith(prefix) for prefix in self.current or (self.url_name,))


@dataclass
class Registry:
    today_blocks: list[TodayBlock] = field(default_factory=list)
    metrics_collectors: list[Callable[[], Iterable]] = field(default_factory=list)
    kpi_sources: dict[str, KpiSource] = field(default_factory=dict)
    run_owners: list[RunOwner] = field(default_factory=list)
    setup_steps: list[SetupStep] = field(default_factory=list)
    calendar_sources: list[CalendarSource] = field(default_factory=list)
    nav_links: list[NavLink] = field(default_factory=list)

    def add_nav_link(self, link: NavLink) -> None:
        if any(known.label == link.label for known in self.nav_links):
            raise ImproperlyConfigured(f"Two navigation links are labelled {link.label!r}.")
        self.nav_links.append(link)
        self.nav_links.sort(key=lambda known: (known.order, known.label))

    def add_calendar_source(self, source: CalendarSource) -> None:
        if any(known.name == source.name for known in self.calendar_sources):
            raise ImproperlyConfigured(f"Two calendar sources are named {source.name!r}.")
        self.calendar_sources.append(source)

    def calendar_events(self, *, user, start: datetime, end: datetime, feed: bool = False):
        """Every registered source's events in [start, end), sorted by start; for a feed,
        each source's series where it has them."""
        events: list[CalendarEvent] = []
        for source in self.calendar_sources:
            read = source.series if feed and source.series is not None else source.occurrences
            events.extend(read(user=user, start=start, end=end))
        return sorted(events, key=_event_sort_key)

    def add_setup_step(self, step: SetupStep) -> None:
        if any(known.name == step.name for known in self.setup_steps):
            raise ImproperlyConfigured(f"Two setup steps are named {step.name!r}.")
        self.setup_steps.append(step)
        self.setup_steps.sort(key=lambda known: (known.order, known.name))

    def add_today_block(self, block: TodayBlock) -> None:
        if any(known.name == block.name for known in self.today_blocks):
            raise ImproperlyConfigured(f"Two Today blocks are named {block.name!r}.")
        self.today_blocks.append(block)
        self.today_blocks.sort(key=lambda known: (known.order, known.name))

    def add_metrics_collector(self, collect: Callable[[], Iterable]) -> None:
        """``collect()`` yields prometheus_client metric families at scrape time."""
        self.metrics_collectors.append(collect)

    def add_kpi_source(self, source: KpiSource) -> None:
        if source.metric in self.kpi_sources:
            raise ImproperlyConfigured(f"Two KPI sources for {source.metric!r}.")
        self.kpi_sources[source.metric] = source

    def add_run_owner(self, owner: RunOwner) -> None:
        if any(known.field == owner.field for known in self.run_owners):
            raise ImproperlyConfigured(f"Two run owners use the field {owner.field!r}.")
        self.run_owners.append(owner)

    def owners_of(self, run) -> list[tuple[RunOwner, int]]:
        """The registered owners this run belongs to, each with the owner's id."""
        found = []
        for owner in self.run_owners:
            owner_id = owner.owner_id(run)
            if owner_id is not None:
                found.append((owner, owner_id))
        return found

    def run_owner(self, field: str) -> RunOwner:
        for owner in self.run_owners:
            if owner.field == field:
                return owner
        raise ImproperlyConfigured(f"No run owner uses the field {field!r}.")


def _event_sort_key(event: CalendarEvent) -> tuple:
    start = event.start
    if isinstance(start, datetime):
        return (start.date(), 1, start.timestamp(), event.title)
    return (start, 0, 0.0, event.title)


registry = Registry()
