"""Polls answer "no change" from the cache, and Today's history and the health tiles are
computed once per change: what a user notices is that a change shows on the next request."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import ops.selectors.health
import portal.polling
from ops.models import ItemState
from ops.services.checklists import (
    _runs_changed,
    checklist_item_set_state,
    checklist_runs_schedule,
)
from ops.services.health import health_result_store
from ops.services.health_checks import Outcome
from ops.services.incidents import incident_note_add
from tests.conftest import client_for
from tests.ops.test_health_views import make_services

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(f"ops:{name}", args=args)


@pytest.fixture
def run(make_template):
    make_template("Morning check", items=["Services healthy", "Disk below 80%"])
    (run,) = checklist_runs_schedule()
    return run


def test_run_poll_no_change_is_one_query(
    run, operator, second_operator, htmx, django_assert_max_num_queries
):
    client = client_for(operator)
    assert client.get(run.get_absolute_url()).status_code == 200
    run.refresh_from_db()
    # Warm: the session from the cache, the version and this user's leave from the cache; the
    # user's row is the one query (the session's auth hash is checked against it).
    with django_assert_max_num_queries(1):
        response = client.get(url("run_poll", run.pk), {"since": run.version}, **htmx)
    # An empty answer carries no Content-Security-Policy (there is no document to govern).
    assert response.status_code == 204 and "Content-Security-Policy" not in response
    # Someone else ticks: the next poll brings the row, and asks from the new version.
    item = run.items.order_by("position").first()
    checklist_item_set_state(item=item, user=second_operator, state=ItemState.DONE)
    response = client.get(url("run_poll", run.pk), {"since": run.version}, **htmx)
    html = response.content.decode()
    assert response.status_code == 200 and f'id="item-{item.pk}"' in html
    assert "script-src" in response["Content-Security-Policy"]
    run.refresh_from_db()
    assert f"?since={run.version}" in html
    with django_assert_max_num_queries(1):
        response = client.get(url("run_poll", run.pk), {"since": run.version}, **htmx)
    assert response.status_code == 204


def test_run_poll_from_the_cache_still_checks_who_asks(run, operator, outsider, htmx):
    client_for(operator).get(run.get_absolute_url())
    run.refresh_from_db()
    # The version is cached, but the outsider was never let see runs: no "no change" for them.
    response = client_for(outsider).get(url("run_poll", run.pk), {"since": run.version}, **htmx)
    assert response.status_code == 403
    response = client_for(operator).get(url("run_poll", run.pk), {"since": "x"}, **htmx)
    assert response.status_code == 400


def test_a_poll_with_a_version_the_cache_never_saw_is_answered_from_the_database(
    run, operator, htmx
):
    # Nothing cached for this user (no page view): the full answer, then the cache knows.
    client = client_for(operator)
    response = client.get(url("run_poll", run.pk), {"since": 0}, **htmx)
    assert response.status_code == 204
    assert portal.polling.poll_unchanged(response.wsgi_request, "run", run.pk, 0)


def test_incident_poll_no_change_then_a_note(
    make_incident, operator, second_operator, htmx, django_assert_max_num_queries
):
    incident = make_incident(operator)
    client = client_for(operator)
    assert client.get(incident.get_absolute_url()).status_code == 200
    incident.refresh_from_db()
    with django_assert_max_num_queries(1):
        response = client.get(
            url("incident_poll", incident.pk), {"since": incident.version}, **htmx
        )
    assert response.status_code == 204
    incident_note_add(incident=incident, user=second_operator, text="Rolled back the deploy")
    response = client.get(url("incident_poll", incident.pk), {"since": incident.version}, **htmx)
    assert response.status_code == 200 and "Rolled back the deploy" in response.content.decode()


def test_incident_poll_renders_the_clocks_once_a_deadline_passed(
    make_incident, operator, htmx, monkeypatch
):
    incident = make_incident(operator, severity="P1")  # 30 minutes to acknowledge
    client = client_for(operator)
    client.get(incident.get_absolute_url())
    incident.refresh_from_db()
    later = time.time() + 31 * 60
    monkeypatch.setattr(portal.polling.time, "time", lambda: later)
    response = client.get(url("incident_poll", incident.pk), {"since": incident.version}, **htmx)
    assert response.status_code == 200 and 'id="incident-clocks"' in response.content.decode()


def _history_section(response) -> str:
    html = response.content.decode()
    return html[html.index('id="history-title"') :]


def test_a_tick_shows_on_today_at_once(run, operator, django_assert_max_num_queries):
    client = client_for(operator)
    before = _history_section(client.get(reverse("today")))
    assert "(0/0)" in before and "olivia" not in before
    for item in run.items.all():
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    after = _history_section(client.get(reverse("today")))
    assert "100%" in after and "(1/1)" in after and "olivia" in after


def test_today_history_is_computed_once_per_change(run, operator):
    client = client_for(operator)
    client.get(reverse("today"))
    with CaptureQueriesContext(connection) as warm:
        client.get(reverse("today"))
    _runs_changed()
    with CaptureQueriesContext(connection) as after_change:
        client.get(reverse("today"))
    # The history's own queries come back after a change, and only then.
    assert len(after_change) > len(warm)


def test_a_new_health_result_shows_on_the_next_poll(operator, htmx, django_assert_max_num_queries):
    (service,) = make_services(1, results_each=3)
    client = client_for(operator)
    first = client.get(reverse("ops:health_panel"), **htmx).content.decode()
    with django_assert_max_num_queries(6):  # warm: the sparkline and uptimes are cached
        again = client.get(reverse("ops:health_panel"), **htmx).content.decode()
    assert again.count("<polyline") == first.count("<polyline")
    health_result_store(service=service, outcome=Outcome("critical", "HTTP 500", 950.0))
    html = client.get(reverse("ops:health_panel"), **htmx).content.decode()
    assert "state-critical" in html and "950" in html
    (tile,) = client.get(reverse("ops:health_panel"), **htmx).context["tiles"]
    assert tile.spark is not None and len(tile.spark.points.split()) == 4


def _tiles_rendered(response) -> int:
    return sum(template.name == "ops/health/_tile.html" for template in response.templates)


def test_a_health_tile_is_rendered_again_only_when_it_changed(operator, htmx, monkeypatch):
    # No minute boundary during the test (at one, every sparkline moves with the clock).
    monkeypatch.setattr(ops.selectors.health, "HISTORY_PARTS_SECONDS", 10**9)
    _first, second, _third = make_services(3, results_each=3)
    client = client_for(operator)
    assert _tiles_rendered(client.get(reverse("ops:health_panel"), **htmx)) == 3
    # Nothing changed: the three tiles come from the cache, the same HTML.
    again = client.get(reverse("ops:health_panel"), **htmx)
    assert _tiles_rendered(again) == 0 and again.content.decode().count('class="tile state-') == 3
    # A result for one service: that tile alone is rendered again, and shows it.
    health_result_store(service=second, outcome=Outcome("critical", "HTTP 500", 950.0))
    after = client.get(reverse("ops:health_panel"), **htmx)
    html = after.content.decode()
    assert _tiles_rendered(after) == 1
    tile = html[html.index(f'id="tile-{second.slug}"') :]
    assert tile.startswith(f'id="tile-{second.slug}" data-state="critical"') and "HTTP 500" in tile
    # Today's problem tiles are the same fragments: the critical one is already cached.
    today = client.get(reverse("today"))
    assert _tiles_rendered(today) == 0 and f'id="tile-{second.slug}"' in today.content.decode()


def test_health_tiles_show_without_the_cache(operator, htmx, settings):
    make_services(2, results_each=3)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }
    response = client_for(operator).get(reverse("ops:health_panel"), **htmx)
    assert response.status_code == 200 and response.content.decode().count("tile state-") == 2
