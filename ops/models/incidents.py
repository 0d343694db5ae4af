"""Incidents: severities with their clocks, the incident record, its append-only timeline, the
postmortem with its action items, and the overdue notifications already sent."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from portal.models import AppendOnlyModel
from portal.polling import version_publish

# GDPR art. 33: the supervisory authority is told within 72 hours of becoming aware.
PERSONAL_DATA_DEADLINE = timedelta(hours=72)
# The notification deadline is flagged once less than this is left.
PERSONAL_DATA_WARNING = timedelta(hours=24)


class Severity(models.Model):
    """A severity level (P0-P3 by default) and the clocks it sets. Edited in the admin."""

    code = models.CharField(max_length=16, unique=True, help_text="Short name, e.g. P0.")
    name = models.CharField(max_length=100, help_text="e.g. Critical.")
    description = models.TextField(blank=True)
    rank = models.PositiveSmallIntegerField(default=0, help_text="0 is the most severe.")
    response_time = models.DurationField(help_text="Acknowledge within this, from detection.")
    escalation_time = models.DurationField(
        help_text="Escalate when still unacknowledged this long after detection (0: at once)."
    )
    postmortem_required = models.BooleanField(default=False)
    response_template = models.ForeignKey(
        "ops.ChecklistTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The checklist started when an incident opens. Empty: the one named "
        "“Incident response checklist”, if there is one.",
    )
    is_active = models.BooleanField(default=True, help_text="Offered for new incidents.")
    escalation_policy = models.ForeignKey(
        "ops.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Walked from detection until the incident is acknowledged (e.g. P0: the "
        "runbook's escalation timeline), as alerts are.",
    )

    class Meta:
        ordering = ["rank", "code"]
        verbose_name_plural = "severities"

    def __str__(self) -> str:
        return f"{self.code} ({self.name})" if self.name else self.code


class IncidentStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


OPEN_STATUSES = (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING)


class Incident(models.Model):
    title = models.CharField(max_length=200)
    severity = models.ForeignKey(Severity, on_delete=models.PROTECT, related_name="incidents")
    status = models.CharField(
        max_length=16, choices=IncidentStatus, default=IncidentStatus.INVESTIGATING
    )
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Free text until the monitored services exist; the health feature will link them.
    affected_services = models.CharField(max_length=300, blank=True)
    services = models.ManyToManyField(
        "ops.MonitoredService",
        blank=True,
        related_name="incidents",
        help_text="The monitored services it affects (its page lists the incident).",
    )
    started_at = models.DateTimeField(db_index=True)
    detected_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What the clocks said before the acknowledgement time was first corrected (the time it
    # was recorded, or when it was entered by hand): a correction keeps the record.
    acknowledged_recorded_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when the acknowledgement time was corrected: the time first recorded.",
    )
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    summary = models.TextField(blank=True)
    customer_impact = models.TextField(blank=True)
    chat_url = models.URLField(blank=True, max_length=500)
    status_page_url = models.URLField(blank=True, max_length=500)
    ticket_urls = models.TextField(blank=True, help_text="One link per line.")
    personal_data = models.BooleanField(
        default=False, help_text="Personal data is involved (GDPR art. 33: 72 hours)."
    )
    # The clocks, stamped from the severity when the incident opens or changes severity, so
    # the scheduler and the lists filter on them in the database.
    response_due_at = models.DateTimeField()
    escalation_due_at = models.DateTimeField()
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Bumped on every change so an open page can ask "anything since version N?".
    version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["status", "response_due_at"]),
            models.Index(fields=["severity", "started_at"]),
        ]
        permissions = [
            ("open_incident", "Can open incidents"),
            ("update_incident", "Can update incidents, acknowledge them and add notes"),
            ("close_incident", "Can close resolved incidents"),
            ("edit_postmortem", "Can write postmortems"),
            ("view_incident_report", "Can see the incident report"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("ops:incident_detail", args=[self.pk])

    @property
    def reference(self) -> str:
        return f"INC-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_closed(self) -> bool:
        return self.status == IncidentStatus.CLOSED

    @property
    def ticket_links(self) -> list[str]:
        return [line.strip() for line in self.ticket_urls.splitlines() if line.strip()]

    def stamp_clocks(self) -> None:
        """The response and escalation deadlines follow detection and the severity."""
        self.response_due_at = self.detected_at + self.severity.response_time
        self.escalation_due_at = self.detected_at + self.severity.escalation_time

    def is_response_overdue(self, now: datetime | None = None) -> bool:
        return (
            self.is_open
            and self.acknowledged_at is None
            and (now or timezone.now()) > self.response_due_at
        )

    def is_escalation_due(self, now: datetime | None = None) -> bool:
        return (
            self.is_open
            and self.acknowledged_at is None
            and (now or timezone.now()) >= self.escalation_due_at
        )

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return None if self.acknowledged_at is None else self.acknowledged_at - self.detected_at

    @property
    def time_to_resolve(self) -> timedelta | None:
        return None if self.resolved_at is None else self.resolved_at - self.detected_at

    @property
    def acknowledged_in_time(self) -> bool | None:
        if self.acknowledged_at is None:
            return None
        return self.acknowledged_at <= self.response_due_at

    @property
    def acknowledgement_corrected(self) -> bool:
        return self.acknowledged_recorded_at is not None

    @property
    def acknowledged_in_time_as_recorded(self) -> bool | None:
        """What the clocks said before any correction (None while unacknowledged)."""
        if self.acknowledged_recorded_at is None:
            return self.acknowledged_in_time
        return self.acknowledged_recorded_at <= self.response_due_at

    @property
    def personal_data_deadline(self) -> datetime | None:
        return self.detected_at + PERSONAL_DATA_DEADLINE if self.personal_data else None

    def personal_data_state(self, now: datetime | None = None) -> str:
        """Empty (not involved), "ok", "near" (under 24 h left) or "passed"."""
        deadline = self.personal_data_deadline
        if deadline is None:
            return ""
        left = deadline - (now or timezone.now())
        if left <= timedelta(0):
            return "passed"
        return "near" if left <= PERSONAL_DATA_WARNING else "ok"

    def add_entry(
        self,
        *,
        kind: str,
        text: str,
        user=None,
        now: datetime | None = None,
        corrects: "TimelineEntry | None" = None,
    ) -> "TimelineEntry":
        """The one way to write the timeline: the entry, and the version the open pages poll
        (bumped in the database and on this instance, so a later save() keeps it)."""
        now = now or timezone.now()
        entry = TimelineEntry.objects.create(
            incident=self,
            kind=kind,
            text=text,
            author=user,
            author_name=user.get_username() if user is not None else "system",
            created_at=now,
            corrects=corrects,
        )
        self.bump_version(now=now)
        return entry

    def bump_version(self, *, now: datetime) -> None:
        """Tell the open pages that something changed (they poll "anything since N?")."""
        Incident.objects.filter(pk=self.pk).update(version=F("version") + 1, updated_at=now)
        self.version += 1
        self.updated_at = now
        # The row is locked by the update until the commit: the version read is this one's.
        version = Incident.objects.filter(pk=self.pk).values_list("version", flat=True).first()
        version_publish("incident", self.pk, version or 0)


class TimelineKind(models.TextChoices):
    OPENED = "opened", "Opened"
    STATUS = "status", "Status"
    SEVERITY = "severity", "Severity"
    COMMANDER = "commander", "Commander"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    CHECKLIST = "checklist", "Response checklist"
    EDIT = "edit", "Details"
    NOTE = "note", "Note"
    POSTMORTEM = "postmortem", "Postmortem"
    NOTIFICATION = "notification", "Notification"


class TimelineEntry(AppendOnlyModel):
    """One line of an incident's history. Append-only: a correction is a new entry, written
    by Incident.add_entry()."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="timeline")
    kind = models.CharField(max_length=16, choices=TimelineKind)
    text = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150, help_text="Kept if the user is deleted.")
    created_at = models.DateTimeField(default=timezone.now)
    corrects = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections"
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["incident", "created_at", "id"])]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text[:80]}"


class Postmortem(models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="postmortem")
    summary = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    timeline = models.TextField(blank=True, help_text="Pre-filled from the incident's timeline.")
    root_cause = models.TextField(blank=True)
    went_well = models.TextField(blank=True)
    went_badly = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    REQUIRED_FIELDS = ("summary", "impact", "root_cause")

    def __str__(self) -> str:
        return f"Postmortem of {self.incident}"

    def missing_fields(self) -> list[str]:
        return [
            str(self._meta.get_field(name).verbose_name)
            for name in self.REQUIRED_FIELDS
            if not getattr(self, name).strip()
        ]


class ActionItem(models.Model):
    """A follow-up from a postmortem, tracked until done."""

    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="actions")
    text = models.CharField(max_length=500)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incident_actions"
    )
    due_date = models.DateField()
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [models.Index(fields=["done_at", "owner"])]

    def __str__(self) -> str:
        return self.text

    @property
    def is_done(self) -> bool:
        return self.done_at is not None

    def is_late(self, today=None) -> bool:
        return not self.is_done and self.due_date < (today or timezone.localdate())


class NotificationStep(models.TextChoices):
    RESPONSE = "response", "Response time passed"
    ESCALATION = "escalation", "Escalation time passed"


class IncidentNotification(models.Model):
    """A step already notified: the unique constraint claims it, so it is never sent twice."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    step = models.CharField(max_length=16, choices=NotificationStep)
    created_at = models.DateTimeField(default=timezone.now)
    emailed_to = models.TextField(blank=True)
    email_error = models.TextField(blank=True)
    webhook_status = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "step"], name="incident_notify_once")
        ]

    def __str__(self) -> str:
        return f"{self.incident.reference}: {self.get_step_display()}"
