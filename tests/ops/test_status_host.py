"""The status page's own host name, its server-side cache, overrides set from the incident
page (recorded, ended when the incident resolves) and the demo's components."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from ops.models import ComponentState, MonitoredService, StatusComponent
from ops.selectors.status import status_page
from ops.services.incidents import incident_resolve
from ops.services.status import public_update_post, status_demo_components
from portal.models import AuditEntry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

STATUS_HOST = "status.example.test"


def _service(slug: str) -> MonitoredService:
    return MonitoredService.objects.create(
        name=slug.title(), slug=slug, kind="tcp", target="127.0.0.1:9"
    )


@pytest.fixture
def checkout(db):
    component = StatusComponent.objects.create(name="Checkout", slug="checkout")
    component.services.set([_service("payments")])
    return component


@pytest.fixture
def status_host(settings):
    settings.STATUS_HOST = STATUS_HOST
    settings.HOST_URLCONFS = {STATUS_HOST: "ops.status_urls"}
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, STATUS_HOST]
    return Client(HTTP_HOST=STATUS_HOST)


# Its own host name


def test_the_status_host_serves_the_page_its_feeds_and_static_files_only(
    status_host, checkout, manager
):
    page = status_host.get("/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Checkout" in body and "All systems operational" in body
    # Links stay on the status host: its own paths, not /status/...
    assert 'href="/history/"' in body and 'action="/subscribe/"' in body
    assert 'href="/status/' not in body and 'action="/status/' not in body
    for path in ("/history/", "/feed.atom", "/api/v2/summary.json", "/subscribe/"):
        assert status_host.get(path).status_code == 200, path
    json_body = status_host.get("/api/v2/summary.json").json()
    assert json_body["page"]["url"] == f"http://{STATUS_HOST}/"
    assert status_host.get("/static/ops/status/status.css").status_code == 200
    for path in ("/admin/", "/incidents/", "/api/health", "/accounts/login/", "/status/history/"):
        response = status_host.get(path)
        assert response.status_code == 404, path
        assert "nothing at this address" in response.content.decode()
    # Even for someone signed in to the portal.
    signed_in = client_for(manager)
    assert signed_in.get("/incidents/", HTTP_HOST=STATUS_HOST).status_code == 404
    assert status_host.get("/status/").status_code == 302  # an old bookmark lands on "/"
    # The portal's host is unchanged: /status/ still works there, and so does the rest.
    assert Client().get("/status/").status_code == 200
    assert Client().get("/status/history/").status_code == 200
    assert signed_in.get("/incidents/").status_code == 200


def test_links_in_mail_point_at_the_status_host(status_host, settings):
    from ops.services.status_subscribers import status_link

    settings.STATUS_BASE_URL = f"https://{STATUS_HOST}"
    assert status_link("ops:status_unsubscribe", "k") == f"https://{STATUS_HOST}/unsubscribe/k/"
    settings.STATUS_HOST = ""
    settings.STATUS_BASE_URL = "https://ops.example.test"
    assert status_link("ops:status_history") == "https://ops.example.test/status/history/"


def test_an_unknown_host_is_still_refused(status_host):
    assert Client(HTTP_HOST="evil.example").get("/").status_code == 400


# The server cache


def test_cached_page_costs_no_query_and_a_public_update_shows_at_once(
    settings, checkout, make_incident, operator, django_capture_on_commit_callbacks
):
    settings.STATUS_CACHE_SECONDS = 30
    first = Client().get("/status/")
    assert first["X-Status-Cache"] == "miss"
    with CaptureQueriesContext(connection) as cached:
        second = Client().get("/status/")
    assert second["X-Status-Cache"] == "hit" and second.content == first.content
    assert len(cached) == 0 and second["Cache-Control"] == "public, max-age=30"
    incident = make_incident(operator, title="internal", services=["payments"])
    with django_capture_on_commit_callbacks(execute=True):  # the version changes on commit
        public_update_post(
            incident=incident, user=operator, status="investigating", message="Slow.", title="Pay"
        )
    third = Client().get("/status/")
    assert third["X-Status-Cache"] == "miss" and "Slow." in third.content.decode()
    for path in ("/status/history/", "/status/feed.atom", "/status/api/v2/summary.json"):
        assert Client().get(path)["X-Status-Cache"] == "miss"
        assert Client().get(path)["X-Status-Cache"] == "hit"


# Overrides from the incident page


@pytest.fixture
def incident(make_incident, operator, checkout):
    return make_incident(operator, title="db lag", services=["payments"])


def override_url(incident):
    return f"/incidents/{incident.pk}/status-page/override/"


def test_an_operator_overrides_from_the_incident_page_until_it_resolves(
    incident, operator, checkout
):
    client = client_for(operator)
    page = client.get(incident.get_absolute_url()).content.decode()
    assert 'id="status-page"' in page and "<strong>Checkout</strong>" in page
    assert 'name="reason"' in page and override_url(incident) in page
    response = client.post(
        override_url(incident),
        {"component": "checkout", "state": ComponentState.MAJOR_OUTAGE, "reason": "Cards fail"},
    )
    assert response.status_code == 303
    assert status_page().components[0].state == ComponentState.MAJOR_OUTAGE
    assert "Major outage" in Client().get("/status/").content.decode()
    assert incident.timeline.filter(text__contains="Checkout shown as Major outage").exists()
    assert AuditEntry.objects.filter(action="status.override", actor=operator).exists()
    page = client.get(incident.get_absolute_url()).content.decode()
    assert "Cards fail" in page and "End the override" in page

    incident_resolve(incident=incident, user=operator)
    override = checkout.overrides.get()
    assert override.ended_at is not None
    assert status_page().components[0].state == ComponentState.OPERATIONAL
    assert incident.timeline.filter(
        text__contains="override of Checkout (Major outage) ended: the incident is resolved"
    ).exists()
    assert AuditEntry.objects.filter(action="status.override_end").count() == 1
    refused = client.post(
        override_url(incident),
        {"component": "checkout", "state": ComponentState.DEGRADED, "reason": "Again"},
        follow=True,
    )
    assert "lasts as long as an open incident" in refused.content.decode()
    assert checkout.overrides.count() == 1


def test_ending_an_override_by_hand_is_recorded(incident, manager, checkout):
    client = client_for(manager)
    client.post(
        override_url(incident),
        {"component": "checkout", "state": ComponentState.DEGRADED, "reason": "Slow"},
    )
    override = checkout.overrides.get()
    response = client.post(f"{override_url(incident)}{override.pk}/end/")
    assert response.status_code == 303
    override.refresh_from_db()
    assert override.ended_at is not None
    assert incident.timeline.filter(text__contains="ended by hand").exists()
    again = client.post(f"{override_url(incident)}{override.pk}/end/", follow=True)
    assert "already ended" in again.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"component": "warp-drive", "state": "major_outage", "reason": "x"}, "warp-drive"),
        ({"component": "checkout", "state": "on-fire", "reason": "x"}, "not a component state"),
        ({"component": "checkout", "state": "major_outage", "reason": ""}, "Say why"),
    ],
)
def test_bad_overrides_say_why_and_change_nothing(incident, operator, checkout, data, message):
    response = client_for(operator).post(override_url(incident), data, follow=True)
    assert message in response.content.decode()
    assert not checkout.overrides.exists()


def test_who_may_not_override(incident, image_staff, outsider, checkout):
    data = {"component": "checkout", "state": "major_outage", "reason": "x"}
    for user in (image_staff, outsider):
        assert client_for(user).post(override_url(incident), data).status_code == 403
    assert client_for(image_staff).get(override_url(incident)).status_code in (403, 405)
    assert not checkout.overrides.exists()


# The demo


def test_the_demo_makes_components_of_its_services_once(db):
    for slug in ("portal-web", "celery-workers"):
        _service(slug)
    assert status_demo_components() == 2
    assert status_demo_components() == 0
    page = Client().get("/status/").content.decode()
    assert "Web app" in page and "Background jobs" in page
    assert "No components are published yet" not in page
    web = StatusComponent.objects.get(slug="web-app")
    assert [service.slug for service in web.services.all()] == ["portal-web"]
    assert not StatusComponent.objects.filter(slug="database").exists()  # not monitored here
