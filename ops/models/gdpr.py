"""GDPR: data-subject requests (art. 12-22), the sources of personal data they reach, the
export and erasure jobs run for them, the erasure ledger, the breach notifications of an
incident (art. 33/34) and the register of processing activities (art. 30)."""

import calendar
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone

from portal.models import AppendOnlyModel
from portal.secrets import ENV_NAME

DUE_SOON = timedelta(days=7)
MAX_EXTENSION_MONTHS = 2


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later, or the month's last day when it has no such day (one
    month from 31 January is 28/29 February)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class RequestKind(models.TextChoices):
    ACCESS = "access", "Access (art. 15)"
    RECTIFICATION = "rectification", "Rectification (art. 16)"
    ERASURE = "erasure", "Erasure (art. 17)"
    RESTRICTION = "restriction", "Restriction (art. 18)"
    PORTABILITY = "portability", "Portability (art. 20)"
    OBJECTION = "objection", "Objection (art. 21)"


class RequestStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    IDENTITY_PENDING = "identity-pending", "Identity pending"
    VERIFIED = "verified", "Verified"
    IN_PROGRESS = "in-progress", "In progress"
    AWAITING_REVIEW = "awaiting-review", "Awaiting review"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"


class RejectionReason(models.TextChoices):
    UNFOUNDED = "unfounded", "Manifestly unfounded"
    EXCESSIVE = "excessive", "Excessive (repetitive)"
    IDENTITY = "identity", "Identity not verified"
    NO_DATA = "no-data", "No personal data held"
    LEGAL_OBLIGATION = "legal-obligation", "Legal obligation to keep the data"


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEB_FORM = "web-form", "Web form"
    POST = "post", "Post"
    PHONE = "phone", "Phone"
    IN_PERSON = "in-person", "In person"


class DataSubjectRequest(models.Model):
    kind = models.CharField(max_length=16, choices=RequestKind)
    subject_email = models.EmailField(max_length=254)
    subject_keys = models.JSONField(
        default=list, blank=True, help_text="Other identifiers of the subject (customer id…)."
    )
    subject_name = models.CharField(max_length=200, blank=True)
    channel = models.CharField(max_length=16, choices=Channel, default=Channel.EMAIL)
    details = models.TextField(blank=True)
    received_at = models.DateTimeField()
    due_at = models.DateTimeField()
    original_due_at = models.DateTimeField()
    extension_reason = models.CharField(max_length=500, blank=True)
    extended_at = models.DateTimeField(null=True, blank=True)
    extended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    extension_communicated_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=RequestStatus, default=RequestStatus.RECEIVED)
    rejection_reason = models.CharField(max_length=20, choices=RejectionReason, blank=True)
    rejection_note = models.CharField(max_length=500, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="gdpr_requests",
    )
    identity_method = models.CharField(max_length=200, blank=True)
    identity_evidence = models.TextField(blank=True)
    identity_verified_at = models.DateTimeField(null=True, blank=True)
    identity_verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    legal_hold = models.BooleanField(default=False)
    legal_hold_reason = models.CharField(max_length=500, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delivery_note = models.CharField(max_length=500, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    erasure_verified_at = models.DateTimeField(null=True, blank=True)
    notified_due_soon_at = models.DateTimeField(null=True, blank=True)
    notified_overdue_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["status", "due_at"])]
        permissions = [
            ("view_subject_data", "Can see subject identifiers and exported data (DPO)"),
            ("handle_datasubjectrequest", "Can verify, export, erase and complete requests"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.get_kind_display()}"

    def get_absolute_url(self) -> str:
        return reverse("ops:gdpr_detail", args=[self.pk])

    @property
    def reference(self) -> str:
        return f"DSR-{self.pk}"

    @property
    def is_closed(self) -> bool:
        return self.status in (RequestStatus.COMPLETED, RequestStatus.REJECTED)

    @property
    def is_verified(self) -> bool:
        return self.identity_verified_at is not None

    @property
    def identifiers(self) -> list[str]:
        """The e-mail and the other keys, as strings, each once (case-insensitively)."""
        seen: dict[str, str] = {}
        for value in [self.subject_email, *(self.subject_keys or [])]:
            text = str(value).strip()
            if text and text.lower() not in seen:
                seen[text.lower()] = text
        return list(seen.values())

    def days_left(self, now: datetime | None = None) -> int:
        """Whole days until the deadline; negative once overdue."""
        return math.floor((self.due_at - (now or timezone.now())) / timedelta(days=1))

    def days_overdue(self, now: datetime | None = None) -> int:
        return max(0, -self.days_left(now))

    def deadline_state(self, now: datetime | None = None) -> str:
        """ "closed", "overdue", "due-soon" (within 7 days) or "ok"."""
        if self.is_closed:
            return "closed"
        now = now or timezone.now()
        if now > self.due_at:
            return "overdue"
        if self.due_at - now <= DUE_SOON:
            return "due-soon"
        return "ok"


class ErasureAction(models.TextChoices):
    DELETE = "delete", "Delete the rows"
    ANONYMIZE = "anonymize", "Anonymize the listed columns"


class DataSource(models.Model):
    """An external PostgreSQL database holding personal data. Its connection string is read
    from the environment variable named here when a job runs; never stored."""

    name = models.CharField(max_length=100, unique=True)
    connection_env = models.CharField(
        max_length=100,
        help_text="Name of the environment variable holding the connection URL, e.g. "
        "CRM_DATABASE_URL.",
    )
    description = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if not ENV_NAME.fullmatch(self.connection_env or ""):
            raise ValidationError(
                {
                    "connection_env": "The name of an environment variable (letters, digits, _), "
                    "not the connection URL itself."
                }
            )


def _names(value, field: str) -> None:
    if not isinstance(value, list) or not all(
        isinstance(name, str) and name.strip() for name in value
    ):
        raise ValidationError({field: 'A JSON list of column names, e.g. ["email", "name"].'})


class DataSourceTable(models.Model):
    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="tables")
    table = models.CharField(max_length=200, help_text="Table name, optionally schema.table.")
    subject_column = models.CharField(max_length=100)
    personal_columns = models.JSONField(
        default=list, blank=True, help_text="Columns that hold personal data (a JSON list)."
    )
    erasure_action = models.CharField(
        max_length=16, choices=ErasureAction, default=ErasureAction.DELETE
    )
    anonymize_columns = models.JSONField(
        default=list, blank=True, help_text="Columns set to an anonymous value (a JSON list)."
    )

    class Meta:
        ordering = ["source", "table"]
        constraints = [
            models.UniqueConstraint(fields=["source", "table"], name="gdpr_source_table_once")
        ]

    def __str__(self) -> str:
        return f"{self.source.name}: {self.table}"

    def clean(self):
        _names(self.personal_columns, "personal_columns")
        _names(self.anonymize_columns, "anonymize_columns")
        if self.erasure_action == ErasureAction.ANONYMIZE and not self.anonymize_columns:
            raise ValidationError({"anonymize_columns": "Name the columns to anonymize."})

    @property
    def scanned_columns(self) -> list[str]:
        return list(dict.fromkeys([self.subject_column, *self.personal_columns]))


class JobKind(models.TextChoices):
    EXPORT = "export", "Export"
    ERASURE = "erasure", "Erasure"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class GdprJob(models.Model):
    """An export or an erasure. The row is the truth: a worker claims it with a conditional
    update (queued → running) and only the claim holder settles it."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=JobKind)
    status = models.CharField(max_length=16, choices=JobStatus, default=JobStatus.QUEUED)
    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    claim = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=300, blank=True)
    file_size = models.PositiveBigIntegerField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    file_deleted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} of {self.request.reference}"

    @property
    def percent(self) -> int:
        return round(100 * self.steps_done / self.steps_total) if self.steps_total else 0

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    def is_downloadable(self, now: datetime | None = None) -> bool:
        return (
            self.kind == JobKind.EXPORT
            and self.status == JobStatus.DONE
            and bool(self.file_path)
            and self.file_deleted_at is None
            and self.expires_at is not None
            and (now or timezone.now()) < self.expires_at
        )


class ErasureLedgerEntry(AppendOnlyModel):
    """What an erasure removed: counts per table, never the values. Replayed after a restore
    (manage.py gdpr_ledger_replay) so that erased people do not come back."""

    request = models.ForeignKey(
        DataSubjectRequest, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    job = models.ForeignKey(GdprJob, null=True, on_delete=models.PROTECT, related_name="+")
    source_name = models.CharField(max_length=100)
    table = models.CharField(max_length=200)
    action = models.CharField(max_length=16, choices=ErasureAction)
    rows = models.PositiveIntegerField()
    erased_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["erased_at", "id"]

    def __str__(self) -> str:
        return (
            f"{self.request.reference}: {self.source_name}.{self.table} {self.action} {self.rows}"
        )


class SubjectNotice(models.TextChoices):
    UNDECIDED = "undecided", "Not decided yet"
    NOTIFIED = "notified", "Data subjects were told"
    NOT_REQUIRED = "not-required", "Not required (low risk, art. 34(3))"


class BreachRecord(models.Model):
    """The notifications of an incident that involves personal data."""

    incident = models.OneToOneField(
        "ops.Incident", on_delete=models.CASCADE, related_name="breach_record"
    )
    authority_notified_at = models.DateTimeField(null=True, blank=True)
    authority_reference = models.CharField(max_length=200, blank=True)
    authority_note = models.CharField(max_length=500, blank=True)
    subjects_decision = models.CharField(
        max_length=16, choices=SubjectNotice, default=SubjectNotice.UNDECIDED
    )
    subjects_notified_at = models.DateTimeField(null=True, blank=True)
    subjects_note = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Breach notifications of {self.incident.reference}"

    @property
    def authority_deadline(self) -> datetime:
        return self.incident.detected_at + timedelta(hours=72)

    @property
    def authority_in_time(self) -> bool | None:
        if self.authority_notified_at is None:
            return None
        return self.authority_notified_at <= self.authority_deadline


class ProcessingActivity(models.Model):
    """A row of the register of processing activities (art. 30)."""

    name = models.CharField(max_length=200)
    controller = models.CharField(max_length=300, blank=True)
    purpose = models.TextField()
    legal_basis = models.CharField(max_length=200, blank=True)
    subject_categories = models.CharField(max_length=500)
    data_categories = models.CharField(max_length=500)
    recipients = models.CharField(max_length=500, blank=True)
    transfers = models.CharField(
        max_length=500, blank=True, help_text="Transfers to third countries and their safeguards."
    )
    retention = models.CharField(max_length=300)
    security_measures = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "processing activities"

    def __str__(self) -> str:
        return self.name
