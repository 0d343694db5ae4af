"""Checklist pages and htmx endpoints, for each persona, with their query counts."""

from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.urls import reverse
from django.utils import timezone

from ops.models import ChecklistRun, ItemState
from ops.models.checklists import Cadence
from ops.services.checklists import checklist_item_set_state, checklist_runs_schedule
from portal.models import AuditEntry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(make_template) -> ChecklistRun:
    make_template(
        items=[
            {"text": "Health endpoint answers", "command": "curl -s $URL/api/health | jq ."},
            ("Review logs", ["No 5xx bursts", "No auth failures"]),
        ]
    )
    (run,) = checklist_runs_schedule()
    return run


def tick_url(run, item):
    return reverse("ops:item_tick", args=[run.pk, item.pk])


def test_login_required_everywhere(client, run, htmx):
    for url in [reverse("today"), run.get_absolute_url(), reverse("ops:template_list")]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = client.post(tick_url(run, run.items.first()), {"done": "1"}, **htmx)
    assert response.status_code == 200 and response["HX-Redirect"].startswith("/accounts/login/")
    assert run.items.filter(state="done").count() == 0


def test_run_page_shows_items_as_labelled_checkboxes(run, operator):
    response = client_for(operator).get(run.get_absolute_url())
    html = response.content.decode()
    first = run.items.get(text="Health endpoint answers")
    assert f'<label for="tick-{first.pk}">Health endpoint answers</label>' in html
    assert 'type="checkbox" id="tick-' in html
    assert "curl -s $URL/api/health | jq ." in html and 'data-copy="cmd-' in html
    assert 'hx-trigger="every 3s"' in html  # live updates from other operators


def test_tick_via_htmx_returns_the_row_and_progress(run, operator, htmx):
    item = run.items.get(text="No 5xx bursts")
    response = client_for(operator).post(tick_url(run, item), {"done": "1"}, **htmx)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<li id="item-{item.pk}"')
    assert "<!doctype" not in html.lower()
    assert "✓ olivia" in html and 'id="run-progress"' in html and 'hx-swap-oob="true"' in html
    assert "1 of 4" in html
    item.refresh_from_db()
    assert item.state == "done" and item.done_by == operator

    # Unchecked box sends no "done": untick.
    response = client_for(operator).post(tick_url(run, item), {}, **htmx)
    item.refresh_from_db()
    assert item.state == "open" and "0 of 4" in response.content.decode()


def test_tick_without_htmx_redirects_back(run, operator):
    item = run.items.first()
    response = client_for(operator).post(tick_url(run, item), {"done": "1"})
    assert response.status_code == 303 and response["Location"] == run.get_absolute_url()


def test_tick_wrong_method(run, operator):
    response = client_for(operator).get(tick_url(run, run.items.first()))
    assert response.status_code == 405


@pytest.mark.parametrize("persona", ["image_staff", "outsider"])
def test_tick_refused_for_roles_without_permission(run, persona, request, htmx):
    user = request.getfixturevalue(persona)
    item = run.items.first()
    response = client_for(user).post(tick_url(run, item), {"done": "1"}, **htmx)
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.state == "open"
    assert not AuditEntry.objects.filter(action__startswith="checklist.item").exists()


def test_image_staff_sees_runs_read_only(run, image_staff, outsider):
    html = client_for(image_staff).get(run.get_absolute_url()).content.decode()
    assert "your role does not tick checklist items" in html
    assert html.count("disabled") >= 4
    assert client_for(outsider).get(run.get_absolute_url()).status_code == 403
    # Today is every signed-in user's home page, showing only what their role may see.
    outsider_today = client_for(outsider).get(reverse("today")).content.decode()
    assert "Nothing here is for your role yet" in outsider_today
    assert run.title not in outsider_today


def test_item_of_another_run_is_404(run, make_template, operator, htmx):
    other_template = make_template("Evening check", items=["Other"])
    (other,) = checklist_runs_schedule()
    assert other.template == other_template
    foreign = other.items.get()
    response = client_for(operator).post(tick_url(run, foreign), {"done": "1"}, **htmx)
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.state == "open"


def test_tick_on_completed_run_is_409_and_changes_nothing(run, operator, htmx):
    for item in run.items.order_by("-position"):  # sub-items before their parent
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    client = client_for(operator)  # logging in is audited too: before counting
    count = AuditEntry.objects.count()
    item = run.items.first()
    response = client.post(tick_url(run, item), {}, **htmx)
    assert response.status_code == 409
    assert "This run is complete" in response.content.decode()
    item.refresh_from_db()
    assert item.state == "done" and AuditEntry.objects.count() == count


def test_completing_the_run_disables_every_row(run, operator, htmx):
    client = client_for(operator)
    last, *rest = list(run.items.order_by("position"))
    for item in reversed(rest):  # sub-items before their parent
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    html = client.post(tick_url(run, last), {"done": "1"}, **htmx).content.decode()
    assert "Complete" in html and "by olivia" in html
    # progress, the run's actions (now: undo) and the other rows
    assert html.count('hx-swap-oob="true"') == 2 + len(rest)
    assert "Undo the last tick" in html
    page = client.get(run.get_absolute_url()).content.decode()
    assert page.count("disabled") >= 4


def test_skip_and_note_endpoints(run, operator, htmx):
    client = client_for(operator)
    item = run.items.first()
    url = reverse("ops:item_skip", args=[run.pk, item.pk])
    response = client.post(url, {"reason": ""}, **htmx)
    assert (
        response.status_code == 400 and "Say why you skip this item." in response.content.decode()
    )
    response = client.post(url, {"reason": "Endpoint retired"}, **htmx)
    assert "Skipped by olivia" in response.content.decode()
    response = client.post(
        reverse("ops:item_note", args=[run.pk, item.pk]), {"note": "see INC-4"}, **htmx
    )
    assert "see INC-4" in response.content.decode()


def test_poll_returns_only_changes(run, operator, second_operator, htmx):
    client = client_for(second_operator)
    url = reverse("ops:run_poll", args=[run.pk])
    assert client.get(url, {"since": run.version}, **htmx).status_code == 204
    item = run.items.get(text="No 5xx bursts")
    checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    response = client.get(url, {"since": run.version}, **htmx)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="item-{item.pk}"' in html and "✓ olivia" in html
    assert html.count('class="run-item') == 1
    assert f"since={run.version + 1}" in html
    assert client.get(url, {"since": "x"}, **htmx).status_code == 400


def test_start_on_demand_run(make_template, operator, image_staff):
    template = make_template("Pre-deployment", cadence=Cadence.ON_DEMAND)
    url = reverse("ops:run_start")
    response = client_for(operator).post(url, {"template": template.slug, "label": "v1.2.3"})
    run = ChecklistRun.objects.get()
    assert response.status_code == 303 and response["Location"] == run.get_absolute_url()
    assert run.label == "v1.2.3"
    assert client_for(image_staff).post(url, {"template": template.slug}).status_code == 403
    assert client_for(operator).post(url, {"template": "nope"}).status_code == 404
    response = client_for(operator).post(
        url, {"template": template.slug, "label": "v" * 300}, follow=True
    )
    assert response.redirect_chain == [(template.get_absolute_url(), 303)]
    assert "The label is too long (300 characters; at most 200)" in response.content.decode()
    assert ChecklistRun.objects.count() == 1


def _history(make_template, templates: int, days: int, operator):
    """``templates`` daily templates with ``days`` of past runs, half of them completed."""
    now = timezone.now()
    for number in range(templates):
        template = make_template(f"Check {number}", items=["One", "Two"])
        for day in range(days, 0, -1):
            start = now - timedelta(days=day)
            run = ChecklistRun.objects.create(
                template=template,
                title=template.name,
                period_start=start,
                period_end=start + timedelta(days=1),
                due_at=start + timedelta(hours=3),
                created_at=start,
                items_total=2,
            )
            if day % 2:
                run.status, run.completed_at, run.completed_by = (
                    "completed",
                    start + timedelta(minutes=12),
                    operator,
                )
                run.started_at, run.items_done = start + timedelta(minutes=2), 2
                run.save()
    checklist_runs_schedule()


@pytest.mark.parametrize(("templates", "days"), [(2, 3), (8, 20)])
def test_today_query_count_does_not_grow(
    make_template, operator, templates, days, django_assert_max_num_queries
):
    _history(make_template, templates, days, operator)
    client = client_for(operator)
    # Flat: a fixed number per Today block (maintenance +3, GDPR +1, alerts +2, deploys and
    # backups +2, status page +1), whatever the history.
    with django_assert_max_num_queries(19):
        response = client.get(reverse("today"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Needs attention" in html and "Left incomplete" in html
    assert html.count('class="run-card') >= templates
    assert "10 min" in html  # median time from first tick to completion
    with django_assert_max_num_queries(9):
        assert client.get(reverse("ops:template_list")).status_code == 200


@pytest.mark.parametrize("extra_items", [0, 40])
def test_run_page_query_count_does_not_grow(
    make_template, operator, extra_items, django_assert_max_num_queries, htmx
):
    template = make_template(items=[f"Item {n}" for n in range(3 + extra_items)])
    (run,) = checklist_runs_schedule()
    for item in run.items.all()[:2]:
        checklist_item_set_state(item=item, user=operator, state=ItemState.DONE)
    client = client_for(operator)
    with django_assert_max_num_queries(7):
        assert client.get(run.get_absolute_url()).status_code == 200
    with django_assert_max_num_queries(7):
        response = client.get(reverse("ops:run_poll", args=[run.pk]), {"since": 0}, **htmx)
    assert response.status_code == 200
    assert response.content.decode().count('class="run-item') == 2  # the two ticked rows
    # One more than a plain list: which of the runs' owners (incidents) the user may see.
    with django_assert_max_num_queries(10):
        assert client.get(template.get_absolute_url()).status_code == 200


def test_today_partial_for_htmx(run, operator, htmx):
    html = client_for(operator).get(reverse("today"), **htmx).content.decode()
    assert html.lstrip().startswith('<div id="today-live"') and "<nav" not in html


def test_template_search(make_template, operator):
    make_template("Morning check", context="Daily operations")
    make_template("Weekly review", cadence=Cadence.WEEKLY, context="Periodic reviews")
    client = client_for(operator)
    html = client.get(reverse("ops:template_list"), {"q": "periodic"}).content.decode()
    assert "Weekly review" in html and "Morning check" not in html
    html = client.get(reverse("ops:template_list"), {"q": "nothing-like-this"}).content.decode()
    assert "No checklist matches “nothing-like-this”" in html


def test_every_model_has_an_admin_page(manager, make_template):
    """Every model of the portal's apps is in the admin, and its list opens for an admin."""
    from django.contrib import admin as django_admin
    from django.contrib.auth.models import User

    admin = User.objects.create_superuser("boss", password="a-long-enough-password")
    make_template()
    checklist_runs_schedule()
    client = client_for(admin)
    for app in ("portal", "ops", "images"):
        for model in django_apps.get_app_config(app).get_models():
            assert model in django_admin.site._registry, f"{model._meta.label} has no admin"
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            assert client.get(url).status_code == 200, model._meta.label
