"""Maintenance tasks and windows: the runbooks' defaults, completing (by hand or by the run),
the forms' bad inputs, runs that open before and after a window and belong to it, Today."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ops.models import (
    ChecklistRun,
    MaintenanceTask,
    MaintenanceWindow,
    MonitoredService,
    OccurrenceStatus,
    WindowOccurrence,
)
from ops.services.checklists import checklist_item_set_state
from ops.services.maintenance import (
    WindowInput,
    maintenance_defaults_load,
    maintenance_occurrence_complete,
    maintenance_scan,
    maintenance_task_complete,
    maintenance_task_save,
    maintenance_task_start_run,
    maintenance_window_schedule,
)
from portal.errors import ActionRefused
from portal.models import AuditEntry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
UTC_NAME = "UTC"


def _task(manager, **fields) -> MaintenanceTask:
    values = {
        "name": "OS updates",
        "rrule": "FREQ=MONTHLY;BYMONTHDAY=1",
        "first_due_at": datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        "time_zone": UTC_NAME,
        "team": "Infrastructure",
        **fields,
    }
    return maintenance_task_save(
        user=manager, fields=values, now=datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    )


def test_defaults_from_the_runbooks_load_once(make_template):
    make_template("Pre-maintenance checklist", cadence="on-demand")
    make_template("Post-maintenance checklist", cadence="on-demand")
    assert maintenance_defaults_load() == (6, 2)
    assert maintenance_defaults_load() == (0, 0)
    teams = dict(MaintenanceTask.objects.values_list("name", "team"))
    assert teams["OS updates"] == "Infrastructure"
    assert teams["Capacity planning review"] == "Leadership"
    assert "Secret rotation" in " ".join(teams)
    weekly = MaintenanceWindow.objects.get(source_key="weekly-database")
    assert weekly.starts_at.weekday() == 6 and weekly.starts_at.hour == 2
    assert weekly.duration == timedelta(hours=2)
    assert weekly.pre_template.name == "Pre-maintenance checklist"
    monthly = MaintenanceWindow.objects.get(source_key="monthly-security")
    assert monthly.starts_at.weekday() == 0 and monthly.starts_at.day <= 7


def test_completion_moves_next_due_from_the_schedule(manager, operator):
    task = _task(manager)
    assert task.next_due_at == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    late = datetime(2026, 4, 9, 15, 0, tzinfo=UTC)
    completion = maintenance_task_complete(task=task, user=operator, note="kernel 6.9", now=late)
    task.refresh_from_db()
    assert completion.due_at == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    assert task.next_due_at == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)  # not 9 May
    assert task.last_done_at == late
    early = datetime(2026, 4, 28, 9, 0, tzinfo=UTC)
    maintenance_task_complete(task=task, user=operator, now=early)
    task.refresh_from_db()
    assert task.next_due_at == datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert AuditEntry.objects.filter(action="maintenance.task.complete").count() == 2


def test_completion_can_count_from_when_it_was_done(manager, operator):
    task = _task(manager, rrule="FREQ=DAILY;INTERVAL=90", due_from="completion")
    done = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)
    maintenance_task_complete(task=task, user=operator, now=done)
    task.refresh_from_db()
    assert task.next_due_at == done + timedelta(days=90)


def test_completing_the_run_completes_the_task(manager, operator, make_template):
    template = make_template(
        "OS update procedure", items=["apt upgrade", "reboot"], cadence="on-demand"
    )
    task = _task(manager, checklist_template=template)
    due = task.next_due_at
    run = maintenance_task_start_run(task=task, user=manager)
    assert run.maintenance_task == task
    for item in run.items.all():
        checklist_item_set_state(item=item, user=operator, state="done")
    task.refresh_from_db()
    completion = task.completions.get()
    assert completion.run_id == run.pk and completion.done_by == operator
    assert task.next_due_at > due


def test_operator_may_complete_but_not_edit(operator):
    with pytest.raises(Exception, match="may not edit"):
        _task(operator)


def test_task_list_sorted_filtered_and_flat(manager, operator, htmx, django_assert_max_num_queries):
    _task(manager, name="Backup tests", team="DevOps", rrule="FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1")
    _task(
        manager,
        name="Dependency updates",
        team="Development",
        rrule="FREQ=WEEKLY;BYDAY=MO",
        owner=operator,
    )
    client = client_for(operator)
    url = reverse("ops:maintenance_task_list")
    html = client.get(url).content.decode()
    assert html.index("Dependency updates") < html.index("Backup tests")
    fragment = client.get(url, {"team": "DevOps"}, **htmx).content.decode()
    assert "Backup tests" in fragment and "Dependency updates" not in fragment
    assert "<!doctype" not in fragment.lower()
    mine = client.get(url, {"owner": operator.pk}).content.decode()
    assert "Dependency updates" in mine and "Backup tests" not in mine
    for index in range(20):
        _task(manager, name=f"Task {index}", team=f"Team {index}")
    with django_assert_max_num_queries(12):
        client.get(url)


def test_rule_preview_shows_the_next_five_dates(manager, htmx):
    client = client_for(manager)
    url = reverse("ops:maintenance_rule_preview")
    start = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT01:00")
    response = client.get(
        url,
        {
            "kind": "monthly_nth",
            "interval": 1,
            "nth": 1,
            "weekday": "MO",
            "starts": start,
            "time_zone": "Europe/Berlin",
        },
        **htmx,
    )
    html = response.content.decode()
    assert "Monthly on the first Monday" in html
    assert html.count("<li>") == 5 and html.count("Mon ") == 5
    bad = client.get(
        url,
        {
            "kind": "custom",
            "interval": 1,
            "custom_rrule": "FREQ=MINUTELY",
            "starts": start,
            "time_zone": "UTC",
        },
        **htmx,
    ).content.decode()
    assert "more often than every hour" in bad
    zone = client.get(
        url, {"kind": "daily", "interval": 1, "starts": start, "time_zone": "Nowhere/Else"}, **htmx
    ).content.decode()
    assert "not an IANA time zone" in zone


def _window_post(client, **fields):
    start = timezone.now() + timedelta(days=5)
    data = {
        "title": "Database upgrade",
        "starts": start.strftime("%Y-%m-%dT02:00"),
        "ends": start.strftime("%Y-%m-%dT04:00"),
        "time_zone": "UTC",
        "kind": "weekly",
        "interval": 1,
        "impact": "degraded",
        "pre_lead_minutes": 60,
        "notice_hours": "72, 24, 1",
        **fields,
    }
    return client.post(reverse("ops:maintenance_window_new"), data)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"ends": "2030-01-01T01:00", "starts": "2030-01-01T02:00"}, "ends", "before the start"),
        ({"starts": "2030-01-01T02:00", "ends": "2030-01-09T02:00"}, "ends", "at most 7 days"),
        ({"time_zone": "Europe/Atlantis"}, "time_zone", "not an IANA time zone"),
        (
            {
                "repeats": "on",
                "kind": "custom",
                "custom_rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            },
            "custom_rrule",
            "never occurs",
        ),
        (
            {"repeats": "on", "kind": "custom", "custom_rrule": "FREQ=MINUTELY;INTERVAL=15"},
            "custom_rrule",
            "more often than every hour",
        ),
        ({"notice_hours": "72, soon"}, "notice_hours", "whole hours"),
        ({"is_emergency": "on"}, "rollback_plan", "needs a rollback plan"),
    ],
)
def test_window_form_bad_input_is_refused_beside_the_field(manager, fields, field, message):
    response = _window_post(client_for(manager), **fields)
    assert response.status_code == 400
    form = response.context["form"]
    assert message in " ".join(form.errors[field])
    assert MaintenanceWindow.objects.count() == 0


def test_overlap_needs_a_reason_and_notice_period_a_manager(manager, operator, make_user):
    db = MonitoredService.objects.create(
        name="Database", slug="database", kind="tcp", target="127.0.0.1:5432"
    )
    client = client_for(manager)
    assert _window_post(client, services=[db.pk]).status_code == 303
    second = _window_post(client, services=[db.pk], title="Index rebuild")
    assert "overlaps “Database upgrade”" in " ".join(
        second.context["form"].errors["overlap_reason"]
    )
    assert MaintenanceWindow.objects.count() == 1
    third = _window_post(
        client, services=[db.pk], title="Index rebuild", overlap_reason="same team"
    )
    assert third.status_code == 303
    assert MaintenanceWindow.objects.get(title="Index rebuild").overlap_reason == "same team"
    soon = (timezone.now() + timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M")
    later = (timezone.now() + timedelta(hours=31)).strftime("%Y-%m-%dT%H:%M")
    refused = _window_post(client, title="Hotfix", starts=soon, ends=later)
    assert "notice period" in " ".join(refused.context["form"].errors["override_reason"])
    done = _window_post(
        client, title="Hotfix", starts=soon, ends=later, override_reason="CVE fix cannot wait"
    )
    assert done.status_code == 303
    hotfix = MaintenanceWindow.objects.get(title="Hotfix")
    assert hotfix.override_by == manager
    entry = AuditEntry.objects.get(action="maintenance.window.schedule", object_id=str(hotfix.pk))
    assert entry.after["override_reason"] == "CVE fix cannot wait"
    # Emergency windows have 24 h notice: 30 h ahead needs no override.
    emergency = _window_post(
        client,
        title="Emergency patch",
        starts=soon,
        ends=later,
        is_emergency="on",
        rollback_plan="Restore the snapshot",
    )
    assert emergency.status_code == 303


def test_operator_may_not_schedule(operator):
    assert _window_post(client_for(operator)).status_code == 403


def _window(manager, template_pre, template_post, *, starts_at, services=()):
    data = WindowInput(
        title="Sunday database work",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        time_zone="UTC",
        rrule="FREQ=WEEKLY;BYDAY=SU",
        services=tuple(services),
    )
    return maintenance_window_schedule(
        user=manager,
        data=data,
        details={
            "pre_template": template_pre,
            "post_template": template_post,
            "pre_lead": timedelta(hours=1),
        },
        now=starts_at - timedelta(days=10),
    )


def test_runs_open_before_and_after_and_belong_to_the_window(manager, operator, make_template):
    pre = make_template(
        "Pre-maintenance checklist", items=["Backups verified"], cadence="on-demand"
    )
    post = make_template(
        "Post-maintenance checklist", items=["Smoke tests pass"], cadence="on-demand"
    )
    start = datetime(2026, 6, 7, 2, 0, tzinfo=UTC)  # a Sunday
    window = _window(manager, pre, post, starts_at=start)
    assert maintenance_scan(now=start - timedelta(hours=2))["pre_runs"] == 0
    counts = maintenance_scan(now=start - timedelta(minutes=59))
    assert counts["pre_runs"] == 1
    assert maintenance_scan(now=start - timedelta(minutes=58))["pre_runs"] == 0  # once
    occurrence = WindowOccurrence.objects.get(window=window, starts_at=start)
    assert occurrence.pre_run.maintenance_window == window
    assert occurrence.pre_run.title == "Pre-maintenance checklist"
    maintenance_scan(now=start + timedelta(minutes=1))
    occurrence.refresh_from_db()
    assert occurrence.status == OccurrenceStatus.IN_PROGRESS
    with pytest.raises(ActionRefused, match="opens when the window ends"):
        maintenance_occurrence_complete(
            occurrence=occurrence, user=manager, now=start + timedelta(hours=1)
        )
    maintenance_scan(now=start + timedelta(hours=2))
    occurrence.refresh_from_db()
    assert occurrence.post_run.maintenance_window == window
    with pytest.raises(ActionRefused, match="still open"):
        maintenance_occurrence_complete(
            occurrence=occurrence, user=manager, now=start + timedelta(hours=2, minutes=5)
        )
    (item,) = occurrence.post_run.items.all()
    checklist_item_set_state(item=item, user=operator, state="done")
    done = maintenance_occurrence_complete(
        occurrence=occurrence, user=manager, now=start + timedelta(hours=2, minutes=10)
    )
    assert done.status == OccurrenceStatus.COMPLETED
    page = client_for(operator).get(occurrence.post_run.get_absolute_url()).content.decode()
    assert (
        f'<a href="{window.get_absolute_url()}">checklist of the maintenance window '
        "Sunday database work</a>" in page
    )
    assert ChecklistRun.objects.filter(maintenance_window=window).count() == 2


def test_today_shows_overdue_tasks_and_the_coming_windows(manager, operator, make_template):
    task = _task(manager, first_due_at=timezone.now() - timedelta(days=40))
    MaintenanceTask.objects.filter(pk=task.pk).update(
        next_due_at=timezone.now() - timedelta(days=2)
    )
    starts = timezone.now() + timedelta(days=4)
    maintenance_window_schedule(
        user=manager,
        data=WindowInput(
            title="Kernel patching",
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            time_zone="UTC",
        ),
        details={},
        now=timezone.now(),
    )
    html = client_for(operator).get(reverse("today")).content.decode()
    assert "Tasks overdue or due in the next 7 days" in html and "OS updates" in html
    assert "Kernel patching" in html


def test_task_form_saves_and_refuses_bad_schedules(manager, outsider):
    client = client_for(manager)
    url = reverse("ops:maintenance_task_new")
    data = {
        "name": "Backup tests",
        "first_due": "2026-01-01T09:00",
        "time_zone": "UTC",
        "due_from": "schedule",
        "kind": "quarterly",
        "interval": 1,
        "month_day": 31,
    }
    bad = client.post(url, {**data, "time_zone": "Moon/Base"})
    assert bad.status_code == 400
    assert "not an IANA time zone" in " ".join(bad.context["form"].errors["time_zone"])
    never = client.post(
        url, {**data, "kind": "custom", "custom_rrule": "FREQ=DAILY;UNTIL=20200101T000000"}
    )
    assert "never occurs" in " ".join(never.context["form"].errors["custom_rrule"])
    assert MaintenanceTask.objects.count() == 0
    response = client.post(url, data)
    assert response.status_code == 303
    task = MaintenanceTask.objects.get()
    assert task.rrule == "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=31"
    assert task.next_due_at.day == 31
    edit = client.get(reverse("ops:maintenance_task_edit", args=[task.pk])).content.decode()
    assert 'value="quarterly" selected' in edit
    assert client_for(outsider).get(reverse("ops:maintenance_task_list")).status_code == 403
    assert client_for(outsider).get(task.get_absolute_url()).status_code == 403


def test_window_page_cancels_an_occurrence_and_links_a_postmortem(manager, operator, make_incident):
    from ops.models import Postmortem

    starts = timezone.now() + timedelta(days=2)
    window = maintenance_window_schedule(
        user=manager,
        data=WindowInput(
            title="Emergency patch",
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            time_zone="Europe/Berlin",
            rrule="FREQ=DAILY",
            is_emergency=True,
        ),
        details={"rollback_plan": "Revert the package"},
        now=timezone.now(),
    )
    client = client_for(manager)
    page = client.get(window.get_absolute_url()).content.decode()
    assert "Postmortem required" in page and "Revert the package" in page
    cancel = reverse("ops:maintenance_occurrence_cancel", args=[window.pk])
    first = window.starts_at
    assert window.starts_between(first, first + timedelta(seconds=1)) == [first]
    response = client.post(cancel, {"starts_at": first.isoformat(), "reason": ""}, follow=True)
    assert "Say why the occurrence is cancelled." in response.content.decode()
    missing = client.post(cancel, {"reason": "x"}, follow=True).content.decode()
    assert "Which occurrence?" in missing
    client.post(cancel, {"starts_at": first.isoformat(), "reason": "Vendor delay"})
    assert WindowOccurrence.objects.get(starts_at=first).status == "cancelled"
    assert (
        client_for(operator)
        .post(cancel, {"starts_at": first.isoformat(), "reason": "x"})
        .status_code
        == 403
    )
    incident = make_incident(manager, title="Patch went wrong")
    Postmortem.objects.create(incident=incident, summary="s")
    link = reverse("ops:maintenance_window_postmortem", args=[window.pk])
    assert "Choose the incident" in client.post(link, {}, follow=True).content.decode()
    client.post(link, {"incident": incident.pk})
    window.refresh_from_db()
    assert window.postmortem_incident == incident and not window.needs_postmortem
    assert AuditEntry.objects.filter(action="maintenance.window.postmortem").exists()


def test_admin_edits_a_task_with_the_schedules_errors_beside_the_fields(manager):
    from django.contrib.auth.models import User

    admin_user = User.objects.create_superuser("root", password="a-long-enough-password")
    task = _task(manager)
    client = client_for(admin_user)
    url = f"/admin/ops/maintenancetask/{task.pk}/change/"
    data = {
        "name": "OS updates",
        "description": "",
        "rrule": "FREQ=MINUTELY",
        "first_due_at_0": "2026-01-01",
        "first_due_at_1": "09:00:00",
        "time_zone": "UTC",
        "due_from": "schedule",
        "team": "Infrastructure",
        "owner": "",
        "checklist_template": "",
        "is_active": "on",
        "completions-TOTAL_FORMS": "0",
        "completions-INITIAL_FORMS": "0",
    }
    response = client.post(url, data)
    assert response.status_code == 200
    assert "more often than every hour" in str(response.context["adminform"].form.errors["rrule"])
    response = client.post(url, {**data, "rrule": "FREQ=WEEKLY;BYDAY=MO"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.rrule == "FREQ=WEEKLY;BYDAY=MO" and task.next_due_at.weekday() == 0


@pytest.mark.parametrize("count", [2, 30])
def test_window_pages_query_counts_stay_flat(
    manager, operator, count, django_assert_max_num_queries
):
    db = MonitoredService.objects.create(
        name="Database", slug="database", kind="tcp", target="127.0.0.1:5432"
    )
    starts = timezone.now().replace(microsecond=0) + timedelta(days=5)
    windows = MaintenanceWindow.objects.bulk_create(
        MaintenanceWindow(
            title=f"Window {index}",
            starts_at=starts + timedelta(hours=index),
            duration=timedelta(hours=1),
            time_zone="UTC",
            rrule="FREQ=WEEKLY" if index % 2 else "",
        )
        for index in range(count)
    )
    for window in windows:
        window.services.add(db)
    client = client_for(operator)
    with django_assert_max_num_queries(10):
        html = client.get(reverse("ops:maintenance_window_list")).content.decode()
    assert html.count('href="/maintenance/windows/') >= count
    maintenance_scan(now=starts - timedelta(hours=80))
    with django_assert_max_num_queries(12):
        assert client.get(windows[-1].get_absolute_url()).status_code == 200
