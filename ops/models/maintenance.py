"""Maintenance: recurring tasks (OS updates, secret rotation) with their completions, announced
windows (one-off or recurring) with their occurrences and notices, and the secret calendar
feed a person subscribes to.

Schedules are RFC 5545 RRULEs in an IANA time zone (``ops.recurrence``)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from ops import recurrence

DEFAULT_NOTICE = timedelta(hours=72)
EMERGENCY_NOTICE = timedelta(hours=24)
DEFAULT_NOTICE_HOURS = [72, 24, 1]
MAX_DURATION = timedelta(days=7)


class DueFrom(models.TextChoices):
    SCHEDULE = "schedule", "The schedule (a late completion does not move it)"
    COMPLETION = "completion", "The completion (the next one counts from when it was done)"


class MaintenanceTask(models.Model):
    """Something done on a schedule: OS updates monthly, backup tests quarterly."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    rrule = models.CharField(
        max_length=500, help_text="RFC 5545 RRULE, e.g. FREQ=MONTHLY;BYDAY=1MO."
    )
    first_due_at = models.DateTimeField(help_text="The first due date; the rule counts from it.")
    time_zone = models.CharField(max_length=64, default="UTC")
    due_from = models.CharField(max_length=16, choices=DueFrom, default=DueFrom.SCHEDULE)
    team = models.CharField(max_length=100, blank=True, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    checklist_template = models.ForeignKey(
        "ops.ChecklistTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The checklist that does it; completing its run completes the task.",
    )
    next_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_done_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    source_key = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["next_due_at", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_key"],
                condition=~models.Q(source_key=""),
                name="maintenance_task_unique_source",
            )
        ]
        permissions = [("complete_maintenancetask", "Can complete maintenance tasks")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("ops:maintenance_task_detail", args=[self.pk])

    @property
    def tz(self):
        return recurrence.zone(self.time_zone)

    @property
    def schedule_label(self) -> str:
        return recurrence.describe_rule(self.rrule)

    def is_overdue(self, now: datetime) -> bool:
        return self.next_due_at is not None and self.next_due_at <= now


class TaskCompletion(models.Model):
    task = models.ForeignKey(MaintenanceTask, on_delete=models.CASCADE, related_name="completions")
    due_at = models.DateTimeField(null=True, blank=True, help_text="The due date it completed.")
    done_at = models.DateTimeField()
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    run = models.OneToOneField(
        "ops.ChecklistRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="task_completion",
    )

    class Meta:
        ordering = ["-done_at", "-id"]

    def __str__(self) -> str:
        return f"{self.task} done {self.done_at:%Y-%m-%d}"


class Impact(models.TextChoices):
    NONE = "none", "None"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"


class OccurrenceStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ANNOUNCED = "announced", "Announced"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


LIVE_STATUSES = (
    OccurrenceStatus.SCHEDULED,
    OccurrenceStatus.ANNOUNCED,
    OccurrenceStatus.IN_PROGRESS,
)


def default_notice_hours() -> list[int]:
    return list(DEFAULT_NOTICE_HOURS)


class MaintenanceWindow(models.Model):
    """An announced window, one-off (empty rule) or recurring, in an IANA time zone."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    starts_at = models.DateTimeField(help_text="The (first) start.")
    time_zone = models.CharField(max_length=64, default="UTC")
    rrule = models.CharField(max_length=500, blank=True, help_text="Empty: once.")
    duration = models.DurationField()
    services = models.ManyToManyField(
        "ops.MonitoredService", blank=True, related_name="maintenance_windows"
    )
    impact = models.CharField(max_length=16, choices=Impact, default=Impact.DEGRADED)
    rollback_plan = models.TextField(blank=True)
    team = models.CharField(max_length=100, blank=True)
    is_emergency = models.BooleanField(default=False)
    notice_period = models.DurationField(default=DEFAULT_NOTICE)
    notice_hours = models.JSONField(
        default=default_notice_hours, help_text="Hours before each start an announcement goes out."
    )
    pre_template = models.ForeignKey(
        "ops.ChecklistTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Opened before each occurrence starts.",
    )
    pre_lead = models.DurationField(default=timedelta(hours=1))
    post_template = models.ForeignKey(
        "ops.ChecklistTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Opened when each occurrence ends.",
    )
    override_reason = models.CharField(max_length=500, blank=True)
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    overlap_reason = models.CharField(max_length=500, blank=True)
    postmortem_incident = models.ForeignKey(
        "ops.Incident",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Emergency windows: the incident whose postmortem covers it.",
    )
    forbids_deploys = models.BooleanField(
        "Change freeze: forbids deploys",
        default=False,
        help_text="While an occurrence is in progress, deploys to environments with gates "
        "(production) are refused; a Manager may override with a reason.",
    )
    is_cancelled = models.BooleanField(default=False)
    cancel_reason = models.CharField(max_length=500, blank=True)
    is_public = models.BooleanField(
        default=False, help_text="Shown on the public status page, ahead and while in progress."
    )
    announcement = models.TextField(
        blank=True, help_text="Public: what customers read on the status page."
    )
    source_key = models.CharField(max_length=200, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_key"],
                condition=~models.Q(source_key=""),
                name="maintenance_window_unique_source",
            )
        ]
        permissions = [
            ("schedule_maintenancewindow", "Can schedule, cancel and complete maintenance"),
            ("override_notice_maintenancewindow", "Can schedule inside the notice period"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("ops:maintenance_window_detail", args=[self.pk])

    @property
    def tz(self):
        return recurrence.zone(self.time_zone)

    @property
    def schedule_label(self) -> str:
        return recurrence.describe_rule(self.rrule)

    def starts_between(self, start: datetime, end: datetime) -> list[datetime]:
        return recurrence.occurrences(
            self.rrule, first=self.starts_at, tz=self.tz, start=start, end=end
        )

    @property
    def needs_postmortem(self) -> bool:
        return self.is_emergency and self.postmortem_incident_id is None


class WindowOccurrence(models.Model):
    """One occurrence of a window, stored once it needs a state of its own: announced,
    started, its runs opened, completed or cancelled."""

    window = models.ForeignKey(
        MaintenanceWindow, on_delete=models.CASCADE, related_name="occurrences"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=OccurrenceStatus, default=OccurrenceStatus.SCHEDULED
    )
    cancel_reason = models.CharField(max_length=500, blank=True)
    pre_run = models.OneToOneField(
        "ops.ChecklistRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    post_run = models.OneToOneField(
        "ops.ChecklistRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["window", "starts_at"], name="window_occurrence_unique_start"
            )
        ]
        indexes = [models.Index(fields=["starts_at", "ends_at"])]

    def __str__(self) -> str:
        return f"{self.window} {timezone.localtime(self.starts_at):%Y-%m-%d %H:%M}"

    def is_active(self, now: datetime) -> bool:
        return self.status in LIVE_STATUSES and self.starts_at <= now < self.ends_at


class NoticeChannelState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (retried)"
    SKIPPED = "skipped", "Not needed"


MAX_NOTICE_ATTEMPTS = 5


class WindowNotice(models.Model):
    """One announcement of one occurrence ("before:72", "start", "end"): the unique row is
    claimed before anything is sent, so two beats or a restart never send it twice. Each
    channel keeps its own state; a failed one is retried by the next scan."""

    occurrence = models.ForeignKey(
        WindowOccurrence, on_delete=models.CASCADE, related_name="notices"
    )
    kind = models.CharField(max_length=20)
    created_at = models.DateTimeField()
    email_state = models.CharField(
        max_length=16, choices=NoticeChannelState, default=NoticeChannelState.PENDING
    )
    email_attempts = models.PositiveSmallIntegerField(default=0)
    emailed_to = models.CharField(max_length=1000, blank=True)
    email_error = models.CharField(max_length=500, blank=True)
    webhook_state = models.CharField(
        max_length=16, choices=NoticeChannelState, default=NoticeChannelState.PENDING
    )
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_status = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["occurrence", "kind"], name="window_notice_once")
        ]

    def __str__(self) -> str:
        return f"{self.occurrence}: {self.label}"

    @property
    def label(self) -> str:
        if self.kind.startswith("before:"):
            return f"T-{self.kind.split(':', 1)[1]} h announcement"
        return {"start": "Start", "end": "End"}.get(self.kind, self.kind)


class CalendarFeedToken(models.Model):
    """A secret iCal URL for one person: only a digest is kept, the URL is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    prefix = models.CharField(max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"calendar feed of {self.user} ({self.prefix}…)"
