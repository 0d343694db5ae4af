"""Issue 9, items 6, 7, 8 and 15 through the pages: cancel and undo (plain and htmx), the
parent offered when its last sub-item is ticked, completed runs that still take notes, and
runs of an owner the user may not see. Query counts do not grow with the items."""

import pytest
from django.urls import reverse

from ops.models import ChecklistRun, ItemState
from ops.models.checklists import Cadence, RunStatus
from ops.services.checklists import (
    checklist_item_set_state,
    checklist_run_start,
    checklist_runs_schedule,
)
from portal.models import AuditEntry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def release(make_template, operator) -> ChecklistRun:
    template = make_template(
        "Release",
        items=["Tests green", ("Review logs", ["No 5xx bursts", "No auth failures"])],
        cadence=Cadence.ON_DEMAND,
    )
    return checklist_run_start(template=template, user=operator, label="v1.2.3")


def cancel_url(run):
    return reverse("ops:run_cancel", args=[run.pk])


def undo_url(run):
    return reverse("ops:run_undo", args=[run.pk])


def tick_url(run, item):
    return reverse("ops:item_tick", args=[run.pk, item.pk])


def by_text(run, text):
    return run.items.get(text=text)


# Cancel


def test_cancel_via_htmx_returns_the_actions_with_the_rows_locked(release, operator, htmx):
    response = client_for(operator).post(
        cancel_url(release), {"reason": "Release postponed"}, **htmx
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="run-actions"') and "<!doctype" not in html.lower()
    assert "Cancelled" in html and "Release postponed" in html
    assert html.count('class="run-item') == 4 and html.count("disabled") >= 4
    release.refresh_from_db()
    assert release.status == RunStatus.CANCELLED and release.cancelled_by == operator
    page = client_for(operator).get(release.get_absolute_url()).content.decode()
    assert "Cancel this run" not in page and 'hx-trigger="every' not in page


def test_cancel_without_htmx_redirects_with_a_message(release, operator):
    response = client_for(operator).post(cancel_url(release), {"reason": "Test run"}, follow=True)
    assert response.redirect_chain == [(release.get_absolute_url(), 303)]
    assert "Cancelled “Release (v1.2.3)”." in response.content.decode()


def test_cancel_needs_a_reason_and_keeps_the_run(release, operator, htmx):
    response = client_for(operator).post(cancel_url(release), {"reason": " "}, **htmx)
    assert response.status_code == 400
    assert "Say why you cancel this run." in response.content.decode()
    release.refresh_from_db()
    assert release.status == RunStatus.OPEN
    assert not AuditEntry.objects.filter(action="checklist.run.cancel").exists()


def test_cancel_wrong_method_and_who_may_not(release, make_template, operator, image_staff, htmx):
    assert client_for(operator).get(cancel_url(release)).status_code == 405
    response = client_for(image_staff).post(cancel_url(release), {"reason": "x"}, **htmx)
    assert response.status_code == 403
    make_template("Morning check", items=["Services healthy"])
    (scheduled,) = checklist_runs_schedule()
    response = client_for(operator).post(cancel_url(scheduled), {"reason": "x"}, **htmx)
    assert response.status_code == 403
    assert "Only a manager may cancel a scheduled run." in response.content.decode()
    assert ChecklistRun.objects.filter(status=RunStatus.CANCELLED).count() == 0


def test_the_cancel_form_is_offered_to_who_may_use_it(
    release, make_template, make_incident, operator, manager
):
    make_template("Morning check", items=["Services healthy"])
    (scheduled,) = checklist_runs_schedule()
    response_run = make_incident(operator).checklist_runs.get()

    def offered(user, run):
        return "Cancel this run" in client_for(user).get(run.get_absolute_url()).content.decode()

    assert offered(operator, release) and not offered(operator, scheduled)
    assert offered(manager, scheduled)
    assert not offered(manager, response_run)  # its incident closes it


# Undo within the grace period


def complete_with_htmx(client, run) -> str:
    htmx = {"HTTP_HX_REQUEST": "true"}
    *rest, last = [
        by_text(run, text)
        for text in ["No 5xx bursts", "No auth failures", "Review logs", "Tests green"]
    ]
    for item in rest:
        assert client.post(tick_url(run, item), {"done": "1"}, **htmx).status_code == 200
    return client.post(tick_url(run, last), {"done": "1"}, **htmx).content.decode()


def test_undo_via_htmx_reopens_the_run(release, operator, second_operator, htmx):
    client = client_for(operator)
    html = complete_with_htmx(client, release)
    assert "Undo the last tick" in html and "Complete" in html
    # Only who completed it is offered the undo, and only they may.
    page = client_for(second_operator).get(release.get_absolute_url()).content.decode()
    assert "Undo the last tick" not in page
    assert client_for(second_operator).post(undo_url(release), **htmx).status_code == 403

    response = client.post(undo_url(release), **htmx)
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="run-actions"')
    assert "Undo the last tick" not in html and "3 of 4" in html
    item = by_text(release, "Tests green")
    assert item.state == ItemState.OPEN
    row = html.split(f'<li id="item-{item.pk}"')[1].split("</li>")[0]
    assert "disabled" not in row  # its box can be ticked again
    release.refresh_from_db()
    assert release.status == RunStatus.OPEN


def test_undo_without_htmx_and_its_refusals(release, operator):
    client = client_for(operator)
    response = client.post(undo_url(release), follow=True)
    assert "The run is still open: untick the item instead." in response.content.decode()
    complete_with_htmx(client, release)
    response = client.post(undo_url(release))
    assert response.status_code == 303 and response["Location"] == release.get_absolute_url()
    assert client.get(undo_url(release)).status_code == 405


def test_polling_goes_on_during_the_grace_period_and_stops_after(release, operator, settings, htmx):
    client = client_for(operator)
    complete_with_htmx(client, release)
    release.refresh_from_db()
    poll = reverse("ops:run_poll", args=[release.pk])
    assert client.get(poll, {"since": release.version}, **htmx).status_code == 204
    settings.CHECKLIST_UNDO_MINUTES = 0
    response = client.get(poll, {"since": release.version}, **htmx)
    assert response.status_code == 286  # final: the rows lose their controls, polling stops
    assert "Undo the last tick" not in response.content.decode()
    page = client.get(release.get_absolute_url()).content.decode()
    assert 'hx-trigger="every' not in page and "Undo the last tick" not in page


def test_a_completed_run_takes_appended_notes(release, operator, htmx):
    client = client_for(operator)
    complete_with_htmx(client, release)
    page = client.get(release.get_absolute_url()).content.decode()
    assert "Add a note" in page and "Note or skip" not in page
    item = by_text(release, "Tests green")
    url = reverse("ops:item_note", args=[release.pk, item.pk])
    html = client.post(url, {"note": "Deployed at 14:02"}, **htmx).content.decode()
    assert html.lstrip().startswith(f'<li id="item-{item.pk}"') and "Deployed at 14:02" in html
    item.refresh_from_db()
    assert item.note.startswith("olivia, ") and item.state == ItemState.DONE


@pytest.mark.parametrize("extra_items", [0, 40])
def test_cancel_and_undo_query_counts_do_not_grow(
    make_template, operator, extra_items, django_assert_max_num_queries, htmx
):
    template = make_template(
        "Big", items=[f"Item {n}" for n in range(2 + extra_items)], cadence=Cadence.ON_DEMAND
    )
    client = client_for(operator)
    run = checklist_run_start(template=template, user=operator, label="one")
    *rest, last = list(run.items.order_by("position"))
    for item in rest:
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    client.post(tick_url(run, last), {"done": "1"}, **htmx)
    with django_assert_max_num_queries(22):
        assert client.post(undo_url(run), **htmx).status_code == 200
    other = checklist_run_start(template=template, user=operator, label="two")
    with django_assert_max_num_queries(20):
        assert client.post(cancel_url(other), {"reason": "Test"}, **htmx).status_code == 200


# Parents and their sub-items


def test_ticking_a_parent_over_open_sub_items_is_refused_in_its_row(release, operator, htmx):
    parent = by_text(release, "Review logs")
    response = client_for(operator).post(tick_url(release, parent), {"done": "1"}, **htmx)
    html = response.content.decode()
    assert response.status_code == 409 and html.lstrip().startswith(f'<li id="item-{parent.pk}"')
    assert "Tick or skip its sub-items first" in html and 'role="alert"' in html
    parent.refresh_from_db()
    assert parent.state == ItemState.OPEN


def test_ticking_the_last_sub_item_offers_the_parent(release, operator, htmx):
    client = client_for(operator)
    first, second = by_text(release, "No 5xx bursts"), by_text(release, "No auth failures")
    parent = by_text(release, "Review logs")
    html = client.post(tick_url(release, first), {"done": "1"}, **htmx).content.decode()
    assert "Tick “Review logs”" not in html
    html = client.post(tick_url(release, second), {"done": "1"}, **htmx).content.decode()
    offer = html.split(f'<li id="item-{parent.pk}"')[1]
    assert offer.startswith(' class="run-item') and 'hx-swap-oob="true"' in offer.split(">")[0]
    assert "All its sub-items are settled." in offer and "Tick “Review logs”" in offer
    assert client.post(tick_url(release, parent), {"done": "1"}, **htmx).status_code == 200
    parent.refresh_from_db()
    assert parent.state == ItemState.DONE


# Runs of an owner the user may not see


def test_image_staff_do_not_see_an_incidents_response_checklist(
    make_incident, operator, image_staff, htmx
):
    incident = make_incident(operator, title="Customer export bucket was public")
    run = incident.checklist_runs.get()
    staff = client_for(image_staff)
    for url in [run.get_absolute_url(), reverse("ops:run_poll", args=[run.pk])]:
        response = staff.get(url, {"since": 0})
        assert response.status_code == 404
        assert "Customer export bucket" not in response.content.decode()
    item = run.items.first()
    assert staff.post(tick_url(run, item), {"done": "1"}, **htmx).status_code == 404
    today = staff.get(reverse("today")).content.decode()
    assert incident.reference not in today and f'href="{run.get_absolute_url()}"' not in today
    template_page = staff.get(run.template.get_absolute_url()).content.decode()
    assert f'href="{run.get_absolute_url()}"' not in template_page
    # Who may see the incident sees its checklist, named after it.
    page = client_for(operator).get(run.get_absolute_url()).content.decode()
    assert f"response checklist of {incident.reference} Customer export bucket was public" in page
    assert f'href="{run.template.get_absolute_url()}"' in page


# Closing and reopening an incident


def test_closing_an_incident_cancels_its_checklist_and_a_manager_reopens_it(
    make_incident, operator, manager, htmx
):
    incident = make_incident(operator, severity="P3")
    run = incident.checklist_runs.get()
    client = client_for(manager)
    client.post(reverse("ops:incident_status", args=[incident.pk]), {"status": "resolved"})
    html = client.post(reverse("ops:incident_close", args=[incident.pk]), **htmx).content.decode()
    assert "Response checklist cancelled with 8 of 8 items open." in html
    assert "Cancelled" in html and "Reopen to correct it" in html
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    # The frozen checklist refuses a tick in its row and writes nothing.
    item = run.items.first()
    response = client_for(operator).post(tick_url(run, item), {"done": "1"}, **htmx)
    assert response.status_code == 409
    assert "is closed: its response checklist is frozen" in response.content.decode()
    # Operators may not reopen; a manager must say why.
    reopen = reverse("ops:incident_reopen", args=[incident.pk])
    assert client_for(operator).post(reopen, {"reason": "typo"}, **htmx).status_code == 403
    response = client.post(reopen, {"reason": ""}, **htmx)
    assert response.status_code == 400 and "Say why you reopen the incident." in (
        response.content.decode()
    )
    response = client.post(reopen, {"reason": "Wrong root cause"}, **htmx)
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith(
        '<section id="incident-summary"'
    )
    assert "Reopened by maria to correct it: Wrong root cause" in html
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert client.get(reopen).status_code == 405
