"""Incident pages and htmx endpoints for each persona: happy path, wrong method, the persona
who may not, the htmx fragment, bad input, and query counts that do not grow."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ops.models import Incident, ItemState, TimelineEntry
from ops.services.checklists import checklist_item_set_state
from ops.services.incidents import incident_acknowledge, incident_note_add, incident_resolve
from ops.services.postmortems import action_item_add, postmortem_save
from tests.conftest import client_for
from tests.html_forms import form_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(make_incident, operator):
    return make_incident(operator, title="Login errors", affected_services="login, api")


def url(name, *args):
    return reverse(f"ops:{name}", args=args)


def test_login_required(client, incident):
    for path in [url("incident_list"), incident.get_absolute_url(), url("incident_report")]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("persona", "list_status", "report_status"),
    [
        ("operator", 200, 403),
        ("manager", 200, 200),
        ("image_staff", 403, 403),
        ("outsider", 403, 403),
    ],
)
def test_who_sees_what(incident, persona, list_status, report_status, request):
    client = client_for(request.getfixturevalue(persona))
    assert client.get(url("incident_list")).status_code == list_status
    assert client.get(incident.get_absolute_url()).status_code == list_status
    assert client.get(url("incident_print", incident.pk)).status_code == list_status
    assert client.get(url("incident_report")).status_code == report_status
    assert client.get(url("incident_export")).status_code == report_status


def test_open_an_incident_through_the_form(severities, response_checklist, operator):
    client = client_for(operator)
    page = client.get(url("incident_new")).content.decode()
    assert '<label for="id_title">Title</label>' in page and 'type="datetime-local"' in page
    response = client.post(
        url("incident_new"),
        {"title": "Payments failing", "severity": "P0", "affected_services": "payments"},
    )
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"] == incident.get_absolute_url()
    assert incident.severity.code == "P0" and incident.checklist_runs.count() == 1
    html = client.get(incident.get_absolute_url()).content.decode()
    assert "Payments failing" in html and "Open the response checklist" in html
    assert 'hx-trigger="every 5s"' in html  # live while open
    assert "style=" not in html and "<script>" not in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"title": "X", "severity": "P7"}, "There is no severity “P7”"),
        (
            {
                "title": "X",
                "severity": "P1",
                "started_at": "2026-03-02T10:00",
                "detected_at": "2026-03-02T09:00",
            },
            "Detected cannot be before started.",
        ),
        ({"title": "X", "severity": "P1", "detected_at": "yesterday"}, "Enter a valid date/time."),
        ({"title": "", "severity": "P1"}, "This field is required."),
    ],
)
def test_open_form_bad_input_saves_nothing(severities, operator, data, message):
    """Bad inputs: a severity that does not exist, detected before started, a time that is
    not a time, no title."""
    response = client_for(operator).post(url("incident_new"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Incident.objects.exists() and not TimelineEntry.objects.exists()


@pytest.mark.parametrize("persona", ["image_staff", "outsider"])
def test_open_refused_for_roles_without_permission(severities, persona, request):
    client = client_for(request.getfixturevalue(persona))
    assert client.get(url("incident_new")).status_code == 403
    response = client.post(url("incident_new"), {"title": "x", "severity": "P1"})
    assert response.status_code == 403 and not Incident.objects.exists()


def test_acknowledge_via_htmx_returns_the_summary_and_oob_parts(incident, second_operator, htmx):
    response = client_for(second_operator).post(url("incident_ack", incident.pk), **htmx)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="incident-summary"')
    assert "<!doctype" not in html.lower()
    for part in ["incident-clocks", "incident-timeline", "incident-poller", "incident-checklist"]:
        assert f'id="{part}"' in html
    assert html.count('hx-swap-oob="true"') == 4
    assert "Acknowledged by oscar" in html and "Acknowledged in time" in html
    incident.refresh_from_db()
    assert incident.acknowledged_by == second_operator


def test_acknowledge_wrong_method_and_twice(incident, operator, htmx):
    client = client_for(operator)
    assert client.get(url("incident_ack", incident.pk)).status_code == 405
    assert client.post(url("incident_ack", incident.pk)).status_code == 303
    response = client.post(url("incident_ack", incident.pk), **htmx)
    assert (
        response.status_code == 409
        and "Already acknowledged by olivia" in response.content.decode()
    )


@pytest.mark.parametrize("persona", ["image_staff", "outsider"])
def test_actions_refused_for_roles_without_permission(incident, persona, request, htmx):
    client = client_for(request.getfixturevalue(persona))
    entries = TimelineEntry.objects.count()
    for name, data in [
        ("incident_ack", {}),
        ("incident_status", {"status": "resolved"}),
        ("incident_note", {"text": "hi"}),
        ("incident_close", {}),
    ]:
        assert client.post(url(name, incident.pk), data, **htmx).status_code == 403
    assert TimelineEntry.objects.count() == entries
    incident.refresh_from_db()
    assert incident.status == "investigating" and incident.acknowledged_at is None


def test_operator_may_not_close_nor_write_the_postmortem(incident, operator, htmx):
    incident_resolve(incident=incident, user=operator)
    client = client_for(operator)
    response = client.post(url("incident_close", incident.pk), **htmx)
    assert (
        response.status_code == 403 and "You may not close incidents." in response.content.decode()
    )
    assert client.get(url("postmortem_edit", incident.pk)).status_code == 403
    html = client.get(incident.get_absolute_url()).content.decode()
    assert ">Close<" not in html and url("postmortem_edit", incident.pk) not in html


def test_resolve_then_close_refused_without_postmortem_and_then_closed(
    incident, operator, manager, htmx
):
    client = client_for(operator)
    response = client.post(url("incident_status", incident.pk), {"status": "resolved"}, **htmx)
    html = response.content.decode()
    assert response.status_code == 200 and "Resolved" in html
    assert "Acknowledged on resolution" in html
    boss = client_for(manager)
    response = boss.post(url("incident_close", incident.pk), **htmx)
    assert response.status_code == 409
    assert "P1 incidents need a postmortem before they close" in response.content.decode()
    page = boss.get(url("postmortem_edit", incident.pk)).content.decode()
    assert "Opened as P1" in page  # the timeline pre-filled
    response = boss.post(
        url("postmortem_edit", incident.pk),
        {"summary": "Bad deploy", "impact": "Logins failed", "root_cause": "Typo", "timeline": ""},
    )
    assert response.status_code == 302
    response = boss.post(url("incident_close", incident.pk), **htmx)
    assert response.status_code == 200 and "Closed by maria" in response.content.decode()
    # Closed: polling stops (286) and the page offers no actions.
    poll = client.get(url("incident_poll", incident.pk), {"since": 0}, **htmx)
    assert poll.status_code == 286
    html = client.get(incident.get_absolute_url()).content.decode()
    assert 'hx-trigger="every' not in html and "Add a note" not in html


def test_status_bad_value(incident, operator, htmx):
    response = client_for(operator).post(
        url("incident_status", incident.pk), {"status": "on fire"}, **htmx
    )
    assert response.status_code == 400 and "Unknown status “on fire”." in response.content.decode()


def test_note_via_htmx_clears_the_form_and_adds_to_the_timeline(incident, operator, htmx):
    client = client_for(operator)
    response = client.post(
        url("incident_note", incident.pk), {"text": "Rolled back to v1.3"}, **htmx
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="incident-note-form"')
    assert "Rolled back to v1.3" in html  # in the out-of-band timeline
    assert '<textarea id="note-text" name="text" rows="3" maxlength="5000"></textarea>' in html
    response = client.post(url("incident_note", incident.pk), {"text": "   "}, **htmx)
    assert response.status_code == 400 and "Write the note first." in response.content.decode()
    assert 'id="incident-timeline"' not in response.content.decode()


def test_poll_returns_clocks_only_when_nothing_changed(incident, operator, htmx):
    client = client_for(operator)
    response = client.get(url("incident_poll", incident.pk), {"since": incident.version}, **htmx)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="incident-poller"') and 'id="incident-clocks"' in html
    assert 'id="incident-timeline"' not in html
    incident_note_add(incident=incident, user=operator, text="Second opinion")
    response = client.get(url("incident_poll", incident.pk), {"since": incident.version}, **htmx)
    assert "Second opinion" in response.content.decode()
    assert client.get(url("incident_poll", incident.pk), {"since": "x"}).status_code == 400


def test_edit_page_records_only_changes(incident, operator):
    client = client_for(operator)
    page = client.get(url("incident_edit", incident.pk))
    assert page.status_code == 200
    data = form_fields(page.content.decode())  # what the browser sends, hidden fields too
    entries = TimelineEntry.objects.count()
    assert client.post(url("incident_edit", incident.pk), data).status_code == 302
    assert TimelineEntry.objects.count() == entries  # nothing changed, nothing written
    assert "resolved_at" not in page.context["form"].fields  # open: resolving is a status
    data["summary"] = "Users cannot log in"
    data["acknowledged_at"] = "2020-01-01T00:00"
    response = client.post(url("incident_edit", incident.pk), data)
    html = response.content.decode()
    assert response.status_code == 400
    # Once, beside its field, which has the focus; the banner only points at it.
    assert html.count("Acknowledged cannot be before detected.") == 1
    field = html[html.index('<label for="id_acknowledged_at"') :]
    field = field[: field.index("<label", 10)]
    assert "Acknowledged cannot be before detected." in field and "autofocus" in field
    assert "Please correct the field marked below." in html
    incident.refresh_from_db()
    assert incident.summary == ""
    data["acknowledged_at"] = ""
    assert client.post(url("incident_edit", incident.pk), data).status_code == 302
    incident.refresh_from_db()
    assert incident.summary == "Users cannot log in"


def test_list_filters_search_and_htmx(make_incident, operator, second_operator, manager, htmx):
    now = timezone.now()
    make_incident(operator, title="Disk full on db-2", severity="P2", affected_services="db")
    make_incident(
        operator,
        title="Checkout slow",
        severity="P1",
        commander="oscar",
        affected_services="checkout",
    )
    old = make_incident(
        operator,
        title="Old outage",
        severity="P0",
        detected_at=now - timedelta(days=40),
        started_at=now - timedelta(days=40),
    )
    incident_resolve(incident=old, user=operator)
    client = client_for(operator)

    def titles(**params):
        response = client.get(url("incident_list"), params)
        assert response.status_code == 200, response.content
        return [i.title for i in response.context["page"]]

    assert titles() == ["Checkout slow", "Disk full on db-2", "Old outage"]
    assert titles(severity="P2") == ["Disk full on db-2"]
    assert titles(status="open") == ["Checkout slow", "Disk full on db-2"]
    assert titles(status="resolved") == ["Old outage"]
    assert titles(service="checkout") == ["Checkout slow"]
    assert titles(commander="oscar") == ["Checkout slow"]
    assert titles(q="DISK") == ["Disk full on db-2"]
    assert titles(since=(now - timedelta(days=1)).date().isoformat()) == [
        "Checkout slow",
        "Disk full on db-2",
    ]
    assert titles(until=(now - timedelta(days=30)).date().isoformat()) == ["Old outage"]
    response = client.get(url("incident_list"), {"since": "soon", "status": "bogus"})
    assert response.status_code == 400
    html = response.content.decode()
    assert (
        "From must be a date like 2026-11-23, not “soon”." in html
        and "Unknown status “bogus”." in html
    )
    fragment = client.get(url("incident_list"), {"severity": "P1"}, **htmx).content.decode()
    assert fragment.lstrip().startswith('<div id="incident-table">') and "<nav" not in fragment


def test_overdue_incidents_are_flagged_in_the_list_and_on_the_home_page(make_incident, operator):
    now = timezone.now()
    make_incident(
        operator, title="Nobody looked", severity="P0", detected_at=now - timedelta(minutes=20)
    )
    calm = make_incident(
        operator, title="Someone has it", severity="P0", detected_at=now - timedelta(minutes=20)
    )
    incident_acknowledge(incident=calm, user=operator)
    client = client_for(operator)
    listing = client.get(url("incident_list")).content.decode()
    assert listing.count('class="badge bad">Overdue') == 1
    home = client.get(reverse("today")).content.decode()
    assert "Open incidents" in home and "Nobody looked" in home and "Someone has it" in home
    assert "unacknowledged since" in home


def test_home_page_without_incident_permission_shows_none(make_incident, operator, image_staff):
    make_incident(operator, title="Secret outage")
    assert "Secret outage" not in client_for(image_staff).get(reverse("today")).content.decode()


def test_csv_export_with_filters(make_incident, operator, manager):
    make_incident(operator, title='=HYPERLINK("http://x")', severity="P2")
    make_incident(operator, title="Checkout slow", severity="P1")
    response = client_for(manager).get(url("incident_export"), {"severity": "P2"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("reference,title,severity,status")
    assert len(lines) == 2 and "'=HYPERLINK" in lines[1]  # no formula injection
    assert client_for(manager).get(url("incident_export"), {"since": "x"}).status_code == 400


def test_report_page(make_incident, operator, manager, severities):
    now = timezone.now()
    first = make_incident(operator, severity="P1", detected_at=now - timedelta(hours=3))
    incident_acknowledge(incident=first, user=operator, now=now - timedelta(hours=2, minutes=50))
    incident_resolve(incident=first, user=operator, now=now - timedelta(hours=1))
    late = make_incident(
        operator, severity="P1", title="Late", detected_at=now - timedelta(hours=3)
    )
    incident_acknowledge(incident=late, user=operator, now=now - timedelta(hours=2))
    response = client_for(manager).get(url("incident_report"))
    html = response.content.decode()
    assert response.status_code == 200
    report = response.context["report"]
    p1 = next(row for row in report.stats if row.severity.code == "P1")
    assert p1.count == 2 and p1.mtta_median == timedelta(minutes=35)
    assert p1.mttr_median == timedelta(hours=2) and p1.in_time_share == 50
    assert "<svg" in html and 'role="img"' in html and "style=" not in html
    assert "Incidents per month by severity" in html
    response = client_for(manager).get(
        url("incident_report"), {"since": "2026-05-01", "until": "2026-01-01"}
    )
    assert response.status_code == 400 and "From must not be after To." in response.content.decode()


def test_printable_report_has_every_part(incident, operator, manager):
    incident_note_add(incident=incident, user=operator, text="Found the bad config")
    incident_resolve(incident=incident, user=operator)
    postmortem = postmortem_save(
        incident=incident, user=manager, summary="S", root_cause="Bad config"
    )
    action_item_add(
        postmortem=postmortem,
        user=manager,
        text="Lint configs",
        owner=operator,
        due_date=timezone.localdate(),
    )
    html = client_for(operator).get(url("incident_print", incident.pk)).content.decode()
    for text in [
        "Login errors",
        "Found the bad config",
        "Bad config",
        "Lint configs",
        "login, api",
        "Timeline",
    ]:
        assert text in html


def test_action_items_from_the_page(incident, operator, second_operator, manager, htmx):
    incident_resolve(incident=incident, user=operator)
    postmortem_save(incident=incident, user=manager, summary="S")
    boss = client_for(manager)
    response = boss.post(
        url("action_add", incident.pk),
        {"text": "Add alert", "owner": "olivia", "due_date": "2026-12-01"},
        **htmx,
    )
    assert response.status_code == 200 and "Add alert" in response.content.decode()
    response = boss.post(
        url("action_add", incident.pk), {"text": "", "owner": "", "due_date": "soon"}, **htmx
    )
    assert response.status_code == 400
    item = incident.postmortem.actions.get()
    response = client_for(second_operator).post(url("action_done", item.pk), {"done": "1"}, **htmx)
    assert response.status_code == 403
    response = client_for(operator).post(url("action_done", item.pk), {"done": "1"}, **htmx)
    assert response.status_code == 200 and "Done" in response.content.decode()
    assert response.content.decode().lstrip().startswith(f'<li id="action-{item.pk}"')


def test_run_page_links_back_to_its_incident(incident, operator):
    run = incident.checklist_runs.get()
    html = client_for(operator).get(run.get_absolute_url()).content.decode()
    assert f'href="{incident.get_absolute_url()}"' in html
    checklist_item_set_state(item=run.items.first(), user=operator, state=ItemState.DONE)
    html = client_for(operator).get(incident.get_absolute_url()).content.decode()
    assert "Ticked: Acknowledge the alert" in html and "<strong>1 of 8</strong> done" in html


def _bulk(make_incident, operator, count):
    base = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    for number in range(count):
        incident = make_incident(
            operator,
            title=f"Incident {number}",
            severity=["P0", "P1", "P2", "P3"][number % 4],
            detected_at=base + timedelta(days=number),
            commander=operator,
        )
        incident_note_add(incident=incident, user=operator, text="note")
        incident_resolve(
            incident=incident, user=operator, now=base + timedelta(days=number, hours=2)
        )


@pytest.mark.parametrize("count", [2, 12])
def test_list_report_and_detail_query_counts_do_not_grow(
    make_incident, operator, manager, count, django_assert_max_num_queries, htmx
):
    _bulk(make_incident, operator, count)
    client = client_for(manager)
    with django_assert_max_num_queries(9):
        assert client.get(url("incident_list")).status_code == 200
    with django_assert_max_num_queries(9):
        assert (
            client.get(
                url("incident_list"), {"q": "Incident", "severity": "P1"}, **htmx
            ).status_code
            == 200
        )
    # PostgreSQL computes the figures in one grouped query (SQLite reads one row per
    # incident, in one query); both read the cache's fingerprint of the incidents first.
    with django_assert_max_num_queries(8):
        response = client.get(
            url("incident_report"), {"since": "2026-01-01", "until": "2026-12-31"}
        )
    assert response.status_code == 200 and response.context["report"].total.count == count
    incident = Incident.objects.first()
    # The page and the poll also read the response checklist's items and their KPI evidence;
    # the page also its alerts and the vendor contacts of its services (issue 15), and its
    # status page card: the public components and the overrides that count (issue 16, +2).
    with django_assert_max_num_queries(17):
        assert client.get(incident.get_absolute_url()).status_code == 200
    with django_assert_max_num_queries(13):
        assert (
            client.get(url("incident_poll", incident.pk), {"since": 0}, **htmx).status_code == 200
        )
    # Flat: a fixed number per Today block (maintenance +3, GDPR +1, alerts +2, deploys and
    # backups +2, status page +1), whatever the history.
    with django_assert_max_num_queries(19):
        assert client.get(reverse("today")).status_code == 200


def test_admin_severities_editable_by_managers_history_read_only(incident, manager, operator):
    client = client_for(manager)
    assert client.get("/admin/ops/severity/").status_code == 200
    p1 = incident.severity
    response = client.get(f"/admin/ops/severity/{p1.pk}/change/")
    assert response.status_code == 200 and 'name="response_time"' in response.content.decode()
    page = client.get(f"/admin/ops/incident/{incident.pk}/change/").content.decode()
    assert 'name="title"' not in page  # incidents change through the portal only
    assert client.get("/admin/ops/incident/add/").status_code == 403
    assert client_for(operator).get("/admin/ops/severity/").status_code == 302  # not staff


def test_personal_data_deadline_flagged_as_it_nears(make_incident, operator):
    now = timezone.now()
    make_incident(operator, title="Leak", personal_data=True, detected_at=now - timedelta(hours=50))
    client = client_for(operator)
    for page in [url("incident_list"), reverse("today")]:
        assert "Personal data: 72 h deadline near" in client.get(page).content.decode()
    incident = Incident.objects.get()
    html = client.get(incident.get_absolute_url()).content.decode()
    assert "Less than 24 h left" in html and "GDPR art. 33" in html
