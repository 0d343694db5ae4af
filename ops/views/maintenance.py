"""Maintenance pages: the task list (by due date, filtered by team and owner), a task with its
completions, the windows with their occurrences, the forms with the recurrence picker and its
next-five-dates preview (htmx)."""

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ops import recurrence
from ops.forms.maintenance import MaintenanceTaskForm, MaintenanceWindowForm, SchedulePicker
from ops.models import Incident, MaintenanceTask, MaintenanceWindow, WindowOccurrence
from ops.selectors.maintenance import task_teams, tasks_due, window_occurrences
from ops.services.maintenance import (
    maintenance_occurrence_cancel,
    maintenance_occurrence_complete,
    maintenance_task_complete,
    maintenance_task_save,
    maintenance_task_start_run,
    maintenance_window_cancel,
    maintenance_window_link_postmortem,
    maintenance_window_schedule,
)
from portal.htmx import Refusal, attempt, back_to, wants_fragment

PICKER = "ops/maintenance/_schedule_picker.html"
view_tasks = permission_required("ops.view_maintenancetask", raise_exception=True)
view_windows = permission_required("ops.view_maintenancewindow", raise_exception=True)


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@require_GET
@view_tasks
def task_list(request: HttpRequest) -> HttpResponse:
    team = request.GET.get("team", "").strip()
    owner_id = _int_or_none(request.GET.get("owner", ""))
    now = timezone.now()
    tasks = list(tasks_due(team=team, owner_id=owner_id))
    context = {
        "tasks": tasks,
        "now": now,
        "week_ahead": now + timedelta(days=7),
        "teams": task_teams(),
        "owners": get_user_model().objects.filter(is_active=True).order_by("username"),
        "team": team,
        "owner_id": owner_id,
        "can_edit": request.user.has_perm("ops.change_maintenancetask"),
    }
    if wants_fragment(request):
        return render(request, "ops/maintenance/task_list.html#task-table", context)
    return render(request, "ops/maintenance/task_list.html", context)


@require_GET
@view_tasks
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(
        MaintenanceTask.objects.select_related("owner", "checklist_template"), pk=pk
    )
    completions = task.completions.select_related("done_by", "run")[:50]
    runs = task.checklist_runs.order_by("-created_at")[:10]
    return render(
        request,
        "ops/maintenance/task_detail.html",
        {
            "task": task,
            "completions": completions,
            "runs": runs,
            "now": timezone.now(),
            "upcoming": recurrence.next_dates(
                task.rrule,
                first=task.first_due_at,
                tz=task.tz,
                after=(task.next_due_at or timezone.now()) - timedelta(seconds=1),
            ),
            "can_complete": request.user.has_perm("ops.complete_maintenancetask"),
            "can_edit": request.user.has_perm("ops.change_maintenancetask"),
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required("ops.change_maintenancetask", raise_exception=True)
def task_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    task = get_object_or_404(MaintenanceTask, pk=pk) if pk else None
    form = MaintenanceTaskForm(request.POST or None, task=task)
    if request.method == "POST" and form.is_valid():
        saved, refusal = attempt(
            lambda: maintenance_task_save(
                user=request.user, fields=form.service_fields(), task=task
            )
        )
        if refusal is None:
            return back_to(request, saved, None, done=f"Saved “{saved}”.")
        form.add_error(None, refusal.message)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "ops/maintenance/task_form.html", {"form": form, "task": task}, status=status
    )


@require_POST
def task_complete(request: HttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(MaintenanceTask, pk=pk)
    completion, refusal = attempt(
        lambda: maintenance_task_complete(
            task=task, user=request.user, note=request.POST.get("note", "")
        )
    )
    done = ""
    if completion is not None:
        task.refresh_from_db()
        next_due = timezone.localtime(task.next_due_at) if task.next_due_at else None
        done = f"“{task}” done; next due {next_due:%Y-%m-%d}." if next_due else "Done."
    return back_to(request, task, refusal, done=done)


@require_POST
def task_start_run(request: HttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(MaintenanceTask.objects.select_related("checklist_template"), pk=pk)
    run, refusal = attempt(lambda: maintenance_task_start_run(task=task, user=request.user))
    if refusal is not None:
        return back_to(request, task, refusal)
    return back_to(request, run, None, done=f"Started “{run}”; completing it completes the task.")


@require_GET
def rule_preview(request: HttpRequest) -> HttpResponse:
    """The picker's rule and its next five dates, as the form is edited (htmx)."""
    if not (
        request.user.has_perm("ops.change_maintenancetask")
        or request.user.has_perm("ops.schedule_maintenancewindow")
    ):
        return HttpResponse(status=403)
    picker = SchedulePicker(request.GET)
    context: dict = {"preview_error": "", "dates": [], "rule": ""}
    zone_name = request.GET.get("time_zone", "UTC")
    raw_start = request.GET.get("first_due") or request.GET.get("starts") or ""
    first = parse_datetime(raw_start) if raw_start else None
    rule = picker.picked_rule() if picker.is_valid() else ""
    if not picker.is_valid() or not rule:
        context["preview_error"] = (
            " ".join(message for errors in picker.errors.values() for message in errors)
            or "Choose how it repeats."
        )
    elif first is None:
        context["preview_error"] = "Give the first date to see the next ones."
    else:
        try:
            tz = recurrence.zone(zone_name)
            aware = first.replace(tzinfo=tz, fold=0)
            recurrence.validate_rule(rule, first=aware, tz=tz)
            after = max(aware - timedelta(seconds=1), timezone.now())
            context["dates"] = [
                moment.astimezone(tz)
                for moment in recurrence.next_dates(rule, first=aware, tz=tz, after=after)
            ]
            context["tz_name"] = zone_name
        except recurrence.RecurrenceError as error:
            context["preview_error"] = str(error)
    context["rule"] = rule
    context["label"] = recurrence.describe_rule(rule) if rule else ""
    return render(request, f"{PICKER}#rule-preview", context)


# Windows


@require_GET
@view_windows
def window_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    occurrences = window_occurrences(start=now - timedelta(days=1), end=now + timedelta(days=31))
    windows = MaintenanceWindow.objects.prefetch_related("services").order_by(
        "is_cancelled", "starts_at"
    )
    return render(
        request,
        "ops/maintenance/window_list.html",
        {
            "occurrences": occurrences,
            "windows": windows,
            "now": now,
            "can_schedule": request.user.has_perm("ops.schedule_maintenancewindow"),
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required("ops.schedule_maintenancewindow", raise_exception=True)
def window_new(request: HttpRequest) -> HttpResponse:
    form = MaintenanceWindowForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        window, refusal = attempt(
            lambda: maintenance_window_schedule(
                user=request.user,
                data=form.window_input(),
                details=form.details(),
                override_reason=data["override_reason"],
                overlap_reason=data["overlap_reason"],
            )
        )
        if refusal is None:
            return back_to(request, window, None, done=f"Scheduled “{window}”.")
        form.add_error(None, refusal.message)
    status = 400 if request.method == "POST" else 200
    return render(request, "ops/maintenance/window_form.html", {"form": form}, status=status)


def _window(pk: int) -> MaintenanceWindow:
    return get_object_or_404(
        MaintenanceWindow.objects.select_related(
            "pre_template", "post_template", "postmortem_incident", "created_by", "override_by"
        ).prefetch_related("services"),
        pk=pk,
    )


@require_GET
@view_windows
def window_detail(request: HttpRequest, pk: int) -> HttpResponse:
    window = _window(pk)
    now = timezone.now()
    occurrences = window_occurrences(
        start=now - timedelta(days=14), end=now + timedelta(days=120), windows=[window]
    )
    stored = (
        WindowOccurrence.objects.filter(window=window)
        .select_related("pre_run", "post_run", "completed_by")
        .prefetch_related("notices")
        .order_by("-starts_at")[:20]
    )
    return render(
        request,
        "ops/maintenance/window_detail.html",
        {
            "window": window,
            "occurrences": occurrences[:20],
            "stored": stored,
            "now": now,
            "tz": window.tz,
            "can_schedule": request.user.has_perm("ops.schedule_maintenancewindow"),
            "incidents": Incident.objects.filter(postmortem__isnull=False).order_by("-started_at")[
                :50
            ]
            if window.needs_postmortem
            else [],
        },
    )


@require_POST
def window_postmortem(request: HttpRequest, pk: int) -> HttpResponse:
    window = _window(pk)
    incident = Incident.objects.filter(pk=_int_or_none(request.POST.get("incident", ""))).first()
    _done, refusal = attempt(
        lambda: maintenance_window_link_postmortem(
            window=window, user=request.user, incident=incident
        )
    )
    return back_to(request, window, refusal, done="Postmortem linked.")


def _starts_at(request: HttpRequest) -> datetime | None:
    value = parse_datetime(request.POST.get("starts_at", ""))
    return value if value is not None and timezone.is_aware(value) else None


@require_POST
def occurrence_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    window = _window(pk)
    starts_at = _starts_at(request)
    if starts_at is None:
        return back_to(request, window, Refusal("Which occurrence? Its start is missing.", 400))
    _row, refusal = attempt(
        lambda: maintenance_occurrence_cancel(
            window=window,
            starts_at=starts_at,
            user=request.user,
            reason=request.POST.get("reason", ""),
        )
    )
    return back_to(request, window, refusal, done="Occurrence cancelled.")


@require_POST
def occurrence_complete(request: HttpRequest, pk: int, occurrence_pk: int) -> HttpResponse:
    window = _window(pk)
    occurrence = get_object_or_404(WindowOccurrence, pk=occurrence_pk, window=window)
    _row, refusal = attempt(
        lambda: maintenance_occurrence_complete(occurrence=occurrence, user=request.user)
    )
    return back_to(request, window, refusal, done="Maintenance marked completed.")


@require_POST
def window_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    window = _window(pk)
    _done, refusal = attempt(
        lambda: maintenance_window_cancel(
            window=window, user=request.user, reason=request.POST.get("reason", "")
        )
    )
    return back_to(request, window, refusal, done="Window cancelled.")
