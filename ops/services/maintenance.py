"""Writes for maintenance: tasks (saved, completed, their runs), windows (scheduled with their
checks, cancelled, completed), the scan that opens pre- and post-maintenance runs and moves
occurrences along, and the runbooks' defaults."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from ops import recurrence
from ops.models import ChecklistRun, ChecklistTemplate, MonitoredService
from ops.models.checklists import RunStatus
from ops.models.maintenance import (
    EMERGENCY_NOTICE,
    LIVE_STATUSES,
    MAX_DURATION,
    CalendarFeedToken,
    DueFrom,
    MaintenanceTask,
    MaintenanceWindow,
    OccurrenceStatus,
    TaskCompletion,
    WindowOccurrence,
)
from ops.selectors.maintenance import window_occurrences
from ops.services.checklists import checklist_run_start, open_owned_run
from portal import formatting
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record
from portal.services.tokens import secret_token_new, secret_token_user

MAX_NOTE = 2000
MAX_REASON = 500
# How far ahead overlaps with other windows are looked for.
OVERLAP_HORIZON = timedelta(days=366)
FEED_PREFIX = "cal_"


# Tasks


def task_schedule_problems(*, rrule: str, first_due_at: datetime | None, time_zone: str) -> dict:
    """What is wrong with a task's schedule, by field: {} when nothing is."""
    problems = {}
    try:
        tz = recurrence.zone(time_zone)
    except recurrence.RecurrenceError as error:
        return {"time_zone": str(error)}
    if first_due_at is None:
        return {"first_due_at": "Give the first due date."}
    try:
        recurrence.validate_rule(rrule, first=first_due_at, tz=tz)
    except recurrence.RecurrenceError as error:
        problems["rrule"] = str(error)
    return problems


def _task_next_due(task: MaintenanceTask, *, due_at: datetime | None, done_at: datetime):
    tz = task.tz
    if task.due_from == DueFrom.COMPLETION:
        # The rule re-anchored at the completion: "every 90 days" counts from when it was done.
        return recurrence.next_after(task.rrule, first=done_at, tz=tz, after=done_at)
    after = max(due_at, done_at) if due_at else done_at
    return recurrence.next_after(task.rrule, first=task.first_due_at, tz=tz, after=after)


def _first_due(task: MaintenanceTask, now: datetime) -> datetime | None:
    """A new or rescheduled task is next due at its first occurrence not before today."""
    start_of_day = now.astimezone(task.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    moment = max(start_of_day, task.first_due_at - timedelta(seconds=1))
    return recurrence.next_after(task.rrule, first=task.first_due_at, tz=task.tz, after=moment)


TASK_FIELDS = (
    "name",
    "description",
    "rrule",
    "first_due_at",
    "time_zone",
    "due_from",
    "team",
    "owner",
    "checklist_template",
    "is_active",
)


@transaction.atomic
def maintenance_task_save(
    *, user, fields: dict, task: MaintenanceTask | None = None, now: datetime | None = None
) -> MaintenanceTask:
    """Create or change a task; its next due date follows the (new) schedule."""
    require_perm(user, "ops.change_maintenancetask", "You may not edit maintenance tasks.")
    now = now or timezone.now()
    problems = task_schedule_problems(
        rrule=fields.get("rrule", ""),
        first_due_at=fields.get("first_due_at"),
        time_zone=fields.get("time_zone", ""),
    )
    if not (fields.get("name") or "").strip():
        problems["name"] = "Name the task."
    if problems:
        raise ActionRefused(" ".join(problems.values()))
    creating = task is None
    task = task or MaintenanceTask(created_at=now)
    before = None if creating else {"rrule": task.rrule, "next_due_at": str(task.next_due_at)}
    schedule_changed = creating or any(
        getattr(task, name) != fields.get(name, getattr(task, name))
        for name in ("rrule", "first_due_at", "time_zone")
    )
    for name in TASK_FIELDS:
        if name in fields:
            setattr(task, name, fields[name])
    task.first_due_at = task.first_due_at.replace(microsecond=0)  # dateutil: whole seconds
    task.name = task.name.strip()
    if schedule_changed:
        task.next_due_at = _first_due(task, now)
    task.updated_at = now
    task.save()
    audit_record(
        actor=user,
        action="maintenance.task.create" if creating else "maintenance.task.change",
        target=task,
        before=before,
        after={"rrule": task.rrule, "next_due_at": str(task.next_due_at)},
    )
    return task


@transaction.atomic
def maintenance_task_complete(
    *,
    task: MaintenanceTask,
    user,
    note: str = "",
    run: ChecklistRun | None = None,
    now: datetime | None = None,
) -> TaskCompletion:
    """Record who did it, when and how (a note, the checklist run), and move the next due date
    along the schedule."""
    require_perm(user, "ops.complete_maintenancetask", "You may not complete maintenance tasks.")
    return _record_completion(task=task, user=user, note=note, run=run, now=now or timezone.now())


def _record_completion(
    *, task: MaintenanceTask, user, note: str, run: ChecklistRun | None, now: datetime
) -> TaskCompletion:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ActionRefused(f"The note is too long ({len(note)} characters; at most 2000).")
    task = MaintenanceTask.objects.select_for_update().get(pk=task.pk)
    if not task.is_active:
        raise ActionRefused(f"“{task.name}” is inactive; an admin can reactivate it.", status=409)
    completion = TaskCompletion.objects.create(
        task=task, due_at=task.next_due_at, done_at=now, done_by=user, note=note, run=run
    )
    before = {"next_due_at": str(task.next_due_at)}
    task.last_done_at = now
    task.next_due_at = _task_next_due(task, due_at=task.next_due_at, done_at=now)
    task.updated_at = now
    task.save(update_fields=["last_done_at", "next_due_at", "updated_at"])
    audit_record(
        actor=user,
        action="maintenance.task.complete",
        target=task,
        summary=(note or (f"by checklist run {run.pk}" if run else ""))[:500],
        before=before,
        after={"next_due_at": str(task.next_due_at)},
    )
    return completion


@transaction.atomic
def maintenance_task_start_run(*, task: MaintenanceTask, user) -> ChecklistRun:
    """Start the task's checklist; completing the run completes the task."""
    if task.checklist_template is None:
        raise ActionRefused(f"“{task.name}” has no checklist to start.")
    run = checklist_run_start(template=task.checklist_template, user=user, label=task.name)
    run.maintenance_task = task
    run.save(update_fields=["maintenance_task"])
    return run


def maintenance_task_run_item_changed(*, run: ChecklistRun, item, user, now: datetime) -> None:
    """A run owned by a task completes the task when its last item is settled."""
    if run.status != RunStatus.COMPLETED or run.maintenance_task_id is None:
        return
    if TaskCompletion.objects.filter(run=run).exists():
        return
    # The completed run is the authority: whoever settled its last item completed the task.
    task = MaintenanceTask.objects.get(pk=run.maintenance_task_id)
    _record_completion(task=task, user=user, note="", run=run, now=now)


# Windows


@dataclass
class WindowInput:
    title: str
    starts_at: datetime | None
    ends_at: datetime | None
    time_zone: str
    rrule: str = ""
    services: tuple[MonitoredService, ...] = ()
    is_emergency: bool = False


def window_problems(
    *,
    data: WindowInput,
    now: datetime,
    override_reason: str = "",
    overlap_reason: str = "",
    user=None,
    exclude_pk: int | None = None,
) -> tuple[dict, dict]:
    """(errors, warnings) by field. Errors refuse the window; a warning (an overlap with
    another window on the same service, a start inside the notice period) is allowed with a
    reason (the notice override only by a Manager)."""
    errors, warnings = {}, {}
    try:
        tz = recurrence.zone(data.time_zone)
    except recurrence.RecurrenceError as error:
        return {"time_zone": str(error)}, {}
    if data.starts_at is None:
        errors["starts_at"] = "Give the start."
    if data.ends_at is None:
        errors["ends_at"] = "Give the end."
    if errors:
        return errors, warnings
    duration = data.ends_at - data.starts_at
    if duration <= timedelta(0):
        errors["ends_at"] = "The end is before the start."
    elif duration > MAX_DURATION:
        errors["ends_at"] = f"A window lasts at most 7 days (this one {duration})."
    if data.rrule:
        try:
            recurrence.validate_rule(data.rrule, first=data.starts_at, tz=tz)
        except recurrence.RecurrenceError as error:
            errors["rrule"] = str(error)
    if errors:
        return errors, warnings
    notice = EMERGENCY_NOTICE if data.is_emergency else timedelta(hours=72)
    first = recurrence.next_after(
        data.rrule, first=data.starts_at, tz=tz, after=now - timedelta(seconds=1)
    )
    if first is None:
        errors["starts_at"] = "This window would never occur again: its start has passed."
    elif first < now + notice:
        hours = int(notice.total_seconds() // 3600)
        message = (
            f"It starts in {formatting.duration(first - now)}, inside the {hours} h notice "
            "period: a Manager may override this with a reason."
        )
        if not override_reason.strip():
            warnings["override_reason"] = message
        elif user is not None and not user.has_perm("ops.override_notice_maintenancewindow"):
            errors["override_reason"] = (
                "Only a Manager may schedule a window inside its notice period."
            )
    overlaps = _overlaps(data, tz=tz, now=now, exclude_pk=exclude_pk)
    if overlaps and not overlap_reason.strip():
        warnings["overlap_reason"] = (
            f"It overlaps {overlaps} on the same service; give a reason to schedule it anyway."
        )
    return errors, warnings


def _overlaps(data: WindowInput, *, tz, now: datetime, exclude_pk: int | None) -> str:
    if not data.services:
        return ""
    others = list(
        MaintenanceWindow.objects.filter(is_cancelled=False, services__in=data.services)
        .exclude(pk=exclude_pk)
        .distinct()
        .prefetch_related("services")
    )
    if not others:
        return ""
    horizon = now + OVERLAP_HORIZON
    duration = data.ends_at - data.starts_at
    mine = [
        (begins, begins + duration)
        for begins in recurrence.occurrences(
            data.rrule, first=data.starts_at, tz=tz, start=now - duration, end=horizon
        )
    ]
    for occurrence in window_occurrences(start=now, end=horizon, windows=others):
        if occurrence.is_cancelled:
            continue
        for begins, ends in mine:
            if begins < occurrence.ends_at and occurrence.starts_at < ends:
                local = occurrence.starts_at.astimezone(tz)
                return f"“{occurrence.window.title}” on {local:%Y-%m-%d %H:%M}"
    return ""


@transaction.atomic
def maintenance_window_schedule(
    *,
    user,
    data: WindowInput,
    details: dict,
    override_reason: str = "",
    overlap_reason: str = "",
    now: datetime | None = None,
) -> MaintenanceWindow:
    """Schedule a window after the checks of :func:`window_problems`; the override and the
    overlap reason are recorded on the window and in the audit log."""
    require_perm(user, "ops.schedule_maintenancewindow", "You may not schedule maintenance.")
    now = now or timezone.now()
    # dateutil's rules work in whole seconds: a start with microseconds would not be its own
    # first occurrence.
    data = replace(
        data,
        starts_at=data.starts_at and data.starts_at.replace(microsecond=0),
        ends_at=data.ends_at and data.ends_at.replace(microsecond=0),
    )
    errors, warnings = window_problems(
        data=data,
        now=now,
        override_reason=override_reason,
        overlap_reason=overlap_reason,
        user=user,
    )
    if errors or warnings:
        raise ActionRefused(" ".join([*errors.values(), *warnings.values()]))
    window = MaintenanceWindow.objects.create(
        title=data.title.strip(),
        starts_at=data.starts_at,
        duration=data.ends_at - data.starts_at,
        time_zone=data.time_zone,
        rrule=data.rrule,
        is_emergency=data.is_emergency,
        notice_period=EMERGENCY_NOTICE if data.is_emergency else timedelta(hours=72),
        override_reason=override_reason.strip()[:MAX_REASON],
        override_by=user if override_reason.strip() else None,
        overlap_reason=overlap_reason.strip()[:MAX_REASON],
        created_by=user,
        created_at=now,
        updated_at=now,
        **details,
    )
    window.services.set(data.services)
    audit_record(
        actor=user,
        action="maintenance.window.schedule",
        target=window,
        summary=f"{window.schedule_label} from {data.starts_at:%Y-%m-%d %H:%M} {data.time_zone}",
        after={
            "rrule": window.rrule,
            "services": [service.slug for service in data.services],
            "override_reason": window.override_reason,
            "overlap_reason": window.overlap_reason,
        },
    )
    return window


def _occurrence_row(window: MaintenanceWindow, starts_at: datetime) -> WindowOccurrence:
    row, _created = WindowOccurrence.objects.get_or_create(
        window=window, starts_at=starts_at, defaults={"ends_at": starts_at + window.duration}
    )
    return row


@transaction.atomic
def maintenance_occurrence_cancel(
    *, window: MaintenanceWindow, starts_at: datetime, user, reason: str
) -> WindowOccurrence:
    """Cancel one occurrence (the feed shows it as an EXDATE)."""
    require_perm(user, "ops.schedule_maintenancewindow", "You may not cancel maintenance.")
    reason = reason.strip()
    if not reason:
        raise ActionRefused("Say why the occurrence is cancelled.")
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"The reason is too long ({len(reason)} characters; at most 500).")
    if starts_at not in window.starts_between(starts_at, starts_at + timedelta(seconds=1)):
        raise ActionRefused("The window has no occurrence at that time.", status=404)
    row = WindowOccurrence.objects.select_for_update().get(pk=_occurrence_row(window, starts_at).pk)
    if row.status not in LIVE_STATUSES:
        raise ActionRefused(
            f"This occurrence is already {row.get_status_display().lower()}.", status=409
        )
    row.status = OccurrenceStatus.CANCELLED
    row.cancel_reason = reason
    row.save(update_fields=["status", "cancel_reason"])
    audit_record(actor=user, action="maintenance.occurrence.cancel", target=row, summary=reason)
    return row


@transaction.atomic
def maintenance_window_cancel(*, window: MaintenanceWindow, user, reason: str) -> None:
    """Cancel the window and every occurrence to come."""
    require_perm(user, "ops.schedule_maintenancewindow", "You may not cancel maintenance.")
    reason = reason.strip()
    if not reason:
        raise ActionRefused("Say why the window is cancelled.")
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"The reason is too long ({len(reason)} characters; at most 500).")
    if window.is_cancelled:
        raise ActionRefused("This window is already cancelled.", status=409)
    MaintenanceWindow.objects.filter(pk=window.pk).update(
        is_cancelled=True, cancel_reason=reason, updated_at=timezone.now()
    )
    window.occurrences.filter(status__in=LIVE_STATUSES, starts_at__gt=timezone.now()).update(
        status=OccurrenceStatus.CANCELLED, cancel_reason=reason
    )
    audit_record(actor=user, action="maintenance.window.cancel", target=window, summary=reason)


@transaction.atomic
def maintenance_occurrence_complete(
    *, occurrence: WindowOccurrence, user, now: datetime | None = None
) -> WindowOccurrence:
    """Mark an occurrence done: not before it started, nor while its post-maintenance run is
    open (or, with a post checklist, not yet opened)."""
    require_perm(user, "ops.schedule_maintenancewindow", "You may not complete maintenance.")
    now = now or timezone.now()
    row = (
        WindowOccurrence.objects.select_for_update(of=("self",))
        .select_related("window", "post_run")
        .get(pk=occurrence.pk)
    )
    if row.status not in LIVE_STATUSES:
        raise ActionRefused(f"This occurrence is {row.get_status_display().lower()}.", status=409)
    if now < row.starts_at:
        raise ActionRefused("This occurrence has not started yet.", status=409)
    if row.window.post_template_id and row.post_run is None:
        raise ActionRefused(
            "The post-maintenance checklist opens when the window ends; complete it first.",
            status=409,
        )
    if row.post_run is not None and not row.post_run.is_complete:
        raise ActionRefused(
            "The post-maintenance checklist is still open: complete it first.", status=409
        )
    row.status = OccurrenceStatus.COMPLETED
    row.completed_at = now
    row.completed_by = user
    row.save(update_fields=["status", "completed_at", "completed_by"])
    audit_record(actor=user, action="maintenance.occurrence.complete", target=row)
    return row


@transaction.atomic
def maintenance_window_link_postmortem(*, window: MaintenanceWindow, user, incident) -> None:
    """An emergency window's postmortem is the incident postmortem it links to."""
    require_perm(user, "ops.schedule_maintenancewindow", "You may not edit maintenance.")
    if not window.is_emergency:
        raise ActionRefused("Only emergency windows need a postmortem.")
    if incident is None:
        raise ActionRefused("Choose the incident whose postmortem covers this maintenance.")
    MaintenanceWindow.objects.filter(pk=window.pk).update(
        postmortem_incident=incident, updated_at=timezone.now()
    )
    audit_record(
        actor=user, action="maintenance.window.postmortem", target=window, summary=str(incident)
    )


# The scan: occurrences stored ahead, statuses moved, runs opened


def _horizon(window: MaintenanceWindow) -> timedelta:
    hours = max([int(hour) for hour in window.notice_hours or []] or [0])
    return max(timedelta(hours=hours), window.pre_lead) + timedelta(hours=1)


def maintenance_scan(*, now: datetime | None = None) -> dict[str, int]:
    """Store the occurrences whose notices or runs are near, start those that began, open
    pre-maintenance runs (lead time before) and post-maintenance runs (at the end). Safe to
    run twice at once: occurrences and runs are claimed by unique rows and conditional
    updates."""
    now = now or timezone.now()
    windows = list(
        MaintenanceWindow.objects.filter(is_cancelled=False).select_related(
            "pre_template", "post_template"
        )
    )
    counts = {"started": 0, "pre_runs": 0, "post_runs": 0}
    new_rows = []
    for window in windows:
        for begins in window.starts_between(now - window.duration, now + _horizon(window)):
            new_rows.append(
                WindowOccurrence(window=window, starts_at=begins, ends_at=begins + window.duration)
            )
    WindowOccurrence.objects.bulk_create(new_rows, ignore_conflicts=True)
    starting = WindowOccurrence.objects.filter(
        status__in=(OccurrenceStatus.SCHEDULED, OccurrenceStatus.ANNOUNCED),
        starts_at__lte=now,
        ends_at__gt=now,
    ).select_related("window")
    for row in starting:
        with transaction.atomic():
            # Conditional: a second scheduler starting the same occurrence changes no row.
            if WindowOccurrence.objects.filter(pk=row.pk, status=row.status).update(
                status=OccurrenceStatus.IN_PROGRESS
            ):
                audit_record(actor=None, action="maintenance.occurrence.start", target=row)
                counts["started"] += 1
    rows = (
        WindowOccurrence.objects.filter(
            status__in=LIVE_STATUSES, ends_at__gt=now - timedelta(days=1)
        )
        .select_related("window__pre_template", "window__post_template")
        .order_by("starts_at")
    )
    for row in rows:
        window = row.window
        if (
            window.pre_template_id
            and row.pre_run_id is None
            and row.starts_at - window.pre_lead <= now < row.ends_at
        ):
            counts["pre_runs"] += _open_window_run(row, "pre", now)
        if window.post_template_id and row.post_run_id is None and now >= row.ends_at:
            counts["post_runs"] += _open_window_run(row, "post", now)
    return counts


def _open_window_run(row: WindowOccurrence, which: str, now: datetime) -> int:
    template: ChecklistTemplate = getattr(row.window, f"{which}_template")
    field = f"{which}_run"
    local = row.starts_at.astimezone(row.window.tz)
    label = f"{'Pre' if which == 'pre' else 'Post'}-maintenance {local:%Y-%m-%d %H:%M}"
    try:
        with transaction.atomic():
            claimed = WindowOccurrence.objects.select_for_update().get(pk=row.pk)
            if getattr(claimed, f"{field}_id") is not None:
                return 0
            run = open_owned_run(
                template=template,
                now=now,
                label=label,
                owner={"maintenance_window": row.window},
            )
            WindowOccurrence.objects.filter(pk=row.pk, **{f"{field}__isnull": True}).update(
                **{field: run}
            )
            audit_record(
                actor=None,
                action=f"maintenance.run.{which}",
                target=run,
                summary=f"{row.window.title} {label}",
            )
    except IntegrityError:
        return 0
    return 1


# Defaults from the runbooks


DEFAULT_TASKS = (
    # (key, name, rule, team, description) — 000's maintenance schedule and 004's rotation.
    ("os-updates", "OS updates", "FREQ=MONTHLY;BYDAY=1MO", "Infrastructure", "Runbook 000."),
    ("dependency-updates", "Dependency updates", "FREQ=WEEKLY;BYDAY=MO", "Development", "000."),
    ("backup-tests", "Backup tests", "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1", "DevOps", "000."),
    (
        "security-audits",
        "Security audits",
        "FREQ=MONTHLY;INTERVAL=6;BYMONTHDAY=1",
        "Security",
        "000.",
    ),
    (
        "capacity-planning",
        "Capacity planning review",
        "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=15",
        "Leadership",
        "000.",
    ),
    (
        "secret-rotation",
        "Secret rotation (API keys, payment keys, database encryption keys)",
        "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1",
        "Security",
        "Runbook 004: quarterly rotation.",
    ),
)
DEFAULT_WINDOWS = (
    # (key, title, rule, weekday the first one falls on, hour, hours long, description) — 003, 004
    (
        "weekly-database",
        "Weekly database maintenance",
        "FREQ=WEEKLY;BYDAY=SU",
        6,
        2,
        2,
        "Sunday 02:00-04:00 UTC: database work (runbooks 003, 004).",
    ),
    (
        "monthly-security",
        "Monthly security updates",
        "FREQ=MONTHLY;BYDAY=1MO",
        0,
        1,
        2,
        "First Monday 01:00-03:00 UTC: security updates (runbook 003).",
    ),
)


def _template_named(*fragments: str) -> ChecklistTemplate | None:
    for fragment in fragments:
        found = ChecklistTemplate.objects.filter(name__icontains=fragment, is_active=True).first()
        if found is not None:
            return found
    return None


@transaction.atomic
def maintenance_defaults_load(*, now: datetime | None = None) -> tuple[int, int]:
    """The runbooks' maintenance table and windows, once (keyed by source); returns how many
    tasks and windows were added."""
    now = now or timezone.now()
    utc = recurrence.zone("UTC")
    today = now.astimezone(utc).replace(hour=9, minute=0, second=0, microsecond=0)
    tasks = windows = 0
    for key, name, rule, team, description in DEFAULT_TASKS:
        if MaintenanceTask.objects.filter(source_key=key).exists():
            continue
        first = recurrence.next_after(rule, first=today - timedelta(days=366), tz=utc, after=today)
        task = MaintenanceTask.objects.create(
            source_key=key,
            name=name,
            rrule=rule,
            first_due_at=first,
            time_zone="UTC",
            team=team,
            description=description,
            next_due_at=first,
            created_at=now,
            updated_at=now,
        )
        audit_record(actor=None, action="maintenance.task.create", target=task, summary="default")
        tasks += 1
    pre = _template_named("pre-maintenance")
    post = _template_named("post-maintenance")
    for key, title, rule, weekday, hour, hours, description in DEFAULT_WINDOWS:
        if MaintenanceWindow.objects.filter(source_key=key).exists():
            continue
        anchor = today.replace(hour=hour) + timedelta(days=(weekday - today.weekday()) % 7 + 7)
        first = recurrence.next_after(
            rule, first=anchor, tz=utc, after=anchor - timedelta(seconds=1)
        )
        window = MaintenanceWindow.objects.create(
            source_key=key,
            title=title,
            description=description,
            starts_at=first,
            rrule=rule,
            time_zone="UTC",
            duration=timedelta(hours=hours),
            pre_template=pre,
            post_template=post,
            created_at=now,
            updated_at=now,
        )
        audit_record(
            actor=None, action="maintenance.window.schedule", target=window, summary="default"
        )
        windows += 1
    return tasks, windows


# The secret calendar feed


@transaction.atomic
def calendar_feed_create(*, user) -> tuple[CalendarFeedToken, str]:
    """A new secret feed URL's token for ``user`` (shown once); an earlier one is revoked."""
    if not user.is_active:
        raise ActionRefused("An inactive user has no calendar feed.")
    now = timezone.now()
    CalendarFeedToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
    raw, digest = secret_token_new(prefix=FEED_PREFIX)
    token = CalendarFeedToken.objects.create(
        user=user, prefix=raw[:12], digest=digest, created_at=now
    )
    audit_record(actor=user, action="calendar_feed.create", target=token)
    return token, raw


@transaction.atomic
def calendar_feed_revoke(*, user) -> int:
    revoked = CalendarFeedToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_record(actor=user, action="calendar_feed.revoke", summary=f"{revoked} feed(s)")
    return revoked


def calendar_feed_user(raw: str):
    """The active user a live feed token belongs to, or None."""
    return secret_token_user(model=CalendarFeedToken, raw=raw, prefix=FEED_PREFIX)
