"""Checklist templates (what to check, when) and runs (one operator shift's copy, ticked)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from ops.runbooks.markdown import plain_text
from ops.runbooks.schedule import is_valid_zone, zone_from_name


class Cadence(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    BIWEEKLY = "biweekly", "Every two weeks"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    SEMIANNUAL = "semiannual", "Twice a year"
    YEARLY = "yearly", "Yearly"
    ON_DEMAND = "on-demand", "On demand"


# Cadences that open once every N months, in months aligned on January.
MONTHS_PER_PERIOD = {
    Cadence.MONTHLY: 1,
    Cadence.QUARTERLY: 3,
    Cadence.SEMIANNUAL: 6,
    Cadence.YEARLY: 12,
}
# A Monday that every-two-weeks periods count from.
BIWEEKLY_ANCHOR = date(2001, 1, 1)


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class WeekOfMonth(models.IntegerChoices):
    FIRST = 1, "first"
    SECOND = 2, "second"
    THIRD = 3, "third"
    FOURTH = 4, "fourth"
    LAST = 5, "last"


# How long after its period opens a run may stay open before it is flagged overdue, when the
# template does not say.
DEFAULT_COMPLETE_WITHIN = {
    Cadence.DAILY: timedelta(hours=3),
    Cadence.WEEKLY: timedelta(days=2),
    Cadence.MONTHLY: timedelta(days=5),
    Cadence.BIWEEKLY: timedelta(days=4),
    Cadence.QUARTERLY: timedelta(days=14),
    Cadence.SEMIANNUAL: timedelta(days=30),
    Cadence.YEARLY: timedelta(days=30),
}


def _local_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    return day.replace(year=day.year + month_index // 12, month=month_index % 12 + 1)


def _validate_zone(value: str) -> None:
    if value and not is_valid_zone(value):
        raise ValidationError(f"“{value}” is not a time zone (e.g. Europe/Berlin or UTC+05:30).")


class ChecklistTemplate(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    context = models.CharField(
        max_length=300, blank=True, help_text="Where it comes from, e.g. the runbook's headings."
    )
    description = models.TextField(blank=True)
    cadence = models.CharField(max_length=16, choices=Cadence, default=Cadence.ON_DEMAND)
    weekdays_only = models.BooleanField(
        default=False, help_text="Daily checklists open Monday to Friday only."
    )
    due_time = models.TimeField(
        default=time(9, 0), help_text="Local time of day the run opens (in the time zone)."
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[_validate_zone],
        help_text="An IANA zone (Europe/Berlin) or UTC+05:30. Empty: the portal's zone.",
    )
    due_weekday = models.PositiveSmallIntegerField(
        choices=Weekday,
        default=Weekday.MONDAY,
        help_text="Weekly and two-weekly checklists open on this day; with a week of the month, "
        "monthly ones too.",
    )
    due_day = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text="Monthly to yearly checklists open on this day of the month (1-28).",
    )
    due_week = models.PositiveSmallIntegerField(
        choices=WeekOfMonth,
        null=True,
        blank=True,
        help_text="Instead of a day: monthly to yearly checklists open on this weekday of the "
        "month (the first Monday).",
    )
    complete_within = models.DurationField(
        null=True,
        blank=True,
        help_text="A run still open this long after it opened is overdue. Empty: a default "
        "for the cadence (daily 3 h, weekly 2 days, monthly 5 days, quarterly 14 days).",
    )
    estimated_minutes = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    source = models.ForeignKey(
        "ops.RunbookSource",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="templates",
        editable=False,
    )
    source_key = models.CharField(
        max_length=500,
        blank=True,
        editable=False,
        help_text="Its identity in the runbook: the heading path, or the heading's {#key}.",
    )
    imported = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The values the last import set, to tell an edit in the admin from the source.",
    )
    retired_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Its runbook no longer defines it: no new runs, its history is kept.",
    )
    next_run_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        editable=False,
        help_text="When the scheduler next opens a run; empty means at its next scan.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_key"],
                condition=models.Q(source__isnull=False) & ~models.Q(source_key=""),
                name="checklist_template_unique_source_key",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # Any edit may move the schedule: let the scheduler recompute it at its next scan. That is
        # safe because opening a run is idempotent per period.
        self.next_run_at = None
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("ops:template_detail", args=[self.slug])

    def clean(self):
        if self.retired_at is not None and self.is_active:
            source = self.source.name if self.source_id else "its runbook"
            raise ValidationError(
                {
                    "is_active": f"Retired: {source} no longer defines it. Add it back to the "
                    "runbook and import it again to bring it back."
                }
            )

    @property
    def is_scheduled(self) -> bool:
        return self.cadence != Cadence.ON_DEMAND

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None

    @property
    def zone(self):
        return zone_from_name(self.time_zone) if self.time_zone else _local_zone()

    @property
    def deadline_after_open(self) -> timedelta | None:
        if self.complete_within is not None:
            return self.complete_within
        return DEFAULT_COMPLETE_WITHIN.get(self.cadence)

    def schedule_label(self) -> str:
        at = self.due_time.strftime("%H:%M")
        if self.time_zone:
            at = f"{at} {self.time_zone}"
        weekday = Weekday(self.due_weekday).label
        if self.due_week:
            on = f"on the {WeekOfMonth(self.due_week).label} {weekday}"
        else:
            on = f"on day {self.due_day}"
        match self.cadence:
            case Cadence.DAILY:
                return f"Weekdays at {at}" if self.weekdays_only else f"Daily at {at}"
            case Cadence.WEEKLY:
                return f"{weekday}s at {at}"
            case Cadence.BIWEEKLY:
                return f"Every other {weekday} at {at}"
            case Cadence.MONTHLY:
                return f"Monthly {on} at {at}"
            case Cadence.QUARTERLY:
                return f"Quarterly {on} at {at}"
            case Cadence.SEMIANNUAL:
                return f"Twice a year (January, July) {on} at {at}"
            case Cadence.YEARLY:
                return f"Yearly in January {on} at {at}"
        return "On demand"

    def _opening_on(self, day: date) -> datetime:
        return datetime.combine(day, self.due_time, tzinfo=self.zone)

    def _opening_in_month(self, first: date) -> date:
        if not self.due_week:
            return first.replace(day=self.due_day)
        if self.due_week == WeekOfMonth.LAST:
            last = _add_months(first, 1) - timedelta(days=1)
            return last - timedelta(days=(last.weekday() - self.due_weekday) % 7)
        first_weekday = first + timedelta(days=(self.due_weekday - first.weekday()) % 7)
        return first_weekday + timedelta(days=7 * (self.due_week - 1))

    def _last_opening_day(self, day: date) -> date:
        """The latest day on or before ``day`` a run of this template opens on."""
        if self.cadence == Cadence.DAILY:
            if self.weekdays_only and day.weekday() > 4:
                return day - timedelta(days=day.weekday() - 4)
            return day
        if self.cadence == Cadence.WEEKLY:
            return day - timedelta(days=(day.weekday() - self.due_weekday) % 7)
        if self.cadence == Cadence.BIWEEKLY:
            anchor = BIWEEKLY_ANCHOR + timedelta(days=self.due_weekday)
            return day - timedelta(days=(day - anchor).days % 14)
        months = MONTHS_PER_PERIOD[self.cadence]
        first = date(day.year, ((day.month - 1) // months) * months + 1, 1)
        opening = self._opening_in_month(first)
        if opening > day:
            opening = self._opening_in_month(_add_months(first, -months))
        return opening

    def _next_opening_day(self, opening: date) -> date:
        """The opening day after ``opening`` (itself an opening day)."""
        if self.cadence == Cadence.DAILY:
            following = opening + timedelta(days=1)
            while self.weekdays_only and following.weekday() > 4:
                following += timedelta(days=1)
            return following
        if self.cadence == Cadence.WEEKLY:
            return opening + timedelta(days=7)
        if self.cadence == Cadence.BIWEEKLY:
            return opening + timedelta(days=14)
        months = MONTHS_PER_PERIOD[self.cadence]
        return self._opening_in_month(_add_months(opening.replace(day=1), months))

    def period_at(self, moment: datetime) -> tuple[datetime, datetime]:
        """The (start, end) of the period that contains ``moment``: it starts when the run
        opens (today's 09:00, this Monday's 09:00, ...) and ends when the next one opens."""
        if not self.is_scheduled:
            raise ValueError("On-demand checklists have no period.")
        local = moment.astimezone(self.zone)
        opening = self._last_opening_day(local.date())
        if self._opening_on(opening) > local:
            opening = self._last_opening_day(opening - timedelta(days=1))
        return self._opening_on(opening), self._opening_on(self._next_opening_day(opening))


class ChecklistSection(models.Model):
    template = models.ForeignKey(
        ChecklistTemplate, on_delete=models.CASCADE, related_name="sections"
    )
    title = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["template", "position", "id"]

    def __str__(self) -> str:
        return self.title


class ChecklistItem(models.Model):
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="items")
    section = models.ForeignKey(
        ChecklistSection, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    position = models.PositiveIntegerField(default=0)
    text = models.CharField(max_length=500)
    command = models.TextField(blank=True, help_text="Shown as a code block with a copy button.")
    help_text = models.TextField(blank=True)
    evidence_service = models.ForeignKey(
        "ops.MonitoredService",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Shown live beside the box; ticking stores it with the tick.",
    )
    evidence_kpi = models.ForeignKey(
        "ops.Kpi", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The text, command and help text the last import set; empty when added here.",
    )
    due_after_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Due this many minutes after the run starts (a time-boxed step); empty: no "
        "time of its own.",
    )

    class Meta:
        ordering = ["template", "position", "id"]

    def __str__(self) -> str:
        return self.text_plain

    @property
    def text_plain(self) -> str:
        """The text's words without its Markdown, a link's address in brackets (for the audit
        log, the timeline and other plain-text places)."""
        return plain_text(self.text)

    def clean(self):
        if self.parent_id and self.parent.template_id != self.template_id:
            raise ValidationError({"parent": "A sub-item must belong to the same checklist."})
        if self.section_id and self.section.template_id != self.template_id:
            raise ValidationError({"section": "The section must belong to the same checklist."})


class RunStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class ChecklistRun(models.Model):
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.PROTECT, related_name="runs")
    title = models.CharField(max_length=200, help_text="The template's name when the run opened.")
    label = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus, default=RunStatus.OPEN)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True, help_text="The first tick.")
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancel_reason = models.CharField(max_length=500, blank=True)
    # An incident's response checklist: its ticks go to the incident's timeline.
    incident = models.ForeignKey(
        "ops.Incident",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checklist_runs",
    )
    # A maintenance window's pre- or post-maintenance checklist, or the run that does a
    # maintenance task (completing it completes the task).
    maintenance_window = models.ForeignKey(
        "ops.MaintenanceWindow",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checklist_runs",
    )
    maintenance_task = models.ForeignKey(
        "ops.MaintenanceTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checklist_runs",
    )
    # A GDPR data-subject request's checklist: seen only by those who may see the request.
    dsr = models.ForeignKey(
        "ops.DataSubjectRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checklist_runs",
    )
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    # Bumped on every change so open pages can ask "anything since version N?".
    version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "period_start"],
                condition=models.Q(period_start__isnull=False),
                name="checklist_run_one_per_period",
            )
        ]
        indexes = [
            models.Index(fields=["template", "-created_at"]),
            models.Index(fields=["status", "created_at"]),
        ]
        permissions = [
            ("tick_checklistrun", "Can tick, skip and annotate items of checklist runs"),
            ("start_checklistrun", "Can start and cancel on-demand checklist runs"),
            ("cancel_checklistrun", "Can cancel scheduled checklist runs"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.label})" if self.label else self.title

    def get_absolute_url(self) -> str:
        return reverse("ops:run_detail", args=[self.pk])

    @property
    def is_complete(self) -> bool:
        return self.status == RunStatus.COMPLETED

    @property
    def is_cancelled(self) -> bool:
        return self.status == RunStatus.CANCELLED

    @property
    def is_open(self) -> bool:
        return self.status == RunStatus.OPEN

    @property
    def open_count(self) -> int:
        return self.items_total - self.items_done

    @property
    def percent(self) -> int:
        return round(100 * self.items_done / self.items_total) if self.items_total else 100

    @property
    def duration(self) -> timedelta | None:
        if self.completed_at is None:
            return None
        return self.completed_at - (self.started_at or self.created_at)

    def undo_until(self, grace: timedelta) -> datetime | None:
        """Until when the last tick or skip that completed the run can be undone."""
        if not self.is_complete or self.completed_at is None:
            return None
        return self.completed_at + grace

    def is_overdue(self, now: datetime | None = None) -> bool:
        return self.is_open and self.due_at is not None and (now or timezone.now()) > self.due_at

    def is_left_incomplete(self, now: datetime | None = None) -> bool:
        return (
            self.is_open
            and self.period_end is not None
            and (now or timezone.now()) >= self.period_end
        )


class ItemState(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"


class RunItem(models.Model):
    """A run's own copy of a template item, so editing the template never rewrites history."""

    run = models.ForeignKey(ChecklistRun, on_delete=models.CASCADE, related_name="items")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    template_item = models.ForeignKey(
        ChecklistItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    position = models.PositiveIntegerField()
    depth = models.PositiveSmallIntegerField(default=0)
    section = models.CharField(max_length=200, blank=True)
    text = models.CharField(max_length=500)
    command = models.TextField(blank=True)
    help_text = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=ItemState, default=ItemState.OPEN)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)
    rev = models.PositiveIntegerField(default=0, help_text="The run's version of the last change.")
    evidence_service = models.ForeignKey(
        "ops.MonitoredService", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence_kpi = models.ForeignKey(
        "ops.Kpi", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence = models.JSONField(
        null=True, blank=True, help_text="What the linked service or KPI showed at the tick."
    )
    due_at = models.DateTimeField(
        null=True, blank=True, help_text="The run's start plus the item's minutes, if it has them."
    )

    class Meta:
        ordering = ["run", "position"]
        indexes = [models.Index(fields=["run", "rev"])]

    def __str__(self) -> str:
        return self.text_plain

    def get_absolute_url(self) -> str:
        return reverse("ops:run_detail", args=[self.run_id]) + f"#item-{self.pk}"

    @property
    def text_plain(self) -> str:
        """The text's words without its Markdown, a link's address in brackets (for the audit
        log, the timeline and other plain-text places)."""
        return plain_text(self.text)

    @property
    def is_settled(self) -> bool:
        return self.state != ItemState.OPEN

    def is_overdue(self, now: datetime | None = None) -> bool:
        return (
            not self.is_settled
            and self.due_at is not None
            and (now or timezone.now()) > self.due_at
        )
