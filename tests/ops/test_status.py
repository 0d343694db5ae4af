"""The public status page: derived component states, nothing internal ever public, cache
headers, the feeds, posting public updates (and their bad input), and flat query counts."""

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ops.models import (
    CheckRollup,
    CheckState,
    ComponentGroup,
    ComponentState,
    MaintenanceWindow,
    MonitoredService,
    PublicUpdate,
    StatusComponent,
)
from ops.selectors.status import component_state, status_page
from ops.services.incidents import incident_close, incident_note_add, incident_resolve
from ops.services.postmortems import postmortem_save
from ops.services.status import component_override_set, public_update_post
from portal.errors import ActionRefused
from portal.models import AuditEntry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

OK, WARN, CRIT, UNKNOWN = CheckState.OK, CheckState.WARNING, CheckState.CRITICAL, CheckState.UNKNOWN
S = ComponentState


# Derivation


@pytest.mark.parametrize(
    ("services", "ranks", "expected"),
    [
        ([], [], S.OPERATIONAL),
        ([(OK, False)], [], S.OPERATIONAL),
        ([(UNKNOWN, False)], [], S.OPERATIONAL),
        ([(WARN, False), (OK, False)], [], S.DEGRADED),
        ([(CRIT, False), (OK, False)], [], S.PARTIAL_OUTAGE),
        ([(CRIT, False), (WARN, False)], [], S.PARTIAL_OUTAGE),
        ([(CRIT, False), (CRIT, False)], [], S.MAJOR_OUTAGE),
        ([(CRIT, False), (UNKNOWN, False)], [], S.MAJOR_OUTAGE),
        # Planned: a failing service in public maintenance does not count.
        ([(CRIT, True), (OK, False)], [], S.UNDER_MAINTENANCE),
        ([(CRIT, True)], [], S.UNDER_MAINTENANCE),
        ([(OK, True), (WARN, False)], [], S.DEGRADED),
        # Published incidents naming its services, by severity rank.
        ([(OK, False)], [3], S.DEGRADED),
        ([(OK, False)], [2], S.DEGRADED),
        ([(OK, False)], [1], S.PARTIAL_OUTAGE),
        ([(OK, False)], [0], S.MAJOR_OUTAGE),
        ([(OK, False)], [3, 0], S.MAJOR_OUTAGE),
        ([(CRIT, False), (OK, False)], [2], S.PARTIAL_OUTAGE),
        ([(OK, True)], [2], S.DEGRADED),
    ],
)
def test_component_state_derivation(services, ranks, expected):
    assert component_state(services=services, incident_ranks=ranks) == expected


def test_every_combination_has_one_state_and_an_override_wins():
    states = (OK, WARN, CRIT, UNKNOWN)
    for first, second, maintenance, rank in product(
        states, states, (False, True), (None, 0, 1, 2, 3)
    ):
        services = [(first, maintenance), (second, False)]
        ranks = [] if rank is None else [rank]
        derived = component_state(services=services, incident_ranks=ranks)
        assert derived in S.values
        if second == CRIT or (first == CRIT and not maintenance) or rank in (0, 1):
            assert derived in (S.PARTIAL_OUTAGE, S.MAJOR_OUTAGE)
        for override in S.values:
            assert component_state(services=services, incident_ranks=ranks, override=override) == (
                override
            )


# Fixtures


def _service(slug: str, state=OK) -> MonitoredService:
    return MonitoredService.objects.create(
        name=slug.title(), slug=slug, kind="tcp", target="127.0.0.1:9", state=state
    )


@pytest.fixture
def checkout(db):
    group = ComponentGroup.objects.create(name="Shop", position=1)
    component = StatusComponent.objects.create(
        name="Checkout", slug="checkout", group=group, description="Paying for an order."
    )
    component.services.set([_service("payments"), _service("carts")])
    return component


SECRET = "db-primary-7 password hunter2"


@pytest.fixture
def incident(make_incident, operator, checkout):
    incident = make_incident(
        operator,
        title="INTERNAL: primary replica lag on db-primary-7",
        severity="P1",
        services=["payments"],
    )
    incident_note_add(incident=incident, user=operator, text=f"Suspect {SECRET}")
    incident.summary = "internal summary: rolled back deploy 4711"
    incident.customer_impact = "internal impact text"
    incident.save()
    return incident


def _publish(
    incident,
    user,
    status="investigating",
    message="We are looking into failed payments.",
    title="Payments failing",
):
    return public_update_post(
        incident=incident, user=user, status=status, message=message, title=title
    )


# The page


def test_public_page_shows_the_update_and_never_anything_internal(incident, operator, checkout):
    _publish(incident, operator)
    response = Client().get("/status/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Payments failing" in body and "We are looking into failed payments." in body
    assert "Partial outage" in body  # P1 naming a Checkout service
    for internal in (
        SECRET,
        "db-primary-7",
        "INTERNAL",
        "internal summary",
        "internal impact",
        operator.username,
        incident.severity.code,
        "Suspect",
    ):
        assert internal not in body, internal
    for url in ("/status/history/", "/status/feed.atom", "/status/api/v2/summary.json"):
        text = Client().get(url).content.decode()
        for internal in (SECRET, "db-primary-7", "INTERNAL", operator.username, "Suspect"):
            assert internal not in text, (url, internal)


def test_unpublished_incidents_are_not_public(incident):
    body = Client().get("/status/").content.decode()
    assert "All systems operational" in body
    assert "Current incidents" not in body


def test_same_answer_for_everyone_cacheable_30s(incident, operator, manager):
    _publish(incident, operator)
    anonymous = Client().get("/status/")
    logged_in = client_for(manager).get("/status/")
    assert anonymous["Cache-Control"] == "public, max-age=30"
    assert "Cookie" not in anonymous.get("Vary", "")
    assert "Set-Cookie" not in anonymous.headers and not anonymous.cookies

    def strip(response):  # the "as of" time is the only difference a second makes
        return re.sub(r'datetime="[^"]*"', "", response.content.decode())

    assert strip(anonymous) == strip(logged_in)
    for url in ("/status/history/", "/status/feed.atom", "/status/api/v2/summary.json"):
        assert Client().get(url)["Cache-Control"] == "public, max-age=30"


def test_resolved_update_leaves_the_current_list_and_shows_in_history(incident, operator):
    _publish(incident, operator)
    _publish(incident, operator, status="resolved", message="Payments work again.", title="")
    body = Client().get("/status/").content.decode()
    assert "Current incidents" not in body and "All systems operational" in body
    history = Client().get("/status/history/").content.decode()
    assert "Payments failing" in history and "Payments work again." in history
    assert "Resolved" in history


def test_public_maintenance_shown_ahead_and_in_progress(checkout, manager):
    now = timezone.now()
    payments = MonitoredService.objects.get(slug="payments")
    payments.state = CRIT
    payments.save()
    window = MaintenanceWindow.objects.create(
        title="Payment provider upgrade",
        starts_at=now - timedelta(minutes=10),
        duration=timedelta(hours=1),
        is_public=True,
        announcement="Card payments may be slow.",
    )
    window.services.set([payments])
    MaintenanceWindow.objects.create(
        title="Private thing", starts_at=now + timedelta(days=1), duration=timedelta(hours=1)
    )
    page = status_page(now=now)
    assert [view.state for view in page.components] == [S.UNDER_MAINTENANCE]
    body = Client().get("/status/").content.decode()
    assert "Payment provider upgrade" in body and "Card payments may be slow." in body
    assert "In progress" in body and "Under maintenance" in body
    assert "Private thing" not in body


def test_override_wins_while_the_incident_is_open_and_is_audited(incident, manager, checkout):
    _publish(incident, manager)
    component_override_set(
        component=checkout,
        incident=incident,
        state=S.MAJOR_OUTAGE,
        reason="All cards fail",
        user=manager,
    )
    assert status_page().components[0].state == S.MAJOR_OUTAGE
    assert AuditEntry.objects.filter(action="status.override").count() == 1
    _publish(incident, manager, status="resolved", message="Fixed.", title="")
    assert status_page().components[0].state == S.OPERATIONAL


def test_override_refused_bad_input(incident, manager, image_staff, checkout):
    with pytest.raises(ActionRefused, match="not a component state"):
        component_override_set(
            component=checkout, incident=incident, state="on-fire", reason="x", user=manager
        )
    with pytest.raises(ActionRefused, match="Say why"):
        component_override_set(
            component=checkout, incident=incident, state=S.DEGRADED, reason=" ", user=manager
        )
    with pytest.raises(PermissionDenied):  # operators and managers may; image staff not
        component_override_set(
            component=checkout, incident=incident, state=S.DEGRADED, reason="x", user=image_staff
        )
    assert not checkout.overrides.exists()


# Feeds


def test_atom_feed_parses_with_the_stdlib(incident, operator):
    _publish(incident, operator)
    _publish(incident, operator, status="identified", message="A provider fault.", title="")
    response = Client().get("/status/feed.atom")
    assert response["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(response.content)  # noqa: S314 - our own feed, parsed as readers do
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    entries = root.findall("a:entry", ns)
    assert [entry.find("a:title", ns).text for entry in entries] == [
        "Payments failing: Identified",
        "Payments failing: Investigating",
    ]
    assert all(entry.find("a:id", ns).text for entry in entries)
    assert all(entry.find("a:updated", ns).text for entry in entries)


def test_json_summary_has_the_statuspage_shape(incident, operator, checkout):
    _publish(incident, operator)
    data = json.loads(Client().get("/status/api/v2/summary.json").content)
    assert set(data) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert {"id", "name", "url", "updated_at"} <= set(data["page"])
    assert data["status"]["indicator"] in ("none", "minor", "major", "critical", "maintenance")
    component = next(item for item in data["components"] if item["name"] == "Checkout")
    assert component["status"] == "partial_outage" and component["group_id"]
    group = next(item for item in data["components"] if item["group"])
    assert group["name"] == "Shop" and group["components"] == [component["id"]]
    [current] = data["incidents"]
    assert current["name"] == "Payments failing" and current["status"] == "investigating"
    assert current["impact"] == "major"
    assert current["incident_updates"][0]["body"] == "We are looking into failed payments."
    assert {"id", "status", "body", "created_at"} <= set(current["incident_updates"][0])


# Posting updates


def url(incident):
    return reverse("ops:public_update", args=[incident.pk])


def test_operator_posts_updates_from_the_incident_page(incident, operator):
    client = client_for(operator)
    page = client.get(incident.get_absolute_url()).content.decode()
    assert url(incident) in page
    response = client.post(
        url(incident), {"title": "Payments failing", "status": "investigating", "message": "Hi."}
    )
    assert response.status_code == 302
    update = PublicUpdate.objects.get()
    assert update.posted_by == operator and update.title == "Payments failing"
    assert AuditEntry.objects.filter(action="status.update").count() == 1
    assert incident.timeline.filter(text__startswith="Status page: Investigating").exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"status": "investigating", "message": "Hi."}, "title", "public title"),
        ({"title": "T", "status": "on-fire", "message": "Hi."}, "status", "none of them"),
        ({"title": "T", "status": "investigating", "message": "   "}, "message", "Write the"),
        ({"title": "T" * 201, "status": "investigating", "message": "x"}, "title", "at most"),
        ({"title": "T", "status": "resolved", "message": "x" * 5001}, "message", "at most"),
    ],
)
def test_bad_updates_get_an_error_beside_the_field_and_change_nothing(
    incident, operator, data, field, message
):
    response = client_for(operator).post(url(incident), data)
    assert response.status_code == 400
    form = response.context["form"]
    assert message in " ".join(form.errors[field])
    assert not PublicUpdate.objects.exists()


def test_update_to_a_closed_incident_is_refused(incident, operator, manager):
    incident_resolve(incident=incident, user=operator)
    postmortem_save(incident=incident, user=manager, summary="s", root_cause="r", impact="i")
    incident_close(incident=incident, user=manager)
    response = client_for(operator).post(
        url(incident), {"title": "T", "status": "investigating", "message": "Hi."}
    )
    assert response.status_code in (400, 409)
    assert not PublicUpdate.objects.exists()
    with pytest.raises(ActionRefused, match="closed"):
        _publish(incident, operator)


def test_only_those_who_may_update_incidents_post(incident, image_staff, outsider):
    for user in (image_staff, outsider):
        assert client_for(user).post(url(incident), {"status": "resolved"}).status_code == 403
    assert Client().get(url(incident)).status_code == 302  # to the login page


def test_response_checklist_item_links_to_the_form(incident, operator):
    page = client_for(operator).get(incident.get_absolute_url()).content.decode()
    # The page's actions, the response checklist's "Update status page" item, the status card.
    assert page.count(f'href="{url(incident)}"') == 3
    assert f'<a class="item-link" href="{url(incident)}">Post a public update</a>' in page


# Query counts


def _components(count: int, days: int) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    groups = [ComponentGroup.objects.create(name=f"Group {n}", position=n) for n in range(3)]
    rollups = []
    for n in range(count):
        component = StatusComponent.objects.create(
            name=f"Component {n}", slug=f"component-{n}", group=groups[n % 3], position=n
        )
        service = _service(f"service-{n}")
        component.services.set([service])
        for day in range(days):
            for hour in (0, 12):
                rollups.append(
                    CheckRollup(
                        service=service,
                        hour=now - timedelta(days=day, hours=hour),
                        checks=120,
                        up=120 if (day + n) % 7 else 100,
                    )
                )
    CheckRollup.objects.bulk_create(rollups)


def test_query_count_is_flat_with_30_components_and_90_days(make_incident, operator):
    _components(2, 3)
    with CaptureQueriesContext(connection) as small:
        assert Client().get("/status/").status_code == 200
    StatusComponent.objects.all().delete()
    ComponentGroup.objects.all().delete()
    MonitoredService.objects.all().delete()
    _components(30, 90)
    with CaptureQueriesContext(connection) as large:
        response = Client().get("/status/")
    assert response.status_code == 200
    assert len(large) == len(small), [query["sql"] for query in large.captured_queries]
    body = response.content.decode()
    assert body.count('class="bar ') == 30 * 90
    assert "% uptime" in body
    with CaptureQueriesContext(connection) as feed:
        Client().get("/status/api/v2/summary.json")
    assert len(feed) == len(small)


def test_today_shows_what_customers_read_and_unpublished_incidents(incident, operator):
    client = client_for(operator)
    page = client.get(reverse("today")).content.decode()
    assert "Open incidents not on the status page yet" in page
    assert f'href="{url(incident)}"' in page
    _publish(incident, operator)
    page = client.get(reverse("today")).content.decode()
    assert "Open incidents not on the status page yet" not in page
    assert "On the status page now" in page and "“Payments failing”" in page
    assert "Public status: Investigating" in page


def test_today_says_nothing_when_all_is_well(checkout, operator):
    page = client_for(operator).get(reverse("today")).content.decode()
    assert "Status page" not in page


def test_public_maintenance_window_needs_an_announcement(manager):
    from ops.forms.maintenance import MaintenanceWindowForm

    start = timezone.now() + timedelta(days=10)
    data = {
        "title": "Upgrade",
        "starts": start.strftime("%Y-%m-%dT%H:%M"),
        "ends": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "time_zone": "UTC",
        "impact": "degraded",
        "pre_lead_minutes": "60",
        "notice_hours": "72",
        "kind": "daily",
        "interval": "1",
        "is_public": "on",
        "announcement": "  ",
    }
    form = MaintenanceWindowForm(data, user=manager)
    assert not form.is_valid()
    assert "announcement customers read" in " ".join(form.errors["announcement"])
    data["announcement"] = "Checkout may be slow."
    form = MaintenanceWindowForm(data, user=manager)
    assert form.is_valid(), form.errors
    assert form.details()["is_public"] and form.details()["announcement"] == "Checkout may be slow."


def test_managers_edit_components_in_the_admin_audited(manager, operator):
    service = _service("payments")
    client = client_for(manager)
    response = client.post(
        "/admin/ops/statuscomponent/add/",
        {
            "name": "Checkout",
            "slug": "checkout",
            "position": "1",
            "description": "Paying.",
            "services": [service.pk],
            "is_public": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert StatusComponent.objects.get().services.get() == service
    assert AuditEntry.objects.filter(action="admin.statuscomponent.add").exists()
    bad = client.post("/admin/ops/statuscomponent/add/", {"name": "", "slug": "checkout"})
    assert bad.status_code == 200 and StatusComponent.objects.count() == 1
    assert client_for(operator).get("/admin/ops/statuscomponent/").status_code in (302, 403)


def test_admin_override_refuses_a_resolved_incident(incident, manager, operator, checkout):
    client = client_for(manager)
    data = {"component": checkout.pk, "incident": incident.pk, "state": S.DEGRADED}
    response = client.post("/admin/ops/componentoverride/add/", {**data, "reason": "Slow"})
    assert response.status_code == 302
    assert AuditEntry.objects.filter(action="admin.componentoverride.add").exists()
    assert status_page().components[0].state == S.DEGRADED
    incident_resolve(incident=incident, user=operator)
    assert status_page().components[0].state == S.OPERATIONAL  # it lasted as long as the incident
    response = client.post("/admin/ops/componentoverride/add/", {**data, "reason": "Again"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert checkout.overrides.count() == 1
